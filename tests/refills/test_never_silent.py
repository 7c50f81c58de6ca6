"""Every way a pump's record enters, changes or goes wrong, through the services, with exact dates.

The worked example of docs/domain.md runs through them: a 20 mL SynchroMed II filled with 2000 mcg/mL
at 400 mcg/day on 6 Jan 2025 → alarm 6 Apr, empty 16 Apr, due by 1 Apr (5-day margin).
"""

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.urls import reverse

from pumps.models import DosePrescription, Implant
from pumps.selectors import dose_get_in_force, dose_get_planned
from refills import services
from refills.alerts.scan import alerts_scan
from refills.forecasting import Problem
from refills.models import Alert, Appointment, ClinicSettings, RefillVisit, Reminder
from refills.reminders.planning import reminders_scan
from refills.worklist import worklist_get
from tests import factories
from tests.helpers import implant_register_filled, refill_record

pytestmark = pytest.mark.django_db

TZ = ZoneInfo("Europe/London")


def local(y, m, d, h=10, minute=0) -> dt.datetime:
    return dt.datetime(y, m, d, h, minute, tzinfo=TZ)


def dates(implant: Implant) -> tuple:
    implant.refresh_from_db()
    return implant.forecast_due_by, implant.forecast_alarm_on, implant.forecast_empty_on


@pytest.fixture
def clinician(db):
    return factories.ClinicianFactory()


@pytest.fixture
def nurse(db):
    return factories.NurseFactory()


@pytest.fixture
def pump(clinician):
    return implant_register_filled(implanted_on=dt.date(2025, 1, 6), recorded_by=clinician)


# --- New and replaced pumps -------------------------------------------------------------------
def test_a_new_pump_has_a_forecast_from_its_theatre_fill(pump):
    assert dates(pump) == (dt.date(2025, 4, 1), dt.date(2025, 4, 6), dt.date(2025, 4, 16))
    assert pump.forecast_problem == ""
    rows = worklist_get(today=dt.date(2025, 3, 20)).rows
    assert [row.implant.pk for row in rows] == [pump.pk]


def test_a_pump_registered_without_its_fill_is_urgent_at_the_top_of_the_worklist(clinician):
    implant = services.implant_register_with_fill(
        patient=factories.PatientFactory(),
        recorded_by=clinician,
        pump_model=factories.pump_model(),
        serial_number="NGP-NOFILL",
        implanted_on=dt.date(2025, 1, 6),
        surgeon="Ms A. Surgeon",
        hospital="City Hospital",
        catheter_tip_level="T10",
    )
    assert dates(implant) == (None, None, None)
    assert implant.forecast_problem == Problem.FILL_NOT_RECORDED
    worklist = worklist_get(today=dt.date(2025, 1, 7))
    assert [row.implant.pk for row in worklist.no_forecast] == [implant.pk]
    assert worklist.no_forecast[0].problem == "Fill not recorded"

    alerts_scan(now=local(2025, 1, 7, 9))
    alert = Alert.objects.get(kind=Alert.Kind.NO_FORECAST)
    assert (alert.implant_id, alert.severity, alert.resolved_at) == (implant.pk, Alert.Severity.URGENT, None)


def test_the_theatre_fill_can_be_recorded_after_registration_and_ends_the_urgent_state(clinician, nurse):
    implant = services.implant_register_with_fill(
        patient=factories.PatientFactory(),
        recorded_by=clinician,
        pump_model=factories.pump_model(),
        serial_number="NGP-LATEFILL",
        implanted_on=dt.date(2025, 1, 6),
        surgeon="Ms A. Surgeon",
        hospital="City Hospital",
        catheter_tip_level="T10",
    )
    fill = {
        "fill_drug": factories.drug("2000"),
        "fill_volume_ml": Decimal("20"),
        "fill_drug_lot": "LOT-T",
        "starting_daily_dose_mcg": Decimal("400"),
    }
    with pytest.raises(ValidationError) as error:
        services.implant_fill_record(implant=implant, recorded_by=nurse, **fill)
    assert "recorded_by" in error.value.message_dict
    services.implant_fill_record(implant=implant, recorded_by=clinician, **fill)
    assert dates(implant) == (dt.date(2025, 4, 1), dt.date(2025, 4, 6), dt.date(2025, 4, 16))
    assert implant.forecast_problem == ""
    with pytest.raises(ValidationError) as error:
        services.implant_fill_record(implant=implant, recorded_by=clinician, **fill)
    assert "already recorded" in error.value.message_dict["implant"][0]


def test_replacing_a_pump_closes_the_old_schedule_and_starts_the_new_forecast(pump, clinician, nurse):
    with time_machine.travel(local(2025, 1, 20), tick=False):
        booked = services.appointment_book(
            patient=pump.patient, implant=pump, kind="refill", starts_at=local(2025, 3, 27, 10), booked_by=nurse
        )
        reminders_scan(now=local(2025, 1, 20))
    assert Reminder.objects.filter(appointment=booked, status=Reminder.Status.PENDING).count() > 0

    with time_machine.travel(local(2025, 2, 1, 16), tick=False):
        new = services.implant_replace(
            implant=pump,
            explanted_on=dt.date(2025, 2, 1),
            reason="Catheter revision with pump change",
            recorded_by=clinician,
            pump_model=factories.pump_model(),
            serial_number="NGP-NEW-1",
            surgeon="Ms A. Surgeon",
            hospital="City Hospital",
            catheter_tip_level="T10",
            fill_drug=factories.drug("2000"),
            fill_volume_ml=Decimal("20"),
            fill_drug_lot="LOT-THEATRE",
            starting_daily_dose_mcg=Decimal("400"),
        )
    pump.refresh_from_db()
    booked.refresh_from_db()
    assert pump.explanted_on == dt.date(2025, 2, 1)
    assert dates(pump) == (None, None, None)
    assert booked.status == Appointment.Status.CANCELLED
    assert "explanted on 1 Feb 2025" in booked.cancel_reason
    assert Reminder.objects.filter(appointment=booked, status=Reminder.Status.PENDING).count() == 0
    assert dates(new) == (dt.date(2025, 4, 27), dt.date(2025, 5, 2), dt.date(2025, 5, 12))
    assert new.patient_id == pump.patient_id


def test_a_replacement_refused_half_way_changes_nothing(pump, clinician):
    with pytest.raises(ValidationError) as error:
        services.implant_replace(
            implant=pump,
            explanted_on=dt.date(2025, 2, 1),
            reason="Battery",
            recorded_by=clinician,
            pump_model=factories.pump_model(),
            serial_number="NGP-NEW-2",
            surgeon="S",
            hospital="H",
            catheter_tip_level="T10",
            fill_drug=factories.drug("2000"),
            fill_volume_ml=Decimal("50"),  # more than the 20 mL reservoir
            fill_drug_lot="L",
            starting_daily_dose_mcg=Decimal("400"),
        )
    assert "fill_volume_ml" in error.value.message_dict
    pump.refresh_from_db()
    assert pump.explanted_on is None
    assert Implant.objects.filter(patient=pump.patient).count() == 1


# --- Dose changes -----------------------------------------------------------------------------
def test_a_future_dose_change_counts_from_its_date_and_is_shown_as_planned(pump, clinician):
    with time_machine.travel(local(2025, 1, 20), tick=False):
        services.dose_change_record(
            implant=pump,
            daily_dose_mcg=Decimal("800"),
            effective_at=local(2025, 3, 1, 0),
            prescribed_by=clinician,
            titration_confirmed=True,
            reason="Planned rise after the review",
        )
    # 54 days at 0.2 mL/day, then 0.4: alarm 19 Mar, not the change date nor 6 Apr.
    assert dates(pump) == (dt.date(2025, 3, 14), dt.date(2025, 3, 19), dt.date(2025, 3, 24))
    now = local(2025, 1, 20)
    assert dose_get_in_force(implant=pump, at=now).daily_dose_mcg == Decimal("400")
    assert dose_get_planned(implant=pump, now=now).daily_dose_mcg == Decimal("800")
    # A later recompute from the whole history agrees with what was stored.
    services.forecasts_recompute()
    assert dates(pump) == (dt.date(2025, 3, 14), dt.date(2025, 3, 19), dt.date(2025, 3, 24))


def test_the_patient_page_and_wallet_card_show_the_dose_in_force_and_the_planned_one(pump, clinician, client):
    with time_machine.travel(local(2025, 1, 20), tick=False):
        services.dose_change_record(
            implant=pump,
            daily_dose_mcg=Decimal("440"),
            effective_at=local(2025, 2, 10, 9),
            prescribed_by=clinician,
            reason="Rise",
        )
        client.force_login(clinician)
        page = client.get(reverse("staff:patient_detail", args=[pump.patient_id])).content.decode()
        card = client.get(reverse("staff:wallet_card", args=[pump.patient_id])).content.decode()
    assert "400 mcg/day" in page and "Planned:</strong> 440 mcg/day from 10 Feb 2025 09:00" in page
    assert "400 mcg/day" in card and "planned: 440 mcg/day from 10 Feb 2025" in card


def test_a_reduction_late_in_the_evening_runs_at_the_old_rate_until_then(pump, clinician):
    with time_machine.travel(local(2025, 4, 5, 22, 30), tick=False):
        services.dose_change_record(
            implant=pump,
            daily_dose_mcg=Decimal("200"),
            effective_at=local(2025, 4, 5, 22),
            prescribed_by=clinician,
            titration_confirmed=True,
            reason="Drowsy",
        )
    # 2.02 mL left at 22:00 on 5 Apr: the alarm still comes on the 6th (from the start of the day: the 7th).
    assert dates(pump)[1] == dt.date(2025, 4, 6)


def test_a_flex_schedule_is_summed_over_the_day(pump, clinician):
    steps = [
        {"start": "00:00", "mcg_per_hour": "15"},
        {"start": "07:00", "mcg_per_hour": "20"},
        {"start": "22:00", "mcg_per_hour": "15"},
    ]
    with time_machine.travel(local(2025, 2, 4), tick=False):
        prescription = services.dose_change_record(
            implant=pump,
            daily_dose_mcg=None,
            dosing_mode=DosePrescription.Mode.FLEX,
            schedule=steps,
            effective_at=local(2025, 2, 5, 0),
            prescribed_by=clinician,
            reason="More at daytime",
        )
    assert prescription.daily_dose_mcg == Decimal("435")  # 7 h × 15 + 15 h × 20 + 2 h × 15
    assert dates(pump) == (dt.date(2025, 3, 27), dt.date(2025, 4, 1), dt.date(2025, 4, 10))


def test_a_flex_schedule_that_does_not_cover_the_day_is_refused(pump, clinician):
    with time_machine.travel(local(2025, 2, 4), tick=False), pytest.raises(ValidationError) as error:
        services.dose_change_record(
            implant=pump,
            daily_dose_mcg=None,
            dosing_mode=DosePrescription.Mode.FLEX,
            schedule=[{"start": "06:00", "mcg_per_hour": "20"}],
            effective_at=local(2025, 2, 5, 0),
            prescribed_by=clinician,
        )
    assert "00:00" in error.value.message_dict["schedule"][0]
    assert dates(pump) == (dt.date(2025, 4, 1), dt.date(2025, 4, 6), dt.date(2025, 4, 16))


def test_prometra_patient_boluses_count_at_their_daily_maximum(clinician):
    implant = implant_register_filled(
        pump=("Prometra II", "20"), implanted_on=dt.date(2025, 1, 6), dose="300", recorded_by=clinician
    )
    assert dates(implant)[1] == dt.date(2025, 4, 29)  # 17 mL at 0.15 mL/day
    with time_machine.travel(local(2025, 1, 6, 12), tick=False):
        services.dose_change_record(
            implant=implant,
            daily_dose_mcg=Decimal("300"),
            patient_bolus_mcg=Decimal("20"),
            patient_boluses_per_day=4,
            effective_at=local(2025, 1, 6, 9),
            prescribed_by=clinician,
            reason="PTC enabled",
        )
    # Worst-case day 300 + 4 × 20 = 380 mcg → 0.19 mL/day: 89 days to the 3 mL alarm.
    assert dates(implant) == (dt.date(2025, 3, 31), dt.date(2025, 4, 5), dt.date(2025, 4, 21))


def test_patient_boluses_are_refused_on_a_pump_that_has_none(pump, clinician):
    with time_machine.travel(local(2025, 1, 20), tick=False), pytest.raises(ValidationError) as error:
        services.dose_change_record(
            implant=pump,
            daily_dose_mcg=Decimal("400"),
            patient_bolus_mcg=Decimal("20"),
            patient_boluses_per_day=4,
            effective_at=local(2025, 1, 21),
            prescribed_by=clinician,
        )
    assert "patient_bolus_mcg" in error.value.message_dict


# --- Constant flow ----------------------------------------------------------------------------
def test_a_codman_concentration_change_keeps_the_flow_and_changes_the_dose(clinician, nurse):
    implant = implant_register_filled(
        pump=("Codman 3000", "30"), concentration="500", dose=None, implanted_on=dt.date(2025, 1, 6)
    )
    assert dates(implant) == (dt.date(2025, 1, 29), dt.date(2025, 2, 3), dt.date(2025, 2, 5))
    assert dose_get_in_force(implant=implant, at=local(2025, 1, 7)).daily_dose_mcg == Decimal("500.00")
    with time_machine.travel(local(2025, 1, 27, 11), tick=False):
        # The dose field left at the old 500: the forecast follows the 1 mL/day flow, not 500 ÷ 1000.
        visit = refill_record(
            implant=implant,
            by=nurse,
            at=local(2025, 1, 27, 10),
            concentration="1000",
            dose="500",
            added="30",
            prescriber=clinician,
            titration_confirmed=True,
        )
    assert visit.daily_dose_after_mcg == Decimal("1000.00")
    assert dates(implant) == (dt.date(2025, 2, 19), dt.date(2025, 2, 24), dt.date(2025, 2, 26))


def test_a_dose_change_between_refills_is_refused_on_a_constant_flow_pump(clinician):
    implant = implant_register_filled(pump=("Codman 3000", "30"), concentration="500", dose=None)
    with pytest.raises(ValidationError) as error:
        services.dose_change_record(
            implant=implant, daily_dose_mcg=Decimal("600"), effective_at=local(2025, 1, 7), prescribed_by=clinician
        )
    assert "constant flow" in error.value.message_dict["daily_dose_mcg"][0]


# --- Entries that cannot be true --------------------------------------------------------------
@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"at": local(2026, 1, 5)}, "performed_at", "in the future"),
        ({"at": local(1899, 12, 31)}, "performed_at", "before"),
        ({"at": local(2024, 12, 1)}, "performed_at", "before the implant"),
        ({"dose": "99999"}, "daily_dose_after_mcg", "above the 2000 mcg/day limit"),
        ({"dose": "4000"}, "daily_dose_after_mcg", "above the 2000 mcg/day limit"),  # a tenfold typo of 400
        ({"added": "25"}, "volume_added_ml", "20 mL at most"),
        ({"alarm_threshold_ml": Decimal("20")}, "alarm_threshold_ml", "outside what this pump can be set to"),
    ],
)
def test_an_impossible_refill_is_refused_with_its_field_and_nothing_is_saved(pump, nurse, changes, field, words):
    at = changes.pop("at", local(2025, 3, 30))
    with time_machine.travel(local(2025, 3, 31), tick=False), pytest.raises(ValidationError) as error:
        refill_record(implant=pump, by=nurse, at=at, **changes)
    assert words in " ".join(error.value.message_dict[field])
    assert RefillVisit.objects.count() == 0
    assert dates(pump) == (dt.date(2025, 4, 1), dt.date(2025, 4, 6), dt.date(2025, 4, 16))


def test_a_nurse_refills_at_the_prescribed_dose_and_a_change_names_the_prescriber(pump, nurse, clinician):
    with time_machine.travel(local(2025, 3, 31), tick=False):
        with pytest.raises(ValidationError) as error:
            refill_record(implant=pump, by=nurse, at=local(2025, 3, 30), dose="440")
        assert "clinician who prescribed it" in error.value.message_dict["prescriber"][0]
        with pytest.raises(ValidationError):
            refill_record(
                implant=pump, by=nurse, at=local(2025, 3, 30), concentration="1000", dose="400"
            )  # the concentration is a change too
        assert RefillVisit.objects.count() == 0
        same = refill_record(implant=pump, by=nurse, at=local(2025, 3, 30))
        assert same.prescriber is None
        changed = refill_record(implant=pump, by=nurse, at=local(2025, 3, 30, 15), dose="440", prescriber=clinician)
    assert changed.prescriber == clinician
    assert DosePrescription.objects.filter(implant=pump, prescribed_by=clinician, daily_dose_mcg=440).count() == 1


def test_a_large_titration_step_needs_the_prescribers_confirmation(pump, clinician):
    with time_machine.travel(local(2025, 2, 1), tick=False):
        with pytest.raises(ValidationError) as error:
            services.dose_change_record(
                implant=pump, daily_dose_mcg=Decimal("600"), effective_at=local(2025, 2, 2), prescribed_by=clinician
            )
        assert "+20 % limit" in error.value.message_dict["daily_dose_mcg"][0]
        assert DosePrescription.objects.filter(implant=pump).count() == 1
        services.dose_change_record(
            implant=pump,
            daily_dose_mcg=Decimal("600"),
            effective_at=local(2025, 2, 2),
            prescribed_by=clinician,
            titration_confirmed=True,
        )
    assert DosePrescription.objects.filter(implant=pump, titration_confirmed=True).count() == 1


@pytest.mark.parametrize(
    ("effective_at", "words"),
    [(local(2027, 2, 1), "more than 365 days ahead"), (local(2024, 12, 1), "before the implant")],
)
def test_a_dose_change_too_far_ahead_or_before_the_implant_is_refused(pump, clinician, effective_at, words):
    with time_machine.travel(local(2025, 2, 1), tick=False), pytest.raises(ValidationError) as error:
        services.dose_change_record(
            implant=pump, daily_dose_mcg=Decimal("420"), effective_at=effective_at, prescribed_by=clinician
        )
    assert words in error.value.message_dict["effective_at"][0]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"implanted_on": dt.date(2031, 1, 1)}, "implanted_on"),
        ({"dose": "99999"}, "starting_daily_dose_mcg"),
        ({"alarm": "20"}, "fill_alarm_threshold_ml"),
        ({"volume": "45"}, "fill_volume_ml"),
    ],
)
def test_an_impossible_implant_is_refused_with_its_field(clinician, fields, field):
    with time_machine.travel(local(2025, 2, 1), tick=False), pytest.raises(ValidationError) as error:
        implant_register_filled(recorded_by=clinician, **fields)
    assert field in error.value.message_dict
    assert Implant.objects.count() == 0


def test_an_eri_or_explant_in_the_future_is_refused(pump, clinician):
    from pumps.services import implant_record_eri

    with time_machine.travel(local(2025, 2, 1), tick=False):
        with pytest.raises(ValidationError) as error:
            implant_record_eri(implant=pump, eri_on=dt.date(9999, 12, 1), by=clinician)
        assert "eri_reported_on" in error.value.message_dict
        with pytest.raises(ValidationError) as error:
            services.implant_explant_record(implant=pump, explanted_on=dt.date(2025, 3, 1), reason="x", by=clinician)
        assert "explanted_on" in error.value.message_dict
    pump.refresh_from_db()
    assert (pump.eri_reported_on, pump.explanted_on) == (None, None)


# --- Emptying, late refills, settings ---------------------------------------------------------
def test_a_pump_emptied_for_mri_is_urgent_until_it_is_refilled(pump, nurse):
    with time_machine.travel(local(2025, 2, 1, 9, 30), tick=False):
        services.reservoir_empty_record(implant=pump, emptied_at=local(2025, 2, 1, 9), recorded_by=nurse)
    assert dates(pump) == (None, None, None)
    assert pump.forecast_problem == Problem.RESERVOIR_EMPTIED
    alerts_scan(now=local(2025, 2, 1, 10))
    assert Alert.objects.filter(kind=Alert.Kind.NO_FORECAST, resolved_at__isnull=True).count() == 1

    with time_machine.travel(local(2025, 2, 1, 16), tick=False):
        visit = refill_record(implant=pump, by=nurse, at=local(2025, 2, 1, 15), residual="0")
    # Nothing was left to aspirate after the emptying: no discrepancy.
    assert (visit.expected_residual_ml, visit.discrepancy_flagged) == (Decimal("0.00"), False)
    assert dates(pump) == (dt.date(2025, 4, 27), dt.date(2025, 5, 2), dt.date(2025, 5, 12))
    alerts_scan(now=local(2025, 2, 1, 17))
    assert Alert.objects.filter(kind=Alert.Kind.NO_FORECAST, resolved_at__isnull=True).count() == 0


def test_a_refill_after_the_empty_date_is_flagged_and_escalated(pump, nurse):
    with time_machine.travel(local(2025, 4, 20, 12), tick=False):
        visit = refill_record(implant=pump, by=nurse, at=local(2025, 4, 20, 11), residual="0")
    assert visit.after_empty_date is True
    alerts_scan(now=local(2025, 4, 20, 13))
    alert = Alert.objects.get(kind=Alert.Kind.REFILL_AFTER_EMPTY)
    assert (alert.visit_id, alert.severity, alert.audience) == (visit.pk, "urgent", "clinicians")


def test_a_refill_on_the_empty_date_itself_is_not_after_it(pump, nurse):
    with time_machine.travel(local(2025, 4, 16, 12), tick=False):
        assert refill_record(implant=pump, by=nurse, at=local(2025, 4, 16, 11), residual="0").after_empty_date is False


def test_a_change_of_safety_margin_moves_every_due_date(pump, clinician):
    other = implant_register_filled(implanted_on=dt.date(2025, 2, 1), recorded_by=clinician)
    clinic = ClinicSettings.load()
    clinic.safety_margin_days = 7
    clinic.save()
    assert services.forecasts_recompute_after_catalogue_change(record=clinic) == 2
    assert dates(pump)[0] == dt.date(2025, 3, 30)
    assert dates(other)[0] == dt.date(2025, 4, 25)


def test_a_stability_cap_added_to_the_drug_caps_its_pumps(pump):
    drug = factories.drug("2000")
    drug.max_interval_days = 60
    drug.save()
    services.forecasts_recompute_after_catalogue_change(record=drug)
    assert dates(pump)[0] == dt.date(2025, 3, 7)  # 6 Jan + 60 days, before the alarm's 1 Apr


# --- Urgent booking ---------------------------------------------------------------------------
def test_a_clinician_books_an_urgent_refill_on_a_closed_day_when_no_open_day_is_left(pump, nurse, clinician):
    clinic = ClinicSettings.load()
    clinic.refills_per_day = 1
    clinic.save()
    other = implant_register_filled(implanted_on=dt.date(2025, 1, 6))
    saturday = local(2025, 4, 5, 10)  # the alarm is on Sunday 6 April
    with time_machine.travel(local(2025, 4, 4, 8), tick=False):
        services.appointment_book(
            patient=other.patient, implant=other, kind="refill", starts_at=local(2025, 4, 4, 9), booked_by=nurse
        )
        with pytest.raises(ValidationError) as error:
            services.appointment_book(
                patient=pump.patient, implant=pump, kind="refill", starts_at=saturday, booked_by=clinician
            )
        assert "closed" in error.value.message_dict["starts_at"][0]
        with pytest.raises(ValidationError) as error:
            services.appointment_book(
                patient=pump.patient,
                implant=pump,
                kind="refill",
                starts_at=saturday,
                booked_by=nurse,
                override_reason="No day left",
            )
        assert "Only a clinician" in error.value.message_dict["override_reason"][0]
        appointment = services.appointment_book(
            patient=pump.patient,
            implant=pump,
            kind="refill",
            starts_at=saturday,
            booked_by=clinician,
            override_reason="Alarm on Sunday; Friday full: Saturday list opened for her",
        )
    assert appointment.override_reason == "Alarm on Sunday; Friday full: Saturday list opened for her"


def test_an_urgent_override_is_refused_while_an_open_day_is_left_before_the_alarm(pump, clinician):
    with time_machine.travel(local(2025, 4, 3, 8), tick=False), pytest.raises(ValidationError) as error:
        services.appointment_book(
            patient=pump.patient,
            implant=pump,
            kind="refill",
            starts_at=local(2025, 4, 5, 10),
            booked_by=clinician,
            override_reason="Saturday suits",
        )
    assert "Thursday 3 April is open" in error.value.message_dict["starts_at"][0]


# --- One bad record never stops the clinic ----------------------------------------------------
def test_planted_impossible_values_leave_every_page_and_the_scan_working(pump, nurse, clinician, client):
    poisoned = implant_register_filled(implanted_on=dt.date(2025, 1, 6))
    Implant.objects.filter(pk=poisoned.pk).update(eri_reported_on=dt.date(9999, 12, 1))
    broken = implant_register_filled(implanted_on=dt.date(2025, 1, 6))
    RefillVisit.objects.bulk_create(
        [
            RefillVisit(
                implant=broken,
                performed_at=dt.datetime(9999, 12, 1, 9, tzinfo=dt.UTC),
                performed_by=nurse,
                pump_serial=broken.serial_number,
                reservoir_ml=Decimal("20"),
                actual_residual_ml=Decimal("1"),
                volume_added_ml=Decimal("20"),
                drug=factories.drug("2000"),
                drug_lot="X",
                concentration_mcg_per_ml=Decimal("2000"),
                daily_dose_after_mcg=Decimal("400"),
                alarm_threshold_ml=Decimal("2"),
                alarm_on=dt.date(9999, 12, 1),
                empty_on=dt.date(9999, 12, 1),
                due_by=dt.date(9999, 12, 1),
            )
        ]
    )
    user = factories.PatientUserFactory()
    poisoned.patient.user = user
    poisoned.patient.save()

    with time_machine.travel(local(2025, 3, 20, 9), tick=False):
        services.forecasts_recompute()
        broken.refresh_from_db()
        assert broken.forecast_problem == Problem.CANNOT_COMPUTE
        result = alerts_scan(now=local(2025, 3, 20, 9))
        assert result.raised > 0
        client.force_login(nurse)
        assert client.get(reverse("staff:worklist")).status_code == 200
        for implant in (poisoned, broken, pump):
            assert client.get(reverse("staff:patient_detail", args=[implant.patient_id])).status_code == 200
        client.force_login(user)
        assert client.get(reverse("portal:home"), follow=True).status_code == 200

    # Everyone else is still alerted: the healthy pump is due by 1 Apr with nothing booked.
    assert Alert.objects.filter(kind=Alert.Kind.REFILL_UNBOOKED, implant=pump).count() == 1
    assert Alert.objects.filter(kind=Alert.Kind.RECORD_ATTENTION, patient=poisoned.patient).count() == 1
    assert Alert.objects.filter(kind=Alert.Kind.NO_FORECAST, implant=broken).count() == 1


def test_a_refill_marked_in_error_in_the_admin_recomputes_the_forecast(pump, nurse, client):
    from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME

    with time_machine.travel(local(2025, 3, 31, 12), tick=False):
        visit = refill_record(implant=pump, by=nurse, at=local(2025, 3, 31, 10))
    assert dates(pump)[1] == dt.date(2025, 6, 29)
    client.force_login(factories.UserFactory(is_staff=True, is_superuser=True))
    client.post(
        reverse("admin:refills_refillvisit_changelist"),
        {"action": "mark_entered_in_error", ACTION_CHECKBOX_NAME: [visit.pk], "apply": "1", "reason": "Wrong pump"},
    )
    visit.refresh_from_db()
    assert visit.entered_in_error is True
    # Back to the theatre fill's forecast, in the same transaction as the mark.
    assert dates(pump) == (dt.date(2025, 4, 1), dt.date(2025, 4, 6), dt.date(2025, 4, 16))


def test_a_dose_change_with_no_dose_is_a_named_error_not_a_crash(pump, clinician):
    with time_machine.travel(local(2025, 2, 1), tick=False), pytest.raises(ValidationError) as error:
        services.dose_change_record(
            implant=pump, daily_dose_mcg=None, effective_at=local(2025, 2, 2), prescribed_by=clinician
        )
    assert error.value.message_dict == {"daily_dose_mcg": ["Give the new daily dose."]}
