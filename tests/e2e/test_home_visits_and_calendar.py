"""A home visit booked by a nurse, seen by the patient in the portal and in the .ics they download;
an appointment booked from a day of the week calendar."""

import datetime as dt
from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import timezone
from icalendar import Calendar
from playwright.sync_api import expect

from core.formatting import format_day
from refills.models import Appointment, ClinicSettings
from refills.selectors import clinic_closed_days
from tests import factories

from .conftest import login, pump_refilled_days_ago

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, serialized_rollback=True)]
SCREENSHOTS = Path(settings.BASE_DIR) / "var" / "screenshots"


def shot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def next_open_day(after: dt.date) -> dt.date:
    clinic = ClinicSettings.load()
    closed = clinic_closed_days(start=after, end=after + dt.timedelta(days=30), clinic=clinic)
    day = after + dt.timedelta(days=1)
    while day in closed:
        day += dt.timedelta(days=1)
    return day


def test_a_home_visit_booked_by_a_nurse_is_seen_in_the_portal_and_its_ics(ui, live_server, nurse):
    today = timezone.localdate()
    user = factories.PatientUserFactory(username="grace.hopper", first_name="Grace")
    grace = pump_refilled_days_ago(
        75,
        nurse,
        given_name="Grace",
        family_name="Hopper",
        user=user,
        address_line1="12 Elm Road",
        address_town="Leeds",
        address_postcode="LS1 4AB",
    )

    # the nurse books Grace's refill as a home visit, on the proposed day
    login(ui, live_server, nurse)
    ui.goto(live_server.url + reverse("staff:appointment_book", args=[grace.patient_id]))
    expect(ui.get_by_role("heading", name="Book a refill")).to_be_visible()
    day = dt.date.fromisoformat(ui.locator("#id_day").input_value())
    ui.get_by_label("Where").select_option("home")
    ui.get_by_label("Time").select_option("11:00")
    ui.get_by_role("button", name="Book", exact=True).click()
    expect(ui.locator(".messages")).to_contain_text(f"Refill booked for {format_day(day, 'l j F Y')} at 11:00")
    booked = Appointment.objects.get(implant=grace, status="booked")
    assert (booked.location, booked.place) == ("home", "Home visit")
    shot(ui, "home_visit_booked_patient_page")

    # the week calendar shows it as a home visit, counted against the day's home visits
    ui.goto(f"{live_server.url}{reverse('staff:calendar')}?week={day:%Y-%m-%d}")
    column = ui.locator(f'section.day[data-day="{day:%Y-%m-%d}"]')
    expect(column).to_contain_text("Grace Hopper")
    expect(column).to_contain_text("Refill · Home visit")
    expect(column).to_contain_text("1 of 3 home visits")
    assert day > today

    # Grace logs in to the portal: a nurse comes to her home, nothing to bring
    ui.context.clear_cookies()
    login(ui, live_server, user)
    expect(ui.get_by_test_id("home-visit")).to_have_text("A nurse will visit you at home.")
    expect(ui.locator(".place")).to_have_text("Where: at your home, 12 Elm Road, Leeds, LS1 4AB")
    expect(ui.get_by_text("Please bring")).to_have_count(0)
    shot(ui, "home_visit_portal")

    # …and the calendar file she downloads is located at her home, not the clinic
    with ui.expect_download() as download:
        ui.get_by_role("link", name="Add to my calendar").click()
    body = Path(download.value.path()).read_bytes()
    (event,) = [c for c in Calendar.from_ical(body).walk() if c.name == "VEVENT"]
    assert str(event["LOCATION"]) == "12 Elm Road, Leeds, LS1 4AB"
    assert str(event["DESCRIPTION"]).startswith("A nurse will visit you at home.")
    assert event.decoded("DTSTART") == timezone.make_aware(dt.datetime.combine(day, dt.time(11)))


def test_a_nurse_books_a_review_from_a_day_of_the_week_calendar(ui, live_server, nurse):
    today = timezone.localdate()
    ada = factories.PatientFactory(given_name="Ada", family_name="Byron")
    day = next_open_day(today)

    login(ui, live_server, nurse)
    ui.goto(f"{live_server.url}{reverse('staff:calendar')}?week={day:%Y-%m-%d}")
    heading = ui.get_by_test_id("calendar-days")
    expect(heading).not_to_contain_text("Sunday")  # the weekend is closed and empty: not shown
    column = ui.locator(f'section.day[data-day="{day:%Y-%m-%d}"]')
    shot(ui, "calendar_week_before_booking")
    column.get_by_role("link", name=f"Book on this day: {day:%A} {day.day} {day:%B}").click()

    expect(ui.get_by_role("heading", name=f"Book an appointment on {day:%A} {day.day} {day:%B %Y}")).to_be_visible()
    expect(ui.locator("#id_day")).to_have_value(day.isoformat())
    ui.get_by_label("Patient").select_option(label=str(ada))
    ui.get_by_label("Kind").select_option("review")
    ui.get_by_label("Time").select_option("14:30")
    shot(ui, "calendar_book_form")
    ui.get_by_role("button", name="Book", exact=True).dblclick()  # a double click books once

    expect(ui.locator(".messages")).to_contain_text(
        f"Review booked for Ada Byron on {day:%A} {day.day} {day:%B %Y} at 14:30"
    )
    column = ui.locator(f'section.day[data-day="{day:%Y-%m-%d}"]')
    expect(column).to_contain_text("14:30")
    expect(column).to_contain_text("Ada Byron")
    appointment = Appointment.objects.get(patient=ada)  # one review, not two
    assert (appointment.kind, appointment.booked_by, appointment.location) == ("review", nurse, "clinic")
    assert appointment.starts_at == timezone.make_aware(dt.datetime.combine(day, dt.time(14, 30)))
    shot(ui, "calendar_booked_from_a_day")

    # Christmas week: the public holidays are shown closed, with their names, and cannot be booked
    christmas = dt.date(day.year, 12, 25)
    ui.goto(f"{live_server.url}{reverse('staff:calendar')}?week={christmas:%Y-%m-%d}")
    holiday = ui.locator(f'section.day[data-day="{christmas:%Y-%m-%d}"]')
    expect(holiday).to_contain_text("Clinic closed: Christmas Day")
    expect(holiday.get_by_role("link")).to_have_count(0)
    shot(ui, "calendar_christmas_week")
