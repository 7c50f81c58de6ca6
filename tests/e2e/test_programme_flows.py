"""The programme pages in the browser: the quality dashboard, the recall search and field-safety notices (issue 14).

Screenshots go to var/screenshots/ (git-ignored) for a person to look at.
"""

from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests import factories
from tests.refills.test_quality import seed_clinic
from tests.refills.test_recall import seed

from .conftest import login

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"


def _snap(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"programme_{name}.png"), full_page=True)


def test_the_lead_nurse_reads_the_quality_dashboard_and_downloads_a_table(ui, live_server):
    nurse = factories.NurseFactory()
    seed_clinic(nurse)
    login(ui, live_server, nurse)

    ui.get_by_role("navigation", name="Main").get_by_role("link", name="Quality", exact=True).click()
    ui.get_by_label("From", exact=True).fill("2025-01-01")
    ui.get_by_label("To", exact=True).fill("2025-12-31")
    ui.get_by_role("button", name="Show").click()

    expect(ui.get_by_text("10 refills")).to_be_visible()
    timeliness = ui.get_by_test_id("quality-timeliness")
    expect(timeliness.locator("tr[data-key=after_empty] td").nth(1)).to_have_text("1")
    expect(timeliness.locator("tr[data-key=before_due] td").nth(2)).to_have_text("57.1 %")
    expect(ui.get_by_test_id("no-show-rate")).to_have_text("50.0 %")
    expect(ui.get_by_test_id("unbooked-median")).to_contain_text("Median 4.0 days")
    expect(ui.get_by_test_id("quality-review").get_by_role("link", name="Cara Cole")).to_be_visible()
    expect(ui.locator("svg.bar-chart")).to_have_count(4)
    _snap(ui, "quality_dashboard")

    with ui.expect_download() as download:
        ui.get_by_test_id("quality-timeliness").get_by_role("link", name="Download CSV").click()
    text = Path(download.value.path()).read_text()
    assert "After the empty date,1,14.3" in text.splitlines()


def test_a_bad_period_is_shown_next_to_the_field(ui, live_server):
    login(ui, live_server, factories.ClinicianFactory())
    ui.get_by_role("navigation", name="Main").get_by_role("link", name="Quality", exact=True).click()
    ui.get_by_label("From", exact=True).fill("2025-12-31")
    ui.get_by_label("To", exact=True).fill("2025-01-01")
    ui.get_by_role("button", name="Show").click()
    expect(ui.get_by_role("alert").filter(has_text="on or after its start")).to_be_visible()
    expect(ui.locator("svg.bar-chart")).to_have_count(0)


def test_the_clinician_finds_every_pump_of_a_lot_and_exports_them(ui, live_server):
    nurse = factories.NurseFactory()
    seed(nurse)
    login(ui, live_server, factories.ClinicianFactory())

    ui.get_by_role("navigation", name="Main").get_by_role("link", name="Recall", exact=True).click()
    ui.get_by_label("Drug lot").fill("LOT-B")
    ui.get_by_role("button", name="Search").click()

    results = ui.get_by_test_id("recall-results")
    # The section's own heading (the clinician's "flag them all" form under it has its own).
    expect(results.get_by_role("heading", level=2).first).to_have_text("2 pumps found")
    expect(results.locator("tbody tr")).to_have_count(2)
    expect(results.locator("tr[data-serial=NGP1002]")).to_contain_text("Three Recall")
    expect(results.locator("tr[data-serial=NGP2000]")).to_contain_text("Four Recall")
    _snap(ui, "recall_lot")

    ui.get_by_label("Drug lot").fill("")
    ui.get_by_label("Serial from").fill("NGP1000")
    ui.get_by_label("Serial to").fill("NGP1999")
    ui.get_by_role("button", name="Search").click()
    expect(results.get_by_role("heading", level=2).first).to_have_text("3 pumps found")
    # The seeded review (June 2025) is in the past for the browser's real clock: no next appointment.
    expect(results.locator("tr[data-serial=NGP1000]")).to_contain_text("None booked")
    _snap(ui, "recall_serial_range")

    with ui.expect_download() as download:
        results.get_by_role("link", name="Download CSV").click()
    lines = Path(download.value.path()).read_text().splitlines()
    assert [line.split(",")[3] for line in lines[1:]] == ["NGP1000", "NGP1001", "NGP1002"]


def test_the_clinician_flags_a_lot_sees_it_on_the_patient_page_and_records_the_action(ui, live_server):
    nurse = factories.NurseFactory()
    seed(nurse)
    login(ui, live_server, factories.ClinicianFactory())

    # search → flag
    ui.get_by_role("navigation", name="Main").get_by_role("link", name="Recall", exact=True).click()
    ui.get_by_label("Drug lot").fill("LOT-B")
    ui.get_by_role("button", name="Search").click()
    flag_form = ui.get_by_test_id("recall-flag")
    flag_form.get_by_label("Notice title").fill("Motor stall advisory")
    flag_form.get_by_label("Manufacturer's reference").fill("FA-2025-07")
    flag_form.get_by_label("What the manufacturer says and what to do").fill("Interrogate the pump; check its log.")
    flag_form.get_by_role("button", name="Flag all 2").click()

    expect(ui.get_by_role("heading", level=1)).to_have_text("Motor stall advisory")
    expect(ui.get_by_text("2 pumps flagged with notice FA-2025-07.")).to_be_visible()
    expect(ui.get_by_test_id("notice-flags").locator("tbody tr")).to_have_count(2)
    expect(ui.get_by_test_id("notice-criteria")).to_contain_text("Drug lot LOT-B (2 pumps)")
    _snap(ui, "field_safety_notice")

    # → on the patient's page
    ui.get_by_test_id("notice-flags").get_by_role("link", name="Three Recall", exact=True).click()
    banner = ui.get_by_test_id("field-safety-flag")
    expect(banner).to_contain_text("Field-safety notice FA-2025-07: Motor stall advisory")
    _snap(ui, "field_safety_patient_flagged")

    # → record the action → the flag is gone
    banner.get_by_role("link", name="Record the action taken").click()
    ui.get_by_role("button", name="Record the action and close the flag").click()
    expect(ui.locator(".errorlist").filter(has_text="This field is required.")).to_be_visible()
    ui.get_by_label("Action taken for this patient").fill("Pump interrogated in clinic: no motor stall logged.")
    ui.get_by_role("button", name="Record the action and close the flag").click()

    expect(ui.get_by_text("Action recorded for Three Recall: the flag is closed.")).to_be_visible()
    expect(ui.get_by_test_id("field-safety-flag")).to_have_count(0)
    expect(ui.get_by_test_id("field-safety-history")).to_contain_text("no motor stall logged")
    _snap(ui, "field_safety_action_recorded")

    # the notice's page now shows one action still to record, on the worklist too
    ui.get_by_role("navigation", name="Main").get_by_role("link", name="Worklist", exact=True).click()
    expect(ui.get_by_test_id("field-safety-alert")).to_contain_text("1 of 2 flagged patients still waiting")
