"""An onboarding file as uploaded, its dry-run report, and whether (and by whom) it was imported."""

import hashlib

from django.conf import settings
from django.db import models


def content_digest(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


class ClinicImport(models.Model):
    """One uploaded sheet: kept as uploaded, so the import that is confirmed is the file that was checked.

    This row is the import's audit entry (who uploaded, who confirmed, when, the file's digest and
    the report); each patient created or changed also gets an access-log row.
    """

    filename = models.CharField(max_length=255)
    content = models.BinaryField()
    sha256 = models.CharField(max_length=64, db_index=True)
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    uploaded_at = models.DateTimeField()
    report = models.JSONField(default=dict, help_text="The latest report (dry run, or the import itself).")
    imported_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    imported_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-uploaded_at", "-id"]
        verbose_name = "clinic import"

    def __str__(self) -> str:
        return f"{self.filename} ({'imported' if self.imported_at else 'checked'} {self.uploaded_at:%Y-%m-%d %H:%M})"
