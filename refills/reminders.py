"""
Reminders to patients and alerts to nurses and clinicians. The database is the record.

Level-triggered, set-based: `reminders_scan` and `alerts_scan` look at the whole clinic each time,
in a fixed number of queries whatever its size, and make the reminder and alert rows agree with
the schedule. Running them twice, or from two beats, changes nothing (unique keys, conditional
updates). Nothing is scheduled far ahead on the broker (SECURITY.md "Reminders never lost").

A reminder row, one per (appointment, appointment time, offset, channel):
    pending --dispatcher claims--> sending --send task--> sent
                                          \\--retries exhausted / refused--> failed (+ nurse alert)
    sending for longer than REMINDER_STUCK_AFTER_MINUTES --recovery--> pending
    pending --appointment moved/cancelled, consent withdrawn--> cancelled (obsolete; back if undone)
    pending --its time passed before it could help--> cancelled (stale)
A duplicate is better than a loss: `send_count` > 1 counts duplicates, `recovered_count` near-losses.

Times: a reminder goes at `reminder_hour` clinic-local time, `offset_days` before the local date
of the appointment, whatever the daylight-saving offset of either day.
"""

import datetime as dt
import logging
import smtplib
import socket
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import EmailMessage
from django.db import InterfaceError, OperationalError, transaction
from django.db.models import (
    Case,
    Count,
    Exists,
    F,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
    When,
    Window,
)
from django.db.models.functions import RowNumber, TruncDate
from django.template.loader import render_to_string
from django.utils import timezone

from patients.models import Patient
from pumps.calculations import add_months, battery_window, replacement_plan
from pumps.models import Implant, PumpModel

from .messaging import SmsPermanentError, send_sms
from .models import Alert, Appointment, ClinicSettings, RefillVisit, Reminder, ReservoirEmptying
from .services import appointment_mark_no_show

logger = logging.getLogger(__name__)

# Worth retrying: the mail server, the SMS provider, the network or the database may be back soon.
TRANSIENT_SEND_ERRORS: tuple[type[BaseException], ...] = (
    smtplib.SMTPServerDisconnected,
    smtplib.SMTPConnectError,
    smtplib.SMTPHeloError,
    smtplib.SMTPDataError,
    smtplib.SMTPResponseException,
    smtplib.SMTPException,
    ConnectionError,  # includes refills.messaging.SmsTransientError
    TimeoutError,
    socket.gaierror,
    OperationalError,
    InterfaceError,
)
# Retrying cannot help: the address or number is refused. Fail at once and tell the nurses.
PERMANENT_SEND_ERRORS: tuple[type[BaseException], ...] = (smtplib.SMTPRecipientsRefused, SmsPermanentError)

REFILL_ALERT_KINDS = (Alert.Kind.REFILL_UNBOOKED, Alert.Kind.REFILL_URGENT, Alert.Kind.BOOKED_AFTER_DUE)


def _clinic_tz() -> ZoneInfo:
    return ZoneInfo(settings.TIME_ZONE)


# ---------------------------------------------------------------------------
# When a reminder goes
# ---------------------------------------------------------------------------
def reminder_send_at(*, starts_at: dt.datetime, offset_days: int, hour: int) -> dt.datetime:
    """`hour`:00 clinic-local time, `offset_days` before the appointment's clinic-local date.

    The date is computed in local terms first and only then made aware, so a reminder two days
    before a Monday-after-the-clocks-change appointment still goes at 09:00 on the wall clock.
    """
    tz = _clinic_tz()
    day = starts_at.astimezone(tz).date() - dt.timedelta(days=offset_days)
    return dt.datetime.combine(day, dt.time(hour), tzinfo=tz)


@dataclass(frozen=True, slots=True)
class PlannedReminder:
    offset_days: int
    send_at: dt.datetime
    status: str
    reason_code: str = ""
    status_reason: str = ""


def reminder_plan(
    *,
    starts_at: dt.datetime,
    offsets: Iterable[int],
    hour: int,
    now: dt.datetime,
    min_lead: dt.timedelta,
    late_grace: dt.timedelta = dt.timedelta(hours=6),
) -> list[PlannedReminder]:
    """Which reminders an appointment gets, decided when its rows are created.

    An offset whose time is ahead, or passed less than `late_grace` ago (the scan runs every few
    minutes, a booking may land just after 09:00), is pending. One whose time passed longer ago
    (a late booking) is skipped as stale, except that when no offset is left ahead the closest
    one goes at once, as a catch-up, provided the appointment is at least `min_lead` away: a
    patient booked tomorrow gets one reminder now, never a "14 days" one.
    """
    times = sorted(
        ((offset, reminder_send_at(starts_at=starts_at, offset_days=offset, hour=hour)) for offset in set(offsets)),
        reverse=True,
    )
    on_time = {offset for offset, send_at in times if send_at > now - late_grace}
    past = [offset for offset, _ in times if offset not in on_time]
    catch_up = min(past) if past and not on_time and starts_at - now >= min_lead else None
    plan = []
    for offset, send_at in times:
        if offset in on_time or offset == catch_up:
            plan.append(PlannedReminder(offset, send_at, Reminder.Status.PENDING))
        else:
            local = timezone.localtime(send_at, _clinic_tz())
            plan.append(
                PlannedReminder(
                    offset,
                    send_at,
                    Reminder.Status.CANCELLED,
                    Reminder.ReasonCode.STALE,
                    f"Not sent: booked after its time ({local:%d %b %H:%M}); a closer reminder covers it.",
                )
            )
    return plan


# ---------------------------------------------------------------------------
# Which reminder rows should exist
# ---------------------------------------------------------------------------
def _contact_q(prefix: str, channel_field: str) -> Q:
    """The patient has an address for the channel (email or SMS)."""
    return (Q(**{channel_field: Reminder.Channel.EMAIL}) & ~Q(**{f"{prefix}email": ""})) | (
        Q(**{channel_field: Reminder.Channel.SMS}) & ~Q(**{f"{prefix}phone": ""})
    )


def _patient_reachable_q(prefix: str) -> Q:
    return Q(
        **{
            f"{prefix}status": Patient.Status.ACTIVE,
            f"{prefix}entered_in_error": False,
            f"{prefix}reminder_consent": True,
        }
    ) & _contact_q(prefix, f"{prefix}reminder_channel")


def _appointments_to_remind(*, now: dt.datetime) -> QuerySet[Appointment]:
    return (
        Appointment.objects.valid()
        .filter(status=Appointment.Status.BOOKED, starts_at__gt=now)
        .filter(_patient_reachable_q("patient__"))
    )


def _reminders_cancel_obsolete(*, clinic: ClinicSettings, now: dt.datetime, appointment_id: int | None) -> int:
    """Pending rows that no longer announce anything true are cancelled (four set-based updates)."""
    pending = Reminder.objects.filter(status=Reminder.Status.PENDING)
    if appointment_id is not None:
        pending = pending.filter(appointment_id=appointment_id)
    not_booked = ~Q(appointment__status=Appointment.Status.BOOKED) | Q(appointment__entered_in_error=True)
    rules = [
        (pending.filter(not_booked), "Appointment cancelled, completed or missed."),
        (pending.exclude(appointment_starts_at=F("appointment__starts_at")), "Appointment moved to another time."),
        (
            pending.exclude(_patient_reachable_q("patient__") & Q(channel=F("patient__reminder_channel"))),
            "Patient inactive, consent withdrawn, or channel or contact changed.",
        ),
        (pending.exclude(offset_days__in=clinic.reminder_offsets_days), "Reminder offsets changed in the settings."),
    ]
    cancelled = 0
    for queryset, reason in rules:
        cancelled += queryset.update(
            status=Reminder.Status.CANCELLED,
            reason_code=Reminder.ReasonCode.OBSOLETE,
            status_reason=reason,
            claim_token=None,
            updated_at=now,
        )
    return cancelled


def _reminders_reopen(*, clinic: ClinicSettings, now: dt.datetime, appointment_id: int | None) -> int:
    """Rows cancelled as obsolete whose reason was undone (moved back, consent given again) return."""
    rows = Reminder.objects.filter(
        status=Reminder.Status.CANCELLED,
        reason_code=Reminder.ReasonCode.OBSOLETE,
        send_at__gt=now,
        appointment__status=Appointment.Status.BOOKED,
        appointment__entered_in_error=False,
        appointment_starts_at=F("appointment__starts_at"),
        channel=F("patient__reminder_channel"),
        offset_days__in=clinic.reminder_offsets_days,
    ).filter(_patient_reachable_q("patient__"))
    if appointment_id is not None:
        rows = rows.filter(appointment_id=appointment_id)
    return rows.update(status=Reminder.Status.PENDING, reason_code="", status_reason="", updated_at=now)


def _reminders_materialise(*, clinic: ClinicSettings, now: dt.datetime, appointment_id: int | None) -> int:
    """Create the missing rows of booked future appointments: one select, one bulk insert."""
    offsets = sorted(set(clinic.reminder_offsets_days or []))
    if not offsets:
        return 0
    missing = None
    for offset in offsets:
        lacks = ~Exists(
            Reminder.objects.filter(
                appointment=OuterRef("pk"),
                appointment_starts_at=OuterRef("starts_at"),
                channel=OuterRef("patient__reminder_channel"),
                offset_days=offset,
            )
        )
        missing = lacks if missing is None else (missing | lacks)
    appointments = _appointments_to_remind(now=now).filter(missing)
    if appointment_id is not None:
        appointments = appointments.filter(pk=appointment_id)
    min_lead = dt.timedelta(hours=settings.REMINDER_MIN_LEAD_HOURS)
    late_grace = dt.timedelta(hours=settings.REMINDER_LATE_GRACE_HOURS)
    rows = []
    for appointment_pk, patient_pk, starts_at, channel in appointments.values_list(
        "pk", "patient_id", "starts_at", "patient__reminder_channel"
    ):
        for planned in reminder_plan(
            starts_at=starts_at,
            offsets=offsets,
            hour=clinic.reminder_hour,
            now=now,
            min_lead=min_lead,
            late_grace=late_grace,
        ):
            rows.append(
                Reminder(
                    appointment_id=appointment_pk,
                    patient_id=patient_pk,
                    appointment_starts_at=starts_at,
                    offset_days=planned.offset_days,
                    channel=channel,
                    send_at=planned.send_at,
                    status=planned.status,
                    reason_code=planned.reason_code,
                    status_reason=planned.status_reason,
                )
            )
    # Rows that exist already (another offset of the same appointment, a concurrent scan) are
    # left as they are: the unique key makes a second row impossible.
    Reminder.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows)


@dataclass(frozen=True, slots=True)
class ReminderScanResult:
    cancelled: int
    reopened: int
    planned: int


@transaction.atomic
def reminders_scan(*, now: dt.datetime) -> ReminderScanResult:
    """Make the reminder rows agree with the schedule: cancel obsolete, reopen, materialise."""
    clinic = ClinicSettings.load()
    return ReminderScanResult(
        cancelled=_reminders_cancel_obsolete(clinic=clinic, now=now, appointment_id=None),
        reopened=_reminders_reopen(clinic=clinic, now=now, appointment_id=None),
        planned=_reminders_materialise(clinic=clinic, now=now, appointment_id=None),
    )


def _patient_reachable(patient: Patient, channel: str) -> bool:
    contact = patient.email if channel == Reminder.Channel.EMAIL else patient.phone
    return (
        patient.status == Patient.Status.ACTIVE
        and not patient.entered_in_error
        and patient.reminder_consent
        and patient.reminder_channel == channel
        and bool(contact)
    )


def _reminder_obsolete_reason(reminder: Reminder, appointment: Appointment, offsets: list[int]) -> str:
    """The scan's four cancellation rules, for one row in Python ('' when it still applies)."""
    if appointment.status != Appointment.Status.BOOKED or appointment.entered_in_error:
        return "Appointment cancelled, completed or missed."
    if reminder.appointment_starts_at != appointment.starts_at:
        return "Appointment moved to another time."
    if not _patient_reachable(appointment.patient, reminder.channel):
        return "Patient inactive, consent withdrawn, or channel or contact changed."
    if reminder.offset_days not in offsets:
        return "Reminder offsets changed in the settings."
    return ""


@transaction.atomic
def reminders_materialise_for_appointment(*, appointment: Appointment, now: dt.datetime | None = None) -> int:
    """The scan, for one appointment: call it inside appointment_book / _move / _cancel.

    The rows then exist in the booking's own transaction; the periodic scan would find them
    anyway a few minutes later (level-triggered), so forgetting this call delays, never loses.
    Same rules as the scan, decided in Python for this one appointment (a handful of queries).
    """
    now = now or timezone.now()
    clinic = ClinicSettings.load()
    offsets = sorted(set(clinic.reminder_offsets_days or []))
    appointment = Appointment.objects.select_related("patient").get(pk=appointment.pk)
    existing = list(Reminder.objects.filter(appointment=appointment))
    cancel: dict[str, list[int]] = {}
    reopen = []
    for row in existing:
        reason = _reminder_obsolete_reason(row, appointment, offsets)
        if row.status == Reminder.Status.PENDING and reason:
            cancel.setdefault(reason, []).append(row.pk)
        elif (
            row.status == Reminder.Status.CANCELLED
            and row.reason_code == Reminder.ReasonCode.OBSOLETE
            and not reason
            and row.send_at > now
        ):
            reopen.append(row.pk)
    for reason, pks in cancel.items():
        Reminder.objects.filter(pk__in=pks, status=Reminder.Status.PENDING).update(
            status=Reminder.Status.CANCELLED,
            reason_code=Reminder.ReasonCode.OBSOLETE,
            status_reason=reason,
            claim_token=None,
            updated_at=now,
        )
    if reopen:
        Reminder.objects.filter(pk__in=reopen, status=Reminder.Status.CANCELLED).update(
            status=Reminder.Status.PENDING, reason_code="", status_reason="", updated_at=now
        )
    channel = appointment.patient.reminder_channel
    if (
        appointment.status != Appointment.Status.BOOKED
        or appointment.entered_in_error
        or appointment.starts_at <= now
        or not _patient_reachable(appointment.patient, channel)
    ):
        return 0
    have = {(r.appointment_starts_at, r.offset_days, r.channel) for r in existing}
    rows = [
        Reminder(
            appointment=appointment,
            patient_id=appointment.patient_id,
            appointment_starts_at=appointment.starts_at,
            offset_days=planned.offset_days,
            channel=channel,
            send_at=planned.send_at,
            status=planned.status,
            reason_code=planned.reason_code,
            status_reason=planned.status_reason,
        )
        for planned in reminder_plan(
            starts_at=appointment.starts_at,
            offsets=offsets,
            hour=clinic.reminder_hour,
            now=now,
            min_lead=dt.timedelta(hours=settings.REMINDER_MIN_LEAD_HOURS),
            late_grace=dt.timedelta(hours=settings.REMINDER_LATE_GRACE_HOURS),
        )
        if (appointment.starts_at, planned.offset_days, channel) not in have
    ]
    Reminder.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows)


# ---------------------------------------------------------------------------
# Dispatch: claim due rows, enqueue one send each after commit
# ---------------------------------------------------------------------------
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


# ---------------------------------------------------------------------------
# Send one reminder (called by the send task; idempotent)
# ---------------------------------------------------------------------------
class SendOutcome:
    SENT = "sent"
    DUPLICATE = "duplicate"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"
    FAILED = "failed"


def _reminder_problem(reminder: Reminder, now: dt.datetime) -> str:
    """Why this reminder must not go any more ('' when it still should)."""
    appointment, patient = reminder.appointment, reminder.patient
    if appointment.status != Appointment.Status.BOOKED or appointment.entered_in_error:
        return "Appointment cancelled, completed or missed."
    if appointment.starts_at != reminder.appointment_starts_at:
        return "Appointment moved to another time."
    if appointment.starts_at <= now:
        return "Not sent: the appointment time had come before it could go."
    if patient.status != Patient.Status.ACTIVE or patient.entered_in_error or not patient.reminder_consent:
        return "Patient inactive or consent withdrawn."
    if patient.reminder_channel != reminder.channel:
        return "Patient's preferred channel changed."
    if (reminder.channel == Reminder.Channel.EMAIL and not patient.email) or (
        reminder.channel == Reminder.Channel.SMS and not patient.phone
    ):
        return "No address for this channel."
    return ""


def reminder_message_context(*, reminder: Reminder, clinic: ClinicSettings) -> dict:
    """What a reminder says: date, time, place, how to reschedule. No clinical detail."""
    return {
        "given_name": reminder.patient.given_name,
        "starts_at": timezone.localtime(reminder.appointment.starts_at, _clinic_tz()),
        "place": reminder.appointment.place,
        "clinic": clinic,
        "site_url": settings.SITE_URL,
    }


def _deliver(*, reminder: Reminder, clinic: ClinicSettings) -> None:
    context = reminder_message_context(reminder=reminder, clinic=clinic)
    if reminder.channel == Reminder.Channel.SMS:
        body = render_to_string("refills/email/reminder_sms.txt", context).strip()
        send_sms(to=reminder.patient.phone.as_e164, body=body)
        return
    subject = " ".join(render_to_string("refills/email/reminder_subject.txt", context).split())
    body = render_to_string("refills/email/reminder_body.txt", context)
    EmailMessage(subject=subject, body=body, to=[reminder.patient.email]).send(fail_silently=False)


def reminder_send(*, reminder_id: int, claim_token: str | None, now: dt.datetime) -> str:
    """Send one claimed reminder, at most once per claim; transient errors propagate (retry).

    Acts only while the row is `sending` under this claim: a redelivered message for a row that
    was sent, cancelled, or recovered and claimed again does nothing. Every attempt refreshes
    `claimed_at`, so the stuck-row recovery leaves a row alone while its retries run.
    """
    claimed = Reminder.objects.filter(pk=reminder_id, status=Reminder.Status.SENDING)
    if claim_token:
        claimed = claimed.filter(claim_token=claim_token)
    if not claimed.update(attempts=F("attempts") + 1, claimed_at=now, updated_at=now):
        return SendOutcome.SKIPPED
    reminder = Reminder.objects.select_related("appointment", "patient").get(pk=reminder_id)
    problem = _reminder_problem(reminder, now)
    if problem:
        claimed.update(
            status=Reminder.Status.CANCELLED,
            reason_code=Reminder.ReasonCode.OBSOLETE,
            status_reason=problem,
            claim_token=None,
            updated_at=now,
        )
        return SendOutcome.CANCELLED
    clinic = ClinicSettings.load()
    try:
        _deliver(reminder=reminder, clinic=clinic)
    except PERMANENT_SEND_ERRORS as exc:
        reminder_mark_failed(reminder_id=reminder_id, error=f"{type(exc).__name__}: {exc}", now=now)
        return SendOutcome.FAILED
    except TRANSIENT_SEND_ERRORS as exc:
        _reminder_record_error(reminder_id=reminder_id, error=f"{type(exc).__name__}: {exc}")
        raise
    # Whatever happened meanwhile (recovered, re-claimed, cancelled), this one went out: record it.
    marked = (
        Reminder.objects.filter(pk=reminder_id)
        .exclude(status=Reminder.Status.SENT)
        .update(
            status=Reminder.Status.SENT,
            sent_at=now,
            send_count=F("send_count") + 1,
            claim_token=None,
            reason_code="",
            status_reason="",
            last_error="",
            updated_at=now,
        )
    )
    if marked:
        return SendOutcome.SENT
    Reminder.objects.filter(pk=reminder_id).update(send_count=F("send_count") + 1, updated_at=now)
    logger.warning("reminder %s delivered again (duplicate, counted)", reminder_id)
    return SendOutcome.DUPLICATE


def _reminder_record_error(*, reminder_id: int, error: str) -> None:
    try:
        Reminder.objects.filter(pk=reminder_id).update(last_error=error[:2000])
    except (OperationalError, InterfaceError):
        # The database is what failed: the retry will record the next error.
        logger.warning("reminder %s: could not record the error %s", reminder_id, error)


@transaction.atomic
def reminder_mark_failed(*, reminder_id: int, error: str, now: dt.datetime) -> int:
    """Give up on a reminder: `failed`, and a REMINDER_FAILED alert on the nurses' worklist."""
    marked = (
        Reminder.objects.filter(pk=reminder_id)
        .exclude(status__in=[Reminder.Status.SENT, Reminder.Status.CANCELLED, Reminder.Status.FAILED])
        .update(
            status=Reminder.Status.FAILED,
            reason_code=Reminder.ReasonCode.FAILED,
            status_reason="Could not be sent: contact the patient.",
            last_error=error[:2000],
            claim_token=None,
            updated_at=now,
        )
    )
    if not marked:
        return 0
    reminder = Reminder.objects.select_related("appointment").get(pk=reminder_id)
    starts = timezone.localtime(reminder.appointment.starts_at, _clinic_tz())
    # Through `_alerts_raise`, so a patient's withdrawal-risk flags raise this one too.
    _alerts_raise(
        [
            Alert(
                kind=Alert.Kind.REMINDER_FAILED,
                audience=Alert.Audience.NURSES,
                severity=Alert.Severity.WARNING,
                patient_id=reminder.patient_id,
                implant_id=reminder.appointment.implant_id,
                appointment_id=reminder.appointment_id,
                reminder=reminder,
                key_date=timezone.localdate(reminder.send_at, _clinic_tz()),
                message=(
                    f"The {reminder.get_channel_display().lower()} reminder ({reminder.offset_days} days before) for "
                    f"the appointment on {starts:%a %d %b %Y %H:%M} could not be sent: contact the patient."
                ),
            )
        ]
    )
    return 1


# ---------------------------------------------------------------------------
# Alerts: raised and resolved by a level-triggered scan
# ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class AlertScanResult:
    raised: int
    resolved: int
    no_shows: int
    emailed: int
    texted: int = 0
    escalated: int = 0


# What only a clinician can decide: the device, the drug's delivery, the patient's next surgery.
CLINICIAN_ALERT_KINDS = frozenset(
    {
        Alert.Kind.BATTERY_WINDOW,
        Alert.Kind.REPLACEMENT_PLAN,
        Alert.Kind.ERI,
        Alert.Kind.END_OF_SERVICE,
        Alert.Kind.DISCREPANCY,
        Alert.Kind.REFILL_AFTER_EMPTY,
        Alert.Kind.POCKET_FILL,
        Alert.Kind.EXPLANT_NO_REPLACEMENT,
    }
)
# Raised from one refill visit each, closed by the clinician who reviews it (or when the visit
# turns out to be entered in error): the scan never decides that the event stopped mattering.
VISIT_ALERT_KINDS = (
    Alert.Kind.END_OF_SERVICE,
    Alert.Kind.DISCREPANCY,
    Alert.Kind.REFILL_AFTER_EMPTY,
    Alert.Kind.POCKET_FILL,
)
# Only recent visits can still raise one: older events were alerted when they happened.
VISIT_ALERT_WINDOW_DAYS = 90
DISCREPANCY_TREND_VISITS = 3
# An SMS per urgent alert, but never a flood from one scan (e.g. the first scan after an outage):
# the rest go on the next scan, five minutes later.
SMS_PER_SCAN = 20
_RAISED_SEVERITY = {
    Alert.Severity.INFO: Alert.Severity.WARNING,
    Alert.Severity.WARNING: Alert.Severity.URGENT,
    Alert.Severity.URGENT: Alert.Severity.URGENT,
}
_RISK_FLAG_WORDS = ("SCI at T6 or above", "communication difficulty", "previous withdrawal")
# A date this far ahead was never true: it names the field a RECORD_ATTENTION alert points to.
_IMPLAUSIBLE_AFTER_YEARS = 100


def _alert(kind: str, *, patient_id: int, key_date: dt.date, message: str, **fields) -> Alert:
    audience = Alert.Audience.CLINICIANS if kind in CLINICIAN_ALERT_KINDS else Alert.Audience.NURSES
    return Alert(kind=kind, audience=audience, patient_id=patient_id, key_date=key_date, message=message, **fields)


def _active_implants() -> QuerySet[Implant]:
    return Implant.objects.valid().filter(
        explanted_on__isnull=True, patient__status=Patient.Status.ACTIVE, patient__entered_in_error=False
    )


class _RecordProblems:
    """Rows the scan could not compute (STYLE.md 20): logged, alerted on, and the scan goes on.

    One RECORD_ATTENTION alert per patient, naming each record and field, so that one impossible
    date (planted before validation existed, or straight into the database) never hides the rest
    of the clinic's alerts.
    """

    CATCH = (ArithmeticError, ValueError, TypeError, AttributeError, KeyError)

    def __init__(self, *, today: dt.date) -> None:
        self.today = today
        self.by_patient: dict[int, list[str]] = {}

    def add(self, *, patient_id: int, record: str, computing: str, exc: BaseException, **dates) -> None:
        far = dt.date(min(self.today.year + _IMPLAUSIBLE_AFTER_YEARS, dt.MAXYEAR), 1, 1)
        suspects = (
            {name: value for name, value in dates.items() if value is not None and value >= far}
            or {name: value for name, value in dates.items() if value is None}
            or dates
        )
        fields = ", ".join(f"{name} = {value if value is not None else 'empty'}" for name, value in suspects.items())
        logger.warning("alert scan: %s of %s cannot be computed (%s): %r", computing, record, fields, exc)
        text = f"{record}: the {computing} cannot be computed from {fields}"
        if text not in self.by_patient.setdefault(patient_id, []):
            self.by_patient[patient_id].append(text)

    def alerts(self) -> list[Alert]:
        """Keyed on the day first raised and carried on while open: one open alert per patient,
        back the next day if resolved by hand while the record is still wrong."""
        if not self.by_patient:
            return []
        open_keys: dict[int, dt.date] = {}
        for patient_pk, key_date in (
            Alert.objects.filter(kind=Alert.Kind.RECORD_ATTENTION, resolved_at__isnull=True)
            .order_by("-key_date")
            .values_list("patient_id", "key_date")
        ):
            open_keys[patient_pk] = key_date
        return [
            _alert(
                Alert.Kind.RECORD_ATTENTION,
                patient_id=patient_pk,
                key_date=open_keys.get(patient_pk, self.today),
                severity=Alert.Severity.URGENT,
                message="; ".join(texts) + ". Check and correct the record: its alerts cannot be worked out.",
            )
            for patient_pk, texts in self.by_patient.items()
        ]


def _appointments_mark_no_show(*, clinic: ClinicSettings, now: dt.datetime) -> list[Alert]:
    """Booked refills long past with no visit become no-shows (the lead's service), one alert each."""
    late = (
        Appointment.objects.valid()
        .filter(
            kind=Appointment.Kind.REFILL,
            status=Appointment.Status.BOOKED,
            visit__isnull=True,
            starts_at__lt=now - dt.timedelta(hours=clinic.no_show_after_hours),
            patient__status=Patient.Status.ACTIVE,
        )
        .exclude(
            # A refill recorded without naming its appointment still counts as the visit.
            Exists(
                RefillVisit.objects.valid().filter(
                    implant=OuterRef("implant"), performed_at__gte=OuterRef("starts_at") - dt.timedelta(hours=12)
                )
            )
        )
        .order_by("starts_at")
    )
    alerts = []
    for appointment in late:
        appointment_mark_no_show(appointment=appointment, now=now)
        starts = timezone.localtime(appointment.starts_at, _clinic_tz())
        alerts.append(
            _alert(
                Alert.Kind.NO_SHOW,
                patient_id=appointment.patient_id,
                key_date=starts.date(),
                implant_id=appointment.implant_id,
                appointment_id=appointment.pk,
                message=f"Missed the refill booked for {starts:%a %d %b %Y %H:%M}: rebook it.",
            )
        )
    return alerts


def _refill_alerts(*, clinic: ClinicSettings, today: dt.date, problems: _RecordProblems) -> list[Alert]:
    """REFILL_UNBOOKED, REFILL_URGENT, BOOKED_AFTER_DUE and NO_FORECAST for every active pump: two queries.

    REFILL_UNBOOKED is a warning until its due-by date passes, then an urgent alert of its own
    (severity is in the key): a nurse who resolved the warning never silences the urgent one.
    REFILL_URGENT is raised from `urgent_alert_days` before the alarm date until the pump is
    refilled: a new one every day while nothing is booked before the alarm. A refill booked
    inside that last stretch does not silence it, because one missed visit there would leave
    less than the urgent margin (DOMAIN.md "Why a missed refill is an emergency"), but it is
    raised once (keyed on the day the stretch began), not daily, and says what is booked.
    """
    tz = _clinic_tz()
    booked = Appointment.objects.valid().filter(
        implant=OuterRef("pk"), kind=Appointment.Kind.REFILL, status=Appointment.Status.BOOKED
    )
    emptied = ReservoirEmptying.objects.valid().filter(implant=OuterRef("pk")).order_by("-emptied_at", "-id")
    open_no_forecast = Alert.objects.filter(
        kind=Alert.Kind.NO_FORECAST, patient=OuterRef("patient"), resolved_at__isnull=True
    ).order_by("key_date")
    fields = ("pk", "patient_id", "forecast_due_by", "forecast_alarm_on", "booked_at", "serial_number")
    no_forecast_fields = ("forecast_problem", "emptied_at", "open_key")
    candidates = _active_implants().annotate(
        booked_at=Subquery(booked.order_by("starts_at").values("starts_at")[:1]),
        # Only a pump with no forecast needs these: the subqueries run for those rows alone.
        emptied_at=Case(When(forecast_due_by__isnull=True, then=Subquery(emptied.values("emptied_at")[:1]))),
        open_key=Case(When(forecast_due_by__isnull=True, then=Subquery(open_no_forecast.values("key_date")[:1]))),
    )
    # due_by <= alarm_on always, so the horizon on due_by (indexed) covers both dates.
    horizon = today + dt.timedelta(days=max(clinic.unbooked_alert_days, clinic.urgent_alert_days))
    near = candidates.filter(Q(forecast_due_by__lte=horizon) | Q(forecast_due_by__isnull=True)).values_list(
        *fields, *no_forecast_fields
    )
    # Pumps booked after their due-by date, whenever that is: found from the booked refills.
    late_booked = (
        Appointment.objects.valid()
        .filter(kind=Appointment.Kind.REFILL, status=Appointment.Status.BOOKED, implant__isnull=False)
        .annotate(day=TruncDate("starts_at", tzinfo=tz))
        .filter(day__gt=F("implant__forecast_due_by"), implant__forecast_due_by__gt=horizon)
        .values("implant_id")
    )
    far = candidates.filter(pk__in=late_booked).values_list(*fields, *no_forecast_fields)
    alerts: list[Alert] = []
    for implant_pk, patient_pk, due_by, alarm_on, booked_at, serial, problem, emptied_at, open_key in [*near, *far]:
        if due_by is None:
            alerts.append(
                _no_forecast_alert(
                    today=today,
                    implant_pk=implant_pk,
                    patient_pk=patient_pk,
                    serial=serial,
                    problem=problem,
                    emptied_at=emptied_at,
                    open_key=open_key,
                )
            )
            continue
        try:
            alerts.extend(
                _refill_alerts_of(
                    clinic=clinic,
                    today=today,
                    implant_pk=implant_pk,
                    patient_pk=patient_pk,
                    due_by=due_by,
                    alarm_on=alarm_on,
                    booked_day=timezone.localtime(booked_at, tz).date() if booked_at else None,
                )
            )
        except _RecordProblems.CATCH as exc:
            problems.add(
                patient_id=patient_pk,
                record=f"Pump {serial}",
                computing="refill alert",
                exc=exc,
                forecast_due_by=due_by,
                forecast_alarm_on=alarm_on,
            )
    return alerts


def _refill_alerts_of(
    *,
    clinic: ClinicSettings,
    today: dt.date,
    implant_pk: int,
    patient_pk: int,
    due_by: dt.date,
    alarm_on: dt.date,
    booked_day: dt.date | None,
) -> list[Alert]:
    alerts = []
    if booked_day is None and due_by <= today + dt.timedelta(days=clinic.unbooked_alert_days):
        overdue = due_by < today
        alerts.append(
            _alert(
                Alert.Kind.REFILL_UNBOOKED,
                patient_id=patient_pk,
                key_date=due_by,
                implant_id=implant_pk,
                severity=Alert.Severity.URGENT if overdue else Alert.Severity.WARNING,
                message=f"Refill {'overdue since' if overdue else 'due by'} {due_by:%a %d %b %Y} "
                f"(alarm {alarm_on:%d %b}); no refill booked.",
            )
        )
    if alarm_on <= today + dt.timedelta(days=clinic.urgent_alert_days):
        days = (alarm_on - today).days
        when = f"in {days} days" if days > 0 else ("TODAY" if days == 0 else f"{-days} days ago")
        if booked_day and booked_day <= alarm_on:
            booking = f"refill booked for {booked_day:%a %d %b}: make sure the patient comes."
            key_date = min(today, alarm_on - dt.timedelta(days=clinic.urgent_alert_days))
        else:
            booking = "NOTHING BOOKED before it: book today."
            key_date = today
        alerts.append(
            _alert(
                Alert.Kind.REFILL_URGENT,
                patient_id=patient_pk,
                key_date=key_date,
                implant_id=implant_pk,
                severity=Alert.Severity.URGENT,
                message=f"Pump alarm date {alarm_on:%a %d %b %Y} ({when}); {booking}",
            )
        )
    if booked_day is not None and booked_day > due_by:
        alerts.append(
            _alert(
                Alert.Kind.BOOKED_AFTER_DUE,
                patient_id=patient_pk,
                key_date=due_by,
                implant_id=implant_pk,
                severity=Alert.Severity.URGENT if booked_day >= alarm_on else Alert.Severity.WARNING,
                message=f"Refill booked for {booked_day:%a %d %b %Y}, after its due-by date "
                f"{due_by:%d %b} (alarm {alarm_on:%d %b}): bring it forward.",
            )
        )
    return alerts


_NO_FORECAST_WHY = {
    "fill_not_recorded": "Fill not recorded: record the theatre fill or a refill.",
    "cannot_compute": "The forecast cannot be computed: check the record.",
}


def _no_forecast_alert(
    *,
    today: dt.date,
    implant_pk: int,
    patient_pk: int,
    serial: str,
    problem: str,
    emptied_at: dt.datetime | None,
    open_key: dt.date | None,
) -> Alert:
    """NO_FORECAST: an active pump with no refill date is urgent, at the top of the list.

    Nothing else can alert on it (every refill alert needs a due-by date), so it is the only net
    under a pump whose fill was never recorded or whose reservoir was emptied. Keyed on the day it
    was first raised and carried on while open, so it stays one open alert (not one a day);
    resolved by hand while the pump still has no forecast, it comes back the next day.
    """
    if problem == "reservoir_emptied":
        on = f" on {timezone.localtime(emptied_at, _clinic_tz()):%a %d %b %Y}" if emptied_at else ""
        why = f"Reservoir emptied{on}: record the refill."
    else:
        # A blank problem with no forecast is a record the forecast services have not seen yet.
        why = _NO_FORECAST_WHY.get(problem, _NO_FORECAST_WHY["cannot_compute"])
    return _alert(
        Alert.Kind.NO_FORECAST,
        patient_id=patient_pk,
        key_date=open_key or today,
        implant_id=implant_pk,
        severity=Alert.Severity.URGENT,
        message=f"Pump {serial} has no refill date, so nothing can warn before it runs dry. {why}",
    )


def _device_alerts(*, clinic: ClinicSettings, today: dt.date, problems: _RecordProblems) -> list[Alert]:
    """BATTERY_WINDOW, REPLACEMENT_PLAN and ERI for the clinicians: three queries.

    Dates come from pumps/calculations.py; the SQL only narrows the candidates by implant date
    (a few days' slack for month-end clamping), so its cost follows the pumps near their end.
    A row whose dates cannot be computed goes to `problems`, never stops the others.
    """
    models = {
        m.pk: m
        for m in PumpModel.objects.filter(
            Q(battery_earliest_end_years__isnull=False) | Q(battery_hard_stop_years__isnull=False)
        )
    }
    alerts: list[Alert] = []
    slack = dt.timedelta(days=4)
    window_q = Q(pk__in=[])
    plan_q = Q(pk__in=[])
    plan_horizon = today + dt.timedelta(days=clinic.replacement_alert_days)
    for model in models.values():
        if model.battery_earliest_end_years:
            cutoff = add_months(day=today, months=-12 * model.battery_earliest_end_years) + slack
            window_q |= Q(pump_model_id=model.pk, implanted_on__lte=cutoff)
        if model.battery_hard_stop_years:
            months = 12 * model.battery_hard_stop_years - model.replacement_plan_months_before
            cutoff = add_months(day=plan_horizon, months=-months) + slack
            plan_q |= Q(pump_model_id=model.pk) & (Q(implanted_on__lte=cutoff) | Q(eri_reported_on__isnull=False))

    already_windowed = Alert.objects.filter(kind=Alert.Kind.BATTERY_WINDOW, implant=OuterRef("pk"))
    columns = ("pk", "patient_id", "pump_model_id", "implanted_on", "eri_reported_on", "serial_number")

    def problem(implant: Implant, computing: str, exc: BaseException) -> None:
        problems.add(
            patient_id=implant.patient_id,
            record=f"Pump {implant.serial_number}",
            computing=computing,
            exc=exc,
            implanted_on=implant.implanted_on,
            eri_reported_on=implant.eri_reported_on,
        )

    for implant in _active_implants().filter(window_q).exclude(Exists(already_windowed)).only(*columns):
        model = models[implant.pump_model_id]
        try:
            window = battery_window(
                implanted_on=implant.implanted_on,
                earliest_end_years=model.battery_earliest_end_years,
                hard_stop_years=model.battery_hard_stop_years or model.battery_earliest_end_years,
            )
        except _RecordProblems.CATCH as exc:
            problem(implant, "battery window", exc)
            continue
        if window.window_opens_on <= today:
            stop = f"; it stops by {window.hard_stop_on:%d %b %Y}" if model.battery_hard_stop_years else ""
            alerts.append(
                _alert(
                    Alert.Kind.BATTERY_WINDOW,
                    patient_id=implant.patient_id,
                    key_date=window.window_opens_on,
                    implant_id=implant.pk,
                    severity=Alert.Severity.INFO,
                    message=f"{model} implanted {implant.implanted_on:%d %b %Y}: the battery may run out "
                    f"from {window.window_opens_on:%d %b %Y}{stop}. Check it at each refill.",
                )
            )

    replacement_booked = Appointment.objects.valid().filter(
        patient=OuterRef("patient"), kind=Appointment.Kind.REPLACEMENT, status=Appointment.Status.BOOKED
    )
    for implant in _active_implants().filter(plan_q).exclude(Exists(replacement_booked)).only(*columns):
        model = models[implant.pump_model_id]
        try:
            plan = replacement_plan(
                implanted_on=implant.implanted_on,
                service_life_years=model.battery_hard_stop_years,
                plan_months_before=model.replacement_plan_months_before,
                eri_on=implant.eri_reported_on,
                eri_grace_days=model.eri_grace_days if model.eri_grace_days is not None else 90,
            )
            urgent = plan.stops_on <= today + dt.timedelta(days=30)
        except _RecordProblems.CATCH as exc:
            problem(implant, "replacement plan", exc)
            continue
        if plan.plan_by <= plan_horizon:
            alerts.append(
                _alert(
                    Alert.Kind.REPLACEMENT_PLAN,
                    patient_id=implant.patient_id,
                    key_date=plan.plan_by,
                    implant_id=implant.pk,
                    severity=Alert.Severity.URGENT if urgent else Alert.Severity.WARNING,
                    message=f"Plan the replacement of the {model} by {plan.plan_by:%d %b %Y}: "
                    f"the pump stops by {plan.stops_on:%d %b %Y}.",
                )
            )

    eri_alerted = Alert.objects.filter(
        kind=Alert.Kind.ERI, implant=OuterRef("pk"), key_date=OuterRef("eri_reported_on")
    )
    for implant in (
        _active_implants()
        .filter(eri_reported_on__isnull=False)
        .exclude(Exists(eri_alerted))
        .select_related("pump_model")
        .only(*columns, "pump_model")
    ):
        model = implant.pump_model
        grace = model.eri_grace_days if model.eri_grace_days is not None else 90
        try:
            stops_on = implant.eri_reported_on + dt.timedelta(days=grace)
            if model.battery_hard_stop_years:
                stops_on = replacement_plan(
                    implanted_on=implant.implanted_on,
                    service_life_years=model.battery_hard_stop_years,
                    plan_months_before=model.replacement_plan_months_before,
                    eri_on=implant.eri_reported_on,
                    eri_grace_days=grace,
                ).stops_on
        except _RecordProblems.CATCH as exc:
            problem(implant, "stop date after the ERI", exc)
            continue
        alerts.append(
            _alert(
                Alert.Kind.ERI,
                patient_id=implant.patient_id,
                key_date=implant.eri_reported_on,
                implant_id=implant.pk,
                severity=Alert.Severity.URGENT,
                message=f"ERI reported on {implant.eri_reported_on:%d %b %Y}: the {model} stops by "
                f"{stops_on:%d %b %Y}. Book the replacement.",
            )
        )
    return alerts


def _visit_alerts(*, now: dt.datetime, problems: _RecordProblems) -> list[Alert]:
    """END_OF_SERVICE, DISCREPANCY, REFILL_AFTER_EMPTY, POCKET_FILL from recent visits: two queries.

    Each is raised once per visit (keyed on its local date; the end of service on the date the
    pump logged it) and stays open until a clinician has reviewed it.
    """
    tz = _clinic_tz()
    tolerance = F("implant__pump_model__pocket_fill_tolerance_ml")
    pocket_q = (
        Q(post_fill_check=RefillVisit.PostFillCheck.FAILED)
        | Q(post_fill_discrepancy_ml__gt=tolerance)
        | Q(post_fill_discrepancy_ml__lt=-tolerance)
    )
    visits = list(
        RefillVisit.objects.valid()
        .filter(
            performed_at__gte=now - dt.timedelta(days=VISIT_ALERT_WINDOW_DAYS),
            implant__entered_in_error=False,
            implant__patient__status=Patient.Status.ACTIVE,
            implant__patient__entered_in_error=False,
        )
        .filter(
            Q(battery_status=RefillVisit.BatteryStatus.EOS)
            | Q(discrepancy_flagged=True)
            | Q(after_empty_date=True)
            | pocket_q
        )
        .select_related("implant__pump_model")
        .order_by("performed_at", "id")
    )
    trends = _discrepancy_trends(implant_ids={v.implant_id for v in visits if v.discrepancy_flagged})
    alerts: list[Alert] = []
    for visit in visits:
        try:
            alerts.extend(_visit_alerts_of(visit=visit, tz=tz, trend=trends.get(visit.implant_id, [])))
        except _RecordProblems.CATCH as exc:
            problems.add(
                patient_id=visit.implant.patient_id,
                record=f"Refill visit #{visit.pk} of pump {visit.pump_serial}",
                computing="visit alert",
                exc=exc,
                battery_event_on=visit.battery_event_on,
            )
    return alerts


def _discrepancy_trends(*, implant_ids: set[int]) -> dict[int, list[tuple[dt.datetime, object]]]:
    """The latest valid visits of each implant (newest first), for the trend a clinician reviews [S27]."""
    if not implant_ids:
        return {}
    rank = Window(RowNumber(), partition_by=[F("implant_id")], order_by=[F("performed_at").desc(), F("id").desc()])
    trends: dict[int, list[tuple[dt.datetime, object]]] = {}
    for implant_pk, performed_at, discrepancy in (
        RefillVisit.objects.valid()
        .filter(implant_id__in=implant_ids)
        .annotate(rank=rank)
        # Enough to reach back past every flagged visit of the alert window.
        .filter(rank__lte=DISCREPANCY_TREND_VISITS + 6)
        .order_by("implant_id", "-performed_at", "-id")
        .values_list("implant_id", "performed_at", "discrepancy_ml")
    ):
        trends.setdefault(implant_pk, []).append((performed_at, discrepancy))
    return trends


def _visit_alerts_of(*, visit: RefillVisit, tz: ZoneInfo, trend: list[tuple[dt.datetime, object]]) -> list[Alert]:
    implant = visit.implant
    on = timezone.localtime(visit.performed_at, tz).date()
    common = {"patient_id": implant.patient_id, "implant_id": implant.pk, "visit_id": visit.pk}
    alerts = []
    if visit.battery_status == RefillVisit.BatteryStatus.EOS:
        logged = visit.battery_event_on or on
        alerts.append(
            _alert(
                Alert.Kind.END_OF_SERVICE,
                key_date=logged,
                severity=Alert.Severity.URGENT,
                message=f"End of service logged by pump {implant.serial_number} on {logged:%a %d %b %Y} "
                f"(read at the refill of {on:%d %b %Y}): the pump stops infusing, withdrawal risk. "
                "Replace it now and cover with oral baclofen.",
                **common,
            )
        )
    if visit.discrepancy_flagged:
        expected, actual = visit.expected_residual_ml, visit.actual_residual_ml
        if expected is not None and actual > expected:
            meaning = "under-delivery (more drug left than forecast): withdrawal risk — check catheter and pump"
        elif expected is not None and actual < expected:
            meaning = "over-delivery (less drug left than forecast): overdose risk — check dose and pump"
        else:
            meaning = "the residual disagrees with the forecast"
        upto = [(at, d) for at, d in trend if at <= visit.performed_at][:DISCREPANCY_TREND_VISITS]
        shown = ", ".join(
            f"{timezone.localtime(at, tz):%d %b %Y} {'n/a' if d is None else f'{d:+} mL'}" for at, d in upto
        )
        alerts.append(
            _alert(
                Alert.Kind.DISCREPANCY,
                key_date=on,
                severity=Alert.Severity.WARNING,
                message=f"Residual at the refill of {on:%d %b %Y}: expected "
                f"{'n/a' if expected is None else f'{expected} mL'}, aspirated {actual} mL — {meaning}. "
                f"Trend (last {len(upto)} visits, actual − expected): {shown}. A clinician reviews.",
                **common,
            )
        )
    if visit.after_empty_date:
        alerts.append(
            _alert(
                Alert.Kind.REFILL_AFTER_EMPTY,
                key_date=on,
                severity=Alert.Severity.URGENT,
                message=f"Refilled on {on:%d %b %Y}, after the reservoir's empty date: the patient may already "
                "have been in withdrawal. Check for fever, itching, rising spasticity, fast heart rate.",
                **common,
            )
        )
    tolerance = implant.pump_model.pocket_fill_tolerance_ml
    gap = visit.post_fill_discrepancy_ml
    failed = visit.post_fill_check == RefillVisit.PostFillCheck.FAILED
    if failed or (gap is not None and abs(gap) > tolerance):
        why = "the post-fill check failed" if failed else f"the post-fill gap of {gap} mL exceeds {tolerance} mL"
        alerts.append(
            _alert(
                Alert.Kind.POCKET_FILL,
                key_date=on,
                severity=Alert.Severity.URGENT,
                message=f"At the refill of {on:%d %b %Y} {why}: possible pocket fill, overdose risk. "
                "Watch for drowsiness and slowed breathing; a clinician reviews now.",
                **common,
            )
        )
    return alerts


_RISK_FLAGS_Q = Q(risk_high_sci=True) | Q(risk_communication_difficulty=True) | Q(risk_previous_withdrawal=True)
_RISK_FLAG_FIELDS = ("risk_high_sci", "risk_communication_difficulty", "risk_previous_withdrawal")


def _risk_flags_in_words(flags: Iterable[bool]) -> str:
    return "; ".join(word for word, flag in zip(_RISK_FLAG_WORDS, flags, strict=True) if flag)


def _risk_flags_get() -> dict[int, str]:
    """Every patient with a withdrawal-risk flag, with the flags in words: one query."""
    return {
        pk: _risk_flags_in_words(flags)
        for pk, *flags in Patient.objects.filter(_RISK_FLAGS_Q).values_list("pk", *_RISK_FLAG_FIELDS)
    }


@dataclass(frozen=True, slots=True)
class _PatientFindings:
    alerts: list[Alert]
    risk_flags: dict[int, str]


def _patient_alerts() -> _PatientFindings:
    """EXPLANT_NO_REPLACEMENT, PATIENT_STATUS and the withdrawal-risk flags: one query over patients.

    - An active patient whose last pump came out, with no pump and no replacement booked.
    - A transferred or deceased patient who still has a pump, bookings or alerts here: keyed on
      the day the status changed (from the patient's history), so once a nurse has resolved it,
      saying what was done, it comes back only if the status changes again.
    """
    tz = _clinic_tz()
    implants = Implant.objects.valid().filter(patient=OuterRef("pk"))
    latest = implants.order_by("-implanted_on", "-id")
    history = Patient.history.model.objects
    changed_since = history.filter(id=OuterRef("id"), history_date__gt=OuterRef("history_date")).exclude(
        status=OuterRef("status")
    )
    # The first history row of the current run of this status.
    run_start = (
        history.filter(id=OuterRef("pk"), status=OuterRef("status"))
        .exclude(Exists(changed_since))
        .order_by("history_date")
        .values("history_date")[:1]
    )
    appointments = Appointment.objects.valid().filter(patient=OuterRef("pk"), status=Appointment.Status.BOOKED)
    alerts_open = Alert.objects.filter(patient=OuterRef("pk"), resolved_at__isnull=True)
    explanted_q = Q(status=Patient.Status.ACTIVE, has_explanted=True, has_implant=False, replacement_booked=False) & ~Q(
        last_explanted_on=None
    )
    gone = [Patient.Status.TRANSFERRED, Patient.Status.DECEASED]
    status_q = Q(status__in=gone, status_alert_open=False) & (
        Q(has_implant=True) | Q(has_booking=True) | Q(has_alert=True)
    )
    rows = (
        Patient.objects.valid()
        .annotate(
            has_implant=Exists(implants.filter(explanted_on__isnull=True)),
            has_explanted=Exists(implants.filter(explanted_on__isnull=False)),
            replacement_booked=Exists(appointments.filter(kind=Appointment.Kind.REPLACEMENT)),
            last_implant=Subquery(latest.values("pk")[:1]),
            last_explanted_on=Subquery(latest.values("explanted_on")[:1]),
            has_booking=Exists(appointments),
            has_alert=Exists(alerts_open.exclude(kind=Alert.Kind.PATIENT_STATUS)),
            status_alert_open=Exists(alerts_open.filter(kind=Alert.Kind.PATIENT_STATUS)),
            changed_at=Subquery(run_start),
        )
        .filter(_RISK_FLAGS_Q | explanted_q | status_q)
        .values_list(
            "pk",
            "status",
            *_RISK_FLAG_FIELDS,
            "has_implant",
            "has_explanted",
            "replacement_booked",
            "last_implant",
            "last_explanted_on",
            "has_booking",
            "has_alert",
            "status_alert_open",
            "changed_at",
            "created_at",
        )
    )
    alerts: list[Alert] = []
    risk_flags: dict[int, str] = {}
    for (
        patient_pk,
        status,
        sci,
        communication,
        withdrawal,
        has_implant,
        has_explanted,
        replacement_booked,
        last_implant,
        last_explanted_on,
        has_booking,
        has_alert,
        status_alert_open,
        changed_at,
        created_at,
    ) in rows:
        if sci or communication or withdrawal:
            risk_flags[patient_pk] = _risk_flags_in_words((sci, communication, withdrawal))
        if status == Patient.Status.ACTIVE and has_explanted and not has_implant and not replacement_booked:
            if last_explanted_on is not None:
                alerts.append(
                    _alert(
                        Alert.Kind.EXPLANT_NO_REPLACEMENT,
                        patient_id=patient_pk,
                        key_date=last_explanted_on,
                        implant_id=last_implant,
                        severity=Alert.Severity.WARNING,
                        message=f"Pump explanted on {last_explanted_on:%d %b %Y} and no replacement is booked: "
                        "book it, or resolve with the plan (e.g. ITB stopped, oral baclofen cover).",
                    )
                )
        elif status in gone and not status_alert_open and (has_implant or has_booking or has_alert):
            on = timezone.localtime(changed_at or created_at, tz).date()
            left = [
                what
                for what, present in (
                    ("a pump not explanted", has_implant),
                    ("booked appointments", has_booking),
                    ("open alerts", has_alert),
                )
                if present
            ]
            if status == Patient.Status.TRANSFERRED:
                ask = "confirm the handover to the receiving clinic (who refills the pump, from when)"
            else:
                ask = "close the record (cancel the bookings, record what happened to the pump)"
            alerts.append(
                _alert(
                    Alert.Kind.PATIENT_STATUS,
                    patient_id=patient_pk,
                    key_date=on,
                    severity=Alert.Severity.WARNING,
                    message=f"Recorded as {status} on {on:%d %b %Y} with {', '.join(left)} here: {ask}, "
                    "then resolve this alert saying what was done.",
                )
            )
    return _PatientFindings(alerts=alerts, risk_flags=risk_flags)


_RESOLUTIONS = {
    Alert.Kind.REFILL_UNBOOKED: "Cleared: a refill was booked or recorded.",
    Alert.Kind.REFILL_URGENT: "Cleared: the pump was refilled.",
    Alert.Kind.BOOKED_AFTER_DUE: "Cleared: the refill was brought forward, recorded or cancelled.",
    Alert.Kind.REPLACEMENT_PLAN: "Cleared: replacement booked or pump explanted.",
    Alert.Kind.NO_FORECAST: "Cleared: the pump has a refill date again (or is explanted).",
    Alert.Kind.RECORD_ATTENTION: "Cleared: the record can be computed again.",
    Alert.Kind.EXPLANT_NO_REPLACEMENT: "Cleared: a new pump was implanted or its replacement booked.",
}


def _alerts_resolve(*, desired: list[Alert], today: dt.date, now: dt.datetime) -> int:
    """Open alerts whose condition no longer holds are resolved (by the system, with the reason).

    `desired` must have been through `_alerts_raise` (which settles each alert's severity).
    """
    wanted = {(a.kind, a.patient_id, a.key_date, a.severity) for a in desired}
    wanted_any_severity = {(a.kind, a.patient_id, a.key_date): a.severity for a in desired}
    open_alerts = Alert.objects.filter(resolved_at__isnull=True)
    resolved = 0
    by_reason: dict[str, list[int]] = {}
    open_kinds = set()
    for pk, kind, patient_pk, key_date, severity in open_alerts.values_list(
        "pk", "kind", "patient_id", "key_date", "severity"
    ):
        open_kinds.add(kind)
        if kind not in _RESOLUTIONS or (kind, patient_pk, key_date, severity) in wanted:
            continue
        if (kind, patient_pk, key_date) in wanted_any_severity:
            reason = f"Now {wanted_any_severity[(kind, patient_pk, key_date)]}: see the newer alert."
        elif kind == Alert.Kind.REFILL_URGENT and any(
            (kind, patient_pk, today, s) in wanted for s in Alert.Severity.values
        ):
            reason = f"Repeated on {today:%d %b %Y}."
        else:
            reason = _RESOLUTIONS[kind]
        by_reason.setdefault(reason, []).append(pk)
    for reason, pks in by_reason.items():
        for start in range(0, len(pks), 500):
            resolved += Alert.objects.filter(pk__in=pks[start : start + 500], resolved_at__isnull=True).update(
                resolved_at=now, resolution=reason
            )
    # The rules below are set-based updates; skip those with no open alert of their kind.
    # Device alerts end with the pump (explant) or the patient's care here.
    gone = ~Q(implant__explanted_on__isnull=True) | Q(implant__entered_in_error=True) | ~Q(patient__status="active")
    if open_kinds & {Alert.Kind.BATTERY_WINDOW, Alert.Kind.ERI, Alert.Kind.NO_SHOW}:
        resolved += (
            open_alerts.filter(
                kind__in=[Alert.Kind.BATTERY_WINDOW, Alert.Kind.ERI, Alert.Kind.NO_SHOW], implant__isnull=False
            )
            .filter(gone)
            .update(resolved_at=now, resolution="Cleared: pump explanted or patient no longer in care.")
        )
    # A visit's event stops mattering only if the visit never happened as recorded.
    if open_kinds & set(VISIT_ALERT_KINDS):
        resolved += open_alerts.filter(kind__in=VISIT_ALERT_KINDS, visit__entered_in_error=True).update(
            resolved_at=now, resolution="Cleared: the visit was marked entered in error."
        )
    # A missed refill is dealt with once a later one is booked or done.
    later = Appointment.objects.valid().filter(
        patient=OuterRef("patient"),
        kind=Appointment.Kind.REFILL,
        status__in=[Appointment.Status.BOOKED, Appointment.Status.COMPLETED],
        starts_at__gt=OuterRef("appointment__starts_at"),
    )
    refilled = RefillVisit.objects.valid().filter(
        implant=OuterRef("implant"), performed_at__gt=OuterRef("appointment__starts_at")
    )
    if Alert.Kind.NO_SHOW in open_kinds:
        resolved += (
            open_alerts.filter(kind=Alert.Kind.NO_SHOW)
            .filter(Exists(later) | Exists(refilled))
            .update(resolved_at=now, resolution="Cleared: the refill was rebooked or done.")
        )
    # A failed reminder stops mattering once its appointment has passed or changed.
    if Alert.Kind.REMINDER_FAILED in open_kinds:
        resolved += (
            open_alerts.filter(kind=Alert.Kind.REMINDER_FAILED)
            .filter(~Q(appointment__status=Appointment.Status.BOOKED) | Q(appointment__starts_at__lte=now))
            .update(resolved_at=now, resolution="Cleared: the appointment has passed or changed.")
        )
    return resolved


def _risk_flags_apply(alerts: list[Alert], *, risk_flags: dict[int, str]) -> None:
    """Withdrawal-risk flags raise every alert one step and ride on it, in words.

    SCI at T6 or above, communication difficulty (the patient may not say they feel unwell),
    previous withdrawal (DOMAIN.md "Why a missed refill is an emergency"). Idempotent: an alert
    that already carries its flags is left as it is.
    """
    for alert in alerts:
        words = risk_flags.get(alert.patient_id)
        if words and not alert.risk_flags:
            alert.risk_flags = words
            alert.severity = _RAISED_SEVERITY[alert.severity]


def _alerts_raise(alerts: list[Alert], *, risk_flags: dict[int, str] | None = None) -> int:
    """Insert the alerts whose (kind, patient, key date, severity) is new, after the risk flags
    have settled their severity: read the keys of those dates first, so that a steady scan
    writes nothing. The unique constraint still settles a race."""
    if not alerts:
        return 0
    _risk_flags_apply(alerts, risk_flags=_risk_flags_get() if risk_flags is None else risk_flags)
    rows = Alert.objects.filter(
        kind__in={a.kind for a in alerts}, key_date__in={a.key_date for a in alerts}
    ).values_list(
        "kind", "patient_id", "key_date", "severity", "pk", "implant_id", "message", "resolved_at", "resolved_by_id"
    )
    existing = {row[:4]: row[4:] for row in rows}
    new, seen, reopened = [], set(), 0
    for alert in alerts:
        key = (alert.kind, alert.patient_id, alert.key_date, alert.severity)
        if key in seen:
            continue
        seen.add(key)
        if key not in existing:
            new.append(alert)
            continue
        pk, implant_id, message, resolved_at, resolved_by_id = existing[key]
        if resolved_at is not None and resolved_by_id is None:
            # The scan had cleared it, and it holds again (a refill entered in error, a booking
            # cancelled, a pump replaced by one with no fill, all the same day): open it again, to
            # be emailed, texted and escalated afresh. One a person resolved stays resolved.
            reopened += Alert.objects.filter(pk=pk, resolved_at__isnull=False, resolved_by__isnull=True).update(
                resolved_at=None,
                resolution="",
                implant_id=alert.implant_id,
                message=alert.message,
                emailed_at=None,
                sms_sent_at=None,
                acknowledged_at=None,
                acknowledged_by=None,
                escalated_at=None,
                escalation_count=0,
                raised_at=timezone.now(),
            )
        elif resolved_at is None and (implant_id, message) != (alert.implant_id, alert.message):
            # Still open, but about another pump now (replaced the same day) or for another reason
            # (emptied, then refilled at a dose that cannot be computed): say what is true now.
            Alert.objects.filter(pk=pk, resolved_at__isnull=True).update(
                implant_id=alert.implant_id, message=alert.message
            )
    Alert.objects.bulk_create(new, ignore_conflicts=True)
    return len(new) + reopened


def alerts_scan(*, now: dt.datetime) -> AlertScanResult:
    """Raise what holds, resolve what cleared, mark no-shows; then email, text and escalate.

    The messages go after the commit: a mail server or SMS provider that fails is retried on the
    next scan and never rolls back (or stops) the scan itself.
    """
    today = timezone.localdate(now, _clinic_tz())
    clinic = ClinicSettings.load()
    problems = _RecordProblems(today=today)
    with transaction.atomic():
        no_show_alerts = _appointments_mark_no_show(clinic=clinic, now=now)
        desired = [
            *_refill_alerts(clinic=clinic, today=today, problems=problems),
            *_device_alerts(clinic=clinic, today=today, problems=problems),
        ]
        patients = _patient_alerts()
        # PATIENT_STATUS is closed only by hand, visit events by a clinician's review: not "desired".
        events = [*_visit_alerts(now=now, problems=problems)]
        for alert in patients.alerts:
            (events if alert.kind == Alert.Kind.PATIENT_STATUS else desired).append(alert)
        desired.extend(problems.alerts())
        # Raised first: the risk flags settle each alert's severity, which the resolution keys on.
        raised = _alerts_raise([*no_show_alerts, *desired, *events], risk_flags=patients.risk_flags)
        resolved = _alerts_resolve(desired=desired, today=today, now=now)
    emailed = alerts_email_new(now=now, clinic=clinic)
    texted = alerts_text_urgent(now=now, clinic=clinic)
    escalated = alerts_escalate(now=now, clinic=clinic)
    return AlertScanResult(
        raised=raised,
        resolved=resolved,
        no_shows=len(no_show_alerts),
        emailed=emailed,
        texted=texted,
        escalated=escalated,
    )


def alerts_email_new(*, now: dt.datetime, clinic: ClinicSettings | None = None) -> int:
    """One digest per audience with the alerts not yet emailed; `emailed_at` keeps it to once.

    The rows are claimed first (emailed_at set to this call's own instant), and released again if
    the mail server fails, so the next scan tries again: an alert is emailed once, or retried.
    """
    clinic = clinic or ClinicSettings.load()
    emailed = 0
    recipients = {Alert.Audience.NURSES: clinic.nursing_email, Alert.Audience.CLINICIANS: clinic.clinicians_email}
    waiting: dict[str, list[int]] = {}
    for pk, audience in (
        Alert.objects.filter(emailed_at__isnull=True, resolved_at__isnull=True)
        .order_by("id")
        .values_list("id", "audience")[:1000]
    ):
        waiting.setdefault(audience, []).append(pk)
    for audience, address in recipients.items():
        candidates = waiting.get(audience, [])[:500]
        if not candidates:
            continue
        marker = now
        Alert.objects.filter(pk__in=candidates, emailed_at__isnull=True).update(emailed_at=marker)
        alerts = list(
            Alert.objects.filter(pk__in=candidates, emailed_at=marker)
            .select_related("patient")
            .annotate(urgent_first=_severity_rank())
            .order_by("urgent_first", "kind", "key_date")
        )
        if not alerts:
            continue
        context = {
            "alerts": alerts,
            "urgent": sum(a.severity == Alert.Severity.URGENT for a in alerts),
            "audience": dict(Alert.Audience.choices)[audience],
            "clinic": clinic,
            "site_url": settings.SITE_URL,
        }
        subject = " ".join(render_to_string("refills/email/alerts_subject.txt", context).split())
        body = render_to_string("refills/email/alerts_body.txt", context)
        try:
            EmailMessage(subject=subject, body=body, to=[address]).send(fail_silently=False)
        except Exception:
            logger.exception("alert digest to %s failed; the next scan retries", audience)
            Alert.objects.filter(pk__in=[a.pk for a in alerts], emailed_at=marker).update(emailed_at=None)
            continue
        emailed += len(alerts)
    return emailed


def _urgent_unacknowledged() -> QuerySet[Alert]:
    return Alert.objects.filter(severity=Alert.Severity.URGENT, resolved_at__isnull=True, acknowledged_at__isnull=True)


def _alert_sms_body(*, alert: Alert, clinic: ClinicSettings) -> str:
    """Short, and no name or clinical detail: an SMS is read on a lock screen (the MRN finds the patient)."""
    context = {
        "alert": alert,
        "what": alert.get_kind_display().removeprefix("URGENT: "),
        "clinic": clinic,
        "site_url": settings.SITE_URL,
    }
    return " ".join(render_to_string("refills/email/alert_sms.txt", context).split())


def alerts_text_urgent(*, now: dt.datetime, clinic: ClinicSettings | None = None) -> int:
    """Each new urgent alert is texted once to the on-call phone; `sms_sent_at` claims it.

    A failed send releases the claim (logged), so the next scan tries again.
    """
    clinic = clinic or ClinicSettings.load()
    phone = clinic.on_call_phone.strip()
    if not phone:
        return 0
    candidates = list(
        _urgent_unacknowledged()
        .filter(sms_sent_at__isnull=True)
        .order_by("raised_at", "id")
        .values_list("pk", flat=True)[:SMS_PER_SCAN]
    )
    if not candidates:
        return 0
    Alert.objects.filter(pk__in=candidates, sms_sent_at__isnull=True).update(sms_sent_at=now)
    texted = 0
    for alert in Alert.objects.filter(pk__in=candidates, sms_sent_at=now).select_related("patient").order_by("id"):
        try:
            send_sms(to=phone, body=_alert_sms_body(alert=alert, clinic=clinic))
        except Exception:
            logger.exception("SMS of urgent alert %s failed; the next scan retries", alert.pk)
            Alert.objects.filter(pk=alert.pk, sms_sent_at=now).update(sms_sent_at=None)
            continue
        texted += 1
    return texted


def alerts_escalate(*, now: dt.datetime, clinic: ClinicSettings | None = None) -> int:
    """An urgent alert nobody acknowledged within `escalate_after_minutes` of being raised (or of
    its last escalation) is escalated again: texted to the on-call phone and emailed to both the
    nurses and the clinicians, until someone acknowledges or resolves it.

    The claim is a conditional UPDATE that re-checks the deadline, so two scans at once escalate
    each alert once; if a message fails, the claim is given back and the next scan retries.
    """
    clinic = clinic or ClinicSettings.load()
    cutoff = now - dt.timedelta(minutes=clinic.escalate_after_minutes)
    due = _urgent_unacknowledged().filter(
        Q(escalated_at__isnull=True, raised_at__lte=cutoff) | Q(escalated_at__lte=cutoff)
    )
    before = {pk: (at, count) for pk, at, count in due.values_list("pk", "escalated_at", "escalation_count")[:500]}
    if not before:
        return 0
    due.filter(pk__in=list(before)).update(escalated_at=now, escalation_count=F("escalation_count") + 1)
    alerts = list(
        Alert.objects.filter(pk__in=list(before), escalated_at=now)
        .select_related("patient")
        .order_by("raised_at", "id")
    )
    failed: set[int] = set()
    phone = clinic.on_call_phone.strip()
    for alert in alerts if phone else []:
        try:
            send_sms(to=phone, body=_alert_sms_body(alert=alert, clinic=clinic))
        except Exception:
            logger.exception("escalation SMS of alert %s failed; the next scan retries", alert.pk)
            failed.add(alert.pk)
    if alerts:
        context = {
            "alerts": alerts,
            "clinic": clinic,
            "site_url": settings.SITE_URL,
            "minutes": clinic.escalate_after_minutes,
        }
        subject = " ".join(render_to_string("refills/email/alerts_escalation_subject.txt", context).split())
        body = render_to_string("refills/email/alerts_escalation_body.txt", context)
        try:
            EmailMessage(subject=subject, body=body, to=[clinic.nursing_email, clinic.clinicians_email]).send(
                fail_silently=False
            )
        except Exception:
            logger.exception("escalation email failed; the next scan retries")
            failed.update(a.pk for a in alerts)
    # A duplicate is better than a loss: a failed escalation is given back whole and repeated.
    for pk in failed:
        at, count = before[pk]
        Alert.objects.filter(pk=pk, escalated_at=now).update(escalated_at=at, escalation_count=count)
    return len(alerts) - len(failed)


def _severity_rank() -> Case:
    return Case(
        When(severity=Alert.Severity.URGENT, then=Value(0)),
        When(severity=Alert.Severity.WARNING, then=Value(1)),
        default=Value(2),
        output_field=IntegerField(),
    )


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


# ---------------------------------------------------------------------------
# Reads for the nurses' pages (the staff web app renders them)
# ---------------------------------------------------------------------------
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


def alert_list_open(*, audience: str | None = None, patient: Patient | None = None) -> QuerySet[Alert]:
    """Open alerts, urgent first, then the most recent."""
    qs = Alert.objects.filter(resolved_at__isnull=True).select_related("patient", "implant", "appointment")
    if audience:
        qs = qs.filter(audience=audience)
    if patient is not None:
        qs = qs.filter(patient=patient)
    return qs.annotate(urgent_first=_severity_rank()).order_by("urgent_first", "-raised_at", "-id")


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
