"""The week calendar: the days it shows and its heading, public holidays, booking from a day,
and an early refill shown on the day it was done (frozen on Thursday 20 March 2025, 09:00)."""

import datetime as dt
import re

import pytest
from django.urls import reverse

from refills.models import Appointment, ClinicSettings
from refills.services import appointment_book
from tests import factories
from tests.helpers import refill_record

from .conftest import at, pump_refilled_on

pytestmark = pytest.mark.django_db
CALENDAR = reverse("staff:calendar")
BOOK = reverse("staff:calendar_book")


def page(client, week: str) -> str:
    response = client.get(CALENDAR, {"week": week})
    assert response.status_code == 200
    return response.content.decode()


def shown_days(html: str) -> list[str]:
    return re.findall(r'data-day="([0-9-]+)"', html)


def subtitle(html: str) -> str:
    match = re.search(r'data-testid="calendar-days">([^<]*)<', html)
    assert match
    return match.group(1)


def test_the_heading_names_the_weekdays_shown_monday_to_friday(nurse_client, frozen):
    html = page(nurse_client, "2025-03-17")
    assert shown_days(html) == [f"2025-03-{d}" for d in range(17, 22)]
    assert subtitle(html).startswith("Monday 17 Mar – Friday 21 Mar 2025 · up to 8 refills and 3 home visits a day")
    assert "Sunday" not in html and "Saturday" not in html


def test_a_saturday_with_an_appointment_is_shown_and_named_in_the_heading(nurse_client, frozen):
    factories.AppointmentFactory(
        kind="review", implant=None, patient=factories.PatientFactory(), starts_at=at(2025, 3, 22, 9)
    )
    html = page(nurse_client, "2025-03-17")
    assert shown_days(html)[-1] == "2025-03-22"
    assert subtitle(html).startswith("Monday 17 Mar – Saturday 22 Mar 2025")


def test_a_clinic_open_every_day_shows_monday_to_sunday(nurse_client, frozen):
    clinic = ClinicSettings.load()
    clinic.closed_weekdays = []
    clinic.save()
    html = page(nurse_client, "2025-03-17")
    assert len(shown_days(html)) == 7
    assert subtitle(html).startswith("Monday 17 Mar – Sunday 23 Mar 2025")


def test_a_public_holiday_is_shown_closed_with_its_name_and_cannot_be_booked_from_the_calendar(nurse_client, frozen):
    html = page(nurse_client, "2025-04-14")
    assert shown_days(html) == [f"2025-04-{d}" for d in range(14, 19)]  # a weekday holiday stays shown
    good_friday = html[html.index('data-day="2025-04-18"') :]
    assert "Clinic closed: Good Friday" in good_friday
    assert f"{BOOK}?day=2025-04-18" not in html
    assert f"{BOOK}?day=2025-04-17" in html
    assert "Clinic closed: Easter Monday" in page(nurse_client, "2025-04-21")


def test_open_days_from_today_have_a_booking_link(nurse_client, frozen):
    html = page(nurse_client, "2025-03-17")
    links = re.findall(re.escape(BOOK) + r"\?day=([0-9-]+)", html)
    assert links == ["2025-03-20", "2025-03-21"]  # not the days already past
    assert 'aria-label="Book on this day: Thursday 20 March"' in html


def test_booking_from_a_calendar_day_goes_through_the_booking_service(nurse_client, nurse, refilled):
    response = nurse_client.get(BOOK, {"day": "2025-03-27"})
    assert response.status_code == 200
    html = response.content.decode()
    assert "Book an appointment on Thursday 27 March 2025" in html
    assert 'name="day" value="2025-03-27"' in html
    assert "Grace Hopper" in html or "Hopper, Grace" in html
    response = nurse_client.post(
        BOOK,
        {
            "patient": refilled.patient.pk,
            "kind": "refill",
            "day": "2025-03-27",
            "time": "11:30",
            "location": "clinic",
            "place": "Room 4",
        },
    )
    assert response.status_code == 302
    assert response["Location"] == f"{CALENDAR}?week=2025-03-27"
    appointment = Appointment.objects.get(patient=refilled.patient)
    assert (appointment.starts_at, appointment.implant, appointment.place, appointment.booked_by) == (
        at(2025, 3, 27, 11, 30),
        refilled,
        "Room 4",
        nurse,
    )
    # it is on the calendar, and its reminders were planned with it
    assert "Grace Hopper" in page(nurse_client, "2025-03-24")
    assert appointment.reminders.exists()


def test_booking_a_home_visit_from_the_calendar(nurse_client, refilled):
    patient = refilled.patient
    patient.address_line1, patient.address_town, patient.address_postcode = "12 Elm Road", "Leeds", "LS1 4AB"
    patient.save()
    response = nurse_client.post(
        BOOK,
        {"patient": patient.pk, "kind": "refill", "day": "2025-03-27", "time": "10:00", "location": "home"},
    )
    assert response.status_code == 302
    appointment = Appointment.objects.get(patient=patient)
    assert (appointment.location, appointment.place) == ("home", "Home visit")
    html = page(nurse_client, "2025-03-24")
    assert "Refill · Home visit" in html and "1 of 3 home visits" in html and "0 of 8 refill slots booked" in html


def test_a_refused_calendar_booking_shows_the_services_reason_and_books_nothing(nurse_client, refilled):
    # Good Friday: the holiday is named
    response = nurse_client.post(
        BOOK, {"patient": refilled.patient.pk, "kind": "refill", "day": "2025-04-18", "time": "10:00"}
    )
    assert response.status_code == 400
    assert response.context["form"].errors["day"] == [
        "Good Friday — the clinic is closed on Friday 18 April 2025. A clinician may book it as urgent, with a "
        "reason, when the alarm date leaves no open day."
    ]
    assert "Good Friday — the clinic is closed on this day." in response.content.decode()
    # a home visit for a patient with no address: the error is on "Where"
    response = nurse_client.post(
        BOOK,
        {"patient": refilled.patient.pk, "kind": "refill", "day": "2025-03-27", "time": "10:00", "location": "home"},
    )
    assert response.status_code == 400
    assert response.context["form"].errors["location"] == [
        "Grace Hopper has no address on record: add the address to the patient's details before booking a home visit."
    ]
    # no patient chosen
    response = nurse_client.post(BOOK, {"kind": "review", "day": "2025-03-27", "time": "10:00"})
    assert response.status_code == 400
    assert response.context["form"].errors["patient"] == ["This field is required."]
    assert not Appointment.objects.exists()


def test_a_bad_day_in_the_booking_link_falls_back_to_today(nurse_client, frozen):
    response = nurse_client.get(BOOK, {"day": "not-a-day"})
    assert response.status_code == 200
    assert 'name="day" value="2025-03-20"' in response.content.decode()


def test_an_early_refill_is_shown_on_the_day_it_was_done_not_completed_on_its_booked_day(nurse_client, nurse, refilled):
    appointment_book(patient=refilled.patient, kind="refill", starts_at=at(2025, 3, 27, 14), booked_by=nurse)
    # the patient came in early, today: the refill completes the booking of next Thursday
    refill_record(implant=refilled, by=nurse, at=at(2025, 3, 20, 8, 30))
    booked = Appointment.objects.get(patient=refilled.patient)
    assert booked.status == Appointment.Status.COMPLETED
    this_week = page(nurse_client, "2025-03-17")
    thursday = this_week[this_week.index('data-day="2025-03-20"') : this_week.index('data-day="2025-03-21"')]
    assert "08:30" in thursday and "Grace Hopper" in thursday
    assert "Done early</strong> (booked for Thu 27 Mar)" in thursday
    next_week = page(nurse_client, "2025-03-24")
    assert "Grace Hopper" not in next_week and "Completed" not in next_week
    assert "0 of 8 refill slots booked" in next_week  # the slot it held is free


def test_the_calendar_runs_the_same_queries_whatever_the_number_of_appointments(
    nurse_client, nurse, frozen, django_assert_num_queries
):
    def book(n: int) -> None:
        for i in range(n):
            implant = pump_refilled_on(dt.date(2025, 1, 6), nurse)
            appointment_book(
                patient=implant.patient, kind="refill", starts_at=at(2025, 3, 24 + i % 5, 9 + i // 5), booked_by=nurse
            )

    book(2)
    # session, user, groups, permissions ×2, settings, appointments, closed days, refill slots,
    # home visits, the watchdog's banner, and the session saved (savepoint, update, release)
    with django_assert_num_queries(14):
        page(nurse_client, "2025-03-24")
    book(10)
    with django_assert_num_queries(14):
        html = page(nurse_client, "2025-03-24")
    assert html.count('class="k-refill s-booked"') == 12
