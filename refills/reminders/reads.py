"""Reads of the reminder log for the nurses' pages and the simulation."""

from dataclasses import dataclass

from django.db.models import (
    Case,
    Count,
    F,
    QuerySet,
    Sum,
    Value,
    When,
)

from patients.models import Patient

from ..models import Appointment, Reminder


def reminder_list(
    *, patient: Patient | None = None, status: str | None = None, appointment: Appointment | None = None
) -> QuerySet[Reminder]:
    """The reminder log (sent, pending, failed, cancelled, with the reason), newest send time first."""
    qs = Reminder.objects.select_related("patient", "appointment")
    if patient is not None:
        qs = qs.filter(patient=patient)
    if status:
        qs = qs.filter(status=status)
    if appointment is not None:
        qs = qs.filter(appointment=appointment)
    return qs.order_by("-send_at", "-id")


@dataclass(frozen=True, slots=True)
class ReminderFigures:
    sent: int
    failed: int
    pending: int
    sending: int
    cancelled: int
    duplicates: int
    recovered: int


def reminder_figures() -> ReminderFigures:
    """Counts for the log header and the simulation: duplicates and recoveries are counted, never hidden."""
    by_status = dict(Reminder.objects.values_list("status").annotate(n=Count("id")).values_list("status", "n"))
    extra = Reminder.objects.aggregate(
        duplicates=Sum(Case(When(send_count__gt=1, then=F("send_count") - 1), default=Value(0))),
        recovered=Sum("recovered_count"),
    )
    return ReminderFigures(
        sent=by_status.get(Reminder.Status.SENT, 0),
        failed=by_status.get(Reminder.Status.FAILED, 0),
        pending=by_status.get(Reminder.Status.PENDING, 0),
        sending=by_status.get(Reminder.Status.SENDING, 0),
        cancelled=by_status.get(Reminder.Status.CANCELLED, 0),
        duplicates=extra["duplicates"] or 0,
        recovered=extra["recovered"] or 0,
    )
