"""The scan's one-statement materialisation (PostgreSQL) plans exactly the rows `reminder_plan` does.

On PostgreSQL `reminders_scan` inserts the missing reminder rows with one INSERT … SELECT
(`_reminders_insert_select`); elsewhere it plans them in Python and bulk-inserts them
(`_reminders_insert_planned`). Both run here on the same appointments — booked far ahead, inside
the late grace, too late for every offset (catch-up), too close for a catch-up, across the clocks
changing, by SMS and by email, one with an offset already materialised — and must write the same
rows and report the same count.
"""

import datetime as dt
import os

import pytest
from django.conf import settings
from django.db import connection, transaction

from patients.models import Patient
from refills.models import Appointment, ClinicSettings, Reminder
from refills.reminders.planning import (
    _appointments_missing_reminders,
    _reminders_cancel_obsolete,
    _reminders_insert_planned,
    _reminders_insert_select,
    _reminders_materialise,
    _reminders_reopen,
    _reminders_scan_in_one_statement,
)
from tests import factories
from tests.conftest import require_service
from tests.refills.reminder_helpers import local

ON_POSTGRESQL = settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
postgresql_only = pytest.mark.skipif(
    not ON_POSTGRESQL and os.environ.get("ITB_REQUIRE_SERVICES") != "1",
    reason="PostgreSQL unavailable: the INSERT … SELECT materialisation is PostgreSQL's (set DATABASE_URL)",
)
FIELDS = (
    "appointment_id",
    "patient_id",
    "appointment_starts_at",
    "offset_days",
    "channel",
    "send_at",
    "status",
    "reason_code",
    "status_reason",
    "attempts",
    "send_count",
    "recovered_count",
    "last_error",
    "claimed_at",
    "claim_token",
    "sent_at",
)
NOW = local(2025, 3, 20, 9, 30)  # a Thursday; the clocks go forward on Sunday 30 March


def _rows(insert, clinic) -> tuple[int, set[tuple]]:
    """Rows written by one materialisation, rolled back afterwards."""
    offsets = sorted(set(clinic.reminder_offsets_days))
    with transaction.atomic():
        appointments = _appointments_missing_reminders(offsets=offsets, now=NOW, appointment_id=None)
        planned = insert(appointments=appointments, clinic=clinic, offsets=offsets, now=NOW)
        rows = set(Reminder.objects.values_list(*FIELDS))
        transaction.set_rollback(True)
    return planned, rows


@postgresql_only
@pytest.mark.postgres
@pytest.mark.django_db
def test_insert_select_writes_the_rows_the_python_plan_writes(nurse):
    if connection.vendor != "postgresql":
        require_service("PostgreSQL", "the INSERT … SELECT materialisation is PostgreSQL's (set DATABASE_URL)")
    clinic = ClinicSettings.load()
    clinic.reminder_offsets_days = [14, 2, 7]
    clinic.save()
    starts = [
        local(2025, 4, 24, 10),  # every offset ahead
        local(2025, 3, 31, 8),  # after the clocks change; 14 days stale, 7 and 2 ahead
        local(2025, 3, 27, 15),  # 7 days ago passed at 09:00: inside the 6-hour grace
        local(2025, 3, 21, 11),  # every offset past: the closest goes at once as a catch-up
        local(2025, 3, 20, 18),  # too close for a catch-up (under 12 hours): every offset stale
        local(2025, 10, 27, 9),  # after the clocks go back
    ]
    for i, starts_at in enumerate(starts):
        patient = factories.PatientFactory(reminder_channel="sms" if i % 2 else "email")
        factories.AppointmentFactory(
            implant=factories.ImplantFactory(patient=patient), starts_at=starts_at, booked_by=nurse
        )
    # unreachable patients and past or cancelled appointments get nothing
    factories.AppointmentFactory(
        implant=factories.ImplantFactory(patient=factories.PatientFactory(reminder_consent=False)),
        starts_at=local(2025, 4, 24, 10),
        booked_by=nurse,
    )
    factories.AppointmentFactory(starts_at=local(2025, 3, 19, 10), booked_by=nurse)
    factories.AppointmentFactory(
        starts_at=local(2025, 4, 24, 11), booked_by=nurse, status="cancelled", cancel_reason="Patient unwell"
    )
    # one appointment already has its 14-day row: the others are added, that one is left alone
    first = factories.AppointmentFactory(starts_at=local(2025, 5, 8, 10), booked_by=nurse)
    kept = Reminder.objects.create(
        appointment=first,
        patient=first.patient,
        appointment_starts_at=first.starts_at,
        offset_days=14,
        channel=first.patient.reminder_channel,
        send_at=local(2025, 4, 24, 9),
        status="sent",
        sent_at=local(2025, 4, 24, 9),
        send_count=1,
    )

    planned_python, rows_python = _rows(_reminders_insert_planned, clinic)
    planned_sql, rows_sql = _rows(_reminders_insert_select, clinic)

    assert planned_sql == planned_python == 3 * 7
    assert rows_sql == rows_python
    by_start = {(r[2], r[3]): (r[6], r[7]) for r in rows_sql}
    assert by_start[(starts[0], 14)] == ("pending", "")
    assert by_start[(starts[1], 14)] == ("cancelled", "stale")
    assert by_start[(starts[2], 7)] == ("pending", "")  # passed 30 minutes ago: inside the grace
    assert by_start[(starts[3], 2)] == ("pending", "")  # the catch-up
    assert by_start[(starts[3], 7)] == ("cancelled", "stale")
    assert {by_start[(starts[4], offset)] for offset in (14, 7, 2)} == {("cancelled", "stale")}
    stale = next(r for r in rows_sql if r[7] == "stale")
    assert stale[8].startswith("Not sent: booked after its time (") and stale[8].endswith(
        "); a closer reminder covers it."
    )
    assert Reminder.objects.filter(appointment=first).get() == kept
    assert dt.time(9) == next(r[5] for r in rows_sql if r[0] == first.pk).astimezone(local(2025, 1, 1).tzinfo).time()


def _after(scan) -> tuple[tuple[int, int, int], list[tuple]]:
    """What one scan reports and leaves in the table (ids aside: the sequence is not rolled back)."""
    with transaction.atomic():
        result = scan()
        rows = sorted(Reminder.objects.values_list(*FIELDS), key=repr)
        transaction.set_rollback(True)
    return result, rows


@postgresql_only
@pytest.mark.postgres
@pytest.mark.django_db
def test_the_one_statement_scan_cancels_reopens_and_plans_what_the_three_orm_steps_do(nurse):
    """`reminders_scan` on PostgreSQL is one statement; the ORM steps it replaces run on SQLite
    and in the per-appointment hook. Every reason a row is cancelled, a row to reopen, the new
    rows of a moved appointment, a changed channel and a changed offset: the same rows, the same
    reasons, the same counts."""
    if connection.vendor != "postgresql":
        require_service("PostgreSQL", "the one-statement scan is PostgreSQL's (set DATABASE_URL)")
    clinic = ClinicSettings.load()
    clinic.reminder_offsets_days = [14, 2]
    clinic.save()

    def booked(**patient):
        return factories.AppointmentFactory(
            implant=factories.ImplantFactory(patient=factories.PatientFactory(**patient)),
            starts_at=local(2025, 4, 24, 10),
            booked_by=nurse,
        )

    cancelled, moved, consent, channel, no_email, in_error, kept, moved_back = (booked() for _ in range(8))
    sms_patient = booked(reminder_channel="sms")
    _reminders_materialise(clinic=clinic, now=NOW, appointment_id=None)
    assert Reminder.objects.filter(status="pending").count() == 9 * 2

    Appointment.objects.filter(pk=cancelled.pk).update(status="cancelled", cancel_reason="Unwell")
    Appointment.objects.filter(pk=moved.pk).update(starts_at=local(2025, 5, 1, 11))
    Appointment.objects.filter(pk=in_error.pk).update(entered_in_error=True, entered_in_error_reason="Typo")
    Patient.objects.filter(pk=consent.patient_id).update(reminder_consent=False)
    Patient.objects.filter(pk=channel.patient_id).update(reminder_channel="sms")
    Patient.objects.filter(pk=no_email.patient_id).update(email="")
    Patient.objects.filter(pk=sms_patient.patient_id).update(phone="")
    # cancelled as obsolete when it was moved away; it has been moved back since
    Reminder.objects.filter(appointment=moved_back, offset_days=14).update(
        status="cancelled", reason_code="obsolete", status_reason="Appointment moved to another time."
    )
    # and the clinic now reminds 14 and 7 days ahead: the 2-day rows go, 7-day rows come
    clinic.reminder_offsets_days = [14, 7]
    clinic.save()

    def orm_steps():
        return (
            _reminders_cancel_obsolete(clinic=clinic, now=NOW, appointment_id=None),
            _reminders_reopen(clinic=clinic, now=NOW, appointment_id=None),
            _reminders_materialise(clinic=clinic, now=NOW, appointment_id=None),
        )

    def one_statement():
        result = _reminders_scan_in_one_statement(clinic=clinic, now=NOW)
        return result.cancelled, result.reopened, result.planned

    counts_orm, rows_orm = _after(orm_steps)
    counts_sql, rows_sql = _after(one_statement)
    assert counts_sql == counts_orm
    assert rows_sql == rows_orm
    reasons = {r[8] for r in rows_sql if (r[6], r[7]) == ("cancelled", "obsolete")}
    assert reasons == {
        "Appointment cancelled, completed or missed.",
        "Appointment moved to another time.",
        "Patient inactive, consent withdrawn, or channel or contact changed.",
        "Reminder offsets changed in the settings.",
    }
    assert Reminder.objects.filter(appointment=moved_back, offset_days=14).get().status == "cancelled"
    assert [(r[6], r[7]) for r in rows_sql if r[0] == moved_back.pk and r[3] == 14] == [("pending", "")]
    assert counts_sql[1] == 1  # the row moved back
    # the kept appointment: its 14-day row as it was, a 7-day row added, the 2-day row cancelled
    kept_rows = {r[3]: r[6] for r in rows_sql if r[0] == kept.pk}
    assert kept_rows == {14: "pending", 7: "pending", 2: "cancelled"}
    # nothing left to do: a second scan of either kind changes nothing
    with transaction.atomic():
        one_statement()
        assert one_statement() == (0, 0, 0)
        assert orm_steps() == (0, 0, 0)
        transaction.set_rollback(True)
