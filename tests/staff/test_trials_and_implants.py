import datetime as dt
from decimal import Decimal

import pytest
from django.urls import reverse

from patients.models import ScreeningTrial, TrialAssessment, TrialStep
from pumps.models import DosePrescription, Implant
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def patient(db):
    return factories.PatientFactory(given_name="Rosalind", family_name="Franklin")


def test_a_clinician_records_a_trial_step_by_step(clinician_client, clinician, patient, frozen):
    # start
    response = clinician_client.post(
        reverse("staff:trial_start", args=[patient.pk]),
        {"started_on": "2025-03-20", "kind": "bolus", "positivity_rule": "mas_lower_limb_mean_1", "goals": "Walk"},
    )
    trial = ScreeningTrial.objects.get(patient=patient)
    assert response["Location"] == reverse("staff:trial_detail", args=[trial.pk])
    assert trial.clinician == clinician
    detail = reverse("staff:trial_detail", args=[trial.pk])
    assert 'aria-current="step">1. Baseline scores' in clinician_client.get(detail).content.decode()
    # baseline scores
    clinician_client.post(
        reverse("staff:trial_assessment_add", args=[trial.pk]),
        {
            "hours_after": "0",
            "assessed_at": "2025-03-20T08:30",
            "penn_score": "3",
            "mas_knee_extensors_l": "3",
            "mas_knee_extensors_r": "2",
        },
    )
    # the bolus
    clinician_client.post(
        reverse("staff:trial_step_add", args=[trial.pk]),
        {"given_at": "2025-03-20T09:00", "dose_mcg": "50", "volume_ml": "1", "route": "lp_bolus"},
    )
    step = TrialStep.objects.get(trial=trial)
    assert (step.dose_mcg, step.given_by) == (Decimal("50.00"), clinician)
    # 4 h later
    clinician_client.post(
        reverse("staff:trial_assessment_add", args=[trial.pk]),
        {
            "step": str(step.pk),
            "hours_after": "4",
            "assessed_at": "2025-03-20T13:00",
            "penn_score": "1",
            "mas_knee_extensors_l": "1",
            "mas_knee_extensors_r": "1+",
        },
    )
    assert TrialAssessment.objects.filter(trial=trial).count() == 2
    html = clinician_client.get(detail).content.decode()
    # change from baseline at a glance: ((1 − 3) + (1.5 − 2)) / 2 = −1.25; Penn 3 → 1
    assert "-1.25" in html and ">(-2)<" in html
    assert 'aria-current="step">4. Verdict' in html
    # verdict, then the suggested starting dose (2 × 50 mcg: the effect lasted 6 h)
    clinician_client.post(
        reverse("staff:trial_verdict", args=[trial.pk]),
        {
            "verdict": "positive",
            "positivity_rule": "mas_lower_limb_mean_1",
            "effective_bolus_mcg": "50",
            "effect_hours": "6",
        },
    )
    trial.refresh_from_db()
    assert trial.verdict == "positive"
    html = clinician_client.get(detail).content.decode()
    assert "100 mcg/day" in html
    assert reverse("staff:implant_register", args=[patient.pk]) in html


def test_a_positive_verdict_without_the_effective_bolus_is_a_form_error(clinician_client, clinician, patient):
    trial = factories.ScreeningTrialFactory(patient=patient, clinician=clinician)
    response = clinician_client.post(
        reverse("staff:trial_verdict", args=[trial.pk]), {"verdict": "positive", "positivity_rule": "clinician"}
    )
    assert response.status_code == 400
    assert response.context["verdict_form"].errors["effective_bolus_mcg"] == [
        "A positive trial needs the effective bolus dose."
    ]
    trial.refresh_from_db()
    assert trial.verdict == "pending"


@pytest.mark.parametrize(
    "data",
    [
        {"hours_after": "0", "assessed_at": "2025-03-20T08:30"},  # nothing scored
        {"hours_after": "0", "assessed_at": "2025-03-20T08:30", "mas_hip_flexors_l": "9"},
        {"hours_after": "3.5", "assessed_at": "2025-03-20T08:30", "penn_score": "2"},
        {"hours_after": "0", "assessed_at": "yesterday", "penn_score": "2"},
    ],
)
def test_bad_assessments_are_form_errors_and_nothing_is_saved(clinician_client, clinician, patient, data):
    trial = factories.ScreeningTrialFactory(patient=patient, clinician=clinician)
    response = clinician_client.post(reverse("staff:trial_assessment_add", args=[trial.pk]), data)
    assert response.status_code == 400
    assert not TrialAssessment.objects.exists()


def test_register_an_implant_with_the_suggested_starting_dose(clinician_client, clinician, patient, frozen):
    factories.ScreeningTrialFactory(
        patient=patient,
        clinician=clinician,
        verdict="positive",
        effective_bolus_mcg=Decimal("75"),
        effect_hours=Decimal("10"),
    )
    url = reverse("staff:implant_register", args=[patient.pk])
    page = clinician_client.get(url)
    assert page.context["form"].initial["starting_daily_dose_mcg"] == Decimal("75")  # 1 × bolus: effect over 8 h
    model = factories.pump_model("SynchroMed II", "40")
    response = clinician_client.post(
        url,
        {
            "pump_model": str(model.pk),
            "serial_number": " NGP555 ",
            "implanted_on": "2025-03-18",
            "catheter_model": "8781",
            "catheter_tip_level": "T10",
            "surgeon": "Mr B. Surgeon",
            "hospital": "St Elsewhere",
            # the fill in theatre: 40 mL of 500 mcg/mL, the model's 2 mL alarm
            "fill_drug": str(factories.drug("500").pk),
            "fill_volume_ml": "40",
            "fill_drug_lot": "LOT-TH1",
            "fill_alarm_threshold_ml": "",
            "starting_daily_dose_mcg": "75",
            "flow_ml_per_day": "",
        },
    )
    assert response.status_code == 302
    implant = Implant.objects.get(patient=patient)
    assert (implant.serial_number, implant.pump_model, implant.recorded_by) == ("NGP555", model, clinician)
    assert (implant.fill_volume_ml, implant.fill_drug, implant.fill_drug_lot) == (
        Decimal("40.00"),
        factories.drug("500"),
        "LOT-TH1",
    )
    dose = DosePrescription.objects.get(implant=implant)
    assert (dose.daily_dose_mcg, dose.concentration_mcg_per_ml) == (Decimal("75.00"), Decimal("500.0"))
    # the forecast starts at the implant: 38 mL above the alarm at 0.15 mL/day is 253 days,
    # alarm Thu 26 Nov 2025; due by the drug's 180-day stability cap (14 Sep), before the margin's 21 Nov
    assert (implant.forecast_alarm_on, implant.forecast_due_by, implant.forecast_problem) == (
        dt.date(2025, 11, 26),
        dt.date(2025, 9, 14),
        "",
    )


def test_a_duplicate_serial_is_a_form_error(clinician_client, patient):
    taken = factories.ImplantFactory()
    response = clinician_client.post(
        reverse("staff:implant_register", args=[patient.pk]),
        {
            "pump_model": str(taken.pump_model.pk),
            "serial_number": taken.serial_number,
            "implanted_on": "2025-03-18",
            "catheter_tip_level": "T10",
            "surgeon": "S",
            "hospital": "H",
        },
    )
    assert response.status_code == 400
    assert response.context["form"].errors["serial_number"] == ["A Medtronic pump with this serial is registered."]
    assert not Implant.objects.filter(patient=patient).exists()


def test_eri_and_explant(clinician_client, refilled):
    eri = clinician_client.post(reverse("staff:implant_eri", args=[refilled.pk]), {"eri_on": "2025-03-19"})
    assert eri.status_code == 302
    refilled.refresh_from_db()
    assert refilled.eri_reported_on == dt.date(2025, 3, 19)
    url = reverse("staff:implant_explant", args=[refilled.pk])
    no_reason = clinician_client.post(url, {"explanted_on": "2025-03-20", "reason": ""})
    assert no_reason.status_code == 400
    before = clinician_client.post(url, {"explanted_on": "2024-01-01", "reason": "Infection"})
    assert before.context["form"].errors["explanted_on"] == [
        "The explant is dated 2024-01-01, before the implant (2024-06-03)."
    ]
    refilled.refresh_from_db()
    assert refilled.explanted_on is None
    done = clinician_client.post(url, {"explanted_on": "2025-03-20", "reason": "Pocket infection"})
    assert done.status_code == 302
    refilled.refresh_from_db()
    assert (refilled.explanted_on, refilled.explant_reason) == (dt.date(2025, 3, 20), "Pocket infection")
    assert refilled.forecast_due_by is None


def test_a_nurse_creates_a_patient_and_a_duplicate_record_number_is_refused(nurse_client):
    data = {
        "mrn": "MRN-NEW",
        "given_name": "Mary",
        "family_name": "Somerville",
        "date_of_birth": "1980-12-26",
        "spasticity_origin": "spinal",
        "diagnosis": "ms",
        "reminder_channel": "email",
        "email": "mary@example.org",
        "phone": "",
    }
    response = nurse_client.post(reverse("staff:patient_create"), data)
    assert response.status_code == 302
    again = nurse_client.post(reverse("staff:patient_create"), data)
    assert again.status_code == 400
    assert "Patient with this Medical record number already exists." in again.content.decode()
    listing = nurse_client.get(reverse("staff:patient_list"), {"q": "somer"}).content.decode()
    assert "Somerville, Mary" in listing
