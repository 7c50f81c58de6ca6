"""Writes of the portal: invitations, carers, calendar feeds, reminder preferences.

A change request is a write of the care schedule: `refills.services.appointment_change_request_create`.
"""

import datetime as dt
import secrets
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from itbclinic.accounts.models import User
from itbclinic.accounts.roles import Role, is_staff_member, user_roles
from itbclinic.accounts.services import user_sessions_end
from itbclinic.accounts.tasks import enqueue_password_reset_to_user
from patients.models import Patient

from . import tasks
from .models import CalendarFeed, CarerLink, PortalAccountEmailChange, PortalInvitation, hash_token


def _user_has_account(user: User) -> bool:
    """A portal account someone has set up (a password of their own): no invitation ever touches it."""
    return user.has_usable_password()


def _portal_user_for(*, email: str, patient: Patient, carer: bool) -> User:
    """The account the invitation is for: the patient's own, or one found or made for the email."""
    if not carer and patient.user is not None:
        return patient.user
    existing = User.objects.filter(email__iexact=email).first() or User.objects.filter(username__iexact=email).first()
    if existing is not None:
        if is_staff_member(existing) or existing.is_staff or existing.is_superuser:
            raise ValidationError({"email": "This email belongs to a staff account: use another address."})
        owner = Patient.objects.filter(user=existing).exclude(pk=patient.pk).first()
        if owner is not None and not carer:
            raise ValidationError(
                {"email": "This email already opens another patient's portal: invite this person as a carer."}
            )
        if not existing.is_active:
            raise ValidationError({"email": "This email belongs to an account that was switched off."})
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


def _retarget_unclaimed_account(*, user: User, email: str) -> None:
    """An account nobody has set up yet (a first invitation went to a wrong address) follows the new one."""
    if user.email.lower() == email:
        return
    taken = User.objects.filter(username__iexact=email).exclude(pk=user.pk).exists()
    fields = ["email"]
    if user.username.lower() == user.email.lower() and not taken:
        user.username = email
        fields.append("username")
    user.email = email
    user.save(update_fields=fields)


@dataclass(frozen=True)
class InvitationOutcome:
    """What inviting did: a new invitation, or (the person already has an account) its own password reset."""

    invitation: PortalInvitation | None
    user: User
    existing_account: bool

    @property
    def email(self) -> str:
        return self.invitation.email if self.invitation is not None else self.user.email


def _revoke_open_invitations(*, qs: QuerySet[PortalInvitation], by: User | None, reason: str, now: dt.datetime) -> int:
    revoked = 0
    for invitation in qs.filter(accepted_at__isnull=True, revoked_at__isnull=True).select_for_update():
        _invitation_revoke_row(invitation=invitation, by=by, reason=reason, now=now)
        revoked += 1
    return revoked


def _invitation_revoke_row(*, invitation: PortalInvitation, by: User | None, reason: str, now: dt.datetime) -> None:
    invitation.revoked_at = now
    invitation.revoked_by = by
    invitation.revoke_reason = reason[:200]
    invitation._history_user = by  # type: ignore[attr-defined]  # simple_history: who made the change
    invitation.save(update_fields=["revoked_at", "revoked_by", "revoke_reason"])
    user = invitation.user
    if invitation.carer and not _user_has_account(user):
        # The carer link this invitation made for an account nobody set up goes with it.
        for link in CarerLink.objects.filter(carer=user, patient=invitation.patient, revoked_at__isnull=True):
            _carer_link_revoke_row(link=link, by=by, reason=f"Invitation revoked: {reason}", now=now)


@transaction.atomic
def portal_invite_patient(
    *,
    patient: Patient,
    email: str,
    invited_by: User,
    carer: bool = False,
    consent_note: str = "",
    now: dt.datetime | None = None,
) -> InvitationOutcome:
    """Invite the patient (or, with `carer=True`, a carer) to the portal; the link is emailed after commit.

    A carer needs the patient's consent, recorded as `consent_note` (how and when they agreed).
    A newer invitation for the same patient and role revokes the open one. When the person
    already has an account (a password of their own), nothing about it changes: its own
    password reset goes to the address already on it, and no invitation is made.
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
    existing_account = _user_has_account(user)
    if not existing_account:
        _retarget_unclaimed_account(user=user, email=email)
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

    _revoke_open_invitations(
        qs=PortalInvitation.objects.filter(patient=patient, carer=carer),
        by=invited_by,
        reason="A newer invitation was sent.",
        now=now,
    )
    if existing_account:
        if user.email:
            enqueue_password_reset_to_user(user_id=user.pk)
        return InvitationOutcome(invitation=None, user=user, existing_account=True)

    invitation = PortalInvitation(
        patient=patient,
        user=user,
        email=email,
        carer=carer,
        invited_by=invited_by,
        invited_at=now,
        expires_at=now + dt.timedelta(hours=settings.PORTAL_INVITATION_MAX_AGE_HOURS),
        # A token nobody knows: the worker issues the one it emails (portal_invitation_send).
        token_hash=hash_token(secrets.token_urlsafe(32)),
    )
    invitation._history_user = invited_by  # type: ignore[attr-defined]  # simple_history: who made the change
    invitation.save()
    invitation_id = invitation.pk
    transaction.on_commit(lambda: tasks.send_portal_invitation_task.delay(invitation_id), robust=True)
    return InvitationOutcome(invitation=invitation, user=user, existing_account=False)


def portal_invitation_get_by_token(*, token: str, now: dt.datetime) -> PortalInvitation | None:
    """The open invitation this link opens, or None (unknown, used, revoked, expired, account switched off)."""
    if not token or len(token) > 200:
        return None
    invitation: PortalInvitation | None = (
        PortalInvitation.objects.pending(now=now).filter(token_hash=hash_token(token)).select_related("user").first()
    )
    if invitation is None or not invitation.user.is_active or _user_has_account(invitation.user):
        return None
    return invitation


@transaction.atomic
def portal_invitation_accept(*, invitation: PortalInvitation, password: str, now: dt.datetime) -> User | None:
    """Set the account's password from an open invitation; every open invitation of the account is then spent.

    Returns the user, or None when the invitation stopped being open meanwhile (revoked, used).
    """
    locked = PortalInvitation.objects.pending(now=now).select_for_update().filter(pk=invitation.pk).first()
    user = User.objects.select_for_update().get(pk=invitation.user_id)
    if locked is None or not user.is_active or _user_has_account(user):
        return None
    user.set_password(password)
    user.save(update_fields=["password"])
    PortalInvitation.objects.filter(user=user, accepted_at__isnull=True, revoked_at__isnull=True).update(
        accepted_at=now
    )
    return user


@transaction.atomic
def portal_invitation_revoke(
    *, invitation: PortalInvitation, by: User, reason: str = "", now: dt.datetime | None = None
) -> bool:
    """A nurse withdraws an open invitation: its link stops working at once. False if it was not open."""
    now = now or timezone.now()
    locked = PortalInvitation.objects.select_for_update().get(pk=invitation.pk)
    if locked.accepted_at is not None or locked.revoked_at is not None:
        return False
    _invitation_revoke_row(invitation=locked, by=by, reason=reason.strip() or "Revoked by the clinic.", now=now)
    invitation.refresh_from_db()
    return True


def portal_invitation_list_open(*, patient: Patient, now: dt.datetime) -> list[PortalInvitation]:
    return list(PortalInvitation.objects.pending(now=now).filter(patient=patient).select_related("user", "invited_by"))


def _carer_link_revoke_row(*, link: CarerLink, by: User | None, reason: str, now: dt.datetime) -> None:
    link.revoked_at = now
    link.revoked_by = by
    link.revoke_reason = reason
    link._history_user = by  # type: ignore[attr-defined]  # simple_history: who made the change
    link.save(update_fields=["revoked_at", "revoked_by", "revoke_reason"])


@transaction.atomic
def carer_link_revoke(*, link: CarerLink, by: User, reason: str = "", now: dt.datetime | None = None) -> CarerLink:
    """The carer no longer sees the patient's portal: the link, the carer's calendar feeds and open
    invitations for this patient end now; with no patient left to see, the carer's sessions end too."""
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": "Say why this carer no longer sees the patient's portal."})
    now = now or timezone.now()
    link = CarerLink.objects.select_for_update().get(pk=link.pk)
    if link.revoked_at is not None:
        return link
    _carer_link_revoke_row(link=link, by=by, reason=reason, now=now)
    carer = link.carer
    CalendarFeed.objects.filter(user=carer, patient=link.patient, revoked_at__isnull=True).update(revoked_at=now)
    _revoke_open_invitations(
        qs=PortalInvitation.objects.filter(user=carer, patient=link.patient, carer=True),
        by=by,
        reason="The carer's link was revoked.",
        now=now,
    )
    still_sees = (
        Patient.objects.filter(user=carer).exists()
        or CarerLink.objects.filter(carer=carer, revoked_at__isnull=True).exists()
    )
    if not still_sees:
        user_sessions_end(user=carer)
    return link


def portal_access_end_for_user(*, user: User, now: dt.datetime) -> None:
    """A deactivated account: its calendar feeds and open invitations stop working (accounts' user_access_end)."""
    CalendarFeed.objects.filter(user=user, revoked_at__isnull=True).update(revoked_at=now)
    _revoke_open_invitations(
        qs=PortalInvitation.objects.filter(user=user), by=None, reason="The account was switched off.", now=now
    )


@transaction.atomic
def portal_account_email_change(
    *, patient: Patient, new_email: str, reason: str, by: User, now: dt.datetime | None = None
) -> PortalAccountEmailChange:
    """A nurse changes the email of the patient's own portal account; a notice goes to the OLD address.

    Kept apart from inviting on purpose: an invitation never changes an account. Recorded in
    PortalAccountEmailChange (who, when, old, new, why).
    """
    now = now or timezone.now()
    if Role.NURSE not in user_roles(by):
        raise ValidationError("Only nurses change a portal account's email.")
    user = patient.user
    if user is None:
        raise ValidationError("This patient has no portal account: send an invitation instead.")
    new_email = (new_email or "").strip().lower()
    reason = (reason or "").strip()
    errors = {}
    if not new_email:
        errors["new_email"] = "Enter the new email address."
    elif new_email == user.email.lower():
        errors["new_email"] = "This is already the account's email."
    elif User.objects.filter(Q(email__iexact=new_email) | Q(username__iexact=new_email)).exclude(pk=user.pk).exists():
        errors["new_email"] = "Another account uses this email."
    if not reason:
        errors["reason"] = "Say why the email changes (e.g. 'patient asked in clinic, 3 March')."
    if errors:
        raise ValidationError(errors)
    user = User.objects.select_for_update().get(pk=user.pk)
    old_email = user.email
    fields = ["email"]
    if old_email and user.username.lower() == old_email.lower():
        user.username = new_email  # the invited account's login name was its address
        fields.append("username")
    user.email = new_email
    user.save(update_fields=fields)
    change = PortalAccountEmailChange.objects.create(
        user=user,
        patient=patient,
        old_email=old_email,
        new_email=new_email,
        reason=reason[:200],
        changed_by=by,
        changed_at=now,
    )
    if old_email:
        change_id = change.pk
        transaction.on_commit(lambda: tasks.send_email_change_notice_task.delay(change_id), robust=True)
    return change


@transaction.atomic
def calendar_feed_create(*, user: User, patient: Patient, now: dt.datetime | None = None) -> tuple[CalendarFeed, str]:
    """A new private feed address; any previous one of this user for this patient stops working.

    Returns the feed and its token. The token is shown once and never stored (only its hash).
    """
    now = now or timezone.now()
    CalendarFeed.objects.filter(user=user, patient=patient, revoked_at__isnull=True).update(revoked_at=now)
    token = secrets.token_urlsafe(32)
    feed = CalendarFeed.objects.create(user=user, patient=patient, token_hash=hash_token(token), created_at=now)
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
