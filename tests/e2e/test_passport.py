"""Browser: a patient opens the emergency pump passport on a phone (390 px) from the reprint prompt.

Screenshot in var/screenshots/passport_phone.png for the closing note."""

from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse
from playwright.sync_api import expect

from tests import factories

from .conftest import login, pump_refilled_days_ago

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
SCREENSHOTS = Path(settings.BASE_DIR) / "var" / "screenshots"


def test_the_patient_shows_and_prints_the_passport_on_a_phone(ui, live_server, nurse):
    implant = pump_refilled_days_ago(30, nurse, given_name="Ada", family_name="Lovelace")
    patient = implant.patient
    patient.user = factories.PatientUserFactory(username="ada.lovelace", first_name="Ada")
    patient.save()
    ui.set_viewport_size({"width": 390, "height": 844})
    login(ui, live_server, patient.user)
    ui.goto(live_server.url + reverse("portal:patient_home", args=[patient.pk]))

    # the dose set at the last refill is on no printed passport yet: the prompt leads to it
    prompt = ui.get_by_test_id("passport-reprint")
    expect(prompt).to_contain_text("print a new pump passport")
    prompt.get_by_role("link", name="print a new pump passport").click()

    passport = ui.get_by_test_id("passport")
    expect(passport.get_by_role("heading", name="Emergency pump passport")).to_be_visible()
    expect(passport).to_contain_text("400 mcg/day (simple continuous)")
    expect(passport).to_contain_text(f"serial {implant.serial_number}")
    expect(passport).to_contain_text("Withdrawal signs")
    expect(ui.get_by_test_id("passport-qr").locator("svg")).to_be_visible()
    expect(ui.get_by_role("button", name="Print the passport")).to_be_visible()
    # fits the phone: nothing wider than the screen
    assert ui.evaluate("document.documentElement.scrollWidth") <= 390
    qr_box = ui.get_by_test_id("passport-qr").locator("svg").bounding_box()
    assert qr_box is not None and 150 <= qr_box["width"] <= 300
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    ui.screenshot(path=str(SCREENSHOTS / "passport_phone.png"), full_page=True)

    # opened (and printable) from the phone: the prompt is gone
    ui.goto(live_server.url + reverse("portal:patient_home", args=[patient.pk]))
    expect(ui.get_by_test_id("passport-link")).to_be_visible()
    expect(ui.get_by_test_id("passport-reprint")).to_have_count(0)
