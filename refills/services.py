"""Writes of the care schedule: refill visits, dose changes, appointments.

Every service runs in one transaction and locks the implant row it schedules against, so two
nurses acting on one pump at once are serialised: exactly one wins, the other gets a clear error.
"""

import datetime as dt
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from itbclinic.accounts.roles import Role, has_role
from patients.models import Patient
from patients.services import clinical_record_mark_entered_in_error
from pumps.models import DosePrescription, Drug, Implant
from pumps.selectors import dose_get_in_force, implant_get_active
from pumps.services import dose_prescribe, implant_record_eri

from .calculations import refill_forecast, residual_discrepancy
from .models import Appointment, ClinicSettings, RefillVisit
from .selectors import (
    clinic_day_is_closed,
    implant_get_expected_residual,
    implant_get_forecast,
    max_interval_days_get,
    refill_bookings_per_day,
    refill_visit_get_latest,
    refill_window_get,
)


class BookingConflict(Exception):
    """Another booking for the same pump won the race (HTTP 409, a form error in the UI)."""


def _lock_implant(implant: Implant) -> Implant:
    return Implant.objects.select_for_update().select_related("pump_model", "patient").get(pk=implant.pk)


def implant_forecast_refresh(*, implant: Implant) -> Implant:
    """Store the forecast in force on the implant (the schedule's one set-based source)."""
    forecast = implant_get_forecast(implant=implant)
    implant.forecast_alarm_on = forecast.alarm_on if forecast else None
    implant.forecast_empty_on = forecast.empty_on if forecast else None
    implant.forecast_due_by = forecast.due_by if forecast else None
    Implant.objects.filter(pk=implant.pk).update(
        forecast_alarm_on=implant.forecast_alarm_on,
        forecast_empty_on=implant.forecast_empty_on,
        forecast_due_by=implant.forecast_due_by,
    )
    return implant


@transaction.atomic
def refill_visit_record(
    *,
    implant: Implant,
    performed_at: dt.datetime,
    performed_by,
    actual_residual_ml: Decimal,
    volume_added_ml: Decimal,
    drug: Drug,
    drug_lot: str,
    daily_dose_after_mcg: Decimal,
    dosing_mode: str = DosePrescription.Mode.SIMPLE_CONTINUOUS,
    schedule: list | None = None,
    prescriber=None,
    alarm_threshold_ml: Decimal | None = None,
    battery_status: str = RefillVisit.BatteryStatus.OK,
    bridge_bolus_mcg: Decimal | None = None,
    notes: str = "",
    appointment: Appointment | None = None,
) -> RefillVisit:
    """Record a refill: discrepancy against the forecast, the new forecast, dose history, appointment."""
    implant = _lock_implant(implant)
    model = implant.pump_model
    refilled_on = timezone.localdate(performed_at)
    errors: dict[str, str] = {}
    if not implant.is_active:
        errors["implant"] = "This pump is explanted or was entered in error."
    if refilled_on < implant.implanted_on:
        errors["performed_at"] = "The refill cannot precede the implant."
    if drug.screening_only:
        errors["drug"] = f"{drug} is for screening only, never for the pump."
    if volume_added_ml is None or volume_added_ml <= 0:
        errors["volume_added_ml"] = "The volume added must be above zero."
    elif volume_added_ml > model.reservoir_ml:
        errors["volume_added_ml"] = f"The reservoir holds {model.reservoir_ml:g} mL at most."
    if actual_residual_ml is None or actual_residual_ml < 0:
        errors["actual_residual_ml"] = "The aspirated residual cannot be negative."
    elif actual_residual_ml > model.reservoir_ml:
        errors["actual_residual_ml"] = f"More than the reservoir's {model.reservoir_ml:g} mL cannot come back."
    if daily_dose_after_mcg is None or daily_dose_after_mcg <= 0:
        errors["daily_dose_after_mcg"] = "The daily dose must be above zero."
    if not drug_lot.strip():
        errors["drug_lot"] = "Record the drug's lot number."
    threshold = model.alarm_threshold_ml if alarm_threshold_ml is None else alarm_threshold_ml
    if threshold < 0 or (volume_added_ml and threshold >= volume_added_ml):
        errors["alarm_threshold_ml"] = "The alarm volume must be below the volume in the reservoir."
    if appointment is not None and appointment.implant_id != implant.pk:
        errors["appointment"] = "This appointment is for another pump."
    if errors:
        raise ValidationError(errors)

    expected = implant_get_expected_residual(implant=implant, on=refilled_on)
    discrepancy = (
        residual_discrepancy(
            expected_ml=expected, actual_ml=actual_residual_ml, tolerance_ml=model.residual_tolerance_ml
        )
        if expected is not None
        else None
    )
    dose_before = dose_get_in_force(implant=implant, at=performed_at)
    clinic = ClinicSettings.load()
    concentration = drug.concentration_mcg_per_ml
    forecast = refill_forecast(
        refilled_on=refilled_on,
        volume_ml=volume_added_ml,
        concentration_mcg_per_ml=concentration,
        daily_dose_mcg=daily_dose_after_mcg,
        alarm_threshold_ml=threshold,
        safety_margin_days=clinic.safety_margin_days,
        max_interval_days=max_interval_days_get(drug=drug, implant=implant),
    )
    visit = RefillVisit.objects.create(
        implant=implant,
        performed_at=performed_at,
        performed_by=performed_by,
        prescriber=prescriber,
        pump_serial=implant.serial_number,
        reservoir_ml=model.reservoir_ml,
        expected_residual_ml=expected,
        actual_residual_ml=actual_residual_ml,
        discrepancy_ml=discrepancy.difference_ml if discrepancy else None,
        discrepancy_flagged=bool(discrepancy and discrepancy.flagged),
        volume_added_ml=volume_added_ml,
        drug=drug,
        drug_lot=drug_lot.strip(),
        concentration_mcg_per_ml=concentration,
        daily_dose_before_mcg=dose_before.daily_dose_mcg if dose_before else None,
        daily_dose_after_mcg=daily_dose_after_mcg,
        dosing_mode=dosing_mode,
        schedule=schedule or [],
        bridge_bolus_mcg=bridge_bolus_mcg,
        alarm_threshold_ml=threshold,
        alarm_on=forecast.alarm_on,
        empty_on=forecast.empty_on,
        due_by=forecast.due_by,
        battery_status=battery_status,
        notes=notes,
    )
    if (
        dose_before is None
        or dose_before.daily_dose_mcg != daily_dose_after_mcg
        or dose_before.concentration_mcg_per_ml != concentration
        or dose_before.dosing_mode != dosing_mode
    ):
        dose_prescribe(
            implant=implant,
            daily_dose_mcg=daily_dose_after_mcg,
            concentration_mcg_per_ml=concentration,
            effective_at=performed_at,
            prescribed_by=prescriber or performed_by,
            dosing_mode=dosing_mode,
            schedule=schedule,
            reason="Set at refill visit",
        )
    implant.forecast_alarm_on, implant.forecast_empty_on, implant.forecast_due_by = (
        forecast.alarm_on,
        forecast.empty_on,
        forecast.due_by,
    )
    Implant.objects.filter(pk=implant.pk).update(
        forecast_alarm_on=forecast.alarm_on, forecast_empty_on=forecast.empty_on, forecast_due_by=forecast.due_by
    )
    booked = appointment or (
        Appointment.objects.valid()
        .select_for_update()
        .filter(implant=implant, kind=Appointment.Kind.REFILL, status=Appointment.Status.BOOKED)
        .order_by("starts_at")
        .first()
    )
    if booked is not None and booked.status == Appointment.Status.BOOKED:
        booked.status = Appointment.Status.COMPLETED
        booked.visit = visit
        booked.save(update_fields=["status", "visit", "updated_at"])
    if battery_status == RefillVisit.BatteryStatus.ERI and implant.eri_reported_on is None:
        implant_record_eri(implant=implant, eri_on=refilled_on, by=performed_by)
    return visit


@transaction.atomic
def dose_change_record(
    *,
    implant: Implant,
    daily_dose_mcg: Decimal,
    effective_at: dt.datetime,
    prescribed_by,
    dosing_mode: str = DosePrescription.Mode.SIMPLE_CONTINUOUS,
    schedule: list | None = None,
    reason: str = "",
) -> DosePrescription:
    """A dose change between refills: the concentration is what is in the reservoir now."""
    implant = _lock_implant(implant)
    if not has_role(prescribed_by, Role.CLINICIAN):
        raise ValidationError({"prescribed_by": "Only a clinician may change the prescribed dose."})
    last_visit = refill_visit_get_latest(implant=implant)
    in_force = dose_get_in_force(implant=implant)
    concentration = (
        last_visit.concentration_mcg_per_ml if last_visit else (in_force.concentration_mcg_per_ml if in_force else None)
    )
    if concentration is None:
        raise ValidationError({"implant": "No refill or starting dose is recorded: the concentration is unknown."})
    if last_visit is not None and effective_at < last_visit.performed_at:
        raise ValidationError({"effective_at": "A dose change cannot precede the last refill."})
    prescription = dose_prescribe(
        implant=implant,
        daily_dose_mcg=daily_dose_mcg,
        concentration_mcg_per_ml=concentration,
        effective_at=effective_at,
        prescribed_by=prescribed_by,
        dosing_mode=dosing_mode,
        schedule=schedule,
        reason=reason,
    )
    implant_forecast_refresh(implant=implant)
    return prescription


def _validate_slot(
    *,
    implant: Implant | None,
    kind: str,
    starts_at: dt.datetime,
    booked_by,
    outside_window_reason: str,
    now: dt.datetime,
    exclude_id: int | None = None,
) -> None:
    if timezone.is_naive(starts_at):
        raise ValidationError({"starts_at": "Give the time with its time zone."})
    if starts_at < now:
        raise ValidationError({"starts_at": "This time has already passed."})
    if kind != Appointment.Kind.REFILL:
        return
    clinic = ClinicSettings.load()
    day = timezone.localdate(starts_at)
    if clinic_day_is_closed(day=day, clinic=clinic):
        raise ValidationError({"starts_at": f"The clinic is closed on {day:%A %d %B %Y}."})
    if refill_bookings_per_day(start=day, end=day, exclude_id=exclude_id).get(day, 0) >= clinic.refills_per_day:
        raise ValidationError({"starts_at": f"{day:%A %d %B} is full ({clinic.refills_per_day} refills)."})
    window = refill_window_get(implant=implant, clinic=clinic)
    if window is None or window.opens_on <= day <= window.due_by:
        return
    if window.due_by < timezone.localdate(now) and implant.forecast_alarm_on and day <= implant.forecast_alarm_on:
        # Already overdue: the window has closed, and the soonest refill before the alarm is what
        # any nurse must be able to book at once. Past the alarm date a clinician decides.
        return
    where = "after the due-by date" if day > window.due_by else "before the safe window opens"
    message = (
        f"{day:%d %b %Y} is {where} ({window.opens_on:%d %b} to {window.due_by:%d %b %Y}); "
        "a clinician may override with a reason."
    )
    if not outside_window_reason.strip():
        raise ValidationError({"starts_at": message})
    if not has_role(booked_by, Role.CLINICIAN):
        raise ValidationError({"outside_window_reason": "Only a clinician may book outside the safe window."})


@transaction.atomic
def appointment_book(
    *,
    patient: Patient,
    kind: str,
    starts_at: dt.datetime,
    booked_by,
    implant: Implant | None = None,
    place: str = "",
    duration_minutes: int = 30,
    outside_window_reason: str = "",
    notes: str = "",
    now: dt.datetime | None = None,
) -> Appointment:
    now = now or timezone.now()
    if kind in (Appointment.Kind.REFILL, Appointment.Kind.REPLACEMENT) and implant is None:
        implant = implant_get_active(patient=patient)
        if implant is None:
            raise ValidationError({"implant": "This patient has no active pump."})
    if implant is not None:
        implant = _lock_implant(implant)
        if implant.patient_id != patient.pk:
            raise ValidationError({"implant": "This pump belongs to another patient."})
        if kind == Appointment.Kind.REFILL and not implant.is_active:
            raise ValidationError({"implant": "This pump is explanted."})
    if patient.status != Patient.Status.ACTIVE or patient.entered_in_error:
        raise ValidationError({"patient": "Appointments are booked for active patients only."})
    if kind == Appointment.Kind.REFILL:
        existing = (
            Appointment.objects.valid()
            .filter(implant=implant, kind=Appointment.Kind.REFILL, status=Appointment.Status.BOOKED)
            .first()
        )
        if existing is not None:
            raise BookingConflict(
                f"A refill is already booked for this pump on {timezone.localtime(existing.starts_at):%d %b %Y %H:%M}:"
                " move it instead."
            )
    _validate_slot(
        implant=implant,
        kind=kind,
        starts_at=starts_at,
        booked_by=booked_by,
        outside_window_reason=outside_window_reason,
        now=now,
    )
    appointment = Appointment(
        patient=patient,
        implant=implant,
        kind=kind,
        starts_at=starts_at,
        duration_minutes=duration_minutes,
        place=place or ClinicSettings.load().default_place,
        outside_window_reason=outside_window_reason.strip(),
        booked_by=booked_by,
        notes=notes,
    )
    appointment.full_clean(validate_constraints=False)
    try:
        with transaction.atomic():
            appointment.save()
    except IntegrityError as exc:
        raise BookingConflict("Another refill was booked for this pump at the same moment.") from exc
    return appointment


@transaction.atomic
def appointment_move(
    *,
    appointment: Appointment,
    starts_at: dt.datetime,
    moved_by,
    outside_window_reason: str = "",
    place: str = "",
    now: dt.datetime | None = None,
) -> Appointment:
    now = now or timezone.now()
    appointment = Appointment.objects.select_for_update().get(pk=appointment.pk)
    if appointment.status != Appointment.Status.BOOKED:
        raise ValidationError({"status": "Only a booked appointment can be moved."})
    implant = _lock_implant(appointment.implant) if appointment.implant_id else None
    _validate_slot(
        implant=implant,
        kind=appointment.kind,
        starts_at=starts_at,
        booked_by=moved_by,
        outside_window_reason=outside_window_reason,
        now=now,
        exclude_id=appointment.pk,
    )
    appointment.starts_at = starts_at
    if place:
        appointment.place = place
    if outside_window_reason.strip():
        appointment.outside_window_reason = outside_window_reason.strip()
    appointment.save(update_fields=["starts_at", "place", "outside_window_reason", "updated_at"])
    return appointment


@transaction.atomic
def appointment_cancel(*, appointment: Appointment, reason: str, cancelled_by) -> Appointment:
    appointment = Appointment.objects.select_for_update().get(pk=appointment.pk)
    if appointment.status != Appointment.Status.BOOKED:
        raise ValidationError({"status": "Only a booked appointment can be cancelled."})
    if not reason.strip():
        raise ValidationError({"cancel_reason": "Say why the appointment is cancelled."})
    appointment.status = Appointment.Status.CANCELLED
    appointment.cancel_reason = reason.strip()
    appointment.save(update_fields=["status", "cancel_reason", "updated_at"])
    return appointment


@transaction.atomic
def appointment_mark_no_show(*, appointment: Appointment, now: dt.datetime) -> Appointment:
    appointment = Appointment.objects.select_for_update().get(pk=appointment.pk)
    if appointment.status != Appointment.Status.BOOKED:
        raise ValidationError({"status": "Only a booked appointment can be a no-show."})
    if appointment.starts_at > now:
        raise ValidationError({"status": "This appointment has not happened yet."})
    appointment.status = Appointment.Status.NO_SHOW
    appointment.save(update_fields=["status", "updated_at"])
    return appointment


@transaction.atomic
def care_record_mark_entered_in_error(*, record: RefillVisit | DosePrescription | Appointment, by, reason: str) -> None:
    """Mark a refill visit, dose prescription or appointment entered in error.

    A refill or dose that no longer counts changes the forecast in force: the implant's stored
    forecast (the schedule's source) is recomputed in the same transaction.
    """
    implant = _lock_implant(record.implant) if record.implant_id else None
    clinical_record_mark_entered_in_error(record=record, by=by, reason=reason)
    if implant is not None and isinstance(record, RefillVisit | DosePrescription):
        implant_forecast_refresh(implant=implant)
