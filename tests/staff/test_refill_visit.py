import datetime as dt
from decimal import Decimal

import pytest
from django.urls import reverse

from refills.models import Appointment, ClinicSettings, RefillVisit
from refills.services import appointment_book
from tests import factories
from tests.helpers import REFILL_LOTS, SAFETY_CHECKLIST_ALL_DONE

from .conftest import at

pytestmark = pytest.mark.django_db


def form_data(**overrides) -> dict:
    data = {
        "performed_at": "2025-03-20T09:00",
        "actual_residual_ml": "5.2",
        "volume_added_ml": "20",
        "drug": str(factories.drug("2000").pk),
        "drug_lot": "LOT-77",
        "daily_dose_after_mcg": "400",
        "dosing_mode": "simple_continuous",
        "alarm_threshold_ml": "2.0",
        "battery_status": "ok",
        "post_fill_check": "passed",
        "bridge_bolus_mcg": "",
        "notes": "",
        **SAFETY_CHECKLIST_ALL_DONE,
        **REFILL_LOTS,
    }
    data.update(overrides)
    return data


def test_the_form_shows_the_expected_residual_and_current_values(nurse_client, refilled):
    response = nurse_client.get(reverse("staff:refill_visit_record", args=[refilled.patient_id]))
    html = response.content.decode()
    assert response.status_code == 200
    # 73 days at 0.2 mL/day since 20 mL on 6 Jan: 5.4 mL left on 20 Mar
    assert response.context["preview"].expected_residual_ml == Decimal("5.40")
    assert "5.40 mL" in html
    form = response.context["form"]
    assert form.initial["daily_dose_after_mcg"] == Decimal("400.00")
    assert form.initial["drug"] == factories.drug("2000")
    assert form.initial["volume_added_ml"] == Decimal("20.0")
    assert 'name="daily_dose_after_mcg" value="400"' in html and 'name="volume_added_ml" value="20"' in html
    # the actual residual is left for the nurse to measure, never pre-filled with the forecast
    assert 'name="actual_residual_ml"' in html and 'actual_residual_ml" value' not in html
    assert 'hx-post="{}"'.format(reverse("staff:refill_forecast", args=[refilled.patient_id])) in html


def test_the_live_forecast_fragment_has_the_dates_and_the_discrepancy_warning(nurse_client, refilled):
    url = reverse("staff:refill_forecast", args=[refilled.patient_id])
    response = nurse_client.post(url, form_data(actual_residual_ml="2.0"), HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in html  # a fragment for htmx
    assert "Residual discrepancy: -3.40 mL against the forecast" in html
    assert 'data-testid="alarm-on">Wed 18 Jun 2025' in html
    assert 'data-testid="empty-on">Sat 28 Jun 2025' in html
    assert 'data-testid="due-by">Fri 13 Jun 2025' in html
    assert 'id="expected-output"' in html and 'hx-swap-oob="true"' in html


def test_within_tolerance_there_is_no_warning(nurse_client, refilled):
    url = reverse("staff:refill_forecast", args=[refilled.patient_id])
    html = nurse_client.post(url, form_data(actual_residual_ml="4.0")).content.decode()
    assert "Residual within 2 mL of the forecast." in html
    assert "Residual discrepancy" not in html


@pytest.mark.parametrize(
    "overrides",
    [
        {"volume_added_ml": ""},
        {"volume_added_ml": "abc", "daily_dose_after_mcg": "-5"},
        {"volume_added_ml": "99"},  # more than the reservoir holds
        {"alarm_threshold_ml": "25"},
        {"performed_at": "not a date", "drug": "999999"},
    ],
)
def test_the_live_forecast_never_fails_on_half_typed_input(nurse_client, refilled, overrides):
    url = reverse("staff:refill_forecast", args=[refilled.patient_id])
    response = nurse_client.post(url, form_data(**overrides))
    assert response.status_code == 200
    assert "Enter the volume added, the drug and the daily dose" in response.content.decode()


def test_saving_the_visit_records_the_forecast_and_proposes_the_next_refill(nurse_client, nurse, refilled):
    # given a booked refill today
    booked = Appointment.objects.create(
        patient=refilled.patient,
        implant=refilled,
        kind="refill",
        starts_at=at(2025, 3, 20, 8),
        place="x",
        booked_by=nurse,
    )
    # when the nurse saves the visit with a residual far from the forecast
    response = nurse_client.post(
        reverse("staff:refill_visit_record", args=[refilled.patient_id]), form_data(actual_residual_ml="1.0")
    )
    # then
    visit = RefillVisit.objects.get(implant=refilled, drug_lot="LOT-77")
    assert response.status_code == 302
    assert response["Location"] == reverse("staff:refill_visit_done", args=[visit.pk])
    assert (visit.alarm_on, visit.empty_on, visit.due_by) == (
        dt.date(2025, 6, 18),
        dt.date(2025, 6, 28),
        dt.date(2025, 6, 13),
    )
    assert visit.discrepancy_flagged and visit.discrepancy_ml == Decimal("-4.40")
    assert visit.performed_by == nurse
    booked.refresh_from_db()
    assert booked.status == Appointment.Status.COMPLETED
    done = nurse_client.get(response["Location"])
    html = done.content.decode()
    assert "Residual discrepancy: -4.40 mL" in html
    # the next appointment is proposed in the new safe window (23 May – 13 Jun), latest first
    assert done.context["proposals"][0] == dt.date(2025, 6, 13)
    assert f'name="after_visit" value="{visit.pk}"' in html
    assert reverse("staff:wallet_card", args=[refilled.patient_id]) in html


def test_booking_from_the_visit_page_returns_to_it(nurse_client, nurse, refilled):
    nurse_client.post(reverse("staff:refill_visit_record", args=[refilled.patient_id]), form_data())
    visit = RefillVisit.objects.get(drug_lot="LOT-77")
    response = nurse_client.post(
        reverse("staff:appointment_book", args=[refilled.patient_id]),
        {"kind": "refill", "day": "2025-06-12", "time": "09:30", "after_visit": str(visit.pk)},
    )
    assert response["Location"] == reverse("staff:refill_visit_done", args=[visit.pk])
    html = nurse_client.get(response["Location"]).content.decode()
    assert "Booked for Thursday 12 June 2025, 09:30" in html


def test_bad_input_keeps_what_was_typed_and_saves_nothing(nurse_client, refilled):
    before = RefillVisit.objects.count()
    response = nurse_client.post(
        reverse("staff:refill_visit_record", args=[refilled.patient_id]),
        form_data(volume_added_ml="25", drug_lot="LOT-KEEP", notes="pump site clean"),
    )
    html = response.content.decode()
    assert response.status_code == 400
    assert response.context["form"].errors["volume_added_ml"] == ["The reservoir holds 20 mL at most."]
    assert 'value="LOT-KEEP"' in html and "pump site clean" in html
    assert RefillVisit.objects.count() == before


def test_empty_post_shows_required_fields(nurse_client, refilled):
    response = nurse_client.post(reverse("staff:refill_visit_record", args=[refilled.patient_id]), {})
    assert response.status_code == 400
    assert "This field is required." in response.content.decode()


def test_a_patient_without_an_active_pump_has_no_refill_form(nurse_client):
    patient = factories.PatientFactory()
    assert nurse_client.get(reverse("staff:refill_visit_record", args=[patient.pk])).status_code == 404


def test_the_wallet_card_has_everything_a_patient_needs(nurse_client, nurse, refilled):
    clinic = ClinicSettings.load()
    clinic.phone = "+44 20 7946 0999"
    clinic.save()
    appointment_book(patient=refilled.patient, kind="refill", starts_at=at(2025, 3, 31, 14), booked_by=nurse)
    html = nurse_client.get(reverse("staff:wallet_card", args=[refilled.patient_id])).content.decode()
    assert "Medtronic SynchroMed II 20 mL, serial " + refilled.serial_number in html
    assert "Baclofen intrathecal (Lioresal), 2000 mcg/mL" in html
    assert "400 mcg/day" in html
    assert "<dt>Pump alarm date</dt><dd>6 Apr 2025</dd>" in html
    assert "<dt>Next refill</dt><dd>booked Mon 31 Mar 2025, 14:00; due by 1 Apr 2025</dd>" in html
    assert "+44 20 7946 0999" in html  # the passport is read anywhere: international format
    assert "data-print" in html


def test_a_clinician_changes_the_dose_and_the_due_date_moves(clinician_client, clinician, refilled):
    url = reverse("staff:dose_change", args=[refilled.pk])
    assert "400 mcg/day" in clinician_client.get(url).content.decode()
    response = clinician_client.post(
        url,
        {
            "daily_dose_mcg": "500",
            "effective_at": "2025-03-20T09:00",
            "dosing_mode": "simple_continuous",
            # +25 %: beyond the clinic's +20 % titration limit, so the prescriber confirms it
            "titration_confirmed": "on",
            "reason": "Spasms",
        },
    )
    assert response.status_code == 302
    refilled.refresh_from_db()
    # 5.4 mL left on 20 Mar at 0.25 mL/day: alarm after 13 days (2 Apr), due by 28 Mar
    assert refilled.forecast_alarm_on == dt.date(2025, 4, 2)
    assert refilled.forecast_due_by == dt.date(2025, 3, 28)
    assert refilled.prescriptions.latest().prescribed_by == clinician


def test_a_bad_dose_change_is_a_form_error(clinician_client, refilled):
    url = reverse("staff:dose_change", args=[refilled.pk])
    response = clinician_client.post(
        url,
        {"daily_dose_mcg": "0", "effective_at": "2025-03-20T09:00", "dosing_mode": "simple_continuous", "reason": "x"},
    )
    assert response.status_code == 400
    assert response.context["form"].errors["daily_dose_mcg"] == ["The daily dose must be more than 0 mcg/day, not 0."]
    # before the last refill: the service's rule, on its field
    response = clinician_client.post(
        url,
        {
            "daily_dose_mcg": "450",
            "effective_at": "2025-01-01T09:00",
            "dosing_mode": "simple_continuous",
            "reason": "x",
        },
    )
    assert response.context["form"].errors["effective_at"] == [
        "The dose change is dated 2025-01-01 09:00, before the last refill (2025-01-06 10:00)."
    ]
