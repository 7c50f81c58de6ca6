"""Alerts closed or acknowledged by hand, and alerts raised from outside the scan (a patient's request)."""

import datetime as dt

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from itbclinic.accounts.models import User

from ..models import Alert, Appointment
from .raising import alerts_raise

# Resolving these by hand must say what happened: the record of a handover or a closed file.
ALERT_KINDS_NEEDING_A_NOTE = frozenset({Alert.Kind.PATIENT_STATUS})


@transaction.atomic
def alert_resolve(*, alert: Alert, by: User, note: str = "", now: dt.datetime | None = None) -> Alert:
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
def alert_acknowledge(*, alert: Alert, by: User, now: dt.datetime) -> Alert:
    """Someone has seen the alert and is acting on it: it stays open, but stops being escalated."""
    Alert.objects.filter(pk=alert.pk, acknowledged_at__isnull=True).update(acknowledged_at=now, acknowledged_by=by)
    alert.refresh_from_db()
    return alert


@transaction.atomic
def alert_raise_change_request(
    *, appointment: Appointment, message: str, today: dt.date, severity: str = Alert.Severity.WARNING
) -> None:
    """A patient asked for another date: a CHANGE_REQUEST alert for the nurses, keyed on the day.

    Raised through `alerts_raise`, as the scan's are, so the patient's withdrawal-risk flags settle
    its severity. A second request the same day re-opens the day's alert with the latest words,
    even one a nurse had resolved: the patient has asked again. A preferred date after the pump's
    due-by date comes as `severity` urgent.
    """
    alert = Alert(
        kind=Alert.Kind.CHANGE_REQUEST,
        audience=Alert.Audience.NURSES,
        severity=severity,
        patient_id=appointment.patient_id,
        implant_id=appointment.implant_id,
        appointment=appointment,
        key_date=today,
        message=message,
    )
    alerts_raise([alert])
    Alert.objects.filter(
        kind=Alert.Kind.CHANGE_REQUEST, patient_id=appointment.patient_id, key_date=today, severity=alert.severity
    ).update(message=message, appointment=appointment, resolved_at=None, resolved_by=None)


@transaction.atomic
def alerts_resolve_change_request(
    *, appointment: Appointment, resolution: str, by: User | None, now: dt.datetime
) -> int:
    """The patient's request about `appointment` was met, declined or withdrawn: its alerts close."""
    return Alert.objects.filter(
        kind=Alert.Kind.CHANGE_REQUEST, appointment=appointment, resolved_at__isnull=True
    ).update(resolved_at=now, resolved_by=by, resolution=resolution[:200])
