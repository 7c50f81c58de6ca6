"""The set-wise alert statement (PostgreSQL) raises and resolves exactly what `rules.py` does.

On PostgreSQL `alerts_scan` decides REFILL_UNBOOKED, REFILL_URGENT, BOOKED_AFTER_DUE,
BATTERY_WINDOW and REPLACEMENT_PLAN in one statement (`refills.alerts.setwise`); elsewhere, and for
the rows that statement leaves to Python, `rules.py` decides them one pump at a time. Both run
here on one clinic with every rule's case, over four days of changes (a booking made, moved after
the due-by date, cancelled, the clinic's windows changed, a warning turning urgent, an urgent
alert repeated, one resolved by hand), and must leave the same alert rows and report the same
counts. A second test holds the scan's query count constant for 5 and 50 pumps.
"""

import datetime as dt
import os

import pytest
from django.conf import settings
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from refills.alerts import scan as scan_module
from refills.alerts.scan import alerts_scan
from refills.models import Alert, Appointment, ClinicSettings
from tests import factories
from tests.conftest import require_service
from tests.refills.reminder_helpers import local

ON_POSTGRESQL = settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
postgresql_only = pytest.mark.skipif(
    not ON_POSTGRESQL and os.environ.get("ITB_REQUIRE_SERVICES") != "1",
    reason="PostgreSQL unavailable: the set-wise alert statement is PostgreSQL's (set DATABASE_URL)",
)
FIELDS = (
    "kind",
    "audience",
    "severity",
    "patient_id",
    "implant_id",
    "appointment__implant_id",
    "appointment__starts_at",
    "visit_id",
    "key_date",
    "message",
    "resolved_at",
    "resolved_by_id",
    "resolution",
    "risk_flags",
    "escalation_count",
)
pytestmark = pytest.mark.django_db


def _pump(*, due_by, alarm_on, implanted_on=dt.date(2024, 4, 2), model="SynchroMed II", eri=None, **patient):
    implant = factories.ImplantFactory(
        recorded_by=_recorder(),
        patient=factories.PatientFactory(**patient),
        pump_model=factories.pump_model(model),
        implanted_on=implanted_on,
        eri_reported_on=eri,
    )
    type(implant).objects.filter(pk=implant.pk).update(
        forecast_due_by=due_by,
        forecast_alarm_on=alarm_on,
        forecast_empty_on=alarm_on + dt.timedelta(days=10) if alarm_on else None,
    )
    return implant


def _recorder():
    from itbclinic.accounts.models import User

    return User.objects.order_by("pk").first() or factories.ClinicianFactory()


def _book(implant, nurse, day: dt.date, *, kind="refill"):
    return factories.AppointmentFactory(
        patient=implant.patient,
        implant=implant,
        kind=kind,
        starts_at=dt.datetime.combine(day, dt.time(10), tzinfo=local(2025, 1, 1).tzinfo),
        booked_by=nurse,
    )


def clinic(nurse) -> dict:
    """Every rule's case, on 10 March 2025 (the clinic's windows: 21 days unbooked, 7 urgent)."""
    d = dt.date
    pumps = {
        "far": _pump(due_by=d(2025, 6, 1), alarm_on=d(2025, 6, 6)),
        "soon": _pump(due_by=d(2025, 3, 25), alarm_on=d(2025, 3, 30)),
        "soon_flagged": _pump(due_by=d(2025, 3, 26), alarm_on=d(2025, 3, 31), risk_high_sci=True),
        "overdue": _pump(due_by=d(2025, 3, 8), alarm_on=d(2025, 3, 13)),
        "alarm_today": _pump(due_by=d(2025, 3, 5), alarm_on=d(2025, 3, 10), risk_previous_withdrawal=True),
        "alarm_past": _pump(due_by=d(2025, 2, 28), alarm_on=d(2025, 3, 5)),
        "booked_in_time": _pump(due_by=d(2025, 3, 20), alarm_on=d(2025, 3, 25)),
        "booked_in_stretch": _pump(due_by=d(2025, 3, 12), alarm_on=d(2025, 3, 14)),
        "booked_late": _pump(due_by=d(2025, 3, 18), alarm_on=d(2025, 3, 23)),
        "booked_after_alarm": _pump(due_by=d(2025, 3, 18), alarm_on=d(2025, 3, 21), risk_communication_difficulty=True),
        "far_booked_late": _pump(due_by=d(2025, 6, 1), alarm_on=d(2025, 6, 6)),
        "window": _pump(due_by=d(2025, 6, 1), alarm_on=d(2025, 6, 6), implanted_on=d(2019, 11, 1)),
        "window_29_feb": _pump(due_by=d(2025, 6, 1), alarm_on=d(2025, 6, 6), implanted_on=d(2020, 2, 29)),
        "plan": _pump(due_by=d(2025, 6, 1), alarm_on=d(2025, 6, 6), implanted_on=d(2018, 8, 31)),
        "plan_stops_soon": _pump(due_by=d(2025, 6, 1), alarm_on=d(2025, 6, 6), implanted_on=d(2018, 3, 31)),
        "plan_replacement_booked": _pump(due_by=d(2025, 6, 1), alarm_on=d(2025, 6, 6), implanted_on=d(2018, 5, 1)),
        "eri": _pump(due_by=d(2025, 6, 1), alarm_on=d(2025, 6, 6), implanted_on=d(2020, 1, 1), eri=d(2025, 2, 1)),
        "prometra_old": _pump(
            due_by=d(2025, 3, 24), alarm_on=d(2025, 3, 29), implanted_on=d(2017, 1, 1), model="Prometra II"
        ),
        "no_forecast": _pump(due_by=None, alarm_on=None),
        "no_alarm_date": _pump(due_by=d(2025, 3, 20), alarm_on=None),
        # before 1900: left to rules.py, which raises its alerts all the same
        "ancient": _pump(due_by=d(1899, 12, 20), alarm_on=d(1899, 12, 25)),
    }
    _book(pumps["booked_in_time"], nurse, d(2025, 3, 18))
    _book(pumps["booked_in_stretch"], nurse, d(2025, 3, 13))
    _book(pumps["booked_late"], nurse, d(2025, 3, 21))
    _book(pumps["booked_after_alarm"], nurse, d(2025, 3, 24))
    _book(pumps["far_booked_late"], nurse, d(2025, 6, 20))
    _book(pumps["plan_replacement_booked"], nurse, d(2025, 5, 1), kind="replacement")
    return pumps


def _snapshot() -> set[tuple]:
    return set(Alert.objects.values_list(*FIELDS))


def _days(pumps, nurse) -> list[tuple]:
    """Four days of scans and changes; after each scan, the counts and every alert row."""
    results = []

    def run(now):
        result = alerts_scan(now=now)
        results.append((now, result.raised, result.resolved, _snapshot()))

    run(local(2025, 3, 10, 9))
    run(local(2025, 3, 10, 9, 5))  # steady: nothing new
    # a refill booked for the soon one, the late booking moved in time, the in-time one cancelled
    _book(pumps["soon"], nurse, dt.date(2025, 3, 20))
    Appointment.objects.filter(implant=pumps["booked_late"]).update(
        starts_at=local(2025, 3, 17, 10), updated_at=local(2025, 3, 10, 12)
    )
    Appointment.objects.filter(implant=pumps["booked_in_time"]).update(
        status="cancelled", cancel_reason="Patient unwell"
    )
    # a nurse resolves one alert by hand
    alert = Alert.objects.filter(kind="refill_unbooked", implant=pumps["soon_flagged"]).get()
    Alert.objects.filter(pk=alert.pk).update(resolved_at=local(2025, 3, 10, 13), resolved_by=nurse, resolution="Seen")
    run(local(2025, 3, 11, 9))
    # the cancelled one rebooked, then cancelled again the same day: the cleared alert reopens
    Appointment.objects.filter(implant=pumps["booked_in_time"]).update(status="booked")
    run(local(2025, 3, 11, 10))
    Appointment.objects.filter(implant=pumps["booked_in_time"]).update(
        status="cancelled", cancel_reason="Patient unwell"
    )
    run(local(2025, 3, 11, 11))
    # wider windows in the settings; a pump explanted; the soon one's forecast recomputed
    ClinicSettings.objects.filter(pk=1).update(unbooked_alert_days=30, urgent_alert_days=10)
    type(pumps["window"]).objects.filter(pk=pumps["window"].pk).update(explanted_on=dt.date(2025, 3, 12))
    type(pumps["soon"]).objects.filter(pk=pumps["soon"].pk).update(
        forecast_due_by=dt.date(2025, 3, 19), forecast_alarm_on=dt.date(2025, 3, 22)
    )
    run(local(2025, 3, 13, 9))
    run(local(2025, 3, 26, 9))  # warnings turned urgent, urgent ones repeated
    return results


@postgresql_only
@pytest.mark.postgres
def test_set_wise_statement_raises_and_resolves_what_the_python_rules_do(nurse, monkeypatch):
    if connection.vendor != "postgresql":
        require_service("PostgreSQL", "the set-wise alert statement is PostgreSQL's (set DATABASE_URL)")
    pumps = clinic(nurse)
    ClinicSettings.load()
    # when the same days run through the statement, then through rules.py alone
    with transaction.atomic():
        setwise = _days(pumps, nurse)
        transaction.set_rollback(True)
    monkeypatch.setattr(scan_module, "setwise_available", lambda: False)
    with transaction.atomic():
        python = _days(pumps, nurse)
        transaction.set_rollback(True)
    # then every scan left the same rows and reported the same counts
    for (now, *got), (_, *expected) in zip(setwise, python, strict=True):
        assert got[:2] == expected[:2], now
        assert sorted(got[2] - expected[2]) == sorted(expected[2] - got[2]) == [], now
    # and the clinic did exercise every rule the statement owns, raised and resolved
    kinds = {row[0] for _, _, _, rows in python for row in rows}
    assert kinds >= {
        "refill_unbooked",
        "refill_urgent",
        "booked_after_due",
        "battery_window",
        "replacement_plan",
        "eri",
        "no_forecast",
        "record_attention",
    }
    resolutions = {row[FIELDS.index("resolution")] for _, _, _, rows in python for row in rows}
    assert {
        "Cleared: a refill was booked or recorded.",
        "Cleared: the refill was brought forward, recorded or cancelled.",
        "Now urgent: see the newer alert.",
        "Repeated on 26 Mar 2025.",
        "Cleared: pump explanted or patient no longer in care.",
    } <= resolutions
    assert any(raised for _, raised, _, _ in python[2:]) and python[1][1:3] == (0, 0)


def _pumps(n: int, nurse, *, first: int) -> None:
    d = dt.date
    for i in range(first, first + n):
        implant = _pump(
            due_by=d(2025, 3, 8) + dt.timedelta(days=i % 30),
            alarm_on=d(2025, 3, 13) + dt.timedelta(days=i % 30),
            implanted_on=d(2018, 8, 31) if i % 3 == 0 else d(2024, 4, 2),
            risk_high_sci=i % 4 == 0,
        )
        if i % 2:
            _book(implant, nurse, d(2025, 3, 12) + dt.timedelta(days=i % 20))


def _count(queries) -> tuple[int, int]:
    """(statements other than INSERT, INSERT statements)."""
    inserts = sum(q["sql"].lstrip().upper().startswith("INSERT") for q in queries.captured_queries)
    return len(queries.captured_queries) - inserts, inserts


def test_alert_scan_query_count_does_not_grow_with_the_clinic(nurse):
    # given 5 pumps, the first scan raising their alerts and a steady one
    _pumps(5, nurse, first=0)
    now = local(2025, 3, 10, 9)
    counts = []
    for minutes in (0, 5):
        with CaptureQueriesContext(connection) as queries:
            alerts_scan(now=now + dt.timedelta(minutes=minutes))
        counts.append(_count(queries))
    small = Alert.objects.count()
    # when the clinic grows to 50 pumps
    _pumps(45, nurse, first=5)
    for minutes in (10, 15):
        with CaptureQueriesContext(connection) as queries:
            alerts_scan(now=now + dt.timedelta(minutes=minutes))
        counts.append(_count(queries))
    # then the alerts grew with it, the queries did not (the first scan of each size emails a digest)
    assert Alert.objects.count() > 5 * small
    assert counts[0][0] == counts[2][0] and counts[1] == counts[3], counts
    # SQLite's bulk insert goes in batches of its variable limit; PostgreSQL inserts in one statement
    assert counts[0][1] == counts[2][1] if connection.vendor == "postgresql" else counts[2][1] >= counts[0][1]
