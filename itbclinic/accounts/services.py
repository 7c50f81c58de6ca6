"""Writes on accounts: ending a person's sessions server-side."""

from importlib import import_module

from django.conf import settings
from django.contrib.auth import SESSION_KEY
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.sessions.models import Session
from django.utils import timezone


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
