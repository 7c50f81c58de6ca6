"""Which reminder rows should exist: the level-triggered scan and the per-appointment hook.

Cancel the obsolete, reopen what was undone, materialise the missing. `appointment_book`,
`appointment_move` and `appointment_cancel` call `reminders_materialise_for_appointment` in their
own transaction; `reminders_scan` finds anything else a few minutes later.
"""

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import (
    Case,
    Exists,
    F,
    OuterRef,
    Q,
    QuerySet,
    Value,
    When,
)
from django.db.models.expressions import Combinable
from django.utils import timezone

from core.db import jit_off_in_transaction
from patients.models import Patient

from ..models import Appointment, ClinicSettings, Reminder
from .timing import reminder_plan


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
    appointments: QuerySet[Appointment] = (
        Appointment.objects.valid()
        .filter(status=Appointment.Status.BOOKED, starts_at__gt=now)
        .filter(_patient_reachable_q("patient__"))
    )
    return appointments


# Why a pending row was cancelled as obsolete: the first of the four rules that holds.
_OBSOLETE_REASONS = {
    "not_booked": "Appointment cancelled, completed or missed.",
    "moved": "Appointment moved to another time.",
    "unreachable": "Patient inactive, consent withdrawn, or channel or contact changed.",
    "offsets": "Reminder offsets changed in the settings.",
}


def _reminders_cancel_obsolete(*, clinic: ClinicSettings, now: dt.datetime, appointment_id: int | None) -> int:
    """Pending rows that no longer announce anything true are cancelled: one set-based update.

    The first rule that holds names the reason: the appointment cancelled (completed, missed), moved,
    the patient unreachable on the row's channel, the offset gone from the settings.
    """
    pending = Reminder.objects.filter(status=Reminder.Status.PENDING)
    if appointment_id is not None:
        pending = pending.filter(appointment_id=appointment_id)
    offsets = clinic.reminder_offsets_days or []
    not_booked = ~Q(appointment__status=Appointment.Status.BOOKED) | Q(appointment__entered_in_error=True)
    moved = ~Q(appointment_starts_at=F("appointment__starts_at"))
    unreachable = ~(_patient_reachable_q("patient__") & Q(channel=F("patient__reminder_channel")))
    offset_gone = ~Q(offset_days__in=offsets) if offsets else Q(pk__isnull=False)
    # The reason, from the row's own columns (an update may not read joined ones).
    appointment = Appointment.objects.filter(pk=OuterRef("appointment_id"))
    reason = Case(
        When(
            Exists(appointment.filter(~Q(status=Appointment.Status.BOOKED) | Q(entered_in_error=True))),
            then=Value(_OBSOLETE_REASONS["not_booked"]),
        ),
        When(
            Exists(appointment.exclude(starts_at=OuterRef("appointment_starts_at"))),
            then=Value(_OBSOLETE_REASONS["moved"]),
        ),
        When(
            ~Exists(
                Patient.objects.filter(pk=OuterRef("patient_id"), reminder_channel=OuterRef("channel")).filter(
                    _patient_reachable_q("")
                )
            ),
            then=Value(_OBSOLETE_REASONS["unreachable"]),
        ),
        default=Value(_OBSOLETE_REASONS["offsets"]),
    )
    return pending.filter(not_booked | moved | unreachable | offset_gone).update(
        status=Reminder.Status.CANCELLED,
        reason_code=Reminder.ReasonCode.OBSOLETE,
        status_reason=reason,
        claim_token=None,
        updated_at=now,
    )


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


# (appointment id, patient id, starts at, the patient's channel) of the appointments to remind
AppointmentRows = QuerySet[Appointment, tuple[int, int, dt.datetime, str]]


def _appointments_missing_reminders(
    *, offsets: list[int], now: dt.datetime, appointment_id: int | None
) -> AppointmentRows:
    """Booked future appointments of reachable patients that lack a row for one of `offsets`."""
    missing: Combinable | Q | None = None
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
    return appointments.order_by().values_list("pk", "patient_id", "starts_at", "patient__reminder_channel")


def _reminders_materialise(*, clinic: ClinicSettings, now: dt.datetime, appointment_id: int | None) -> int:
    """Create the missing rows of booked future appointments (one INSERT … SELECT on PostgreSQL)."""
    offsets = sorted(set(clinic.reminder_offsets_days or []))
    if not offsets:
        return 0
    appointments = _appointments_missing_reminders(offsets=offsets, now=now, appointment_id=appointment_id)
    if connection.vendor == "postgresql":
        return _reminders_insert_select(appointments=appointments, clinic=clinic, offsets=offsets, now=now)
    return _reminders_insert_planned(appointments=appointments, clinic=clinic, offsets=offsets, now=now)


def _reminders_insert_planned(
    *, appointments: AppointmentRows, clinic: ClinicSettings, offsets: list[int], now: dt.datetime
) -> int:
    """The rows planned in Python (`reminder_plan`), inserted with bulk_create: one select, one insert."""
    min_lead = dt.timedelta(hours=settings.REMINDER_MIN_LEAD_HOURS)
    late_grace = dt.timedelta(hours=settings.REMINDER_LATE_GRACE_HOURS)
    rows = []
    for appointment_pk, patient_pk, starts_at, channel in appointments:
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


# `reminder_plan` written in SQL: the same send times (clinic-local hour, `offset` days before the
# appointment's clinic-local date), the same pending / catch-up / stale decision and wording.
# tests/refills/test_reminders_sql.py holds it row for row against `_reminders_insert_planned`.
_PLAN_CTES = """
appt (id, patient_id, starts_at, channel) AS ({appointments}),
plan AS (
    SELECT appt.*, o.offset_days,
           ((((appt.starts_at AT TIME ZONE %s)::date - o.offset_days) + make_time(%s, 0, 0)) AT TIME ZONE %s)
               AS send_at
    FROM appt CROSS JOIN unnest(%s::integer[]) AS o (offset_days)
),
timed AS (SELECT plan.*, plan.send_at > %s::timestamptz - %s::interval AS on_time FROM plan),
decided AS (
    SELECT timed.*,
           on_time OR (
               NOT bool_or(on_time) OVER per_appointment
               AND offset_days = min(offset_days) FILTER (WHERE NOT on_time) OVER per_appointment
               AND starts_at - %s::timestamptz >= %s::interval
           ) AS pending
    FROM timed
    WINDOW per_appointment AS (PARTITION BY id)
),
inserted AS (
    INSERT INTO refills_reminder (
        appointment_id, patient_id, appointment_starts_at, offset_days, channel, send_at, status,
        reason_code, status_reason, attempts, send_count, recovered_count, last_error, created_at, updated_at
    )
    SELECT id, patient_id, starts_at, offset_days, channel, send_at,
           CASE WHEN pending THEN %s ELSE %s END,
           CASE WHEN pending THEN '' ELSE %s END,
           CASE WHEN pending THEN '' ELSE
               'Not sent: booked after its time (' || to_char(send_at AT TIME ZONE %s, 'FMDD Mon HH24:MI')
               || '); a closer reminder covers it.'
           END,
           0, 0, 0, '', %s, %s
    FROM decided
    ON CONFLICT DO NOTHING
)"""
_PLAN_INSERT_SQL = "WITH" + _PLAN_CTES + "\nSELECT count(*) FROM decided"

# The whole scan on PostgreSQL, one statement: `_reminders_cancel_obsolete` and `_reminders_reopen`
# written in SQL (an UPDATE … FROM may read the appointment's and the patient's columns, so the
# reason is worked out in the same pass), then the materialisation above. The three parts touch
# disjoint rows of one snapshot — pending rows, rows cancelled as obsolete, rows that do not exist
# — so one statement writes what the three ORM statements write one after another;
# tests/refills/test_reminders_sql.py holds the two paths row for row.
_REACHABLE_SQL = """(p.status = %s AND NOT p.entered_in_error AND p.reminder_consent
        AND ((p.reminder_channel = %s AND p.email <> '') OR (p.reminder_channel = %s AND p.phone <> '')))"""
_SCAN_SQL = """
WITH obsolete AS (
    UPDATE refills_reminder r
    SET status = %s, reason_code = %s, claim_token = NULL, updated_at = %s,
        status_reason = CASE
            WHEN a.status <> %s OR a.entered_in_error THEN %s
            WHEN r.appointment_starts_at <> a.starts_at THEN %s
            WHEN NOT (r.channel = p.reminder_channel AND {reachable}) THEN %s
            ELSE %s END
    FROM refills_appointment a, patients_patient p
    WHERE a.id = r.appointment_id AND p.id = r.patient_id AND r.status = %s
      AND (a.status <> %s OR a.entered_in_error OR r.appointment_starts_at <> a.starts_at
           OR NOT (r.channel = p.reminder_channel AND {reachable})
           OR NOT r.offset_days = ANY(%s::integer[]))
    RETURNING 1
),
reopened AS (
    UPDATE refills_reminder r
    SET status = %s, reason_code = '', status_reason = '', updated_at = %s
    FROM refills_appointment a, patients_patient p
    WHERE a.id = r.appointment_id AND p.id = r.patient_id
      AND r.status = %s AND r.reason_code = %s AND r.send_at > %s
      AND a.status = %s AND NOT a.entered_in_error AND r.appointment_starts_at = a.starts_at
      AND r.channel = p.reminder_channel AND r.offset_days = ANY(%s::integer[]) AND {reachable}
    RETURNING 1
),{plan_ctes}
SELECT (SELECT count(*) FROM obsolete), (SELECT count(*) FROM reopened), (SELECT count(*) FROM decided)
"""


def _reminders_insert_select(
    *, appointments: AppointmentRows, clinic: ClinicSettings, offsets: list[int], now: dt.datetime
) -> int:
    """The rows planned and inserted by the database in one statement (PostgreSQL only).

    Same rows as `_reminders_insert_planned`; returns, like it, the number of rows planned
    (those that existed already are left as they are).
    """
    select_sql, select_params = appointments.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(
            _PLAN_INSERT_SQL.format(appointments=select_sql),
            [*select_params, *_plan_params(clinic=clinic, offsets=offsets, now=now)],
        )
        (planned,) = cursor.fetchone()
    return int(planned)


def _plan_params(*, clinic: ClinicSettings, offsets: list[int], now: dt.datetime) -> list[Any]:
    """The parameters of `_PLAN_CTES` after the appointments' own."""
    tz = settings.TIME_ZONE
    created = timezone.now()
    return [
        tz,
        clinic.reminder_hour,
        tz,
        offsets,
        now,
        dt.timedelta(hours=settings.REMINDER_LATE_GRACE_HOURS),
        now,
        dt.timedelta(hours=settings.REMINDER_MIN_LEAD_HOURS),
        Reminder.Status.PENDING,
        Reminder.Status.CANCELLED,
        Reminder.ReasonCode.STALE,
        tz,
        created,
        created,
    ]


def _reachable_params() -> list[str]:
    return [Patient.Status.ACTIVE, Reminder.Channel.EMAIL, Reminder.Channel.SMS]


def _reminders_scan_in_one_statement(*, clinic: ClinicSettings, now: dt.datetime) -> "ReminderScanResult":
    """Cancel, reopen and materialise in one statement (PostgreSQL): the scan that finds nothing
    to do costs one round trip, not three."""
    offsets = sorted(set(clinic.reminder_offsets_days or []))
    if offsets:
        appointments = _appointments_missing_reminders(offsets=offsets, now=now, appointment_id=None)
        select_sql, select_params = appointments.query.sql_with_params()
    else:  # no offset set: every pending row is obsolete, nothing to materialise
        select_sql, select_params = "SELECT NULL::bigint, NULL::bigint, NULL::timestamptz, NULL::text WHERE false", ()
    booked, pending, cancelled, obsolete = (
        Appointment.Status.BOOKED,
        Reminder.Status.PENDING,
        Reminder.Status.CANCELLED,
        Reminder.ReasonCode.OBSOLETE,
    )
    params = [
        # obsolete
        cancelled,
        obsolete,
        now,
        booked,
        _OBSOLETE_REASONS["not_booked"],
        _OBSOLETE_REASONS["moved"],
        *_reachable_params(),
        _OBSOLETE_REASONS["unreachable"],
        _OBSOLETE_REASONS["offsets"],
        pending,
        booked,
        *_reachable_params(),
        offsets,
        # reopened
        pending,
        now,
        cancelled,
        obsolete,
        now,
        booked,
        offsets,
        *_reachable_params(),
        # materialised
        *select_params,
        *_plan_params(clinic=clinic, offsets=offsets, now=now),
    ]
    with connection.cursor() as cursor:
        sql = _SCAN_SQL.format(reachable=_REACHABLE_SQL, plan_ctes=_PLAN_CTES.format(appointments=select_sql))
        cursor.execute(sql, params)
        cancelled_n, reopened_n, planned_n = cursor.fetchone()
    return ReminderScanResult(cancelled=int(cancelled_n), reopened=int(reopened_n), planned=int(planned_n))


@dataclass(frozen=True, slots=True)
class ReminderScanResult:
    cancelled: int
    reopened: int
    planned: int


@transaction.atomic
def reminders_scan(*, now: dt.datetime) -> ReminderScanResult:
    """Make the reminder rows agree with the schedule: cancel obsolete, reopen, materialise."""
    jit_off_in_transaction()
    clinic = ClinicSettings.load()
    if connection.vendor == "postgresql":
        return _reminders_scan_in_one_statement(clinic=clinic, now=now)
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
        return _OBSOLETE_REASONS["not_booked"]
    if reminder.appointment_starts_at != appointment.starts_at:
        return _OBSOLETE_REASONS["moved"]
    if not _patient_reachable(appointment.patient, reminder.channel):
        return _OBSOLETE_REASONS["unreachable"]
    if reminder.offset_days not in offsets:
        return _OBSOLETE_REASONS["offsets"]
    return ""


@transaction.atomic
def reminders_materialise_for_appointment(
    *, appointment: Appointment, now: dt.datetime | None = None, clinic: ClinicSettings | None = None
) -> int:
    """The scan, for one appointment: call it inside appointment_book / _move / _cancel.

    The rows then exist in the booking's own transaction; the periodic scan would find them
    anyway a few minutes later (level-triggered), so forgetting this call delays, never loses.
    Same rules as the scan, decided in Python for this one appointment (a handful of queries).
    `clinic`: the settings the calling service has already read in its transaction (one read a call).
    """
    now = now or timezone.now()
    clinic = clinic or ClinicSettings.load()
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
