"""A record corrected and re-entered, and a double click that records once, in the browser (issue 11).

Screenshots for the closing note: var/screenshots/<name>.png.
"""

import datetime as dt
import re
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone
from playwright.sync_api import expect

from pumps.models import DosePrescription
from refills.models import RefillVisit
from refills.services import refill_visit_record
from tests import factories

from .conftest import day_label, fill_refill_checks, login, pump_refilled_days_ago

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

SCREENSHOTS = Path(settings.BASE_DIR) / "var" / "screenshots"


def _shot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def test_a_refill_with_a_wrong_volume_is_corrected_and_the_forecast_dates_change(ui, live_server, nurse):
    # given: refilled 30 days ago with 20 mL, typed as 15 mL: the forecast is 25 days early
    today = timezone.localdate()
    implant = factories.ImplantFactory(
        implanted_on=today - dt.timedelta(days=300),
        patient=factories.PatientFactory(given_name="Grace", family_name="Hopper"),
    )
    refill_visit_record(
        implant=implant,
        performed_at=timezone.make_aware(dt.datetime.combine(today - dt.timedelta(days=30), dt.time(10, 0))),
        performed_by=nurse,
        actual_residual_ml=Decimal("2.0"),
        volume_added_ml=Decimal("15"),
        drug=factories.drug("2000"),
        drug_lot="LOT-E2E-1",
        daily_dose_after_mcg=Decimal("400"),
    )
    implant.refresh_from_db()
    wrong_due, wrong_alarm = implant.forecast_due_by, implant.forecast_alarm_on

    login(ui, live_server, nurse)
    ui.goto(f"{live_server.url}/staff/patients/{implant.patient_id}/")
    expect(ui.locator(".key-date").first).to_contain_text(day_label(wrong_due))
    expect(ui.locator("#alarm-date")).to_contain_text(day_label(wrong_alarm))

    # when: "Correct this" on the refill, the volume put right, with the reason
    ui.get_by_role("link", name=re.compile(r"Correct this refill")).click()
    expect(ui.get_by_role("heading", name="Correct a refill")).to_be_visible()
    expect(ui.get_by_label("Volume added (mL)")).to_have_value("15")
    ui.get_by_label("Volume added (mL)").fill("20")
    ui.get_by_label("What was wrong").fill("Volume typed as 15 mL: 20 mL were added")
    fill_refill_checks(ui)
    ui.get_by_label("Post-fill check", exact=True).select_option("passed")  # not done at the first entry
    _shot(ui, "correct_refill_form")
    ui.get_by_role("button", name="Save the correction").click()

    # then: 5 mL more at 0.2 mL/day is 25 days later, on the page and in the database
    expect(ui.locator(".messages")).to_contain_text("Refill corrected")
    right_due, right_alarm = wrong_due + dt.timedelta(days=25), wrong_alarm + dt.timedelta(days=25)
    expect(ui.locator(".key-date").first).to_contain_text(day_label(right_due))
    expect(ui.locator("#alarm-date")).to_contain_text(day_label(right_alarm))
    struck = ui.get_by_test_id("in-error")
    expect(struck).to_have_count(1)
    expect(struck).to_contain_text("Entered in error")
    expect(struck).to_contain_text("Why: Volume typed as 15 mL: 20 mL were added")
    implant.refresh_from_db()
    assert (implant.forecast_due_by, implant.forecast_alarm_on) == (right_due, right_alarm)
    visits = RefillVisit.objects.filter(implant=implant)
    assert sorted((v.entered_in_error, str(v.volume_added_ml)) for v in visits) == [(False, "20.00"), (True, "15.00")]
    _shot(ui, "refill_corrected_patient_page")


def test_a_double_click_on_save_the_refill_records_one_refill(ui, live_server, nurse):
    grace = pump_refilled_days_ago(80, nurse, given_name="Grace", family_name="Hopper")
    login(ui, live_server, nurse)
    ui.goto(f"{live_server.url}/staff/patients/{grace.patient_id}/refill/")
    ui.get_by_label("Actual residual aspirated (mL)").fill("4")
    ui.get_by_label("Drug lot number").fill("LOT-DBL")
    fill_refill_checks(ui)
    ui.get_by_role("button", name="Save the refill").dblclick()
    expect(ui.get_by_role("heading", name="Refill recorded")).to_be_visible()
    ui.wait_for_load_state()
    assert RefillVisit.objects.filter(implant=grace, drug_lot="LOT-DBL").count() == 1
    _shot(ui, "double_click_refill")


def test_a_double_click_on_change_the_dose_records_one_prescription(ui, live_server, nurse, clinician):
    grace = pump_refilled_days_ago(20, nurse, given_name="Grace", family_name="Hopper")
    before = DosePrescription.objects.filter(implant=grace).count()
    login(ui, live_server, clinician)
    ui.goto(f"{live_server.url}/staff/implants/{grace.pk}/dose/")
    ui.get_by_label("New daily dose (mcg/day)").fill("420")
    ui.get_by_label("Reason").fill("Spasms at night")
    ui.get_by_role("button", name="Change the dose").dblclick()
    expect(ui.locator(".messages")).to_contain_text("Dose changed to 420 mcg/day")
    assert DosePrescription.objects.filter(implant=grace).count() == before + 1
    _shot(ui, "double_click_dose_change")
