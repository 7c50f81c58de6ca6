"""Reads of open alerts for the nurses' and clinicians' pages and the API."""

from django.db.models import (
    Case,
    IntegerField,
    QuerySet,
    Value,
    When,
)

from patients.models import Patient

from ..models import Alert


def alert_severity_rank() -> Case:
    return Case(
        When(severity=Alert.Severity.URGENT, then=Value(0)),
        When(severity=Alert.Severity.WARNING, then=Value(1)),
        default=Value(2),
        output_field=IntegerField(),
    )


def alert_list_open(*, audience: str | None = None, patient: Patient | None = None) -> QuerySet[Alert]:
    """Open alerts, urgent first, then the most recent."""
    qs = Alert.objects.filter(resolved_at__isnull=True).select_related("patient", "implant", "appointment")
    if audience:
        qs = qs.filter(audience=audience)
    if patient is not None:
        qs = qs.filter(patient=patient)
    return qs.annotate(urgent_first=alert_severity_rank()).order_by("urgent_first", "-raised_at", "-id")
