"""Writes of implants and dose prescriptions. Never calls into refills (STYLE.md "The house")."""

import datetime as dt
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from patients.models import Patient

from .models import DosePrescription, Implant, PumpModel


@transaction.atomic
def implant_register(
    *,
    patient: Patient,
    pump_model: PumpModel,
    serial_number: str,
    implanted_on: dt.date,
    surgeon: str,
    hospital: str,
    catheter_tip_level: str,
    recorded_by,
    catheter_model: str = "",
    mri_notes: str = "",
    starting_daily_dose_mcg: Decimal | None = None,
    concentration_mcg_per_ml: Decimal | None = None,
    dose_effective_at: dt.datetime | None = None,
) -> Implant:
    # Lock the patient so two clinicians registering at once cannot both pass the check below.
    Patient.objects.select_for_update().filter(pk=patient.pk).first()
    if Implant.objects.valid().filter(patient=patient, explanted_on__isnull=True).exists():
        raise ValidationError({"patient": "This patient already has an active pump: record its explant first."})
    serial_number = serial_number.strip()
    if Implant.objects.valid().filter(manufacturer=pump_model.manufacturer, serial_number=serial_number).exists():
        raise ValidationError({"serial_number": f"A {pump_model.manufacturer} pump with this serial is registered."})
    if (starting_daily_dose_mcg is None) != (concentration_mcg_per_ml is None):
        raise ValidationError({"concentration_mcg_per_ml": "Give both the starting dose and the concentration."})
    implant = Implant(
        patient=patient,
        pump_model=pump_model,
        manufacturer=pump_model.manufacturer,
        serial_number=serial_number,
        implanted_on=implanted_on,
        surgeon=surgeon,
        hospital=hospital,
        catheter_model=catheter_model,
        catheter_tip_level=catheter_tip_level,
        mri_notes=mri_notes or pump_model.mri_note,
        recorded_by=recorded_by,
    )
    implant.full_clean(validate_constraints=False)
    try:
        with transaction.atomic():
            implant.save()
    except IntegrityError as exc:
        raise ValidationError({"patient": "This patient already has an active pump, or the serial is taken."}) from exc
    if starting_daily_dose_mcg is not None:
        dose_prescribe(
            implant=implant,
            daily_dose_mcg=starting_daily_dose_mcg,
            concentration_mcg_per_ml=concentration_mcg_per_ml,
            effective_at=dose_effective_at or dt.datetime.combine(implanted_on, dt.time(12), tzinfo=dt.UTC),
            prescribed_by=recorded_by,
            reason="Starting dose at implant",
        )
    return implant


@transaction.atomic
def implant_record_eri(*, implant: Implant, eri_on: dt.date, by) -> Implant:
    implant = Implant.objects.select_for_update().get(pk=implant.pk)
    if eri_on < implant.implanted_on:
        raise ValidationError({"eri_reported_on": "The ERI cannot precede the implant."})
    if implant.explanted_on is not None:
        raise ValidationError({"eri_reported_on": "This pump has been explanted."})
    implant.eri_reported_on = eri_on
    implant.save(update_fields=["eri_reported_on", "updated_at"])
    return implant


@transaction.atomic
def implant_explant(*, implant: Implant, explanted_on: dt.date, reason: str, by) -> Implant:
    implant = Implant.objects.select_for_update().get(pk=implant.pk)
    errors = {}
    if implant.explanted_on is not None:
        errors["explanted_on"] = "This pump is already explanted."
    elif explanted_on < implant.implanted_on:
        errors["explanted_on"] = "The explant date must be on or after the implant date."
    if not reason.strip():
        errors["explant_reason"] = "Give the reason for the explant."
    if errors:
        raise ValidationError(errors)
    implant.explanted_on = explanted_on
    implant.explant_reason = reason.strip()
    implant.forecast_alarm_on = implant.forecast_empty_on = implant.forecast_due_by = None
    implant.save()
    return implant


@transaction.atomic
def dose_prescribe(
    *,
    implant: Implant,
    daily_dose_mcg: Decimal,
    concentration_mcg_per_ml: Decimal,
    effective_at: dt.datetime,
    prescribed_by,
    dosing_mode: str = DosePrescription.Mode.SIMPLE_CONTINUOUS,
    schedule: list | None = None,
    reason: str = "",
) -> DosePrescription:
    errors = {}
    if daily_dose_mcg is None or daily_dose_mcg <= 0:
        errors["daily_dose_mcg"] = "The daily dose must be above zero."
    if concentration_mcg_per_ml is None or concentration_mcg_per_ml <= 0:
        errors["concentration_mcg_per_ml"] = "The concentration must be above zero."
    if not implant.is_active:
        errors["implant"] = "This pump is not active."
    if errors:
        raise ValidationError(errors)
    prescription = DosePrescription(
        implant=implant,
        daily_dose_mcg=daily_dose_mcg,
        concentration_mcg_per_ml=concentration_mcg_per_ml,
        effective_at=effective_at,
        dosing_mode=dosing_mode,
        schedule=schedule or [],
        prescribed_by=prescribed_by,
        reason=reason,
    )
    prescription.full_clean()
    prescription.save()
    return prescription
