"""Alerts closed or acknowledged by hand, and alerts raised from outside the scan."""

import datetime as dt

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from ..models import Alert

# Resolving these by hand must say what happened: the record of a handover or a closed file.
ALERT_KINDS_NEEDING_A_NOTE = frozenset({Alert.Kind.PATIENT_STATUS})


@transaction.atomic
def alert_resolve(*, alert: Alert, by, note: str = "", now: dt.datetime | None = None) -> Alert:
    """A nurse or clinician closes an alert by hand (e.g. the patient was phoned)."""
    if alert.kind in ALERT_KINDS_NEEDING_A_NOTE and not note.strip():
        raise ValidationError({"note": "Say what happened (e.g. handed over to the receiving clinic, record closed)."})
    now = now or timezone.now()
    Alert.objects.filter(pk=alert.pk, resolved_at__isnull=True).update(
        resolved_at=now, resolved_by=by, resolution=(note.strip() or "Resolved by hand.")[:200]
    )
    alert.refresh_from_db()
    return alert


@transaction.atomic
def alert_acknowledge(*, alert: Alert, by, now: dt.datetime) -> Alert:
    """Someone has seen the alert and is acting on it: it stays open, but stops being escalated."""
    Alert.objects.filter(pk=alert.pk, acknowledged_at__isnull=True).update(acknowledged_at=now, acknowledged_by=by)
    alert.refresh_from_db()
    return alert
