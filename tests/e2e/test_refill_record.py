"""Browser: a nurse records a refill with its safety checklist and prints the refill record.

Screenshot (print media) in var/screenshots/refill_record.png for the closing note."""

from pathlib import Path

import pytest
from django.conf import settings
from playwright.sync_api import expect

from refills.models import RefillVisit

from .conftest import fill_refill_checks, login, pump_refilled_days_ago

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
SCREENSHOTS = Path(settings.BASE_DIR) / "var" / "screenshots"


def test_nurse_records_the_checklist_and_prints_the_refill_record(ui, live_server, nurse):
    grace = pump_refilled_days_ago(75, nurse, given_name="Grace", family_name="Hopper")
    login(ui, live_server, nurse)
    ui.goto(f"{live_server.url}/staff/patients/{grace.patient_id}/refill/")
    expect(ui.get_by_role("heading", name="Record a refill")).to_be_visible()
    ui.get_by_label("Actual residual aspirated (mL)").fill("5")
    ui.get_by_label("Drug lot number").fill("LOT-REC-1")
    fill_refill_checks(ui, kit_lot="KIT-REC-7")
    symptoms = ui.locator("fieldset.check-item", has_text="Symptom screen for withdrawal and overdose")

    # a skipped item without its reason is refused, naming it; with the reason it saves
    symptoms.get_by_label("Not done", exact=True).check()
    ui.get_by_role("button", name="Save the refill").click()
    expect(ui.locator("#id_check_symptom_screen_reason_error")).to_contain_text(
        "Symptom screen for withdrawal and overdose was not done: give the reason."
    )
    assert not RefillVisit.objects.filter(drug_lot="LOT-REC-1").exists()
    expect(symptoms.get_by_label("Not done", exact=True)).to_be_checked()
    symptoms.get_by_label("Reason: symptom screen for withdrawal and overdose not done").fill("Patient asleep")
    ui.get_by_role("button", name="Save the refill").click()
    expect(ui.get_by_role("heading", name="Refill recorded")).to_be_visible()

    ui.get_by_role("link", name="Print the refill record").click()
    record = ui.get_by_test_id("refill-record")
    expect(record).to_contain_text("Intrathecal pump refill record")
    expect(record).to_contain_text(f"Serial{grace.serial_number}")
    expect(record).to_contain_text("lot LOT-REC-1, expires 31 Dec 2099")
    expect(record).to_contain_text("KIT-REC-7")
    expect(record.locator("tr", has_text="Symptom screen")).to_contain_text("Not done — Patient asleep")
    expect(record.locator("tr", has_text="Pump site checked")).to_contain_text("Done")
    expect(record.get_by_test_id("dose-after")).to_have_text("400 mcg/day")
    ui.emulate_media(media="print")
    expect(ui.locator(".site-header")).to_be_hidden()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    ui.screenshot(path=str(SCREENSHOTS / "refill_record.png"), full_page=True)
