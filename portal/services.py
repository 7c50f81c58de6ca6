"""Writes of the portal: invitations, carers, calendar feeds, reminder preferences.

A change request is a write of the care schedule: `refills.services.appointment_change_request_create`.
"""

import datetime as dt
import secrets

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from itbclinic.accounts.models import User
from itbclinic.accounts.roles import Role, is_staff_member, user_roles
from patients.models import Patient

from .models import CalendarFeed, CarerLink, PortalInvitation, hash_feed_token
from .tokens import invitation_token_generator


def _portal_user_for(*, email: str, patient: Patient, carer: bool) -> User:
    """The account the invitation is for: the patient's own, or one found or made for the email."""
    if not carer and patient.user is not None:
        return patient.user
    existing = User.objects.filter(username__iexact=email).first() or User.objects.filter(email__iexact=email).first()
    if existing is not None:
        if is_staff_member(existing) or existing.is_staff or existing.is_superuser:
            raise ValidationError({"email": "This email belongs to a staff account: use another address."})
        owner = Patient.objects.filter(user=existing).exclude(pk=patient.pk).first()
        if owner is not None and not carer:
            raise ValidationError(
                {"email": "This email already opens another patient's portal: invite this person as a carer."}
            )
        return existing
    user = User(
        username=email,
        email=email,
        first_name="" if carer else patient.given_name,
        last_name="" if carer else patient.family_name,
    )
    user.set_unusable_password()
    user.save()
    return user


def _invitation_link(*, user: User) -> str:
    uidb64 = urlsafe_base64_encode(force_bytes(user.pk))
    token = invitation_token_generator.make_token(user)
    path = reverse("portal:invitation_accept", kwargs={"uidb64": uidb64, "token": token})
    site: str = settings.SITE_URL
    return site.rstrip("/") + path


@transaction.atomic
def portal_invite_patient(
    *,
    patient: Patient,
    email: str,
    invited_by: User,
    carer: bool = False,
    consent_note: str = "",
    now: dt.datetime | None = None,
) -> PortalInvitation:
    """Invite the patient (or, with `carer=True`, a carer) to the portal; the link is emailed after commit.

    A carer needs the patient's consent, recorded as `consent_note` (how and when they agreed).
    """
    now = now or timezone.now()
    email = (email or "").strip().lower()
    if not email:
        raise ValidationError({"email": "An email address is needed to send the invitation."})
    if Role.NURSE not in user_roles(invited_by):
        raise ValidationError("Only nurses invite patients and carers to the portal.")
    if patient.entered_in_error or patient.status != Patient.Status.ACTIVE:
        raise ValidationError("Only active patients can be invited to the portal.")
    if carer and not consent_note.strip():
        raise ValidationError({"consent_note": "Record how the patient agreed to this carer seeing their portal."})

    user = _portal_user_for(email=email, patient=patient, carer=carer)
    if not user.email:
        user.email = email
        user.save(update_fields=["email"])
    user.groups.add(Group.objects.get(name=Role.PATIENT.value))
    if carer:
        if not CarerLink.objects.filter(carer=user, patient=patient, revoked_at__isnull=True).exists():
            CarerLink.objects.create(
                carer=user,
                patient=patient,
                consent_recorded_at=now,
                consent_recorded_by=invited_by,
                consent_note=consent_note.strip(),
            )
    elif patient.user_id != user.pk:
        patient.user = user
        patient._history_user = invited_by  # type: ignore[attr-defined]  # simple_history: who made the change
        patient.save(update_fields=["user", "updated_at"])

    invitation = PortalInvitation.objects.create(
        patient=patient,
        user=user,
        email=email,
        carer=carer,
        invited_by=invited_by,
        invited_at=now,
        expires_at=now + dt.timedelta(hours=settings.PORTAL_INVITATION_MAX_AGE_HOURS),
    )
    link = _invitation_link(user=user)
    context = {
        "link": link,
        "carer": carer,
        "hours": settings.PORTAL_INVITATION_MAX_AGE_HOURS,
        "username": user.get_username(),
        "clinic_name": settings.CLINIC_NAME,
    }
    subject = f"Your invitation to the {settings.CLINIC_NAME} patient portal"
    body = render_to_string("portal/email/invitation.txt", context)
    transaction.on_commit(lambda: send_mail(subject, body, None, [email]))
    return invitation


def portal_invitation_pending(*, user: User, now: dt.datetime) -> PortalInvitation | None:
    return (
        PortalInvitation.objects.filter(user=user, accepted_at__isnull=True, expires_at__gt=now)
        .order_by("-invited_at")
        .first()
    )


@transaction.atomic
def portal_invitation_accept(*, user: User, now: dt.datetime) -> int:
    """Mark the user's pending invitations used (the password is set); returns how many."""
    return PortalInvitation.objects.filter(user=user, accepted_at__isnull=True).update(accepted_at=now)


@transaction.atomic
def carer_link_revoke(*, link: CarerLink, by: User, now: dt.datetime | None = None) -> CarerLink:
    if link.revoked_at is None:
        link.revoked_at = now or timezone.now()
        link.revoked_by = by
        link._history_user = by  # type: ignore[attr-defined]  # simple_history: who made the change
        link.save(update_fields=["revoked_at", "revoked_by"])
    return link


@transaction.atomic
def calendar_feed_create(*, user: User, patient: Patient, now: dt.datetime | None = None) -> tuple[CalendarFeed, str]:
    """A new private feed address; any previous one of this user for this patient stops working.

    Returns the feed and its token. The token is shown once and never stored (only its hash).
    """
    now = now or timezone.now()
    CalendarFeed.objects.filter(user=user, patient=patient, revoked_at__isnull=True).update(revoked_at=now)
    token = secrets.token_urlsafe(32)
    feed = CalendarFeed.objects.create(user=user, patient=patient, token_hash=hash_feed_token(token), created_at=now)
    return feed, token


@transaction.atomic
def calendar_feed_revoke(*, user: User, patient: Patient, now: dt.datetime | None = None) -> int:
    return CalendarFeed.objects.filter(user=user, patient=patient, revoked_at__isnull=True).update(
        revoked_at=now or timezone.now()
    )


def calendar_feed_mark_used(*, feed: CalendarFeed, now: dt.datetime) -> None:
    CalendarFeed.objects.filter(pk=feed.pk).update(last_used_at=now)


@transaction.atomic
def patient_update_reminder_preferences(*, patient: Patient, channel: str, consent: bool, by: User) -> Patient:
    """Change only how (and whether) the patient is reminded; the change is kept in the history."""
    if channel not in Patient.Channel.values:
        raise ValidationError({"reminder_channel": f"Choose one of: {', '.join(Patient.Channel.labels)}."})
    if consent and channel == Patient.Channel.SMS and not patient.phone:
        raise ValidationError({"reminder_channel": "The clinic has no mobile number for you: choose email."})
    if consent and channel == Patient.Channel.EMAIL and not patient.email:
        raise ValidationError({"reminder_channel": "The clinic has no email address for you: choose text message."})
    patient.reminder_channel = channel
    patient.reminder_consent = consent
    patient._history_user = by  # type: ignore[attr-defined]  # simple_history: who made the change
    patient.save(update_fields=["reminder_channel", "reminder_consent", "updated_at"])
    return patient
