"""Issue 11 in the browser: a change request from the portal to closed and back to the patient;
a review moved from the calendar. Screenshots also go to var/screenshots/ for the closing note."""

import datetime as dt
import re
from pathlib import Path

import pytest
from django.conf import settings
from django.core import mail
from django.utils import timezone
from playwright.sync_api import expect

from core.formatting import format_day
from refills.models import Appointment, AppointmentChangeRequest, AppointmentNotice
from refills.notices import appointment_notice_send
from refills.services import appointment_book
from tests import factories

from .conftest import login, pump_refilled_days_ago

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

SCREENSHOTS = Path(settings.BASE_DIR) / "var" / "screenshots"


def shot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def open_weekday(after: dt.date) -> dt.date:
    day = after
    while day.weekday() >= 5:
        day += dt.timedelta(days=1)
    return day


def test_a_change_request_goes_from_the_portal_to_closed_and_back_to_the_patient(ui, live_server, nurse, browser):
    today = timezone.localdate()
    # given Grace's pump, due in 10 days, with a refill booked on the latest safe day
    grace = pump_refilled_days_ago(75, nurse, given_name="Grace", family_name="Hopper", mrn="MRN-GH")
    user = factories.PatientUserFactory(username="grace.hopper", first_name="Grace")
    grace.patient.user = user
    grace.patient.save(update_fields=["user"])
    due_by = grace.forecast_due_by
    booked_on = open_weekday(due_by - dt.timedelta(days=4))
    refill = appointment_book(
        patient=grace.patient,
        kind="refill",
        starts_at=timezone.make_aware(dt.datetime.combine(booked_on, dt.time(10))),
        booked_by=nurse,
    )
    preferred = open_weekday(today + dt.timedelta(days=3))

    # the patient, on a phone, asks for another date and is warned of the pump's due-by date
    patient_context = browser.new_context(viewport={"width": 390, "height": 844}, locale="en-GB")
    phone = patient_context.new_page()
    login(phone, live_server, user)
    phone.get_by_role("link", name="Ask for a different date").click()
    expect(phone.get_by_test_id("due-by-warning")).to_contain_text(f"Your pump needs its refill by {due_by.day}")
    phone.get_by_label("Which date would suit you better?").fill(preferred.isoformat())
    phone.get_by_label("Your message to the clinic").fill("I have a hospital visit that day")
    shot(phone, "change_request_portal_form")
    phone.get_by_role("button", name="Send my request").click()
    expect(phone.locator(".messages")).to_contain_text("The clinic has your request")
    expect(phone.get_by_text("Waiting for the clinic").first).to_be_visible()

    # the nurse sees it on the worklist, opens the move page: the request is there
    login(ui, live_server, nurse)
    requests = ui.locator("#requests")
    expect(requests).to_contain_text(grace.patient.full_name)
    requests.get_by_role("link", name="Move it or decline").click()
    request_box = ui.get_by_test_id("open-request")
    expect(request_box).to_contain_text("The patient asked for another date")
    expect(request_box).to_contain_text("I have a hospital visit that day")
    expect(ui.locator("#id_day")).to_have_value(preferred.isoformat())  # the date asked for
    shot(ui, "change_request_move_page")
    ui.get_by_label("Time").select_option("11:00")
    ui.get_by_role("button", name="Move and close the request").click()
    expect(ui.locator(".messages")).to_contain_text("The patient's request is closed. The patient is told by email.")
    expect(ui.locator("#requests")).to_have_count(0)  # back on the patient page, not the worklist
    ui.goto(f"{live_server.url}/staff/")
    expect(ui.locator("#requests")).to_contain_text("No open request.")

    # the request is closed, the patient is told by email, and the portal shows the outcome
    request = AppointmentChangeRequest.objects.get(appointment=refill)
    assert (request.status, request.handled_by_id) == ("done", nurse.pk)
    notice = AppointmentNotice.objects.get(appointment=refill)
    assert appointment_notice_send(notice_id=notice.pk, now=timezone.now()) == "sent"
    assert "Your refill appointment at ITB Clinic has moved." in mail.outbox[-1].body
    assert "Grace" not in mail.outbox[-1].body
    phone.reload()
    moved = f"Moved to {preferred:%A} {preferred.day} {preferred:%B %Y} at 11:00"
    expect(phone.locator(".requests")).to_contain_text(moved)
    expect(phone.get_by_role("link", name="Ask for a different date")).to_be_visible()  # may ask again
    shot(phone, "change_request_portal_outcome")
    patient_context.close()


def test_a_review_is_moved_from_the_calendar(ui, live_server, nurse):
    today = timezone.localdate()
    grace = pump_refilled_days_ago(20, nurse, given_name="Grace", family_name="Hopper")
    monday = today - dt.timedelta(days=today.weekday()) + dt.timedelta(days=7)
    review = appointment_book(
        patient=grace.patient,
        kind="review",
        starts_at=timezone.make_aware(dt.datetime.combine(monday + dt.timedelta(days=1), dt.time(14))),
        booked_by=nurse,
    )
    new_day = monday + dt.timedelta(days=3)

    login(ui, live_server, nurse)
    ui.goto(f"{live_server.url}/staff/calendar/?week={monday:%Y-%m-%d}")
    ui.get_by_role("link", name=f"Move the review of {grace.patient.full_name}").click()
    expect(ui.get_by_role("heading", name="Move an appointment")).to_be_visible()
    ui.locator("#id_day").fill(new_day.isoformat())
    ui.get_by_label("Time").select_option("15:30")
    ui.get_by_role("button", name="Move", exact=True).click()
    expect(ui.locator(".messages")).to_contain_text(f"Appointment moved to {format_day(new_day, 'l j F Y')} at 15:30")
    review.refresh_from_db()
    assert timezone.localtime(review.starts_at) == timezone.make_aware(dt.datetime.combine(new_day, dt.time(15, 30)))
    assert review.status == Appointment.Status.BOOKED
    ui.goto(f"{live_server.url}/staff/calendar/?week={monday:%Y-%m-%d}")
    day_column = ui.locator("section.day", has_text=re.compile(f"{new_day:%A} {new_day.day} "))
    expect(day_column).to_contain_text("Review")
    shot(ui, "review_moved_in_calendar")
