"""The append-only access log (SECURITY.md "Audit")."""

from django.conf import settings
from django.db import models
from django.utils import timezone

# The access log sits below the patients app (docs/architecture.md): it names the patient model
# by its label and never imports it.
PATIENT_MODEL = "patients.Patient"


class AccessLogIsAppendOnly(Exception):
    """Raised on any attempt to change or erase an access-log row."""


class AccessLogQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise AccessLogIsAppendOnly("The access log is append-only: rows are never updated.")

    def delete(self):
        raise AccessLogIsAppendOnly("The access log is append-only: rows are never deleted.")


class AccessLog(models.Model):
    """One view or export of one patient's record.

    `resource` is the route name (e.g. "portal:patient_home"), never the path: a path can carry a
    calendar token or a password-reset token, and logs never hold secrets.
    """

    class Action(models.TextChoices):
        VIEW = "view", "Viewed"
        EXPORT = "export", "Exported"
        CHANGE = "change", "Opened to change"

    at = models.DateTimeField(default=timezone.now, db_index=True, editable=False)
    # PROTECT: users are deactivated, never deleted, so the log keeps pointing at a person.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+", editable=False
    )
    # The username at the time, so a later rename cannot hide who it was; empty for a calendar
    # feed read by a phone (then `user` is the feed's owner and `via_token` is set).
    username = models.CharField(max_length=150, blank=True, editable=False)
    patient = models.ForeignKey(PATIENT_MODEL, on_delete=models.PROTECT, related_name="+", editable=False)
    action = models.CharField(max_length=16, choices=Action.choices, editable=False)
    resource = models.CharField(max_length=200, editable=False, help_text="Route name or export name.")
    detail = models.CharField(max_length=200, blank=True, editable=False)
    method = models.CharField(max_length=8, blank=True, editable=False)
    remote_addr = models.GenericIPAddressField(null=True, blank=True, editable=False)
    via_token = models.BooleanField(default=False, editable=False, help_text="Read with a calendar-feed token.")

    objects = AccessLogQuerySet.as_manager()

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [
            models.Index(fields=["patient", "at"], name="accesslog_patient_at_idx"),
            models.Index(fields=["user", "at"], name="accesslog_user_at_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.username or '-'} {self.action} patient {self.patient_id}"

    def save(self, *args, **kwargs):
        if self.pk is not None or not self._state.adding:
            raise AccessLogIsAppendOnly("The access log is append-only: rows are never updated.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AccessLogIsAppendOnly("The access log is append-only: rows are never deleted.")
