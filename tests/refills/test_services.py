import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from core.records import HardDeleteForbidden
from pumps.models import DosePrescription, Implant
from refills.models import Appointment, ClinicSettings, ClosedDay, RefillVisit
from refills.selectors import implant_get_expected_residual, patient_list_due_for_refill, refill_slot_proposals
from refills.services import (
    BookingConflict,
    appointment_book,
    appointment_cancel,
    appointment_move,
    dose_change_record,
)
from tests import factories
from tests.helpers import implant_register_filled, refill_record

pytestmark = pytest.mark.django_db
LONDON = ZoneInfo("Europe/London")


def at(y, m, d, h=10, minute=0):
    return dt.datetime(y, m, d, h, minute, tzinfo=LONDON)


@pytest.fixture
def implant():
    return factories.ImplantFactory(implanted_on=dt.date(2024, 11, 1))


def test_first_refill_follows_the_worked_example_and_sets_the_forecast_in_force(implant, nurse):
    # given docs/domain.md's worked example: 20 mL SynchroMed II, 2000 mcg/mL, 400 mcg/day, refilled 2025-01-06
    # when
    visit = refill_record(implant=implant, by=nurse, at=at(2025, 1, 6))
    # then
    assert (visit.alarm_on, visit.empty_on, visit.due_by) == (
        dt.date(2025, 4, 6),
        dt.date(2025, 4, 16),
        dt.date(2025, 4, 1),
    )
    assert visit.expected_residual_ml is None and visit.discrepancy_flagged is False
    assert visit.daily_dose_before_mcg is None
    implant.refresh_from_db()
    assert implant.forecast_due_by == dt.date(2025, 4, 1)
    assert implant.forecast_alarm_on == dt.date(2025, 4, 6)
    assert DosePrescription.objects.filter(implant=implant).count() == 1


def test_second_refill_compares_the_aspirated_residual_with_the_forecast(implant, nurse):
    refill_record(implant=implant, by=nurse, at=at(2025, 1, 6))
    # 84 days at 0.2 mL/day leave 20 − 16.8 = 3.2 mL; 0.9 mL came back: 2.3 mL short → flagged
    visit = refill_record(implant=implant, by=nurse, at=at(2025, 3, 31), residual="0.9")
    assert visit.expected_residual_ml == Decimal("3.20")
    assert visit.discrepancy_ml == Decimal("-2.30")
    assert visit.discrepancy_flagged is True
    assert visit.daily_dose_before_mcg == Decimal("400")
    # same dose, same drug: no new prescription
    assert DosePrescription.objects.filter(implant=implant).count() == 1


def test_discrepancy_at_the_tolerance_is_not_flagged(implant, nurse):
    refill_record(implant=implant, by=nurse, at=at(2025, 1, 6))
    visit = refill_record(implant=implant, by=nurse, at=at(2025, 3, 31), residual="1.2")
    assert visit.discrepancy_ml == Decimal("-2.00")
    assert visit.discrepancy_flagged is False


def test_dose_change_between_refills_moves_the_forecast(implant, nurse, clinician):
    refill_record(implant=implant, by=nurse, at=at(2025, 1, 6))
    # the change takes effect at its exact time (15:00): 30 days 15 h at 0.2 mL/day leave 13.875 mL;
    # at 500 mcg/day (0.25 mL/day) the 2 mL alarm comes 47.5 days later (day 78 after the refill)
    # (+25 %: beyond the clinic's +20 % titration limit, so the prescriber confirms it)
    dose_change_record(
        implant=implant,
        daily_dose_mcg=Decimal("500"),
        effective_at=at(2025, 2, 5, 15),
        prescribed_by=clinician,
        titration_confirmed=True,
    )
    implant.refresh_from_db()
    assert implant.forecast_alarm_on == dt.date(2025, 3, 25)
    assert implant.forecast_due_by == dt.date(2025, 3, 20)
    # 13.875 mL − 29 days 9 h × 0.25 mL/day = 6.53 mL at the start of 7 Mar
    assert implant_get_expected_residual(implant=implant, on=dt.date(2025, 3, 7)) == Decimal("6.53")


def test_a_dose_change_beyond_the_titration_limit_unconfirmed_changes_nothing(implant, nurse, clinician):
    refill_record(implant=implant, by=nurse, at=at(2025, 1, 6))
    implant.refresh_from_db()
    due_by = implant.forecast_due_by
    with pytest.raises(ValidationError) as exc:
        dose_change_record(
            implant=implant, daily_dose_mcg=Decimal("500"), effective_at=at(2025, 2, 5, 15), prescribed_by=clinician
        )
    assert exc.value.message_dict == {
        "daily_dose_mcg": [
            "A rise from 400 to 500 mcg/day (+25 %) is beyond the clinic's +20 % limit. "
            "Tick the confirmation if this is the prescription."
        ]
    }
    implant.refresh_from_db()
    assert DosePrescription.objects.filter(implant=implant).count() == 1
    assert implant.forecast_due_by == due_by


def test_a_dose_change_cannot_precede_the_last_refill(implant, nurse, clinician):
    refill_record(implant=implant, by=nurse, at=at(2025, 1, 6))
    with pytest.raises(ValidationError) as exc:
        dose_change_record(
            implant=implant, daily_dose_mcg=Decimal("440"), effective_at=at(2025, 1, 6, 9, 59), prescribed_by=clinician
        )
    assert exc.value.message_dict == {
        "effective_at": ["The dose change is dated 2025-01-06 09:59, before the last refill (2025-01-06 10:00)."]
    }
    assert DosePrescription.objects.filter(implant=implant).count() == 1


def test_the_forecast_starts_at_the_theatre_fill_and_the_first_refill_is_judged_against_it(nurse):
    # given a full 20 mL pump at 2000 mcg/mL and 400 mcg/day (0.2 mL/day), implanted 2 Apr 2024
    implant = implant_register_filled(implanted_on=dt.date(2024, 4, 2), now=at(2024, 4, 2, 18))
    # then it is scheduled before any refill: 18 mL above the alarm is 90 days
    assert (implant.forecast_alarm_on, implant.forecast_due_by, implant.forecast_problem) == (
        dt.date(2024, 7, 1),
        dt.date(2024, 6, 26),
        "",
    )
    # when the first refill comes 79 days later, the history expects 20 − 79 × 0.2 = 4.2 mL back
    visit = refill_record(implant=implant, by=nurse, at=at(2024, 6, 20), residual="4.2")
    assert (visit.expected_residual_ml, visit.discrepancy_ml, visit.discrepancy_flagged) == (
        Decimal("4.20"),
        Decimal("0.00"),
        False,
    )


def test_only_a_clinician_changes_the_dose(implant, nurse):
    refill_record(implant=implant, by=nurse, at=at(2025, 1, 6))
    with pytest.raises(ValidationError) as exc:
        dose_change_record(
            implant=implant, daily_dose_mcg=Decimal("500"), effective_at=at(2025, 2, 5), prescribed_by=nurse
        )
    assert "prescribed_by" in exc.value.message_dict
    assert DosePrescription.objects.filter(implant=implant).count() == 1


def test_a_dose_change_at_the_refill_is_kept_in_the_prescription_history(implant, nurse, clinician):
    refill_record(implant=implant, by=nurse, at=at(2025, 1, 6))
    visit = refill_record(implant=implant, by=nurse, at=at(2025, 3, 31), dose="450", prescriber=clinician)
    assert visit.daily_dose_before_mcg == Decimal("400")
    latest = DosePrescription.objects.filter(implant=implant).latest()
    assert (latest.daily_dose_mcg, latest.prescribed_by) == (Decimal("450"), clinician)


@pytest.mark.parametrize(
    ("field", "kwargs"),
    [
        ("volume_added_ml", {"added": "20.5"}),
        ("volume_added_ml", {"added": "0"}),
        ("actual_residual_ml", {"residual": "-1"}),
        ("drug", {"concentration": "50"}),
        ("daily_dose_after_mcg", {"dose": "0"}),
    ],
)
def test_bad_refill_input_names_the_field_and_saves_nothing(implant, nurse, field, kwargs):
    with pytest.raises(ValidationError) as exc:
        refill_record(implant=implant, by=nurse, at=at(2025, 1, 6), **kwargs)
    assert field in exc.value.message_dict
    assert RefillVisit.objects.count() == 0
    implant.refresh_from_db()
    assert implant.forecast_due_by is None


def test_the_refill_completes_the_booked_appointment(implant, nurse):
    refill_record(implant=implant, by=nurse, at=at(2025, 1, 6))
    appointment = appointment_book(
        patient=implant.patient, kind="refill", starts_at=at(2025, 3, 31), booked_by=nurse, now=at(2025, 3, 1)
    )
    visit = refill_record(implant=implant, by=nurse, at=at(2025, 3, 31, 10, 20))
    appointment.refresh_from_db()
    assert (appointment.status, appointment.visit) == (Appointment.Status.COMPLETED, visit)


def test_eri_read_at_the_refill_is_recorded_on_the_implant(implant, nurse):
    refill_record(implant=implant, by=nurse, at=at(2025, 1, 6), battery_status=RefillVisit.BatteryStatus.ERI)
    implant.refresh_from_db()
    assert implant.eri_reported_on == dt.date(2025, 1, 6)


# --- booking -----------------------------------------------------------------


@pytest.fixture
def refilled(implant, nurse):
    refill_record(implant=implant, by=nurse, at=at(2025, 1, 6))  # due by Tue 2025-04-01, window opens 2025-03-11
    implant.refresh_from_db()
    return implant


def test_booking_inside_the_safe_window(refilled, nurse):
    appointment = appointment_book(
        patient=refilled.patient, kind="refill", starts_at=at(2025, 3, 28), booked_by=nurse, now=at(2025, 3, 1)
    )
    assert appointment.status == Appointment.Status.BOOKED
    assert appointment.place == ClinicSettings.load().default_place


@pytest.mark.parametrize("day", [dt.date(2025, 4, 2), dt.date(2025, 3, 10)])
def test_booking_outside_the_window_is_refused_without_a_reason(refilled, nurse, day):
    with pytest.raises(ValidationError) as exc:
        appointment_book(
            patient=refilled.patient,
            kind="refill",
            starts_at=at(day.year, day.month, day.day),
            booked_by=nurse,
            now=at(2025, 3, 1),
        )
    assert "clinician may override" in exc.value.message_dict["starts_at"][0]
    assert Appointment.objects.count() == 0


def test_a_nurse_cannot_override_the_window_but_a_clinician_can(refilled, nurse, clinician):
    kwargs = dict(patient=refilled.patient, kind="refill", starts_at=at(2025, 4, 2), now=at(2025, 3, 1))
    with pytest.raises(ValidationError) as exc:
        appointment_book(booked_by=nurse, outside_window_reason="Patient abroad", **kwargs)
    assert "outside_window_reason" in exc.value.message_dict
    appointment = appointment_book(booked_by=clinician, outside_window_reason="Patient abroad", **kwargs)
    assert appointment.outside_window_reason == "Patient abroad"


def test_a_second_refill_booking_for_the_same_pump_is_a_conflict(refilled, nurse):
    kwargs = dict(patient=refilled.patient, kind="refill", booked_by=nurse, now=at(2025, 3, 1))
    appointment_book(starts_at=at(2025, 3, 28), **kwargs)
    with pytest.raises(BookingConflict):
        appointment_book(starts_at=at(2025, 3, 27), **kwargs)
    assert Appointment.objects.count() == 1


def test_the_database_refuses_two_booked_refills_for_one_pump(refilled, nurse):
    factories.AppointmentFactory(implant=refilled, starts_at=at(2025, 3, 28))
    with pytest.raises(IntegrityError), transaction.atomic():
        factories.AppointmentFactory(implant=refilled, starts_at=at(2025, 3, 27))


def test_capacity_and_closed_days_are_respected(refilled, nurse):
    clinic = ClinicSettings.load()
    clinic.refills_per_day = 1
    clinic.save()
    other = factories.ImplantFactory()
    refill_record(implant=other, by=nurse, at=at(2025, 1, 6))
    appointment_book(
        patient=other.patient, kind="refill", starts_at=at(2025, 3, 28), booked_by=nurse, now=at(2025, 3, 1)
    )
    kwargs = dict(patient=refilled.patient, kind="refill", booked_by=nurse, now=at(2025, 3, 1))
    with pytest.raises(ValidationError, match="full"):
        appointment_book(starts_at=at(2025, 3, 28, 14), **kwargs)
    with pytest.raises(ValidationError, match="closed"):
        appointment_book(starts_at=at(2025, 3, 29), **kwargs)  # a Saturday
    ClosedDay.objects.create(date=dt.date(2025, 3, 27), reason="Staff training")
    with pytest.raises(ValidationError, match="closed"):
        appointment_book(starts_at=at(2025, 3, 27), **kwargs)


def test_slot_proposals_are_as_late_as_safe_and_skip_full_and_closed_days(refilled, nurse):
    ClosedDay.objects.create(date=dt.date(2025, 3, 31), reason="Audit")
    proposals = refill_slot_proposals(implant=refilled, today=dt.date(2025, 3, 1), count=3)
    # due by Tue 1 Apr; Mon 31 Mar closed; Sat/Sun closed
    assert proposals == [dt.date(2025, 4, 1), dt.date(2025, 3, 28), dt.date(2025, 3, 27)]


def test_move_and_cancel(refilled, nurse):
    appointment = appointment_book(
        patient=refilled.patient, kind="refill", starts_at=at(2025, 3, 28), booked_by=nurse, now=at(2025, 3, 1)
    )
    appointment_move(appointment=appointment, starts_at=at(2025, 3, 27, 9), moved_by=nurse, now=at(2025, 3, 1))
    appointment.refresh_from_db()
    assert appointment.starts_at == at(2025, 3, 27, 9)
    with pytest.raises(ValidationError) as exc:
        appointment_cancel(appointment=appointment, reason=" ", cancelled_by=nurse)
    assert "cancel_reason" in exc.value.message_dict
    appointment_cancel(appointment=appointment, reason="Admitted to hospital", cancelled_by=nurse)
    appointment.refresh_from_db()
    assert appointment.status == Appointment.Status.CANCELLED
    # the pump is free to be booked again
    appointment_book(
        patient=refilled.patient, kind="refill", starts_at=at(2025, 3, 26), booked_by=nurse, now=at(2025, 3, 1)
    )


def test_booking_in_the_past_is_refused(refilled, nurse):
    with pytest.raises(ValidationError, match="passed"):
        appointment_book(
            patient=refilled.patient, kind="refill", starts_at=at(2025, 3, 28), booked_by=nurse, now=at(2025, 3, 29)
        )


def test_due_list_is_ordered_by_due_by_and_shows_bookings(nurse):
    late, soon = factories.ImplantFactory(), factories.ImplantFactory()
    refill_record(implant=late, by=nurse, at=at(2025, 1, 6))
    refill_record(implant=soon, by=nurse, at=at(2025, 1, 6), dose="800")  # 0.4 mL/day → alarm after 45 days
    appointment_book(
        patient=late.patient, kind="refill", starts_at=at(2025, 3, 28), booked_by=nurse, now=at(2025, 3, 1)
    )
    rows = list(patient_list_due_for_refill(today=dt.date(2025, 2, 1)))
    assert [r.pk for r in rows] == [soon.pk, late.pk]
    assert [r.has_booked_refill for r in rows] == [False, True]
    assert rows[0].forecast_due_by == dt.date(2025, 2, 15)
    assert [r.pk for r in patient_list_due_for_refill(today=dt.date(2025, 2, 1), within_days=21)] == [soon.pk]


# --- records are never hard-deleted --------------------------------------------


def test_clinical_records_cannot_be_deleted(refilled):
    visit = RefillVisit.objects.get()
    with pytest.raises(HardDeleteForbidden):
        visit.delete()
    with pytest.raises(HardDeleteForbidden):
        RefillVisit.objects.all().delete()
    with pytest.raises(HardDeleteForbidden):
        Implant.objects.filter(pk=refilled.pk).delete()
    assert RefillVisit.objects.count() == 1


def test_entered_in_error_keeps_the_row_and_its_history(refilled, nurse):
    visit = RefillVisit.objects.get()
    visit.mark_entered_in_error(by=nurse, reason="Wrong patient")
    assert RefillVisit.objects.valid().count() == 0
    assert RefillVisit.objects.count() == 1
    assert visit.history.count() == 2
    assert visit.history.first().entered_in_error_reason == "Wrong patient"


def test_database_constraints_guard_volumes_even_through_update(refilled):
    with pytest.raises(IntegrityError), transaction.atomic():
        RefillVisit.objects.update(volume_added_ml=Decimal("-1"))
    with pytest.raises(IntegrityError), transaction.atomic():
        RefillVisit.objects.update(volume_added_ml=Decimal("25"))  # 20 mL reservoir


def test_an_overdue_pump_can_be_booked_by_a_nurse_up_to_the_alarm_date(refilled, nurse):
    # due by 1 Apr, alarm 6 Apr; on 2 Apr the window has closed
    kwargs = dict(patient=refilled.patient, kind="refill", booked_by=nurse, now=at(2025, 4, 2, 8))
    with pytest.raises(ValidationError) as exc:
        appointment_book(starts_at=at(2025, 4, 7), **kwargs)  # after the alarm: a clinician decides
    assert "clinician may override" in exc.value.message_dict["starts_at"][0]
    appointment = appointment_book(starts_at=at(2025, 4, 3), **kwargs)
    assert appointment.outside_window_reason == ""
