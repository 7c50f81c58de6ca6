"""Correct a record in one flow (issue 11, item 2b): marked entered in error with a reason, the
corrected one recorded through the normal service, the forecast recomputed; an impossible
correction is refused and nothing changes.

The clinic of tests/staff/conftest.py: Thursday 20 March 2025, a 20 mL SynchroMed II at
2000 mcg/mL and 400 mcg/day (0.2 mL/day), refilled on 6 January.
"""

import datetime as dt
from decimal import Decimal

import pytest
from django.urls import reverse

from audit.models import AccessLog
from pumps.models import DosePrescription, Implant
from pumps.services import implant_record_eri
from refills.models import Appointment, RefillVisit
from tests import factories
from tests.helpers import REFILL_LOTS, SAFETY_CHECKLIST_ALL_DONE, implant_register_filled, refill_record
from tests.staff.conftest import NOW, at

pytestmark = pytest.mark.django_db


def refill_post(**overrides) -> dict:
    data = {
        "performed_at": "2025-01-06T10:00",
        "actual_residual_ml": "2.0",
        "volume_added_ml": "20",
        "drug": str(factories.drug("2000").pk),
        "drug_lot": "LOT-R1",
        "daily_dose_after_mcg": "400",
        "dosing_mode": "simple_continuous",
        "alarm_threshold_ml": "2.0",
        "battery_status": "ok",
        "post_fill_check": "passed",
        **SAFETY_CHECKLIST_ALL_DONE,
        **REFILL_LOTS,
        "notes": "",
        "correction_reason": "Volume typed as 15 mL: 20 mL were added",
    }
    data.update(overrides)
    return data


@pytest.fixture
def wrong_volume(db, nurse, frozen):
    """Refilled on 6 January with 20 mL, typed as 15 mL: the forecast is 25 days too early."""
    implant = factories.ImplantFactory(implanted_on=dt.date(2024, 6, 3))
    booked_then = factories.AppointmentFactory(implant=implant, starts_at=at(2025, 1, 6, 9), booked_by=nurse)
    visit = refill_record(implant=implant, by=nurse, at=at(2025, 1, 6), added="15")
    booked_then.refresh_from_db()
    assert booked_then.visit == visit
    next_booking = factories.AppointmentFactory(implant=implant, starts_at=at(2025, 3, 27), booked_by=nurse)
    implant.refresh_from_db()
    return implant, visit, booked_then, next_booking


def _forecast(implant) -> tuple:
    implant.refresh_from_db()
    return implant.forecast_due_by, implant.forecast_alarm_on, implant.forecast_empty_on


def test_the_correct_link_opens_the_refill_form_filled_with_its_values(nurse_client, wrong_volume):
    implant, visit, *_ = wrong_volume
    url = reverse("staff:refill_visit_correct", args=[visit.pk])
    page = nurse_client.get(reverse("staff:patient_detail", args=[implant.patient_id])).content.decode()
    assert url in page
    response = nurse_client.get(url)
    assert response.status_code == 200
    form = response.context["form"]
    assert (str(form["volume_added_ml"].value()), form["drug_lot"].value()) == ("15", "LOT-R1")
    assert "Correcting the refill of 6 Jan 2025 10:00" in response.content.decode()


def test_a_refill_with_a_wrong_volume_is_corrected_and_the_forecast_moves(nurse_client, nurse, wrong_volume):
    implant, visit, booked_then, next_booking = wrong_volume
    assert _forecast(implant) == (dt.date(2025, 3, 7), dt.date(2025, 3, 12), dt.date(2025, 3, 22))
    # when
    response = nurse_client.post(reverse("staff:refill_visit_correct", args=[visit.pk]), refill_post())
    # then
    assert response.status_code == 302
    assert response["Location"] == reverse("staff:patient_detail", args=[implant.patient_id])
    visit.refresh_from_db()
    assert visit.entered_in_error and visit.entered_in_error_by == nurse
    assert visit.entered_in_error_reason == "Volume typed as 15 mL: 20 mL were added"
    corrected = RefillVisit.objects.valid().get(implant=implant)
    assert (corrected.volume_added_ml, corrected.performed_by, corrected.performed_at) == (
        Decimal("20.00"),
        nurse,
        at(2025, 1, 6),
    )
    # docs/domain.md's worked example: due by 1 April, alarm 6 April, empty 16 April
    assert _forecast(implant) == (dt.date(2025, 4, 1), dt.date(2025, 4, 6), dt.date(2025, 4, 16))
    booked_then.refresh_from_db()
    next_booking.refresh_from_db()
    assert (booked_then.status, booked_then.visit) == (Appointment.Status.COMPLETED, corrected)
    assert next_booking.status == Appointment.Status.BOOKED  # the next refill is still to come
    assert AccessLog.objects.filter(action=AccessLog.Action.CHANGE, detail=f"refill {visit.pk} corrected").exists()
    # the wrong record stays on the page, struck through with its reason; the corrected one can be corrected
    page = nurse_client.get(response["Location"]).content.decode()
    assert "<del>Refill</del>" in page and "Why: Volume typed as 15 mL: 20 mL were added" in page
    assert reverse("staff:refill_visit_correct", args=[corrected.pk]) in page
    assert reverse("staff:refill_visit_correct", args=[visit.pk]) not in page
    assert "Refill now due by 1 Apr 2025" in page


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"volume_added_ml": "25"}, "volume_added_ml"),  # more than the 20 mL reservoir
        ({"performed_at": "2025-03-21T10:00"}, "performed_at"),  # tomorrow
        ({"performed_at": "2024-05-01T10:00"}, "performed_at"),  # before the implant
        ({"correction_reason": " "}, "correction_reason"),
        ({"actual_residual_ml": "21"}, "actual_residual_ml"),  # more than the reservoir came back
    ],
)
def test_an_impossible_correction_is_refused_and_nothing_changes(nurse_client, wrong_volume, overrides, field):
    implant, visit, booked_then, _ = wrong_volume
    before = _forecast(implant)
    response = nurse_client.post(reverse("staff:refill_visit_correct", args=[visit.pk]), refill_post(**overrides))
    assert response.status_code == 400
    assert field in response.context["form"].errors
    visit.refresh_from_db()
    booked_then.refresh_from_db()
    assert not visit.entered_in_error
    assert list(RefillVisit.objects.filter(implant=implant)) == [visit]
    assert booked_then.visit == visit
    assert _forecast(implant) == before


def test_a_refill_that_changed_the_dose_takes_its_dose_with_it(nurse_client, nurse, clinician, frozen):
    implant = factories.ImplantFactory(implanted_on=dt.date(2024, 6, 3))
    refill_record(implant=implant, by=nurse, at=at(2024, 12, 1))
    wrong = refill_record(implant=implant, by=nurse, at=at(2025, 1, 6), dose="450", prescriber=clinician)
    set_here = DosePrescription.objects.valid().get(implant=implant, effective_at=at(2025, 1, 6))
    response = nurse_client.post(
        reverse("staff:refill_visit_correct", args=[wrong.pk]),
        refill_post(correction_reason="The dose was not changed"),
    )
    assert response.status_code == 302
    set_here.refresh_from_db()
    assert set_here.entered_in_error
    corrected = RefillVisit.objects.valid().get(implant=implant, performed_at=at(2025, 1, 6))
    assert corrected.daily_dose_after_mcg == Decimal("400.00") and corrected.daily_dose_before_mcg == Decimal("400.00")


def test_only_a_nurse_corrects_a_refill_and_only_a_clinician_a_dose(clinician_client, wrong_volume, client, nurse):
    implant, visit, *_ = wrong_volume
    assert (
        clinician_client.post(reverse("staff:refill_visit_correct", args=[visit.pk]), refill_post()).status_code == 403
    )
    dose = implant.prescriptions.valid().first() or factories.DosePrescriptionFactory(implant=implant)
    client.force_login(nurse)
    assert client.get(reverse("staff:dose_correct", args=[dose.pk])).status_code == 403
    visit.refresh_from_db()
    assert not visit.entered_in_error


def _dose_post(**overrides) -> dict:
    data = {
        "daily_dose_mcg": "450",
        "effective_at": "2025-03-18T09:00",
        "dosing_mode": "simple_continuous",
        "reason": "Spasms at night",
        "correction_reason": "Typed 500 for 450",
    }
    data.update(overrides)
    return data


@pytest.fixture
def wrong_dose(refilled, clinician):
    from refills.services import dose_change_record

    dose = dose_change_record(
        implant=refilled,
        daily_dose_mcg=Decimal("500"),
        effective_at=at(2025, 3, 18, 9),
        prescribed_by=clinician,
        titration_confirmed=True,
        reason="Spasms at night",
        now=NOW,
    )
    refilled.refresh_from_db()
    return refilled, dose


def test_a_dose_change_is_corrected_and_the_forecast_moves(clinician_client, clinician, wrong_dose):
    implant, dose = wrong_dose
    before = _forecast(implant)
    url = reverse("staff:dose_correct", args=[dose.pk])
    assert url in clinician_client.get(reverse("staff:patient_detail", args=[implant.patient_id])).content.decode()
    assert str(clinician_client.get(url).context["form"]["daily_dose_mcg"].value()) == "500"
    response = clinician_client.post(url, _dose_post())
    assert response.status_code == 302
    dose.refresh_from_db()
    assert dose.entered_in_error and dose.entered_in_error_reason == "Typed 500 for 450"
    corrected = DosePrescription.objects.valid().filter(implant=implant).latest()
    assert (corrected.daily_dose_mcg, corrected.prescribed_by) == (Decimal("450.00"), clinician)
    after = _forecast(implant)
    assert after != before and after[0] > before[0]  # a lower dose lasts longer


def test_an_impossible_dose_correction_changes_nothing(clinician_client, wrong_dose):
    implant, dose = wrong_dose
    before = _forecast(implant)
    # before the last refill (6 January): the dose change service's rule
    response = clinician_client.post(
        reverse("staff:dose_correct", args=[dose.pk]), _dose_post(effective_at="2025-01-01T09:00")
    )
    assert response.status_code == 400 and "effective_at" in response.context["form"].errors
    dose.refresh_from_db()
    assert not dose.entered_in_error
    assert DosePrescription.objects.valid().filter(implant=implant).latest() == dose
    assert _forecast(implant) == before


def test_a_dose_set_at_a_refill_is_corrected_through_its_refill(clinician_client, nurse, clinician, frozen):
    implant = factories.ImplantFactory(implanted_on=dt.date(2024, 6, 3))
    refill_record(implant=implant, by=nurse, at=at(2024, 12, 1))
    refill_record(implant=implant, by=nurse, at=at(2025, 1, 6), dose="450", prescriber=clinician)
    set_here = DosePrescription.objects.valid().get(implant=implant, effective_at=at(2025, 1, 6))
    response = clinician_client.post(reverse("staff:dose_correct", args=[set_here.pk]), _dose_post())
    assert response.status_code == 400
    assert "correct that refill instead" in response.content.decode()
    set_here.refresh_from_db()
    assert not set_here.entered_in_error


def test_an_eri_date_is_corrected_or_removed_with_the_reason_in_history(clinician_client, clinician, refilled):
    implant_record_eri(implant=refilled, eri_on=dt.date(2025, 3, 1), by=clinician, now=NOW)
    url = reverse("staff:implant_eri_correct", args=[refilled.pk])
    assert url in clinician_client.get(reverse("staff:patient_detail", args=[refilled.patient_id])).content.decode()
    response = clinician_client.post(url, {"eri_on": "2025-03-10", "correction_reason": "Read the wrong log line"})
    assert response.status_code == 302
    refilled.refresh_from_db()
    assert refilled.eri_reported_on == dt.date(2025, 3, 10)
    assert refilled.history.latest().history_change_reason == "ERI date corrected: Read the wrong log line"
    # a date that cannot be true changes nothing
    response = clinician_client.post(url, {"eri_on": "2025-03-25", "correction_reason": "x"})
    assert response.status_code == 400 and "eri_on" in response.context["form"].errors
    refilled.refresh_from_db()
    assert refilled.eri_reported_on == dt.date(2025, 3, 10)
    # no ERI at all: the alarm was another pump's
    response = clinician_client.post(url, {"eri_on": "", "correction_reason": "Another patient's pump"})
    assert response.status_code == 302
    refilled.refresh_from_db()
    assert refilled.eri_reported_on is None
    assert refilled.history.latest().history_change_reason == "ERI entered in error: Another patient's pump"
    assert refilled.history.filter(eri_reported_on=dt.date(2025, 3, 1)).exists()


def _implant_post(implant, **overrides) -> dict:
    data = {
        "pump_model": str(implant.pump_model_id),
        "serial_number": "NGP999",
        "implanted_on": "2025-03-18",
        "catheter_model": "8781",
        "catheter_tip_level": "T10",
        "surgeon": "Ms A. Surgeon",
        "hospital": "City Hospital",
        "fill_drug": str(factories.drug("2000").pk),
        "fill_volume_ml": "20",
        "fill_drug_lot": "LOT-THEATRE",
        "fill_alarm_threshold_ml": "2.0",
        "starting_daily_dose_mcg": "400",
        "correction_reason": "Serial typed wrong",
    }
    data.update(overrides)
    return data


def test_a_pump_registered_with_a_wrong_serial_is_corrected_before_its_first_refill(
    clinician_client, clinician, nurse, frozen
):
    implant = implant_register_filled(implanted_on=dt.date(2025, 3, 18), recorded_by=clinician, now=NOW)
    booked = factories.AppointmentFactory(implant=implant, starts_at=at(2025, 5, 20), booked_by=nurse)
    url = reverse("staff:implant_correct", args=[implant.pk])
    assert clinician_client.get(url).context["form"]["serial_number"].value() == implant.serial_number
    response = clinician_client.post(url, _implant_post(implant))
    assert response.status_code == 302
    implant.refresh_from_db()
    assert implant.entered_in_error and implant.entered_in_error_reason == "Serial typed wrong"
    corrected = Implant.objects.valid().get(patient=implant.patient)
    assert corrected.serial_number == "NGP999" and corrected.forecast_due_by is not None
    booked.refresh_from_db()
    assert booked.implant == corrected and booked.status == Appointment.Status.BOOKED
    page = clinician_client.get(response["Location"]).content.decode()
    assert "<del>Pump implanted" in page


def test_a_pump_with_refills_is_not_corrected_here(clinician_client, refilled):
    response = clinician_client.post(reverse("staff:implant_correct", args=[refilled.pk]), _implant_post(refilled))
    assert response.status_code == 400
    assert "already has refills recorded" in response.content.decode()
    refilled.refresh_from_db()
    assert not refilled.entered_in_error
