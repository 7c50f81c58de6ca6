"""
Field-safety notices (issue 14, item 2): flag every pump a recall search found, tell the patients,
and keep the flag on their page, the worklist and its alerts until a clinician records, for each
patient, what was done.

- `field_safety_flag_recall` writes the notice (one per manufacturer's reference) and one
  `FieldSafetyFlag` per pump found. Flagging again — a double submit, the same search run later,
  a wider search under the same reference — adds only the pumps not yet flagged; the unique
  constraint on (notice, implant) is the guarantee.
- `field_safety_messages_request` marks each open, not-yet-contacted flag `pending` on the
  patient's channel and, after commit, hands its id to the send task by name (as
  refills/notices.py does for appointment notices). `field_safety_message_send` claims the row,
  sends, and records the outcome: sent (with `contacted_at`), or failed with the provider's error.
  The dispatcher re-enqueues a row left pending (a lost broker message delays, never loses).
- The message names neither the patient nor their pump: it asks them to ring the clinic.
"""

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from celery import current_app
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import EmailMessage
from django.db import IntegrityError, transaction
from django.db.models import Count, F, Q, QuerySet
from django.shortcuts import get_object_or_404
from django.template.loader import render_to_string
from django.utils import timezone
from simple_history.utils import bulk_create_with_history, bulk_update_with_history

from patients.models import Patient
from patients.selectors import patient_list_visible_to

from .clinic_time import clinic_tz
from .messaging import send_sms
from .models import ClinicSettings, FieldSafetyFlag, FieldSafetyNotice
from .notices import REDISPATCH_AFTER, patient_notice_channel
from .recall import RecallCriteria, recall_criteria_describe, recall_search
from .reminders.delivery import PERMANENT_SEND_ERRORS, TRANSIENT_SEND_ERRORS, SendOutcome

logger = logging.getLogger(__name__)

SEND_TASK = "refills.send_field_safety_message_task"
# The notice's page lists this many flagged patients; the CSV has them all.
PAGE_CAP = 200
# A flag not yet contacted, or whose message failed, is sent again by "send the message".
TO_CONTACT = (FieldSafetyFlag.Contact.NOT_CONTACTED, FieldSafetyFlag.Contact.FAILED, FieldSafetyFlag.Contact.NO_CHANNEL)


@dataclass(frozen=True)
class FlagResult:
    notice: FieldSafetyNotice
    flagged: int  # pumps flagged by this request
    already: int  # pumps the search found that the notice had already flagged
    patient_ids: tuple[int, ...] = ()  # the patients flagged by this request


@dataclass(frozen=True)
class SendRequest:
    queued: int  # messages to be sent after commit
    no_channel: int  # patients who cannot be messaged (no consent, no address): a nurse phones them
    patient_ids: tuple[int, ...] = ()  # every patient whose contact changed


@dataclass(frozen=True)
class NoticeCounts:
    flagged: int
    open: int
    contacted: int
    failed: int
    not_contacted: int


# ---------------------------------------------------------------------------
# Reads
# ---------------------------------------------------------------------------


def _valid_flags() -> QuerySet[FieldSafetyFlag]:
    return FieldSafetyFlag.objects.valid().filter(patient__entered_in_error=False)


def field_safety_notice_list() -> QuerySet[FieldSafetyNotice]:
    """Every notice, newest first, with its counts (one query)."""
    valid = Q(flags__entered_in_error=False, flags__patient__entered_in_error=False)
    return (
        FieldSafetyNotice.objects.valid()
        .select_related("issued_by")
        .annotate(
            flagged_count=Count("flags", filter=valid),
            open_count=Count("flags", filter=valid & Q(flags__status=FieldSafetyFlag.Status.OPEN)),
            contacted_count=Count("flags", filter=valid & Q(flags__contact=FieldSafetyFlag.Contact.SENT)),
        )
        .order_by("-issued_at", "-id")
    )


def field_safety_notices_open(*, cap: int) -> list[FieldSafetyNotice]:
    """The notices with a flag still waiting for its action, for the worklist's alerts (one query)."""
    return list(field_safety_notice_list().filter(open_count__gt=0)[:cap])  # type: ignore[misc]  # an annotation


def field_safety_notice_get(*, notice_id: int) -> FieldSafetyNotice:
    return get_object_or_404(FieldSafetyNotice.objects.valid().select_related("issued_by"), pk=notice_id)


def field_safety_notice_counts(*, notice: FieldSafetyNotice, visible: QuerySet[Patient]) -> NoticeCounts:
    """The notice page's figures, in one aggregate query."""
    counts = (
        _valid_flags()
        .filter(notice=notice, patient__in=visible)
        .aggregate(
            flagged=Count("pk"),
            open=Count("pk", filter=Q(status=FieldSafetyFlag.Status.OPEN)),
            contacted=Count("pk", filter=Q(contact=FieldSafetyFlag.Contact.SENT)),
            failed=Count("pk", filter=Q(contact=FieldSafetyFlag.Contact.FAILED)),
            not_contacted=Count("pk", filter=Q(contact__in=TO_CONTACT)),
        )
    )
    return NoticeCounts(**counts)


def field_safety_flag_list(*, notice: FieldSafetyNotice, visible: QuerySet[Patient]) -> QuerySet[FieldSafetyFlag]:
    """The notice's flagged pumps with their patients, open ones first, then by name."""
    return (
        _valid_flags()
        .filter(notice=notice, patient__in=visible)
        .select_related("patient", "implant__pump_model", "contacted_by", "action_recorded_by")
        .order_by("-status", "patient__family_name", "patient__given_name", "id")
    )


def field_safety_flag_list_for_patient(*, patient: Patient) -> list[FieldSafetyFlag]:
    """The patient's flags, open ones first (the patient page shows them; one query)."""
    return list(
        _valid_flags()
        .filter(patient=patient, notice__entered_in_error=False)
        .select_related("notice", "implant__pump_model", "action_recorded_by")
        .order_by("-status", "-notice__issued_at", "id")
    )


def field_safety_flag_get_for(*, user, flag_id: int) -> FieldSafetyFlag:
    """One flag of a patient `user` may see (404 otherwise)."""
    return get_object_or_404(
        _valid_flags()
        .filter(patient__in=patient_list_visible_to(user=user), notice__entered_in_error=False)
        .select_related("notice", "patient", "implant__pump_model", "action_recorded_by", "contacted_by"),
        pk=flag_id,
    )


# ---------------------------------------------------------------------------
# Flagging and recording the action
# ---------------------------------------------------------------------------


def _notice_for_reference(*, reference: str, title: str, manufacturer_text: str, by, now: dt.datetime):
    """The valid notice of `reference` (locked), or a new one."""
    existing = FieldSafetyNotice.objects.valid().select_for_update().filter(reference__iexact=reference).first()
    if existing is not None:
        return existing, False
    try:
        with transaction.atomic():
            notice = FieldSafetyNotice.objects.create(
                title=title,
                reference=reference,
                manufacturer_text=manufacturer_text,
                criteria="",
                issued_by=by,
                issued_at=now,
            )
    except IntegrityError as exc:  # another clinician created it a moment ago
        raise ValidationError(
            {"reference": "A notice with this reference was just created: send the form again to add to it."}
        ) from exc
    return notice, True


@transaction.atomic
def field_safety_flag_recall(
    *,
    criteria: RecallCriteria,
    title: str,
    reference: str,
    manufacturer_text: str,
    by,
    visible: QuerySet[Patient],
    now: dt.datetime,
) -> FlagResult:
    """Flag every pump `criteria` finds with the notice of `reference` (created if new).

    Idempotent: pumps the notice already flags are left as they are (their action, contact and
    history kept); a second search under the same reference adds its own pumps and its criteria.
    """
    title, reference, manufacturer_text = title.strip(), reference.strip(), manufacturer_text.strip()
    errors = {}
    if not title:
        errors["title"] = "Give the notice's title."
    if not reference:
        errors["reference"] = "Give the manufacturer's reference of the notice."
    if not manufacturer_text:
        errors["manufacturer_text"] = "Say what the manufacturer advises and what the clinic must do."
    if errors:
        raise ValidationError(errors)
    found = list(recall_search(criteria=criteria, visible=visible, now=now).values_list("pk", "patient_id"))
    if not found:
        raise ValidationError("No pump matches these criteria: there is nobody to flag.")
    notice, _created = _notice_for_reference(
        reference=reference, title=title, manufacturer_text=manufacturer_text, by=by, now=now
    )
    already = set(FieldSafetyFlag.objects.filter(notice=notice).values_list("implant_id", flat=True))
    new = [
        FieldSafetyFlag(notice=notice, implant_id=implant_id, patient_id=patient_id, created_at=now, updated_at=now)
        for implant_id, patient_id in found
        if implant_id not in already
    ]
    if new:
        bulk_create_with_history(new, FieldSafetyFlag, default_user=by, default_date=now)
        pumps = f"{len(new)} pump{'s' if len(new) != 1 else ''}"
        line = f"{timezone.localtime(now, clinic_tz()):%Y-%m-%d %H:%M}: {recall_criteria_describe(criteria)} ({pumps})"
        notice.criteria = f"{notice.criteria}\n{line}".strip()
        notice.save(update_fields=["criteria", "updated_at"])
    return FlagResult(
        notice=notice,
        flagged=len(new),
        already=len(found) - len(new),
        patient_ids=tuple(flag.patient_id for flag in new),
    )


@transaction.atomic
def field_safety_action_record(*, flag: FieldSafetyFlag, action_taken: str, by, now: dt.datetime) -> FieldSafetyFlag:
    """A clinician records what was done for this patient: the flag closes (and leaves the worklist)."""
    text = action_taken.strip()
    if not text:
        raise ValidationError({"action_taken": "Say what was done for this patient."})
    locked = FieldSafetyFlag.objects.select_for_update().get(pk=flag.pk)
    if locked.status == FieldSafetyFlag.Status.CLOSED:
        raise ValidationError({"action_taken": "The action for this patient has already been recorded."})
    locked.action_taken = text
    locked.action_recorded_by = by
    locked.action_recorded_at = now
    locked.status = FieldSafetyFlag.Status.CLOSED
    locked.save(update_fields=["action_taken", "action_recorded_by", "action_recorded_at", "status", "updated_at"])
    return locked


# ---------------------------------------------------------------------------
# Telling the patients
# ---------------------------------------------------------------------------


def _enqueue(flag_id: int) -> None:
    def publish() -> None:
        current_app.send_task(SEND_TASK, args=(flag_id,))

    transaction.on_commit(publish, robust=True)


@transaction.atomic
def field_safety_messages_request(*, notice: FieldSafetyNotice, by, now: dt.datetime) -> SendRequest:
    """Queue the notice's message for every open flag whose patient has not been told yet.

    A patient with no channel (no consent, no address, not in care) is marked so: the page lists
    them for a phone call. A message already pending, being sent or sent is not queued again.
    """
    flags = list(
        _valid_flags()
        .select_for_update(of=("self",))
        .filter(notice=notice, status=FieldSafetyFlag.Status.OPEN, contact__in=TO_CONTACT)
        .select_related("patient")
        .order_by("id")
    )
    queued = []
    for flag in flags:
        channel = patient_notice_channel(patient=flag.patient)
        flag.contact = FieldSafetyFlag.Contact.PENDING if channel else FieldSafetyFlag.Contact.NO_CHANNEL
        flag.channel = channel
        flag.contacted_by = by
        flag.contact_error = ""
        flag.updated_at = now
        if channel:
            queued.append(flag.pk)
    if flags:
        bulk_update_with_history(
            flags,
            FieldSafetyFlag,
            ["contact", "channel", "contacted_by", "contact_error", "updated_at"],
            default_user=by,
            default_date=now,
        )
    for flag_id in queued:
        _enqueue(flag_id)
    return SendRequest(
        queued=len(queued), no_channel=len(flags) - len(queued), patient_ids=tuple(flag.patient_id for flag in flags)
    )


def _message(flag: FieldSafetyFlag) -> tuple[str, str]:
    """(subject, body) on the flag's channel: the notice's reference and the clinic's number, no patient."""
    context = {
        "clinic": ClinicSettings.load(),
        "reference": flag.notice.reference,
        "site_url": settings.SITE_URL,
    }
    if flag.channel == Patient.Channel.SMS:
        return "", render_to_string("refills/email/field_safety_sms.txt", context).strip()
    subject = " ".join(render_to_string("refills/email/field_safety_subject.txt", context).split())[:200]
    return subject, render_to_string("refills/email/field_safety_body.txt", context).strip() + "\n"


def field_safety_message_send(*, flag_id: int, now: dt.datetime) -> str:
    """Send one flag's message at most once: claim it (pending → sending), deliver, record the outcome.

    A transient error puts it back to pending and propagates (the task retries); a refused address
    records the failure on the flag (the page shows it: phone the patient). A redelivered task for a
    row already claimed or sent does nothing.
    """
    claimed = FieldSafetyFlag.objects.filter(pk=flag_id, contact=FieldSafetyFlag.Contact.PENDING).update(
        contact=FieldSafetyFlag.Contact.SENDING, contact_attempts=F("contact_attempts") + 1
    )
    if not claimed:
        return SendOutcome.SKIPPED
    flag = FieldSafetyFlag.objects.select_related("patient", "notice").get(pk=flag_id)
    subject, body = _message(flag)
    try:
        if flag.channel == Patient.Channel.SMS:
            send_sms(to=flag.patient.phone.as_e164, body=body)
        else:
            EmailMessage(subject=subject, body=body, to=[flag.patient.email]).send(fail_silently=False)
    except PERMANENT_SEND_ERRORS as exc:
        flag.contact = FieldSafetyFlag.Contact.FAILED
        flag.contact_error = f"{type(exc).__name__}: {exc}"[:2000]
        flag.save(update_fields=["contact", "contact_error", "updated_at"])
        logger.warning("field-safety message %s refused: %r", flag_id, exc)
        return SendOutcome.FAILED
    except TRANSIENT_SEND_ERRORS as exc:
        FieldSafetyFlag.objects.filter(pk=flag_id).update(
            contact=FieldSafetyFlag.Contact.PENDING, contact_error=f"{type(exc).__name__}: {exc}"[:2000]
        )
        raise
    flag.contact = FieldSafetyFlag.Contact.SENT
    flag.contacted_at = now
    flag.contact_error = ""
    flag.message_subject = subject
    flag.message_body = body
    flag.save(
        update_fields=["contact", "contacted_at", "contact_error", "message_subject", "message_body", "updated_at"]
    )
    return SendOutcome.SENT


def field_safety_message_mark_failed(*, flag_id: int, error: str) -> int:
    """The task gave up after its retries: the flag shows the failure (a nurse phones the patient)."""
    flag = FieldSafetyFlag.objects.filter(
        pk=flag_id, contact__in=(FieldSafetyFlag.Contact.PENDING, FieldSafetyFlag.Contact.SENDING)
    ).first()
    if flag is None:
        return 0
    flag.contact = FieldSafetyFlag.Contact.FAILED
    flag.contact_error = error[:2000]
    flag.save(update_fields=["contact", "contact_error", "updated_at"])
    return 1


def field_safety_messages_redispatch(*, now: dt.datetime) -> int:
    """Enqueue again the messages still pending well after they were asked for (a lost broker message)."""
    ids = list(
        FieldSafetyFlag.objects.filter(
            contact=FieldSafetyFlag.Contact.PENDING, updated_at__lt=now - REDISPATCH_AFTER
        ).values_list("pk", flat=True)[:500]
    )
    for flag_id in ids:
        _enqueue(flag_id)
    return len(ids)


def field_safety_csv_rows(*, flags: list[FieldSafetyFlag], tz: Any) -> list[tuple]:
    """The flagged pumps (`field_safety_flag_list`) as CSV rows: the export has them all, the page PAGE_CAP."""

    def when(value: dt.datetime | None) -> str:
        return f"{value.astimezone(tz):%Y-%m-%d %H:%M}" if value else ""

    return [
        (
            flag.patient.mrn,
            flag.patient.full_name,
            str(flag.implant.pump_model),
            flag.implant.serial_number,
            flag.get_contact_display(),
            flag.channel,
            when(flag.contacted_at),
            flag.contact_error,
            flag.get_status_display(),
            flag.action_taken,
            flag.action_recorded_by.get_full_name() or flag.action_recorded_by.get_username()
            if flag.action_recorded_by
            else "",
            when(flag.action_recorded_at),
        )
        for flag in flags
    ]


CSV_HEADER = (
    "mrn", "patient", "pump_model", "serial", "contact", "channel", "contacted_at", "contact_error",
    "status", "action_taken", "action_recorded_by", "action_recorded_at",
)  # fmt: skip
