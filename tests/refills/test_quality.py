"""The quality dashboard (issue 14, item 1): figures asserted exactly on a clinic with known outcomes."""

import datetime as dt
from decimal import Decimal

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from audit.models import AccessLog
from patients.models import Patient
from refills import quality
from refills.alerts.rules import alert_build
from refills.models import Alert, Appointment, Reminder
from refills.no_shows import appointment_mark_no_show
from refills.reminders.planning import reminders_scan
from refills.services import appointment_book
from tests import factories
from tests.helpers import refill_record
from tests.refills.reminder_helpers import local

START, END = dt.date(2025, 1, 1), dt.date(2025, 12, 31)
TODAY = dt.date(2026, 1, 10)


def _pump(**fields):
    patient = factories.PatientFactory(**fields)
    return factories.ImplantFactory(patient=patient, implanted_on=dt.date(2024, 10, 1))


def _refill(implant, nurse, at, **fields):
    with time_machine.travel(at, tick=False):
        visit = refill_record(implant=implant, by=nurse, at=at, **fields)
    implant.refresh_from_db()
    return visit


def _at(day: dt.date, hour: int = 10) -> dt.datetime:
    return local(day.year, day.month, day.day, hour)


def seed_clinic(nurse):
    """Refills with known timeliness, a no-show, a sent and a failed reminder, an alert then a booking.

    Every pump is 20 mL of 2000 mcg/mL at 400 mcg/day (0.2 mL a day), so after a full fill the
    alarm (2 mL) falls 90 days later, the reservoir empties after 100, due-by is 85 days on.
    """
    # A: first refill (no earlier one), then on its due-by date, then a day after due-by.
    a = _pump(given_name="Ann", family_name="Able")
    a1 = _refill(a, nurse, local(2025, 1, 6))
    a2 = _refill(
        a,
        nurse,
        _at(a1.due_by),
        residual=str(Decimal("20") - Decimal("0.2") * (a1.due_by - a1.performed_at.date()).days),
    )
    a3 = _refill(a, nurse, _at(a2.due_by + dt.timedelta(days=1)))
    # B: first refill, then a day after the alarm date, then two days after the empty date.
    b = _pump(given_name="Ben", family_name="Baker")
    b1 = _refill(b, nurse, local(2025, 2, 3))
    b2 = _refill(b, nurse, _at(b1.alarm_on + dt.timedelta(days=1)), residual="1.8")
    b3 = _refill(b, nurse, _at(b2.empty_on + dt.timedelta(days=2)), residual="0")
    # C: two refills with a residual far from the forecast (flagged): a patient to review.
    c = _pump(given_name="Cara", family_name="Cole")
    c1 = _refill(c, nurse, local(2025, 3, 3))
    c2 = _refill(c, nurse, _at(c1.due_by), residual="8.0")
    c3 = _refill(c, nurse, _at(c2.due_by), residual="9.0")
    # A refill before the period: outside every figure.
    _refill(_pump(given_name="Dan", family_name="Old"), nurse, local(2024, 12, 2))

    # Appointments: one no-show (a review booked for D), one completed (C's third refill's booking).
    d = _pump(given_name="Dee", family_name="Miss")
    with time_machine.travel(local(2025, 4, 1), tick=False):
        missed = appointment_book(
            patient=d.patient, kind=Appointment.Kind.REVIEW, starts_at=local(2025, 4, 8), booked_by=nurse
        )
    appointment_mark_no_show(appointment=missed, now=local(2025, 4, 9))
    # An "unbooked refill" alert on C, then C's refill booked 4 days later, then done (completed).
    raised = _at(c3.due_by - dt.timedelta(days=20), 9)
    with time_machine.travel(raised, tick=False):
        alert_build(
            Alert.Kind.REFILL_UNBOOKED, patient_id=c.patient_id, implant=c, key_date=c3.due_by, message="Due soon"
        ).save()
    with time_machine.travel(raised + dt.timedelta(days=4), tick=False):
        booked = appointment_book(
            patient=c.patient, implant=c, kind=Appointment.Kind.REFILL, starts_at=_at(c3.due_by), booked_by=nurse
        )
        # The reminders of that booking (email: C's channel) come into being through the planner.
        reminders_scan(now=raised + dt.timedelta(days=4))
    c4 = _refill(c, nurse, _at(c3.due_by), appointment=booked)
    reminders = list(Reminder.objects.filter(appointment=booked).order_by("offset_days"))
    # Delivery itself is tested in test_reminder_worker.py: here one went, one failed for good.
    Reminder.objects.filter(pk=reminders[0].pk).update(status=Reminder.Status.FAILED, last_error="bounced")
    Reminder.objects.filter(pk=reminders[1].pk).update(status=Reminder.Status.SENT, sent_at=local(2025, 9, 1))
    # Surgery planning: E's battery window opens in April 2026 (5 years after its implant); F must be
    # replaced by March 2026 (6 months before the 7-year hard stop); A–D are years away.
    for given, implanted_on in (("Eve", dt.date(2021, 4, 15)), ("Fay", dt.date(2019, 9, 1))):
        factories.ImplantFactory(patient=factories.PatientFactory(given_name=given), implanted_on=implanted_on)
    return {"a": (a1, a2, a3), "b": (b1, b2, b3), "c": (c1, c2, c3, c4), "c_patient": c.patient, "missed": missed}


def _board():
    return quality.quality_dashboard_get(start=START, end=END, today=TODAY, visible=Patient.objects.all())


@pytest.mark.django_db
def test_dashboard_figures_on_a_clinic_with_known_outcomes():
    seed_clinic(factories.NurseFactory())

    board = _board()

    assert [(m.month.month, m.refills) for m in board.months] == [
        (1, 1),
        (2, 1),
        (3, 1),
        (4, 1),
        (5, 2),
        (6, 1),
        (7, 0),
        (8, 2),
        (9, 0),
        (10, 0),
        (11, 1),
        (12, 0),
    ]
    assert board.refills_total == 10
    assert [(s.key, s.count, s.percent) for s in board.timeliness] == [
        ("before_due", 4, Decimal("57.1")),  # A2 on its due-by date, C2, C3, C4
        ("due_to_alarm", 1, Decimal("14.3")),  # A3
        ("alarm_to_empty", 1, Decimal("14.3")),  # B2
        ("after_empty", 1, Decimal("14.3")),  # B3, two days after the empty date
        ("no_forecast", 3, None),  # A1, B1, C1: first refills
    ]
    assert (board.completed, board.no_shows, board.no_show_percent) == (1, 1, Decimal("50.0"))
    assert [(r.channel, r.sent, r.failed) for r in board.reminders] == [("email", 1, 1), ("sms", 0, 0)]
    assert board.unbooked == quality.UnbookedToBooking(alerts=1, booked=1, median_days=Decimal("4.0"))
    assert board.discrepancy_bins == [
        ("≤ −2 mL", 0),
        ("−2 to −1", 1),  # C4: −1.00
        ("−1 to −0.5", 1),  # A3: −0.80
        ("−0.5 to +0.5", 3),  # A2, B2, B3: 0
        ("+0.5 to +1", 0),
        ("+1 to +2", 0),
        ("> +2 mL", 2),  # C2 +5, C3 +6 (flagged)
    ]
    assert [(r.name, r.refills, r.flagged, r.mean_discrepancy_ml, r.last_flagged_on) for r in board.review] == [
        ("Cara Cole", 4, 2, Decimal("5.50"), dt.date(2025, 8, 20))
    ]
    assert board.review_total == 1
    assert [(b.name.split()[0], b.window_opens_on, b.replace_by) for b in board.battery] == [
        ("Fay", dt.date(2024, 9, 1), dt.date(2026, 3, 1)),
        ("Eve", dt.date(2026, 4, 15), dt.date(2027, 10, 15)),
    ]
    assert [(m.month, m.refills) for m in board.battery_months if m.refills] == [
        (dt.date(2026, 3, 1), 1),
        (dt.date(2026, 4, 1), 1),
    ]


@pytest.mark.django_db
def test_a_period_outside_the_refills_counts_nothing():
    seed_clinic(factories.NurseFactory())
    board = quality.quality_dashboard_get(
        start=dt.date(2023, 1, 1), end=dt.date(2023, 12, 31), today=TODAY, visible=Patient.objects.all()
    )
    assert board.refills_total == 0
    assert all(s.count == 0 for s in board.timeliness)
    assert (board.completed, board.no_shows, board.no_show_percent) == (0, 0, None)
    assert board.unbooked == quality.UnbookedToBooking(alerts=0, booked=0, median_days=None)


def _get(client, url, **params):
    with time_machine.travel(_at(TODAY, 12), tick=False):
        return client.get(url, params)


@pytest.mark.django_db
def test_the_page_shows_the_figures_charts_and_logs_the_patients_shown(client):
    nurse = factories.NurseFactory()
    seed_clinic(nurse)
    client.force_login(nurse)

    response = _get(client, reverse("staff:quality_dashboard"), start="2025-01-01", end="2025-12-31")

    assert response.status_code == 200
    html = response.content.decode()
    assert html.count("<svg") == 4
    assert 'data-testid="no-show-rate">50.0 %' in html
    assert "Median <strong>4.0 days</strong>" in html
    assert "Cara Cole" in html
    logged = AccessLog.objects.filter(action="view", resource="staff:quality_dashboard")
    assert sorted(logged.values_list("patient__given_name", flat=True)) == ["Cara", "Eve", "Fay"]


@pytest.mark.django_db
def test_the_clinic_admin_reads_the_figures_but_no_patient_list(client):
    nurse = factories.NurseFactory()
    seed_clinic(nurse)
    client.force_login(factories.ClinicAdminFactory())

    response = _get(client, reverse("staff:quality_dashboard"), start="2025-01-01", end="2025-12-31")
    csv = _get(client, reverse("staff:quality_csv", args=["review"]), start="2025-01-01", end="2025-12-31")

    assert response.status_code == 200
    assert "Cara Cole" not in response.content.decode()
    assert csv.status_code == 403
    assert not AccessLog.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "params,field,message",
    [
        ({"start": "2025-12-31", "end": "2025-01-01"}, "end", "on or after its start"),
        ({"start": "yesterday", "end": "2025-01-01"}, "start", "Enter a valid date"),
        ({"start": "2015-01-01", "end": "2025-01-01"}, "start", "at most five years"),
        ({"end": "2025-01-01"}, "start", "required"),
    ],
)
def test_a_bad_period_is_a_form_error(client, params, field, message):
    client.force_login(factories.ClinicianFactory())
    response = _get(client, reverse("staff:quality_dashboard"), **params)
    assert response.status_code == 200
    assert message in " ".join(response.context["form"].errors[field])
    assert "board" not in response.context
    csv = _get(client, reverse("staff:quality_csv", args=["monthly"]), **params)
    assert csv.status_code == 400
    assert csv.content.decode().startswith(field)


@pytest.mark.django_db
def test_each_table_downloads_as_csv_and_patient_lists_are_logged_as_exports(client):
    nurse = factories.NurseFactory()
    seed_clinic(nurse)
    client.force_login(nurse)
    period = {"start": "2025-01-01", "end": "2025-12-31"}

    def csv(table):
        response = _get(client, reverse("staff:quality_csv", args=[table]), **period)
        assert response.status_code == 200
        assert response["Content-Type"].startswith("text/csv")
        return response.content.decode().splitlines()

    assert csv("monthly")[:3] == ["month,refills", "2025-01,1", "2025-02,1"]
    assert csv("timeliness")[4] == "After the empty date,1,14.3"
    assert csv("no_shows") == ["completed,no_shows,no_show_percent", "1,1,50.0"]
    assert csv("reminders") == ["channel,sent,failed", "email,1,1", "sms,0,0"]
    assert csv("unbooked") == ["unbooked_alerts,followed_by_a_booking,median_days_to_booking", "1,1,4.0"]
    assert csv("discrepancy")[-1] == "> +2 mL,2"
    assert AccessLog.objects.count() == 0  # clinic-wide tables name nobody
    review = csv("review")
    assert review[1].split(",")[1:] == ["Cara Cole", "4", "2", "5.50", "2025-08-20"]
    exported = AccessLog.objects.filter(action="export")
    assert list(exported.values_list("patient__given_name", "detail")) == [("Cara", "quality review CSV")]
    assert len(csv("battery")) == 3
    assert _get(client, reverse("staff:quality_csv", args=["nothing"]), **period).status_code == 404


def _count_queries(client) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = _get(client, reverse("staff:quality_dashboard"), start="2025-01-01", end="2025-12-31")
    assert response.status_code == 200
    return len(queries.captured_queries)


@pytest.mark.django_db
def test_the_dashboard_costs_the_same_queries_in_a_small_and_a_larger_clinic(client):
    nurse = factories.NurseFactory()
    seed_clinic(nurse)
    client.force_login(nurse)
    small = _count_queries(client)

    for _ in range(3):
        seed_clinic(nurse)
    larger = _count_queries(client)

    assert _board().refills_total == 40
    assert small == larger
