"""What each endpoint does, through the services: writes, errors mapped to 400/405/409, reads."""

import datetime as dt
from decimal import Decimal

import pytest
from django.middleware.csrf import get_token
from django.test import RequestFactory

from audit.models import AccessLog
from patients.models import Patient, ScreeningTrial, TrialAssessment
from pumps.models import DosePrescription, Implant
from refills.models import Appointment, RefillVisit
from tests import factories
from tests.api.conftest import JsonClient
from tests.helpers import REFILL_LOTS, SAFETY_CHECKLIST_ALL_DONE

pytestmark = pytest.mark.django_db


# ---------------------------------------------------------------------------
# Refill forecast: the pure function over HTTP
# ---------------------------------------------------------------------------
FORECAST_INPUT = {
    "refilled_on": "2025-01-06",
    "volume_ml": "20",
    "concentration_mcg_per_ml": "2000",
    "daily_dose_mcg": "400",
    "alarm_threshold_ml": "2.0",
}


def test_refill_forecast_returns_domain_worked_example(world, client_for):
    response = client_for("nurse").call("POST", "/api/refill-forecast/", FORECAST_INPUT)

    assert response.status_code == 200
    assert response.json() == {
        "daily_volume_ml": "0.200000",
        "days_to_alarm": 90,
        "days_to_empty": 100,
        "alarm_on": "2025-04-06",
        "empty_on": "2025-04-16",
        "due_by": "2025-04-01",
        "safety_margin_days": 5,
        "max_interval_days": None,
        "expected_residual_ml": None,
        "discrepancy_ml": None,
        "discrepancy_flagged": None,
    }


def test_refill_forecast_with_implant_gives_expected_residual_and_discrepancy(world, client_for):
    body = {
        **FORECAST_INPUT,
        "refilled_on": "2025-03-03",
        "implant": world.a.implant.pk,
        "actual_residual_ml": "6.50",
    }

    response = client_for("nurse").call("POST", "/api/refill-forecast/", body)

    assert response.status_code == 200
    # 56 days at 0.2 mL/day out of 20 mL leaves 8.80 mL; 6.50 came back: 2.30 short, above 2.0 mL.
    assert response.json()["expected_residual_ml"] == "8.80"
    assert response.json()["discrepancy_ml"] == "-2.30"
    assert response.json()["discrepancy_flagged"] is True


def test_refill_forecast_applies_drug_cap_in_this_pump(world, client_for):
    # The world's interval: baclofen 500 in SynchroMed II 20 mL is capped at 180 days.
    body = {**FORECAST_INPUT, "concentration_mcg_per_ml": "500", "daily_dose_mcg": "25", "drug": world.interval.drug_id}
    body["implant"] = world.a.implant.pk

    response = client_for("clinician").call("POST", "/api/refill-forecast/", body)

    assert response.status_code == 200
    assert response.json()["max_interval_days"] == 180
    assert response.json()["due_by"] == "2025-07-05"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("concentration_mcg_per_ml", "0"),
        ("concentration_mcg_per_ml", "-5"),
        ("volume_ml", "0"),
        ("daily_dose_mcg", "0"),
        ("daily_dose_mcg", "abc"),
        ("alarm_threshold_ml", "-1"),
        ("refilled_on", "0001-01-01"),
        ("refilled_on", "2025-02-30"),
        ("safety_margin_days", -1),
        ("max_interval_days", 0),
        ("implant", 10**30),
        ("implant", True),
        ("drug", "x"),
    ],
)
def test_refill_forecast_bad_input_answers_400_naming_the_field(world, client_for, field, value):
    response = client_for("nurse").call("POST", "/api/refill-forecast/", {**FORECAST_INPUT, field: value})

    assert response.status_code == 400
    assert list(response.json()) == [field]


def test_refill_forecast_missing_fields_are_each_named(world, client_for):
    response = client_for("nurse").call("POST", "/api/refill-forecast/", {})

    assert response.status_code == 400
    assert set(response.json()) == {
        "refilled_on",
        "volume_ml",
        "concentration_mcg_per_ml",
        "daily_dose_mcg",
        "alarm_threshold_ml",
    }


def test_refill_forecast_that_would_overflow_the_calendar_is_a_400(world, client_for):
    body = {**FORECAST_INPUT, "refilled_on": "2199-12-01", "volume_ml": "9999.99", "daily_dose_mcg": "0.01"}

    response = client_for("nurse").call("POST", "/api/refill-forecast/", body)

    assert response.status_code == 400
    assert list(response.json()) == ["daily_dose_mcg"]


# ---------------------------------------------------------------------------
# Appointments: booking through the service; 409 on a conflict
# ---------------------------------------------------------------------------
def book(client, world, **overrides):
    body = {"patient": world.a.patient.pk, "kind": "refill", "starts_at": "2025-03-25T10:00:00Z", **overrides}
    return client.call("POST", "/api/appointments/", body)


def test_nurse_books_a_refill_in_the_safe_window(world, client_for):
    response = book(client_for("nurse"), world)

    assert response.status_code == 201
    appointment = Appointment.objects.get(pk=response.json()["id"])
    assert (appointment.implant, appointment.booked_by, appointment.status) == (
        world.a.implant,
        world.nurse,
        Appointment.Status.BOOKED,
    )
    assert response.json()["place"] == "ITB clinic room 2"


def test_second_refill_booking_for_the_same_pump_answers_409(world, client_for):
    assert book(client_for("nurse"), world).status_code == 201

    response = book(client_for("clinician"), world, starts_at="2025-03-26T10:00:00Z")

    assert response.status_code == 409
    assert response.json()["code"] == "booking_conflict"
    assert "already booked" in response.json()["detail"]
    assert Appointment.objects.filter(implant=world.a.implant, kind="refill").count() == 1


def test_booking_outside_the_window_is_refused_naming_starts_at(world, client_for):
    response = book(client_for("nurse"), world, starts_at="2025-04-08T10:00:00Z")

    assert response.status_code == 400
    assert "after the due-by date" in response.json()["starts_at"][0]
    assert not Appointment.objects.filter(kind="refill").exists()


def test_only_a_clinician_overrides_the_window_with_a_reason(world, client_for):
    late = {"starts_at": "2025-04-08T10:00:00Z", "outside_window_reason": "Patient abroad until April"}

    by_nurse = book(client_for("nurse"), world, **late)
    by_clinician = book(client_for("clinician"), world, **late)

    assert by_nurse.status_code == 400
    assert list(by_nurse.json()) == ["outside_window_reason"]
    assert by_clinician.status_code == 201
    assert by_clinician.json()["outside_window_reason"] == "Patient abroad until April"


def test_move_cancel_and_no_show_go_through_the_services(world, client_for):
    nurse = client_for("nurse")
    appointment = world.a.appointment

    no_show = nurse.call("POST", f"/api/appointments/{appointment.pk}/no-show/")
    assert no_show.status_code == 200
    assert no_show.json()["status"] == "no_show"

    again = nurse.call("POST", f"/api/appointments/{appointment.pk}/cancel/", {"cancel_reason": "x"})
    assert again.status_code == 400
    assert list(again.json()) == ["status"]

    other = world.b.appointment
    moved = nurse.call("POST", f"/api/appointments/{other.pk}/move/", {"starts_at": "2025-03-21T10:00:00Z"})
    assert moved.status_code == 200
    assert moved.json()["starts_at"] == "2025-03-21T10:00:00Z"
    cancelled = nurse.call("POST", f"/api/appointments/{other.pk}/cancel/", {"cancel_reason": " Unwell "})
    assert cancelled.status_code == 200
    assert (cancelled.json()["status"], cancelled.json()["cancel_reason"]) == ("cancelled", "Unwell")


def test_cancel_without_reason_names_cancel_reason(world, client_for):
    response = client_for("nurse").call(
        "POST", f"/api/appointments/{world.a.appointment.pk}/cancel/", {"cancel_reason": "  "}
    )

    assert response.status_code == 400
    assert list(response.json()) == ["cancel_reason"]
    world.a.appointment.refresh_from_db()
    assert world.a.appointment.status == Appointment.Status.BOOKED


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", {"a", "b", "a_refill"}),
        ("?starts_after=2025-03-10T00:00:00Z", {"a_refill"}),
        ("?starts_before=2025-03-10T00:00:00Z", {"a", "b"}),
        ("?starts_after=2025-03-01T00:00:00Z&starts_before=2025-03-03T09:00:00Z", set()),
        ("?kind=refill", {"a_refill"}),
        ("?kind=review&status=booked", {"a", "b"}),
        # Offsets real places never use are still times: PostgreSQL refuses them beyond ±15:59.
        ("?starts_after=2025-03-02T15:00:00-19:20", {"a_refill"}),
        ("?starts_before=2025-03-04T10:00:00%2B23:59", {"a", "b"}),
        ("?status=cancelled", set()),
        ("?patient={b}", {"b"}),
    ],
)
def test_appointment_filters(world, client_for, query, expected):
    refill = book(client_for("nurse"), world).json()["id"]
    names = {world.a.appointment.pk: "a", world.b.appointment.pk: "b", refill: "a_refill"}

    response = client_for("nurse").call("GET", "/api/appointments/" + query.format(b=world.b.patient.pk))

    assert response.status_code == 200
    assert {names[row["id"]] for row in response.json()["results"]} == expected


@pytest.mark.parametrize("query", ["?starts_after=yesterday", "?starts_before=0001-01-01T00:00:00%2B14:00"])
def test_bad_date_filter_names_the_parameter(world, client_for, query):
    response = client_for("nurse").call("GET", "/api/appointments/" + query)

    assert response.status_code == 400
    assert list(response.json()) == [query[1:].split("=")[0]]


# ---------------------------------------------------------------------------
# Refill visits and dose changes
# ---------------------------------------------------------------------------
def test_nurse_records_a_refill_visit(world, client_for):
    body = {
        "implant": world.a.implant.pk,
        "performed_at": "2025-03-03T09:30:00Z",
        "actual_residual_ml": "8.70",
        "volume_added_ml": "20",
        "drug": world.drug.pk,
        "drug_lot": " LOT-77 ",
        "daily_dose_after_mcg": "400",
        **SAFETY_CHECKLIST_ALL_DONE,
        **REFILL_LOTS,
    }

    response = client_for("nurse").call("POST", "/api/refill-visits/", body)

    assert response.status_code == 201
    visit = RefillVisit.objects.get(pk=response.json()["id"])
    assert (visit.expected_residual_ml, visit.discrepancy_ml, visit.drug_lot) == (
        Decimal("8.80"),
        Decimal("-0.10"),
        "LOT-77",
    )
    world.a.implant.refresh_from_db()
    assert world.a.implant.forecast_due_by == dt.date(2025, 5, 27)


def test_refill_visit_overfill_names_volume_added(world, client_for):
    body = {
        "implant": world.a.implant.pk,
        "performed_at": "2025-03-03T09:30:00Z",
        "actual_residual_ml": "8.70",
        "volume_added_ml": "25",
        "drug": world.drug.pk,
        "drug_lot": "L",
        "daily_dose_after_mcg": "400",
        **SAFETY_CHECKLIST_ALL_DONE,
        **REFILL_LOTS,
    }

    response = client_for("nurse").call("POST", "/api/refill-visits/", body)

    assert response.status_code == 400
    assert list(response.json()) == ["volume_added_ml"]
    assert RefillVisit.objects.filter(implant=world.a.implant).count() == 1


def test_refill_visit_flex_schedule_is_stored_as_exact_strings(world, client_for):
    body = {
        "implant": world.a.implant.pk,
        "performed_at": "2025-03-03T09:30:00Z",
        "actual_residual_ml": "8.80",
        "volume_added_ml": "20",
        "drug": world.drug.pk,
        "drug_lot": "L",
        # the steps' sum: 8 h × 15 + 16 h × 25 mcg/h (an entered dose that disagrees is refused)
        "daily_dose_after_mcg": "520",
        "dosing_mode": "flex",
        "schedule": [{"start": "00:00", "mcg_per_hour": "15"}, {"start": "08:00", "mcg_per_hour": "25"}],
        # a change of dose and mode at a refill names the clinician who prescribed it, who
        # confirms the +30 % (beyond the clinic's +20 % limit)
        "prescriber": world.clinician.pk,
        "titration_confirmed": True,
        **SAFETY_CHECKLIST_ALL_DONE,
        **REFILL_LOTS,
    }

    response = client_for("nurse").call("POST", "/api/refill-visits/", body)

    assert response.status_code == 201, response.json()
    assert RefillVisit.objects.get(pk=response.json()["id"]).schedule == [
        {"start": "00:00", "mcg_per_hour": "15.000"},
        {"start": "08:00", "mcg_per_hour": "25.000"},
    ]


def test_marking_a_refill_visit_in_error_restores_the_previous_forecast(world, client_for):
    nurse = client_for("nurse")
    body = {
        "implant": world.a.implant.pk,
        "performed_at": "2025-03-03T09:30:00Z",
        "actual_residual_ml": "8.70",
        "volume_added_ml": "20",
        "drug": world.drug.pk,
        "drug_lot": "L",
        "daily_dose_after_mcg": "400",
        **SAFETY_CHECKLIST_ALL_DONE,
        **REFILL_LOTS,
    }
    visit_id = nurse.call("POST", "/api/refill-visits/", body).json()["id"]

    response = nurse.call("POST", f"/api/refill-visits/{visit_id}/mark-entered-in-error/", {"reason": "Wrong pump"})

    assert response.status_code == 200
    assert response.json()["entered_in_error"] is True
    world.a.implant.refresh_from_db()
    assert world.a.implant.forecast_due_by == dt.date(2025, 4, 1)
    assert nurse.call("GET", f"/api/refill-visits/{visit_id}/").status_code == 404


def test_clinician_records_a_dose_change_with_the_reservoir_concentration(world, client_for):
    # +25 %: beyond the clinic's +20 % titration limit, so the prescriber confirms it
    body = {
        "implant": world.a.implant.pk,
        "daily_dose_mcg": "500",
        "effective_at": "2025-02-05T12:00:00Z",
        "titration_confirmed": True,
    }

    response = client_for("clinician").call("POST", "/api/dose-prescriptions/", body)

    assert response.status_code == 201
    assert response.json()["concentration_mcg_per_ml"] == "2000.0"
    assert response.json()["prescribed_by"] == world.clinician.pk
    world.a.implant.refresh_from_db()
    assert world.a.implant.forecast_due_by < dt.date(2025, 4, 1)


def test_dose_change_before_the_last_refill_names_effective_at(world, client_for):
    body = {"implant": world.a.implant.pk, "daily_dose_mcg": "500", "effective_at": "2025-01-01T12:00:00Z"}

    response = client_for("clinician").call("POST", "/api/dose-prescriptions/", body)

    assert response.status_code == 400
    assert list(response.json()) == ["effective_at"]
    assert DosePrescription.objects.filter(implant=world.a.implant).count() == 1


# ---------------------------------------------------------------------------
# Implants
# ---------------------------------------------------------------------------
def test_clinician_registers_an_implant_with_its_starting_dose(world, client_for):
    body = {
        "patient": world.patient_without_pump.pk,
        "pump_model": world.pump_model.pk,
        "serial_number": " NEW-1 ",
        "implanted_on": "2025-02-01",
        "surgeon": "Mr B",
        "hospital": "City",
        "catheter_tip_level": "T10",
        "starting_daily_dose_mcg": "100",
        "concentration_mcg_per_ml": "500",
    }

    response = client_for("clinician").call("POST", "/api/implants/", body)

    assert response.status_code == 201
    implant = Implant.objects.get(pk=response.json()["id"])
    assert (implant.serial_number, implant.manufacturer, implant.recorded_by) == ("NEW-1", "Medtronic", world.clinician)
    assert implant.prescriptions.get().daily_dose_mcg == Decimal("100.00")
    assert response.json()["replacement_plan"] == {
        "hard_stop_on": "2032-02-01",
        "plan_by": "2031-08-01",
        "stops_on": "2032-02-01",
    }


def test_second_active_implant_names_patient(world, client_for):
    body = {
        "patient": world.a.patient.pk,
        "pump_model": world.pump_model.pk,
        "serial_number": "NEW-2",
        "implanted_on": "2025-02-01",
        "surgeon": "Mr B",
        "hospital": "City",
        "catheter_tip_level": "T10",
    }

    response = client_for("clinician").call("POST", "/api/implants/", body)

    assert response.status_code == 400
    assert list(response.json()) == ["patient"]
    assert Implant.objects.filter(patient=world.a.patient).count() == 1


def test_eri_and_explant_actions(world, client_for):
    clinician = client_for("clinician")
    implant = world.a.implant

    early = clinician.call("POST", f"/api/implants/{implant.pk}/eri/", {"eri_reported_on": "2024-01-01"})
    eri = clinician.call("POST", f"/api/implants/{implant.pk}/eri/", {"eri_reported_on": "2025-03-01"})
    before = clinician.call(
        "POST", f"/api/implants/{implant.pk}/explant/", {"explanted_on": "2024-01-01", "explant_reason": "x"}
    )
    explant = clinician.call(
        "POST", f"/api/implants/{implant.pk}/explant/", {"explanted_on": "2025-03-02", "explant_reason": "Infection"}
    )

    assert (early.status_code, list(early.json())) == (400, ["eri_reported_on"])
    assert eri.status_code == 200
    assert eri.json()["replacement_plan"]["stops_on"] == "2025-05-30"
    assert (before.status_code, list(before.json())) == (400, ["explanted_on"])
    assert explant.status_code == 200
    assert (explant.json()["explanted_on"], explant.json()["is_active"]) == ("2025-03-02", False)


# ---------------------------------------------------------------------------
# Patients and trials
# ---------------------------------------------------------------------------
PATIENT_INPUT = {
    "mrn": "MRN-NEW",
    "given_name": "Ada",
    "family_name": "Lovelace",
    "date_of_birth": "1980-12-10",
    "spasticity_origin": "spinal",
    "diagnosis": "sci",
    "sci_level": "T4",
    "risk_high_sci": True,
    "phone": "+442079460000",
}


def test_nurse_creates_and_updates_a_patient(world, client_for):
    nurse = client_for("nurse")

    created = nurse.call("POST", "/api/patients/", PATIENT_INPUT)
    patched = nurse.call("PATCH", f"/api/patients/{created.json()['id']}/", {"notes": "Prefers mornings"})

    assert created.status_code == 201
    assert patched.status_code == 200
    patient = Patient.objects.get(mrn="MRN-NEW")
    assert (patient.notes, patient.risk_high_sci, str(patient.phone), patient.status) == (
        "Prefers mornings",
        True,
        "+442079460000",
        "active",
    )


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"mrn": "MRN-A"}, "mrn"),
        ({"phone": "12"}, "phone"),
        ({"email": "not-an-email"}, "email"),
        ({"date_of_birth": "1850-01-01"}, "date_of_birth"),
        ({"diagnosis": "flu"}, "diagnosis"),
    ],
)
def test_patient_bad_input_names_the_field(world, client_for, changes, field):
    response = client_for("nurse").call("POST", "/api/patients/", {**PATIENT_INPUT, **changes})

    assert response.status_code == 400
    assert list(response.json()) == [field]
    assert not Patient.objects.filter(mrn="MRN-NEW").exists()


def test_patch_changes_only_the_fields_sent(world, client_for):
    patient = world.a.patient
    patient.risk_previous_withdrawal = True
    patient.save()

    response = client_for("clinician").call("PATCH", f"/api/patients/{patient.pk}/", {"status": "transferred"})

    assert response.status_code == 200
    patient.refresh_from_db()
    assert (patient.status, patient.risk_previous_withdrawal, patient.user) == ("transferred", True, world.a.user)


def test_staff_cannot_link_a_portal_account_or_set_unknown_fields(world, client_for):
    other = factories.UserFactory()

    response = client_for("nurse").call(
        "PATCH", f"/api/patients/{world.b.patient.pk}/", {"user": other.pk, "is_staff": True, "notes": "n"}
    )

    assert response.status_code == 200
    world.b.patient.refresh_from_db()
    other.refresh_from_db()
    assert (world.b.patient.user, other.is_staff) == (world.b.user, False)


def test_patient_search_by_serial_number(world, client_for):
    response = client_for("nurse").call("GET", f"/api/patients/?search={world.b.implant.serial_number}")

    assert [row["id"] for row in response.json()["results"]] == [world.b.patient.pk]


def test_clinician_runs_a_trial_to_its_verdict_and_summary(world, client_for):
    clinician = client_for("clinician")
    trial = clinician.call(
        "POST", "/api/trials/", {"patient": world.patient_without_pump.pk, "started_on": "2025-03-03"}
    )
    trial_id = trial.json()["id"]
    step = clinician.call(
        "POST",
        f"/api/trials/{trial_id}/steps/",
        {"given_at": "2025-03-03T09:00:00Z", "dose_mcg": "50", "volume_ml": "1"},
    )
    step_id = step.json()["id"]
    baseline = {
        "assessed_at": "2025-03-03T08:45:00Z",
        "hours_after": "0",
        "ashworth": {"hip_adductors_l": "3", "knee_extensors_l": "2"},
        "penn_score": 3,
    }
    after = {
        "assessed_at": "2025-03-03T13:00:00Z",
        "hours_after": "4",
        "step": step_id,
        "ashworth": {"hip_adductors_l": "1+", "knee_extensors_l": "1"},
        "penn_score": 1,
    }
    assert clinician.call("POST", f"/api/trials/{trial_id}/assessments/", baseline).status_code == 201
    assert clinician.call("POST", f"/api/trials/{trial_id}/assessments/", after).status_code == 201
    verdict = clinician.call(
        "POST",
        f"/api/trials/{trial_id}/verdict/",
        {
            "verdict": "positive",
            "positivity_rule": "mas_lower_limb_mean_1",
            "effective_bolus_mcg": "50",
            "effect_hours": "6",
        },
    )
    summary = clinician.call("GET", f"/api/trials/{trial_id}/summary/")

    assert trial.status_code == 201
    assert step.status_code == 201
    assert verdict.status_code == 200
    assert verdict.json()["verdict"] == "positive"
    assert [s["id"] for s in verdict.json()["steps"]] == [step_id]
    assert len(verdict.json()["assessments"]) == 2
    assert summary.status_code == 200
    assert summary.json()["suggested_starting_dose_mcg"] == "100.00"
    assert summary.json()["best_mas_change"] == "-1.250"
    assert [c["mas_mean_change"] for c in summary.json()["changes"]] == [None, "-1.250"]
    assert [c["penn_change"] for c in summary.json()["changes"]] == [None, -2]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"ashworth": {"hip_adductors_l": "5"}}, "ashworth"),
        ({"ashworth": {"neck": "1"}}, "ashworth"),
        ({"penn_score": 5}, "penn_score"),
        ({"hours_after": "-1"}, "hours_after"),
        ({"step": 10**30}, "step"),
    ],
)
def test_assessment_bad_input_names_the_field(world, client_for, body, field):
    base = {"assessed_at": "2025-03-03T08:45:00Z", "hours_after": "0"}

    response = client_for("clinician").call("POST", f"/api/trials/{world.a.trial.pk}/assessments/", {**base, **body})

    assert response.status_code == 400
    assert list(response.json()) == [field]


def test_an_assessment_that_scores_nothing_is_refused_like_the_form(world, client_for):
    body = {"assessed_at": "2025-03-03T08:45:00Z", "hours_after": "1", "ashworth": {}}

    response = client_for("clinician").call("POST", f"/api/trials/{world.a.trial.pk}/assessments/", body)

    assert (response.status_code, response.json()) == (
        400,
        {"ashworth": ["Score at least one muscle group or the Penn scale."]},
    )
    assert TrialAssessment.objects.filter(trial=world.a.trial, hours_after=1).count() == 0


def test_step_of_another_trial_is_refused(world, client_for):
    body = {"assessed_at": "2025-03-03T08:45:00Z", "hours_after": "1", "step": world.b.step.pk, "penn_score": 2}

    response = client_for("clinician").call("POST", f"/api/trials/{world.a.trial.pk}/assessments/", body)

    assert (response.status_code, list(response.json())) == (400, ["step"])


def test_positive_verdict_without_effective_bolus_names_it(world, client_for):
    response = client_for("clinician").call(
        "POST", f"/api/trials/{world.a.trial.pk}/verdict/", {"verdict": "positive", "positivity_rule": "clinician"}
    )

    assert (response.status_code, list(response.json())) == (400, ["effective_bolus_mcg"])
    assert ScreeningTrial.objects.get(pk=world.a.trial.pk).verdict == "pending"


def test_step_and_assessment_are_marked_in_error_not_deleted(world, client_for):
    clinician = client_for("clinician")
    trial = world.a.trial

    step = clinician.call(
        "POST", f"/api/trials/{trial.pk}/steps/{world.a.step.pk}/mark-entered-in-error/", {"reason": "Duplicate"}
    )
    assessment = clinician.call(
        "POST", f"/api/trials/{trial.pk}/assessments/{world.a.assessment.pk}/mark-entered-in-error/", {"reason": "Typo"}
    )
    other_trial = clinician.call(
        "POST", f"/api/trials/{world.b.trial.pk}/steps/{world.a.step.pk}/mark-entered-in-error/", {"reason": "x"}
    )
    detail = clinician.call("GET", f"/api/trials/{trial.pk}/").json()

    assert (step.status_code, assessment.status_code, other_trial.status_code) == (200, 200, 404)
    assert detail["steps"] == []
    assert [a["hours_after"] for a in detail["assessments"]] == ["0.00"]


# ---------------------------------------------------------------------------
# Never deleted; pagination; CSRF; docs; access log
# ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "path",
    [
        "/api/patients/{a.patient.pk}/",
        "/api/implants/{a.implant.pk}/",
        "/api/refill-visits/{a.visit.pk}/",
        "/api/appointments/{a.appointment.pk}/",
        "/api/dose-prescriptions/{a.dose.pk}/",
        "/api/trials/{a.trial.pk}/",
        "/api/drugs/{drug.pk}/",
    ],
)
def test_delete_answers_405_and_deletes_nothing(world, client_for, path):
    response = client_for("clinician").call("DELETE", path.format(a=world.a, drug=world.drug))

    assert response.status_code == 405
    assert "mark" in response.json()["detail"].lower() or response.json()["detail"] == 'Method "DELETE" not allowed.'
    assert Patient.objects.count() == 3
    assert Implant.objects.count() == 2


def test_mark_entered_in_error_needs_a_reason(world, client_for):
    response = client_for("nurse").call("POST", f"/api/patients/{world.b.patient.pk}/mark-entered-in-error/", {})
    blank = client_for("nurse").call(
        "POST", f"/api/patients/{world.b.patient.pk}/mark-entered-in-error/", {"reason": "   "}
    )

    assert (response.status_code, list(response.json())) == (400, ["reason"])
    assert (blank.status_code, list(blank.json())) == (400, ["reason"])
    assert not Patient.objects.get(pk=world.b.patient.pk).entered_in_error


def test_page_size_is_capped_at_200(world, client_for):
    Patient.objects.bulk_create(
        [
            Patient(mrn=f"BULK{i:04d}", given_name="G", family_name=f"F{i:04d}", date_of_birth=dt.date(1970, 1, 1))
            for i in range(205)
        ]
    )

    response = client_for("nurse").call("GET", "/api/patients/?page_size=1000")
    default = client_for("nurse").call("GET", "/api/patients/")

    assert response.json()["count"] == 208
    assert len(response.json()["results"]) == 200
    assert len(default.json()["results"]) == 50


@pytest.mark.parametrize("page", ["0", "99", "x"])
def test_a_page_that_does_not_exist_is_a_json_404(world, client_for, page):
    response = client_for("nurse").call("GET", f"/api/patients/?page={page}")

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"


@pytest.mark.parametrize(
    "path", ["/api/nothing-here/", "/api/patients/1/2/3/", "/api/patients/9999999999999999999999/"]
)
def test_unknown_api_paths_are_json_404s(world, client_for, path):
    response = client_for("nurse").call("GET", path)

    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}


def test_session_api_enforces_csrf_on_writes(world):
    client = JsonClient(enforce_csrf_checks=True)
    client.force_login(world.nurse)
    body = {"patient": world.a.patient.pk, "kind": "refill", "starts_at": "2025-03-25T10:00:00Z"}

    without = client.call("POST", "/api/appointments/", body)
    request = RequestFactory().get("/")
    token = get_token(request)
    client.cookies["csrftoken"] = request.META["CSRF_COOKIE"]
    with_token = client.call("POST", "/api/appointments/", body, HTTP_X_CSRFTOKEN=token)
    read = client.call("GET", "/api/appointments/")

    assert without.status_code == 403
    assert "CSRF" in without.json()["detail"]
    assert with_token.status_code == 201
    assert read.status_code == 200
    assert Appointment.objects.filter(kind="refill").count() == 1


def test_schema_and_docs_are_served_without_any_cdn(world, client_for):
    schema = client_for("anonymous").get("/api/schema/")
    docs = client_for("anonymous").get("/api/docs/")

    assert schema.status_code == 200
    assert b"/api/refill-forecast/" in schema.content
    assert docs.status_code == 200
    html = docs.content.decode()
    assert "swagger-ui" in html
    assert "cdn" not in html.lower()
    for line in html.splitlines():
        if "src=" in line or "href=" in line:
            assert "http://" not in line and "https://" not in line, line


def test_reads_of_patient_records_are_in_the_access_log(world, client_for):
    nurse = client_for("nurse")

    nurse.call("GET", f"/api/patients/{world.a.patient.pk}/")
    nurse.call("GET", f"/api/refill-visits/{world.b.visit.pk}/")
    nurse.call("GET", "/api/appointments/")
    nurse.call("GET", "/api/patients/999999/")

    rows = list(AccessLog.objects.order_by("id").values_list("user", "patient", "action", "resource", "detail"))
    assert rows == [
        (world.nurse.pk, world.a.patient.pk, "view", "api:patient-detail", f"patient {world.a.patient.pk}"),
        (world.nurse.pk, world.b.patient.pk, "view", "api:refill-visit-detail", f"refill-visit {world.b.visit.pk}"),
        (world.nurse.pk, world.a.patient.pk, "view", "api:appointment-list", "list appointment"),
        (world.nurse.pk, world.b.patient.pk, "view", "api:appointment-list", "list appointment"),
    ]


def test_patient_reading_own_record_is_logged_too(world, client_for):
    client_for("patient").call("GET", "/api/implants/")

    assert list(AccessLog.objects.values_list("user", "patient")) == [(world.a.user.pk, world.a.patient.pk)]


# ---------------------------------------------------------------------------
# Strict input: what the schema says, or a 400 naming what is wrong
# ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("?patinet=12", "patinet"),
        ("?status=", "status"),
        ("?page=", "page"),
        ("?page_size=", "page_size"),
        ("?discrepancy_flagged=yes", "discrepancy_flagged"),
        ("?page_size=0", "page_size"),
        ("?page_size=ten", "page_size"),
        ("?patient=0", "patient"),
        ("?patient=99999999999999999999", "patient"),
    ],
)
def test_unknown_or_invalid_query_parameters_are_named(world, client_for, query, name):
    path = "/api/refill-visits/" if "discrepancy" in query else "/api/appointments/"

    response = client_for("nurse").call("GET", path + query)

    assert response.status_code == 400
    assert list(response.json()) == [name]


def test_query_parameters_on_a_single_record_are_refused(world, client_for):
    response = client_for("nurse").call("GET", f"/api/patients/{world.a.patient.pk}/?status=deceased")

    assert (response.status_code, list(response.json())) == (400, ["status"])


@pytest.mark.parametrize(
    ("field", "value"),
    [("volume_ml", 20), ("volume_ml", 20.5), ("safety_margin_days", "5"), ("implant", "1"), ("refilled_on", 20250106)],
)
def test_json_types_are_the_documented_ones(world, client_for, field, value):
    response = client_for("nurse").call("POST", "/api/refill-forecast/", {**FORECAST_INPUT, field: value})

    assert (response.status_code, list(response.json())) == (400, [field])


def test_the_api_reads_json_only(world, client_for):
    response = client_for("nurse").post("/api/refill-forecast/", FORECAST_INPUT)  # form-encoded

    assert response.status_code == 415


def test_exception_handler_maps_domain_errors():
    from django.core.exceptions import ValidationError
    from django.db import IntegrityError
    from rest_framework.test import APIRequestFactory

    from core.api import exception_handler
    from core.records import HardDeleteForbidden
    from refills.services import BookingConflict

    context = {"request": APIRequestFactory().post("/api/x/"), "view": None}

    def answer(exc):
        response = exception_handler(exc, context)
        return response.status_code, response.data

    assert answer(ValidationError({"starts_at": "Too late.", "__all__": "No."})) == (
        400,
        {"starts_at": ["Too late."], "non_field_errors": ["No."]},
    )
    assert answer(ValidationError("Plain.")) == (400, {"non_field_errors": ["Plain."]})
    assert answer(BookingConflict("Taken.")) == (409, {"detail": "Taken.", "code": "booking_conflict"})
    assert answer(IntegrityError("unique"))[0] == 409
    assert answer(HardDeleteForbidden("no"))[0] == 405


def test_json_nested_too_deeply_is_a_400(world, client_for):
    response = client_for("nurse").generic(
        "POST", "/api/refill-forecast/", "[" * 200_000 + "]" * 200_000, content_type="application/json"
    )

    assert response.status_code == 400


def test_text_with_a_null_character_or_lone_surrogate_is_a_400(world, client_for):
    nurse = client_for("nurse")

    null = nurse.call("PATCH", f"/api/patients/{world.a.patient.pk}/", {"notes": "a\x00b"})
    surrogate = nurse.generic(
        "PATCH", f"/api/patients/{world.a.patient.pk}/", '{"notes": "a\\ud800b"}', content_type="application/json"
    )
    search = nurse.call("GET", "/api/patients/?search=a%00b")

    assert [(r.status_code, list(r.json())) for r in (null, surrogate, search)] == [
        (400, ["notes"]),
        (400, ["notes"]),
        (400, ["search"]),
    ]
