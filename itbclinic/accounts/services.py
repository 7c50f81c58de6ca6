"""Writes on accounts: ending a person's sessions and every other way in, password-reset emails."""

import datetime as dt
from importlib import import_module

from django.conf import settings
from django.contrib.auth import SESSION_KEY
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.tokens import default_token_generator
from django.contrib.sessions.models import Session
from django.core.mail import EmailMessage
from django.db import transaction
from django.dispatch import Signal
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from .models import User

# Sent by `user_access_end` with `user` and `now`: each app ends the ways in it issued itself
# (the portal: calendar feeds and invitation links). Accounts knows no app above it.
user_access_ended = Signal()


def user_sessions_end(*, user: AbstractBaseUser, keep_session_key: str | None = None) -> int:
    """
    Delete every live session of `user` except `keep_session_key`; return how many ended.

    Used after a password change (the other devices are logged out, the one that changed the
    password stays) and after a password reset (all of them). Django would also reject those
    sessions on their next request (the session auth hash no longer matches); deleting the rows
    makes the cookies worthless at once, including to someone who copied one.
    """
    store_class = import_module(settings.SESSION_ENGINE).SessionStore
    user_id = str(user.pk)
    ended = 0
    for session in Session.objects.filter(expire_date__gt=timezone.now()).iterator():
        if session.session_key == keep_session_key:
            continue
        if session.get_decoded().get(SESSION_KEY) == user_id:
            # Through the store, so a cached_db engine forgets its cached copy as well.
            store_class(session_key=session.session_key).delete()
            ended += 1
    return ended


@transaction.atomic
def user_access_end(*, user: User, now: dt.datetime | None = None) -> None:
    """A deactivated user gets in no way at all: sessions, and whatever the apps issued (user_access_ended).

    Called whenever a user is saved inactive (signals.end_access_of_deactivated_user: the admin,
    a service, the shell), so no caller can forget a way in. Password-reset links of an inactive
    user are refused by the reset view itself. Safe to run twice.
    """
    now = now or timezone.now()
    user_sessions_end(user=user)
    user_access_ended.send(sender=User, user=user, now=now)


def user_deactivate(*, user: User) -> User:
    """Switch the account off; saving it inactive ends every way in (see user_access_end)."""
    user.is_active = False
    user.save(update_fields=["is_active"])
    return user


def password_reset_email_send(*, user: User) -> None:
    """Email `user` a link to choose a new password, at the address on their account.

    The email never states the username (a stranger reading it learns nothing to log in with).
    """
    site: str = settings.SITE_URL
    path = reverse(
        "password_reset_confirm",
        kwargs={
            "uidb64": urlsafe_base64_encode(force_bytes(user.pk)),
            "token": default_token_generator.make_token(user),
        },
    )
    context = {"link": site.rstrip("/") + path, "clinic_name": settings.CLINIC_NAME}
    subject = f"Reset your {settings.CLINIC_NAME} password"
    body = render_to_string("registration/password_reset_email.html", context)
    EmailMessage(subject, body, None, [user.email]).send()


def password_reset_users_for(*, email: str) -> list[User]:
    """The accounts a reset for `email` goes to: active, with a password, the email matching exactly but for case."""
    email = (email or "").strip()
    if not email:
        return []
    users = User.objects.filter(email__iexact=email, is_active=True)
    return [u for u in users if u.has_usable_password() and u.email.casefold() == email.casefold()]


def password_reset_request_send(*, email: str) -> int:
    """Someone asked for a reset of `email`: email each matching account; returns how many (never shown)."""
    users = password_reset_users_for(email=email)
    for user in users:
        password_reset_email_send(user=user)
    return len(users)
