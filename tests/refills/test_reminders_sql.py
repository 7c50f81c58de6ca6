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

from refills.models import ClinicSettings, Reminder
from refills.reminders.planning import (
    _appointments_missing_reminders,
    _reminders_insert_planned,
    _reminders_insert_select,
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
