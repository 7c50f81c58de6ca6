"""The portal's emails, sent by the worker (portal/tasks.py): an invitation's link, an email-change notice.

No email states a username or a patient's details: a link, the clinic's name, what to do.
"""

import datetime as dt
import secrets

from django.conf import settings
from django.core.mail import EmailMessage
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse

from .models import PortalAccountEmailChange, PortalInvitation, hash_token


def invitation_link(*, token: str) -> str:
    path = reverse("portal:invitation_accept", kwargs={"token": token})
    site: str = settings.SITE_URL
    return site.rstrip("/") + path


def portal_invitation_send(*, invitation_id: int, now: dt.datetime) -> bool:
    """Issue the invitation's token and email its link (the worker's half). False if no longer open.

    The token is made here, not in the request, so it never passes through the broker; only its
    hash is stored. Sent twice (a redelivered task), the later email's link is the one that works.
    """
    token = secrets.token_urlsafe(32)
    with transaction.atomic():
        invitation = (
            PortalInvitation.objects.pending(now=now)
            .select_for_update()
            .select_related("user")
            .filter(pk=invitation_id)
        ).first()
        if invitation is None or not invitation.user.is_active:
            return False
        invitation.token_hash = hash_token(token)
        invitation.save(update_fields=["token_hash"])
    context = {
        "link": invitation_link(token=token),
        "carer": invitation.carer,
        "hours": settings.PORTAL_INVITATION_MAX_AGE_HOURS,
        "clinic_name": settings.CLINIC_NAME,
    }
    subject = f"Your invitation to the {settings.CLINIC_NAME} patient portal"
    body = render_to_string("portal/email/invitation.txt", context)
    EmailMessage(subject, body, None, [invitation.email]).send()
    return True


def portal_account_email_change_notice_send(*, change_id: int) -> bool:
    """Tell the OLD address that the account's email changed (so a wrong change does not go unseen)."""
    change = PortalAccountEmailChange.objects.filter(pk=change_id).first()
    if change is None or not change.old_email:
        return False
    body = render_to_string(
        "portal/email/email_changed.txt",
        {"clinic_name": settings.CLINIC_NAME, "changed_at": change.changed_at},
    )
    subject = f"The email of your {settings.CLINIC_NAME} portal account changed"
    EmailMessage(subject, body, None, [change.old_email]).send()
    return True
