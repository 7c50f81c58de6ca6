"""A deactivated account's portal ways in end with it: accounts' user_access_end sends user_access_ended."""

from django.dispatch import receiver

from itbclinic.accounts.services import user_access_ended

from .services import portal_access_end_for_user


@receiver(user_access_ended, dispatch_uid="portal.end_portal_access")
def end_portal_access(sender, user, now, **kwargs) -> None:
    portal_access_end_for_user(user=user, now=now)
