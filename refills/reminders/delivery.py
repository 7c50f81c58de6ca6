"""Send one claimed reminder (called by the send task; idempotent), or give up on it.

Which errors are worth a retry, what a reminder says, and the nurse alert when it cannot go.
"""

import datetime as dt
import logging
import smtplib
import socket

from django.conf import settings
from django.core.mail import EmailMessage
from django.core.mail.message import make_msgid
from django.core.mail.utils import DNS_NAME
from django.db import InterfaceError, OperationalError, transaction
from django.db.models import (
    F,
)
from django.template.loader import render_to_string
from django.utils import timezone

from core.formatting import format_count, format_day
from patients.models import Patient

from ..alerts.raising import alerts_raise
from ..clinic_time import clinic_tz
from ..messaging import SmsMessage, SmsPermanentError, sms_message_send
from ..models import Alert, Appointment, ClinicSettings, DeliveryAttempt, Reminder

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


def reminder_message_context(*, reminder: Reminder, clinic: ClinicSettings) -> dict[str, object]:
    """What a reminder says: date, time, place, how to reschedule. Nothing about the patient.

    An email or a text can be read by someone else (a shared inbox, a lock screen, a wrong
    number), so it addresses the patient generically: no name, no date of birth, none of the
    patient's own words, no clinical detail (docs/never-silent.md). A home visit says a nurse
    comes to the patient's home (never the clinic's address, never what to bring, and not the
    home address either: that stays in the portal).
    """
    return {
        "starts_at": timezone.localtime(reminder.appointment.starts_at, clinic_tz()),
        "place": reminder.appointment.place,
        "home_visit": reminder.appointment.is_home_visit,
        "clinic": clinic,
        "site_url": settings.SITE_URL,
    }


def _deliver(*, reminder: Reminder, clinic: ClinicSettings) -> str:
    """Hand the message to the provider; returns the provider's id for it ('' if it gave none)."""
    context = reminder_message_context(reminder=reminder, clinic=clinic)
    if reminder.channel == Reminder.Channel.SMS:
        body = render_to_string("refills/email/reminder_sms.txt", context).strip()
        sms = SmsMessage(to=reminder.patient.phone.as_e164, body=body)
        sms_message_send(message=sms)
        return ",".join(sms.provider_ids)
    subject = " ".join(render_to_string("refills/email/reminder_subject.txt", context).split())
    body = render_to_string("refills/email/reminder_body.txt", context)
    message_id = make_msgid(domain=DNS_NAME)
    EmailMessage(subject=subject, body=body, to=[reminder.patient.email], headers={"Message-ID": message_id}).send(
        fail_silently=False
    )
    return message_id


def _attempt_begin(*, reminder: Reminder, now: dt.datetime) -> DeliveryAttempt:
    """The attempt row, committed before the provider is called: a crash after the call leaves it `started`.

    `durable=True` refuses to run inside a caller's transaction, where the row would not be
    committed yet (and a crash would roll it back with the evidence).
    """
    with transaction.atomic(durable=True):
        return DeliveryAttempt.objects.create(reminder=reminder, channel=reminder.channel, started_at=now)


def _attempt_end(*, attempt: DeliveryAttempt, outcome: str, provider_id: str = "", error: str = "") -> None:
    try:
        DeliveryAttempt.objects.filter(pk=attempt.pk, outcome=DeliveryAttempt.Outcome.STARTED).update(
            outcome=outcome, finished_at=timezone.now(), provider_id=provider_id[:255], error=error[:2000]
        )
    except (OperationalError, InterfaceError):
        # The database is what failed: the row stays `started` (the message may have gone), and counts.
        logger.warning("delivery attempt %s: could not record its outcome %s", attempt.pk, outcome)


def reminder_send(*, reminder_id: int, claim_token: str | None, now: dt.datetime) -> str:
    """Send one claimed reminder, at most once per claim; transient errors propagate (retry).

    Acts only while the row is `sending` under this claim: a redelivered message for a row that
    was sent, cancelled, or recovered and claimed again does nothing. Every attempt refreshes
    `claimed_at`, so the stuck-row recovery leaves a row alone while its retries run. Every call
    to the provider is a `DeliveryAttempt` row committed before it: must not run inside a
    transaction (the task calls it in autocommit).
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
    attempt = _attempt_begin(reminder=reminder, now=now)
    try:
        provider_id = _deliver(reminder=reminder, clinic=clinic)
    except PERMANENT_SEND_ERRORS as exc:
        error = f"{type(exc).__name__}: {exc}"
        _attempt_end(attempt=attempt, outcome=DeliveryAttempt.Outcome.REFUSED, error=error)
        reminder_mark_failed(reminder_id=reminder_id, error=error, now=now)
        return SendOutcome.FAILED
    except TRANSIENT_SEND_ERRORS as exc:
        error = f"{type(exc).__name__}: {exc}"
        _attempt_end(attempt=attempt, outcome=DeliveryAttempt.Outcome.ERROR, error=error)
        _reminder_record_error(reminder_id=reminder_id, error=error)
        raise
    except Exception as exc:
        _attempt_end(attempt=attempt, outcome=DeliveryAttempt.Outcome.UNKNOWN, error=f"{type(exc).__name__}: {exc}")
        raise
    _attempt_end(attempt=attempt, outcome=DeliveryAttempt.Outcome.SENT, provider_id=provider_id or "")
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
    starts = timezone.localtime(reminder.appointment.starts_at, clinic_tz())
    # Through `alerts_raise`, so a patient's withdrawal-risk flags raise this one too.
    alerts_raise(
        [
            Alert(
                kind=Alert.Kind.REMINDER_FAILED,
                audience=Alert.Audience.NURSES,
                severity=Alert.Severity.WARNING,
                patient_id=reminder.patient_id,
                implant_id=reminder.appointment.implant_id,
                appointment_id=reminder.appointment_id,
                reminder=reminder,
                key_date=timezone.localdate(reminder.send_at, clinic_tz()),
                message=(
                    f"The {reminder.get_channel_display().lower()} reminder "
                    f"({format_count(reminder.offset_days, 'day')} before) for "
                    f"the appointment on {format_day(starts, 'D j M Y H:i')} could not be sent: contact the patient."
                ),
            )
        ]
    )
    return 1
