"""
The base of every clinical record: never hard-deleted, every change kept.

A wrong record is marked "entered in error" with a reason (who and when are in its history,
django-simple-history); `delete()` on a row or a queryset raises, so neither the admin, an API
view nor a careless script can erase clinical data.
"""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.utils import timezone


class HardDeleteForbidden(Exception):
    """Raised on any attempt to delete a clinical record."""


class ClinicalRecordQuerySet(models.QuerySet):
    def valid(self):
        return self.filter(entered_in_error=False)

    def delete(self):
        raise HardDeleteForbidden(f"{self.model.__name__} rows are never deleted: mark them entered in error.")


class ClinicalRecord(models.Model):
    entered_in_error = models.BooleanField(default=False, db_index=True)
    entered_in_error_reason = models.TextField(blank=True)
    entered_in_error_at = models.DateTimeField(null=True, blank=True)
    entered_in_error_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ClinicalRecordQuerySet.as_manager()

    class Meta:
        abstract = True

    def delete(self, *args, **kwargs):
        raise HardDeleteForbidden(f"{type(self).__name__} rows are never deleted: mark them entered in error.")

    def mark_entered_in_error(self, *, by, reason: str, now=None) -> None:
        """Row-local state change; services call it inside their transaction."""
        if not reason.strip():
            raise ValueError("A reason is required to mark a record entered in error.")
        self.entered_in_error = True
        self.entered_in_error_reason = reason
        self.entered_in_error_at = now or timezone.now()
        self.entered_in_error_by = by
        self.save(
            update_fields=[
                "entered_in_error",
                "entered_in_error_reason",
                "entered_in_error_at",
                "entered_in_error_by",
                "updated_at",
            ]
        )


@transaction.atomic
def clinical_record_mark_entered_in_error(*, record: ClinicalRecord, by, reason: str) -> None:
    """The service that marks any clinical record entered in error (the admin and the API call it).

    An app whose records feed a derived value (the care schedule's forecast) wraps it in its own
    service and plugs that into its admin and viewsets instead.
    """
    if not reason or not reason.strip():
        raise ValidationError({"reason": "Say why this record was entered in error."})
    record.mark_entered_in_error(by=by, reason=reason.strip())
