"""Reads of the reminder log for the nurses' pages and the simulation."""

from dataclasses import dataclass

from django.db.models import (
    Count,
    Q,
    QuerySet,
    Sum,
)

from patients.models import Patient

from ..models import Appointment, DeliveryAttempt, Reminder


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
    # Messages that may have reached a patient once more: each attempt beyond the first on a
    # reminder, among its attempts that may have gone (`DeliveryAttempt.MAY_HAVE_GONE`).
    duplicates: int
    recovered: int
    # Every hand-over to the email/SMS provider, whatever came of it.
    attempts: int


def reminder_figures() -> ReminderFigures:
    """Counts for the log header and the simulation: duplicates and recoveries are counted, never hidden.

    Duplicates come from the attempt rows, written before each call to the provider, so a worker
    killed between the provider's call and its acknowledgement is counted too. An attempt the
    provider failed (error, refused) did not go, and its retry is no duplicate.
    """
    by_status = dict(Reminder.objects.values_list("status").annotate(n=Count("id")).values_list("status", "n"))
    recovered = Reminder.objects.aggregate(recovered=Sum("recovered_count"))["recovered"]
    may_have_gone = Q(outcome__in=DeliveryAttempt.MAY_HAVE_GONE)
    attempts = DeliveryAttempt.objects.aggregate(
        all=Count("id"),
        may_have_gone=Count("id", filter=may_have_gone),
        reminders=Count("reminder", distinct=True, filter=may_have_gone),
    )
    return ReminderFigures(
        sent=by_status.get(Reminder.Status.SENT, 0),
        failed=by_status.get(Reminder.Status.FAILED, 0),
        pending=by_status.get(Reminder.Status.PENDING, 0),
        sending=by_status.get(Reminder.Status.SENDING, 0),
        cancelled=by_status.get(Reminder.Status.CANCELLED, 0),
        duplicates=attempts["may_have_gone"] - attempts["reminders"],
        recovered=recovered or 0,
        attempts=attempts["all"],
    )
