"""Stamps the login time in the session: the absolute lifetime counts from the login itself."""

from django.contrib.auth.signals import user_logged_in
from django.dispatch import receiver
from django.utils import timezone

from .middleware import LAST_SEEN_KEY, LOGIN_AT_KEY


@receiver(user_logged_in, dispatch_uid="itbclinic.accounts.stamp_login_time")
def stamp_login_time(sender, request, user, **kwargs) -> None:
    session = getattr(request, "session", None)
    if session is None:  # e.g. a login outside HTTP (DRF force_authenticate has no session)
        return
    now = timezone.now().timestamp()
    session[LOGIN_AT_KEY] = now
    session[LAST_SEEN_KEY] = now
