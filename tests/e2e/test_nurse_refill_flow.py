"""A nurse's morning, in the browser: the worklist, a booking, a refill with a discrepancy, the new alarm date."""

import datetime as dt
import re

import pytest
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import expect

from core.formatting import format_day
from refills.forms import TIME_CHOICES
from refills.models import Appointment, RefillVisit

from .conftest import day_label, fill_refill_checks, login, pump_refilled_days_ago

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def _proposed_days(page) -> list[dt.date]:
    values = page.locator(".proposals a").evaluate_all("links => links.map(a => a.dataset.fillDate)")
    return [dt.date.fromisoformat(v) for v in values]


def test_nurse_books_in_the_safe_window_records_a_discrepancy_and_sees_the_new_alarm_date(ui, live_server, nurse):
    today = timezone.localdate()
    # given: one pump overdue (refilled 110 days ago), Grace's due in 10 days, Ada's in 65
    pump_refilled_days_ago(110, nurse, given_name="Alan", family_name="Turing")
    grace = pump_refilled_days_ago(75, nurse, given_name="Grace", family_name="Hopper")
    pump_refilled_days_ago(20, nurse, given_name="Ada", family_name="Byron")

    # the nurse logs in and lands on the worklist: the overdue patient on top, then Grace
    login(ui, live_server, nurse)
    expect(ui.get_by_role("heading", name="Worklist", level=1)).to_be_visible()
    rows = ui.locator("table.worklist tbody tr")
    expect(rows.first).to_contain_text("Turing, Alan")
    expect(rows.first).to_contain_text("Overdue by 25 days")
    expect(rows.nth(1)).to_contain_text("Hopper, Grace")
    expect(rows.nth(1)).to_contain_text("Due in 10 days")
    expect(rows.nth(1)).to_contain_text("Nothing booked")

    # books Grace's refill on the proposed day: the latest safe day, before her due-by date
    rows.nth(1).get_by_role("link", name=re.compile("Book refill")).click()
    expect(ui.get_by_role("heading", name="Book a refill")).to_be_visible()
    days = _proposed_days(ui)
    due_by = today + dt.timedelta(days=10)
    assert days == sorted(days, reverse=True) and today < days[0] <= due_by
    expect(ui.locator("#id_day")).to_have_value(days[0].isoformat())  # pre-filled with the best one
    ui.get_by_label("Time").select_option("11:00")
    ui.get_by_role("button", name="Book", exact=True).click()
    expect(ui.locator(".messages")).to_contain_text(f"Refill booked for {format_day(days[0], 'l j F Y')} at 11:00")
    booked = Appointment.objects.get(implant=grace, status="booked")
    assert booked.starts_at == timezone.make_aware(dt.datetime.combine(days[0], dt.time(11)))

    # records the visit: 5 mL expected (75 days at 0.2 mL/day from 20 mL), only 1.5 mL comes back
    ui.get_by_role("link", name="Record refill").click()
    expect(ui.get_by_role("heading", name="Record a refill")).to_be_visible()
    expect(ui.locator("#expected-output")).to_have_text("5 mL")
    ui.get_by_label("Actual residual aspirated (mL)").fill("1.5")
    warning = ui.get_by_test_id("discrepancy-warning")
    expect(warning).to_be_visible()
    expect(warning).to_contain_text("Residual discrepancy: -3.50 mL against the forecast")
    ui.get_by_label("Drug lot number").fill("LOT-2025-77")
    fill_refill_checks(ui)
    # the forecast follows the typing: 20 mL at 0.2 mL/day, alarm at 2 mL after 90 days…
    expect(ui.get_by_test_id("alarm-on")).to_contain_text("(90 days)")
    # …at 500 mcg/day (0.25 mL/day) after 72 days, and back
    ui.get_by_label("Daily dose (mcg/day)").fill("500")
    expect(ui.get_by_test_id("alarm-on")).to_contain_text("(72 days)")
    ui.get_by_label("Daily dose (mcg/day)").fill("400")
    expect(ui.get_by_test_id("alarm-on")).to_contain_text("(90 days)")
    ui.get_by_role("button", name="Save the refill").click()

    # the visit page: the warning again, the next refill proposed, the wallet card offered
    expect(ui.get_by_role("heading", name="Refill recorded")).to_be_visible()
    expect(ui.get_by_role("alert")).to_contain_text("Residual discrepancy: -3.50 mL")
    expect(ui.get_by_role("button", name="Book the next refill")).to_be_visible()
    expect(ui.get_by_role("link", name="Print the wallet card")).to_be_visible()
    visit = RefillVisit.objects.get(drug_lot="LOT-2025-77")
    assert visit.discrepancy_flagged and visit.alarm_on == today + dt.timedelta(days=90)
    booked.refresh_from_db()
    assert booked.status == "completed"

    # the patient page shows the new alarm date
    ui.get_by_role("link", name="Back to Grace Hopper").click()
    expect(ui.locator("#alarm-date")).to_contain_text(day_label(today + dt.timedelta(days=90)))
    expect(ui.locator(".timeline")).to_contain_text("Refill: residual discrepancy")


def test_the_overdue_patient_is_on_top_and_a_clinician_books_past_the_due_by_date(ui, live_server, nurse, clinician):
    """Today's rule (refills.services): any day after the due-by date needs a clinician's reason,
    so a nurse sees the service's message on the proposed days of an overdue pump."""
    today = timezone.localdate()
    overdue = pump_refilled_days_ago(110, nurse, given_name="Alan", family_name="Turing")
    pump_refilled_days_ago(75, nurse, given_name="Grace", family_name="Hopper")

    login(ui, live_server, nurse)
    top = ui.locator("table.worklist tbody tr").first
    expect(top).to_contain_text("Turing, Alan")
    expect(top).to_contain_text("Overdue by 25 days")
    top.get_by_role("link", name=re.compile("Book refill")).click()
    expect(ui.get_by_role("alert")).to_contain_text("Overdue: the refill was due by")
    days = _proposed_days(ui)
    assert days == sorted(days) and days[0] >= today  # the earliest open days
    chosen = next(d for d in days if d > today)  # a time today may already have passed
    ui.locator(f'.proposals a[data-fill-date="{chosen.isoformat()}"]').click()  # fills the date (JS)
    expect(ui.locator("#id_day")).to_have_value(chosen.isoformat())
    ui.get_by_role("button", name="Book", exact=True).click()
    expect(ui.locator("#id_day_error")).to_contain_text("after the due-by date")
    expect(ui.locator("#id_day_error")).to_contain_text("a clinician may override with a reason")
    assert not Appointment.objects.filter(implant=overdue).exists()

    # a clinician books it with a reason
    ui.get_by_role("button", name=re.compile("Log out")).click()
    login(ui, live_server, clinician)
    ui.goto(live_server.url + reverse("staff:appointment_book", args=[overdue.patient_id]) + f"?day={chosen}")
    ui.get_by_label("Reason for booking outside the safe window (clinician)").fill("Overdue: first free slot")
    # the time the form offers: 10:00, or tomorrow's first slot when the clinic day is over
    # (refills.forms.first_slot_after; the suite runs at any hour)
    offered = ui.locator("#id_time").input_value()
    assert offered in ("10:00", TIME_CHOICES[0][0])
    ui.get_by_role("button", name="Book", exact=True).click()
    expect(ui.locator(".messages")).to_contain_text(f"Refill booked for {format_day(chosen, 'l j F Y')} at {offered}")
    assert Appointment.objects.get(implant=overdue).outside_window_reason == "Overdue: first free slot"
