"""Telling the patient that their appointment changed: moved, cancelled, or their request not met.

`appointment_notice_create` runs inside the change's own transaction: it writes one
`AppointmentNotice` row (the record of what the patient must be told) and, after commit, hands its
id to the send task by name (`refills.send_appointment_notice_task`, in tasks.py) so that this
module needs no import of the tasks. The dispatcher re-enqueues a row still pending a few minutes
later (a lost broker message delays, never loses). The text names no patient (who else reads a
phone's lock screen is unknown) and says only what the patient's own portal shows.
"""

import datetime as dt
import logging

from celery import current_app
from django.conf import settings
from django.core.mail import EmailMessage
from django.db import transaction
from django.db.models import F
from django.template.loader import render_to_string
from django.utils import timezone

from patients.models import Patient

from .clinic_time import clinic_tz
from .messaging import send_sms
from .models import Appointment, AppointmentNotice, ClinicSettings
from .reminders.delivery import PERMANENT_SEND_ERRORS, TRANSIENT_SEND_ERRORS, SendOutcome

logger = logging.getLogger(__name__)

SEND_TASK = "refills.send_appointment_notice_task"
# A row still pending this long after it was written lost its broker message: enqueue it again.
REDISPATCH_AFTER = dt.timedelta(minutes=5)


def patient_notice_channel(*, patient: Patient) -> str:
    """The channel the patient is told by ('' when they cannot be: no consent, no contact, not in care)."""
    if patient.status != Patient.Status.ACTIVE or patient.entered_in_error or not patient.reminder_consent:
        return ""
    channel = patient.reminder_channel
    contact = patient.email if channel == Patient.Channel.EMAIL else patient.phone
    return channel if contact else ""


def _enqueue(notice_id: int) -> None:
    def publish() -> None:
        current_app.send_task(SEND_TASK, args=(notice_id,))

    transaction.on_commit(publish, robust=True)


def appointment_notice_create(
    *,
    appointment: Appointment,
    kind: str,
    previous_at: dt.datetime | None = None,
    response: str = "",
) -> AppointmentNotice | None:
    """Write what the patient is told about a change of `appointment`, to be sent after commit.

    Returns None when the patient cannot be reached by email or SMS: the staff page says so, and
    a nurse phones them.
    """
    patient = appointment.patient
    channel = patient_notice_channel(patient=patient)
    if not channel:
        return None
    clinic = ClinicSettings.load()
    tz = clinic_tz()
    context = {
        "notice_kind": kind,
        "kind": appointment.get_kind_display().lower(),
        "is_refill": appointment.kind == Appointment.Kind.REFILL,
        "starts_at": timezone.localtime(appointment.starts_at, tz),
        "previous_at": timezone.localtime(previous_at, tz) if previous_at else None,
        "place": appointment.place,
        "response": response.strip(),
        "clinic": clinic,
        "site_url": settings.SITE_URL,
    }
    if channel == Patient.Channel.SMS:
        subject = ""
        body = render_to_string(f"refills/email/notice_{kind}_sms.txt", context).strip()
    else:
        subject = " ".join(render_to_string("refills/email/notice_subject.txt", context).split())[:200]
        body = render_to_string(f"refills/email/notice_{kind}.txt", context).strip() + "\n"
    notice = AppointmentNotice.objects.create(
        appointment=appointment, patient=patient, kind=kind, channel=channel, subject=subject, body=body
    )
    _enqueue(notice.pk)
    return notice


def appointment_notice_send(*, notice_id: int, now: dt.datetime) -> str:
    """Send one notice at most once: claim it (pending → sending), deliver, mark it sent.

    A transient error puts it back to pending and propagates (the task retries); a refused
    address marks it failed. A redelivered task for a row already claimed or sent does nothing.
    """
    claimed = AppointmentNotice.objects.filter(pk=notice_id, status=AppointmentNotice.Status.PENDING).update(
        status=AppointmentNotice.Status.SENDING, attempts=F("attempts") + 1
    )
    if not claimed:
        return SendOutcome.SKIPPED
    notice = AppointmentNotice.objects.select_related("patient").get(pk=notice_id)
    try:
        if notice.channel == Patient.Channel.SMS:
            send_sms(to=notice.patient.phone.as_e164, body=notice.body)
        else:
            EmailMessage(subject=notice.subject, body=notice.body, to=[notice.patient.email]).send(fail_silently=False)
    except PERMANENT_SEND_ERRORS as exc:
        AppointmentNotice.objects.filter(pk=notice_id).update(
            status=AppointmentNotice.Status.FAILED, last_error=f"{type(exc).__name__}: {exc}"[:2000]
        )
        logger.warning("appointment notice %s refused: %r", notice_id, exc)
        return SendOutcome.FAILED
    except TRANSIENT_SEND_ERRORS as exc:
        AppointmentNotice.objects.filter(pk=notice_id).update(
            status=AppointmentNotice.Status.PENDING, last_error=f"{type(exc).__name__}: {exc}"[:2000]
        )
        raise
    AppointmentNotice.objects.filter(pk=notice_id).update(
        status=AppointmentNotice.Status.SENT, sent_at=now, last_error=""
    )
    return SendOutcome.SENT


def appointment_notices_redispatch(*, now: dt.datetime) -> int:
    """Enqueue again the notices still pending well after they were written (a lost message)."""
    ids = list(
        AppointmentNotice.objects.filter(
            status=AppointmentNotice.Status.PENDING, created_at__lt=now - REDISPATCH_AFTER
        ).values_list("pk", flat=True)[:500]
    )
    for notice_id in ids:
        _enqueue(notice_id)
    return len(ids)
