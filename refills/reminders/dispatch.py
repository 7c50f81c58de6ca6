"""Dispatch: claim due rows, enqueue one send each after commit; recover rows stuck in sending."""

import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.db.models import (
    Exists,
    F,
    OuterRef,
)

from ..models import Reminder
from .delivery import reminder_mark_failed

EnqueueSend = Callable[..., None]


@dataclass(frozen=True, slots=True)
class DispatchResult:
    claimed: list[int]
    skipped_stale: int
    claim_token: str | None


def _reminders_cancel_stale_due(*, now: dt.datetime) -> int:
    """Due rows that would now mislead: the appointment has begun, or a closer reminder is due too."""
    due = Reminder.objects.filter(status=Reminder.Status.PENDING, send_at__lte=now)
    started = due.filter(appointment__starts_at__lte=now).update(
        status=Reminder.Status.CANCELLED,
        reason_code=Reminder.ReasonCode.STALE,
        status_reason="Not sent: the appointment time had come before it could go.",
        updated_at=now,
    )
    closer_due = Reminder.objects.filter(
        appointment=OuterRef("appointment"),
        appointment_starts_at=OuterRef("appointment_starts_at"),
        channel=OuterRef("channel"),
        offset_days__lt=OuterRef("offset_days"),
        send_at__lte=now,
        status__in=[Reminder.Status.PENDING, Reminder.Status.SENDING, Reminder.Status.SENT],
    )
    superseded = due.filter(Exists(closer_due)).update(
        status=Reminder.Status.CANCELLED,
        reason_code=Reminder.ReasonCode.STALE,
        status_reason="Not sent: it was late and a closer reminder was due at the same time.",
        updated_at=now,
    )
    return started + superseded


@transaction.atomic
def reminders_dispatch(*, now: dt.datetime, enqueue: EnqueueSend, batch_size: int | None = None) -> DispatchResult:
    """Claim due pending rows and hand each to `enqueue(reminder_id=, claim_token=)`.

    The claim is one conditional UPDATE … WHERE status = 'pending': atomic on PostgreSQL (a
    concurrent claimer re-checks the WHERE after the row lock and skips the row) and on SQLite
    (one writer at a time). The rows this call won carry its fresh token. `enqueue` must defer
    the broker call until after commit (`transaction.on_commit`): a message for an uncommitted
    claim could otherwise run first and find nothing to do.
    """
    skipped = _reminders_cancel_stale_due(now=now)
    batch_size = batch_size or settings.REMINDER_DISPATCH_BATCH
    due_ids = list(
        Reminder.objects.filter(status=Reminder.Status.PENDING, send_at__lte=now)
        .order_by("send_at", "id")
        .values_list("id", flat=True)[:batch_size]
    )
    if not due_ids:
        return DispatchResult(claimed=[], skipped_stale=skipped, claim_token=None)
    token = uuid.uuid4()
    Reminder.objects.filter(id__in=due_ids, status=Reminder.Status.PENDING).update(
        status=Reminder.Status.SENDING, claimed_at=now, claim_token=token, updated_at=now
    )
    claimed = list(
        Reminder.objects.filter(status=Reminder.Status.SENDING, claim_token=token)
        .order_by("send_at", "id")
        .values_list("id", flat=True)
    )
    for reminder_id in claimed:
        enqueue(reminder_id=reminder_id, claim_token=str(token))
    return DispatchResult(claimed=claimed, skipped_stale=skipped, claim_token=str(token))


@dataclass(frozen=True, slots=True)
class RecoverResult:
    requeued: int
    failed: int


def reminders_recover_stuck(
    *, now: dt.datetime, stuck_after: dt.timedelta | None = None, max_recoveries: int | None = None
) -> RecoverResult:
    """Rows left in `sending` (worker killed, message lost with the broker) go back to pending.

    The send task refreshes `claimed_at` at every attempt and its retry backoff is capped below
    the timeout, so a row still being retried is never taken for stuck. A row recovered
    `max_recoveries` times fails for good and goes to the nurses rather than loop silently.
    """
    stuck_after = stuck_after or dt.timedelta(minutes=settings.REMINDER_STUCK_AFTER_MINUTES)
    max_recoveries = settings.REMINDER_MAX_RECOVERIES if max_recoveries is None else max_recoveries
    stuck = Reminder.objects.filter(status=Reminder.Status.SENDING, claimed_at__lt=now - stuck_after)
    minutes = int(stuck_after.total_seconds() // 60)
    requeued = stuck.filter(recovered_count__lt=max_recoveries).update(
        status=Reminder.Status.PENDING,
        claim_token=None,
        recovered_count=F("recovered_count") + 1,
        status_reason=f"Back in the queue after {minutes} min in sending (worker or broker lost it).",
        updated_at=now,
    )
    failed = 0
    for reminder_id in stuck.filter(recovered_count__gte=max_recoveries).values_list("id", flat=True):
        failed += reminder_mark_failed(
            reminder_id=reminder_id, error=f"Stuck in sending {max_recoveries + 1} times.", now=now
        )
    return RecoverResult(requeued=requeued, failed=failed)
