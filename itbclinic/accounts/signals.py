"""Stamps the login time in the session (the absolute lifetime counts from the login itself);
a user saved inactive loses every way in."""

from django.contrib.auth.signals import user_logged_in
from django.db.models.signals import post_save
from django.dispatch import receiver
from django.utils import timezone

from .middleware import LAST_SEEN_KEY, LOGIN_AT_KEY
from .models import User
from .services import user_access_end


@receiver(user_logged_in, dispatch_uid="itbclinic.accounts.stamp_login_time")
def stamp_login_time(sender, request, user, **kwargs) -> None:
    session = getattr(request, "session", None)
    if session is None:  # e.g. a login outside HTTP (DRF force_authenticate has no session)
        return
    now = timezone.now().timestamp()
    session[LOGIN_AT_KEY] = now
    session[LAST_SEEN_KEY] = now


@receiver(post_save, sender=User, dispatch_uid="itbclinic.accounts.end_access_of_deactivated_user")
def end_access_of_deactivated_user(sender, instance: User, created: bool, raw: bool = False, **kwargs) -> None:
    # Every save, not only the admin's: whoever switches an account off, its ways in end with it.
    if not instance.is_active and not raw:
        user_access_end(user=instance)
