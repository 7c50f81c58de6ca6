"""Who may use the portal for which patient: invitations, carers, calendar feeds."""

import hashlib

from django.conf import settings
from django.db import models
from django.db.models import Q
from simple_history.models import HistoricalRecords

from patients.models import Patient


class PortalInvitation(models.Model):
    """A nurse invited a patient or a carer; the emailed link is valid until `expires_at`, once."""

    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="portal_invitations")
    email = models.EmailField()
    carer = models.BooleanField(default=False)
    invited_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    invited_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-invited_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(expires_at__gt=models.F("invited_at")), name="portalinvitation_expires_after_invite"
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

    history = HistoricalRecords()

    class Meta:
        ordering = ["patient", "carer"]
        constraints = [
            models.UniqueConstraint(
                fields=["carer", "patient"], condition=Q(revoked_at__isnull=True), name="carerlink_one_active"
            ),
            models.CheckConstraint(condition=~Q(consent_note=""), name="carerlink_consent_recorded"),
        ]

    def __str__(self) -> str:
        return f"{self.carer} cares for patient {self.patient_id}{' (revoked)' if self.revoked_at else ''}"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


def hash_feed_token(token: str) -> str:
    # Only the hash is stored: a copy of the database does not open anyone's calendar.
    return hashlib.sha256(token.encode()).hexdigest()


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
                fields=["user", "patient"], condition=Q(revoked_at__isnull=True), name="calendarfeed_one_active"
            ),
        ]

    def __str__(self) -> str:
        return f"Calendar feed of patient {self.patient_id} for user {self.user_id}"
