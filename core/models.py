"""The one table of core: form tokens already used (core/idempotency.py)."""

from django.conf import settings
from django.db import models


class FormSubmission(models.Model):
    """A creating form was submitted with this token and succeeded; `result_url` is where it led.

    A second POST of the same token (a double click, the back button, a re-sent request) is sent
    to `result_url` instead of recording again. The row is written in the transaction of the
    record it guards: a refused submission (a form error) leaves the token unused.
    """

    token = models.UUIDField(unique=True, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+", editable=False)
    view_name = models.CharField(max_length=100, editable=False)
    result_url = models.CharField(max_length=500, editable=False)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True, editable=False)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.view_name} at {self.created_at:%Y-%m-%d %H:%M}"
