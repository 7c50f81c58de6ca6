"""A clinician, in the browser: a screening trial step by step, then the implant."""

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from core.formatting import format_day
from patients.models import ScreeningTrial
from pumps.models import DosePrescription, Implant
from tests import factories

from .conftest import login

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def test_clinician_records_a_trial_then_registers_the_implant(ui, live_server, clinician):
    today = timezone.localdate()
    patient = factories.PatientFactory(given_name="Rosalind", family_name="Franklin", mrn="MRN-RF")
    login(ui, live_server, clinician)

    # finds the patient by name from the patients list
    ui.get_by_role("navigation", name="Main").get_by_role("link", name="Patients").click()
    ui.get_by_label("Name, record number or pump serial").fill("frank")
    ui.get_by_role("button", name="Search").click()
    ui.get_by_role("link", name="Franklin, Rosalind").click()
    expect(ui.get_by_role("heading", name="No active pump")).to_be_visible()

    # starts a trial
    ui.get_by_role("link", name="Start a screening trial").click()
    ui.get_by_label("Started on").fill(today.isoformat())
    ui.get_by_label("Rule for a positive trial").select_option("mas_lower_limb_mean_1")
    ui.get_by_label("Goals").fill("Walk with a frame; easier transfers")
    ui.get_by_role("button", name="Start the trial").click()
    expect(ui.get_by_role("heading", name="Screening trial", level=1)).to_be_visible()
    expect(ui.locator('.trial-steps [aria-current="step"]')).to_have_text("1. Baseline scores")

    assess = ui.locator("form", has=ui.get_by_role("button", name="Record the assessment"))

    def record_assessment(hours: str, penn: str, knee_left: str, knee_right: str) -> None:
        assess.get_by_label("Time point").select_option(hours)
        assess.get_by_label("Assessed at").fill(f"{today.isoformat()}T{8 + int(hours):02d}:30")
        assess.get_by_label("Penn spasm frequency (0–4)").select_option(penn)
        assess.get_by_label("Knee extensors (left)").select_option(knee_left)
        assess.get_by_label("Knee extensors (right)").select_option(knee_right)
        assess.get_by_role("button", name="Record the assessment").click()
        expect(ui.locator(".messages")).to_contain_text("Assessment at")

    # baseline, then the 50 mcg bolus, then the 4-hour scores
    record_assessment("0", "3", "3", "2")
    expect(ui.locator('.trial-steps [aria-current="step"]')).to_have_text("2. Bolus")
    dose = ui.locator("form", has=ui.get_by_role("button", name="Record the dose"))
    dose.get_by_label("Given at").fill(f"{today.isoformat()}T09:00")
    expect(dose.get_by_label("Dose (mcg)")).to_have_value("50")
    dose.get_by_role("button", name="Record the dose").click()
    expect(ui.locator(".messages")).to_contain_text("Dose of 50 mcg recorded.")
    record_assessment("4", "1", "1", "1+")

    # the change from baseline at a glance: ((1 − 3) + (1.5 − 2)) / 2 = −1.25; Penn −2
    change_table = ui.get_by_role("table")
    expect(change_table).to_contain_text("-1.25")
    expect(ui.locator(".badge", has_text="Best mean MAS change -1.25")).to_be_visible()

    # the verdict with its rule; the suggested starting dose appears (2 × 50 mcg: effect ≤ 8 h)
    verdict = ui.locator("form", has=ui.get_by_role("button", name="Record the verdict"))
    verdict.get_by_label("Verdict").select_option("positive")
    verdict.get_by_label("Effective bolus (mcg)").fill("50")
    verdict.get_by_label("Effect lasted (hours)").fill("6")
    verdict.get_by_role("button", name="Record the verdict").click()
    expect(ui.locator(".suggested-dose")).to_have_text("100 mcg/day")
    trial = ScreeningTrial.objects.get(patient=patient)
    assert (trial.verdict, trial.positivity_rule) == ("positive", "mas_lower_limb_mean_1")

    # registers the implant with its fill in theatre: the starting dose is pre-filled from the trial
    ui.get_by_role("link", name="Register the implant").click()
    ui.get_by_label("Pump model").select_option(label="Medtronic SynchroMed II 20 mL")
    ui.get_by_label("Serial number").fill("NGP-E2E-1")
    ui.get_by_label("Implanted on").fill(today.isoformat())
    ui.get_by_label("Catheter tip level").select_option("T10")
    ui.get_by_label("Surgeon").fill("Ms A. Surgeon")
    ui.get_by_label("Hospital").fill("City Hospital")
    expect(ui.get_by_label("Starting dose (mcg/day)")).to_have_value("100")
    ui.get_by_label("Drug and concentration filled").select_option(label="Baclofen intrathecal (Lioresal) 500 mcg/mL")
    ui.get_by_label("Volume filled (mL)").fill("20")
    ui.get_by_label("Drug lot number").fill("LOT-E2E-1")
    ui.get_by_role("button", name="Register the implant").click()

    # back on the patient page: the pump, its first refill date (18 mL above the alarm at 0.2 mL/day:
    # alarm in 90 days, due 5 days before), the dose in force, the trial and implant on the timeline
    alarm_on, due_by = today + dt.timedelta(days=90), today + dt.timedelta(days=85)
    expect(ui.locator(".messages")).to_contain_text(
        f"Pump NGP-E2E-1 registered. Refill due by {format_day(due_by, 'j M Y')} "
        f"(alarm {format_day(alarm_on, 'j M Y')})."
    )
    expect(ui.get_by_role("heading", name="Pump")).to_be_visible()
    expect(ui.locator(".key-date", has_text="Dose in force")).to_contain_text("100 mcg/day")
    expect(ui.locator(".timeline")).to_contain_text("Pump implanted: Medtronic SynchroMed II 20 mL")
    implant = Implant.objects.get(patient=patient)
    prescription = DosePrescription.objects.get(implant=implant)
    assert (prescription.daily_dose_mcg, prescription.concentration_mcg_per_ml) == (Decimal("100"), Decimal("500"))
    assert (implant.fill_volume_ml, implant.fill_drug_lot) == (Decimal("20"), "LOT-E2E-1")
    assert (implant.forecast_alarm_on, implant.forecast_due_by, implant.forecast_problem) == (alarm_on, due_by, "")
