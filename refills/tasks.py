"""Celery adapters of refills/reminders/ and refills/alerts/: read the clock, call one service, own the retries.

Beat (one, declared in settings.CELERY_BEAT_SCHEDULE) runs the scan, the dispatcher and the
recovery; the dispatcher enqueues one `send_reminder_task` per claimed row after commit. Each of
the three records its runs for the watchdog (refills/watchdog.py), which /healthz and the staff
pages read.
"""

import functools
import logging
from collections.abc import Callable

from celery import shared_task
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from . import field_safety, services, watchdog
from .alerts.scan import alerts_scan
from .notices import SEND_TASK, appointment_notice_send, appointment_notices_redispatch
from .reminders.delivery import TRANSIENT_SEND_ERRORS, SendOutcome, reminder_mark_failed, reminder_send
from .reminders.dispatch import reminders_dispatch, reminders_recover_stuck
from .reminders.planning import reminders_scan

logger = logging.getLogger(__name__)


def watched(*, name: str) -> Callable:
    """Record the task's start and completion in TaskRun; a failure records its error and re-raises."""

    def decorate(task: Callable) -> Callable:
        @functools.wraps(task)
        def run(*args, **kwargs):
            watchdog.task_run_start(name=name, now=timezone.now())
            try:
                result = task(*args, **kwargs)
            except Exception as exc:
                try:
                    watchdog.task_run_fail(name=name, error=exc)
                except Exception:  # e.g. the database is what failed: the task's own error matters more
                    logger.exception("could not record the failure of %s", name)
                raise
            watchdog.task_run_complete(name=name, now=timezone.now())
            return result

        return run

    return decorate


@shared_task(name=watchdog.SCAN_TASK, ignore_result=True)
@watched(name=watchdog.SCAN_TASK)
def scan_reminders_task() -> dict:
    now = timezone.now()
    # A pump written some other way than through the services gets its forecast (or its
    # problem) before the alerts are raised, so no active pump is ever left without either.
    services.forecasts_refresh_missing()
    scan = reminders_scan(now=now)
    alerts = alerts_scan(now=now)
    logger.info("reminder scan: %s; alerts: %s", scan, alerts)
    return {"planned": scan.planned, "cancelled": scan.cancelled, "raised": alerts.raised}


def enqueue_send_reminder(*, reminder_id: int, claim_token: str) -> None:
    """After commit, publish one send. If the broker is down the row stays `sending` and the
    recovery returns it to pending: `robust` keeps one failed publish from stopping the others."""

    def publish_send_reminder() -> None:
        send_reminder_task.apply_async(args=(reminder_id,), kwargs={"claim_token": claim_token})

    transaction.on_commit(publish_send_reminder, robust=True)


@shared_task(name=watchdog.DISPATCH_TASK, ignore_result=True)
@watched(name=watchdog.DISPATCH_TASK)
def dispatch_reminders_task() -> int:
    # Notices of a moved or cancelled appointment whose message was lost go out again too.
    appointment_notices_redispatch(now=timezone.now())
    field_safety.field_safety_messages_redispatch(now=timezone.now())
    result = reminders_dispatch(now=timezone.now(), enqueue=enqueue_send_reminder)
    if result.claimed or result.skipped_stale:
        logger.info("dispatched %d reminders, %d stale skipped", len(result.claimed), result.skipped_stale)
    return len(result.claimed)


@shared_task(name=watchdog.RECOVER_TASK, ignore_result=True)
@watched(name=watchdog.RECOVER_TASK)
def recover_reminders_task() -> int:
    result = reminders_recover_stuck(now=timezone.now())
    if result.requeued or result.failed:
        logger.warning("recovered %d stuck reminders, %d given up", result.requeued, result.failed)
    return result.requeued


@shared_task(
    bind=True,
    name="refills.send_reminder_task",
    ignore_result=True,
    # Acknowledge after the work, and requeue if the worker dies mid-send: the task is
    # idempotent (it acts only while the row is `sending` under its claim).
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=TRANSIENT_SEND_ERRORS,
    retry_backoff=settings.REMINDER_RETRY_BACKOFF_SECONDS,
    # Capped well below REMINDER_STUCK_AFTER_MINUTES, so recovery never races a pending retry.
    retry_backoff_max=settings.REMINDER_RETRY_BACKOFF_MAX_SECONDS,
    retry_jitter=True,
    max_retries=settings.REMINDER_SEND_MAX_RETRIES,
)
def send_reminder_task(self, reminder_id: int, claim_token: str | None = None) -> str:
    try:
        return reminder_send(reminder_id=reminder_id, claim_token=claim_token, now=timezone.now())
    except TRANSIENT_SEND_ERRORS as exc:
        if self.request.retries < self.max_retries:
            raise  # autoretry_for schedules the next attempt with backoff and jitter
        logger.error("reminder %s failed after %d retries: %r", reminder_id, self.request.retries, exc)
        reminder_mark_failed(reminder_id=reminder_id, error=f"{type(exc).__name__}: {exc}", now=timezone.now())
        return SendOutcome.FAILED


@shared_task(
    bind=True,
    name=SEND_TASK,
    ignore_result=True,
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=TRANSIENT_SEND_ERRORS,
    retry_backoff=settings.REMINDER_RETRY_BACKOFF_SECONDS,
    retry_backoff_max=settings.REMINDER_RETRY_BACKOFF_MAX_SECONDS,
    retry_jitter=True,
    max_retries=settings.REMINDER_SEND_MAX_RETRIES,
)
def send_appointment_notice_task(self, notice_id: int) -> str:
    """Tell the patient their appointment changed (refills.notices); idempotent, retried on transient errors."""
    return appointment_notice_send(notice_id=notice_id, now=timezone.now())


@shared_task(
    bind=True,
    name=field_safety.SEND_TASK,
    ignore_result=True,
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=TRANSIENT_SEND_ERRORS,
    retry_backoff=settings.REMINDER_RETRY_BACKOFF_SECONDS,
    retry_backoff_max=settings.REMINDER_RETRY_BACKOFF_MAX_SECONDS,
    retry_jitter=True,
    max_retries=settings.REMINDER_SEND_MAX_RETRIES,
)
def send_field_safety_message_task(self, flag_id: int) -> str:
    """Tell a flagged patient about a field-safety notice (refills.field_safety); idempotent, retried."""
    try:
        return field_safety.field_safety_message_send(flag_id=flag_id, now=timezone.now())
    except TRANSIENT_SEND_ERRORS as exc:
        if self.request.retries < self.max_retries:
            raise
        logger.error("field-safety message %s failed after %d retries: %r", flag_id, self.request.retries, exc)
        field_safety.field_safety_message_mark_failed(flag_id=flag_id, error=f"{type(exc).__name__}: {exc}")
        return SendOutcome.FAILED
