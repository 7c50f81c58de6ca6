"""Who may use the portal for which patient: invitations, carers, calendar feeds."""

import datetime as dt
import hashlib

from django.conf import settings
from django.db import models
from django.db.models import Q
from simple_history.models import HistoricalRecords

from patients.models import Patient


def hash_token(token: str) -> str:
    # Only the hash is stored: a copy of the database opens no one's calendar or invitation.
    return hashlib.sha256(token.encode()).hexdigest()


class PortalInvitationQuerySet(models.QuerySet):
    def pending(self, *, now: dt.datetime) -> "PortalInvitationQuerySet":
        """Neither accepted nor revoked, and not yet expired: the link would still work."""
        return self.filter(accepted_at__isnull=True, revoked_at__isnull=True, expires_at__gt=now)


class PortalInvitation(models.Model):
    """A nurse invited a patient or a carer: one email, one link of its own, valid once until `expires_at`.

    The link's token is stored only as its hash. A newer invitation for the same patient and
    role (patient or carer) revokes this one, and a nurse may revoke it by hand.
    """

    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="portal_invitations")
    email = models.EmailField()
    carer = models.BooleanField(default=False)
    invited_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    invited_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    token_hash = models.CharField(max_length=64, unique=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    revoke_reason = models.CharField(max_length=200, blank=True)

    objects = PortalInvitationQuerySet.as_manager()
    history = HistoricalRecords()

    class Meta:
        ordering = ["-invited_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(expires_at__gt=models.F("invited_at")),
                name="portalinvitation_expires_after_invite",
                violation_error_message="An invitation must expire after it is sent.",
            ),
            models.UniqueConstraint(
                fields=["patient", "carer"],
                condition=Q(accepted_at__isnull=True, revoked_at__isnull=True),
                name="portalinvitation_one_open_per_patient_and_role",
                violation_error_message="An invitation is already open for this person: revoke it to send a new one.",
            ),
        ]

    def __str__(self) -> str:
        return f"Invitation of {self.email} for patient {self.patient_id} ({'carer' if self.carer else 'patient'})"


class CarerLink(models.Model):
    """A carer's account may see one patient's portal: the patient's consent is recorded here."""

    carer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="carer_links")
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="carer_links")
    consent_recorded_at = models.DateTimeField()
    consent_recorded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    consent_note = models.TextField(help_text="How and when the patient agreed (e.g. 'said yes in clinic, 3 March').")
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    revoke_reason = models.TextField(blank=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["patient", "carer"]
        constraints = [
            models.UniqueConstraint(
                fields=["carer", "patient"],
                condition=Q(revoked_at__isnull=True),
                name="carerlink_one_active",
                violation_error_message="This carer is already linked to this patient.",
            ),
            models.CheckConstraint(
                condition=~Q(consent_note=""),
                name="carerlink_consent_recorded",
                violation_error_message="Record the patient's consent for this carer.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.carer} cares for patient {self.patient_id}{' (revoked)' if self.revoked_at else ''}"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class CalendarFeed(models.Model):
    """A private, revocable address a phone calendar polls for one patient's appointments."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="calendar_feeds")
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="+")
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "patient"],
                condition=Q(revoked_at__isnull=True),
                name="calendarfeed_one_active",
                violation_error_message="This calendar link already exists: revoke it to make a new one.",
            ),
        ]

    def __str__(self) -> str:
        return f"Calendar feed of patient {self.patient_id} for user {self.user_id}"


class PortalAccountEmailChange(models.Model):
    """A nurse changed the email of a portal account: who, when, from what, to what, and why. Append-only."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="email_changes")
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="+")
    old_email = models.EmailField(blank=True)
    new_email = models.EmailField()
    reason = models.CharField(max_length=200)
    changed_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    changed_at = models.DateTimeField()

    class Meta:
        ordering = ["-changed_at", "-id"]

    def __str__(self) -> str:
        return f"Email of user {self.user_id} changed on {self.changed_at:%Y-%m-%d}"
