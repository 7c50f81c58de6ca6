"""Writes of implants and dose prescriptions. Never calls into refills (STYLE.md "The house")."""

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from core.formatting import format_volume
from itbclinic.accounts.models import User
from patients.models import Patient

from .models import DosePrescription, Drug, Implant, PumpModel
from .rules import alarm_volume_errors, event_time_errors, flow_errors


def theatre_fill_errors(
    *,
    pump_model: PumpModel,
    fill_drug: Drug,
    fill_volume_ml: Decimal | None,
    fill_drug_lot: str,
    fill_alarm_threshold_ml: Decimal | None,
) -> dict[str, str]:
    """What is wrong with a fill in theatre: the one check, at registration and when it is
    recorded later (refills.services.implant_fill_record)."""
    errors: dict[str, str] = {}
    if fill_drug.screening_only:
        errors["fill_drug"] = f"{fill_drug} is for screening only, never for the pump."
    if fill_volume_ml is None:
        errors["fill_volume_ml"] = "Give the volume filled in theatre."
    elif fill_volume_ml <= 0 or fill_volume_ml > pump_model.reservoir_ml:
        errors["fill_volume_ml"] = f"Between 0 and the reservoir's {format_volume(pump_model.reservoir_ml)}."
    else:
        threshold = pump_model.alarm_threshold_ml if fill_alarm_threshold_ml is None else fill_alarm_threshold_ml
        errors.update(
            alarm_volume_errors(
                field="fill_alarm_threshold_ml",
                alarm_ml=threshold,
                fill_ml=fill_volume_ml,
                alarm_min_ml=pump_model.alarm_min_ml,
                alarm_max_ml=pump_model.alarm_max_ml,
            )
        )
    if not fill_drug_lot.strip():
        errors["fill_drug_lot"] = "Record the lot of the drug filled in theatre."
    return errors


@dataclass(frozen=True)
class ImplantEntry:
    """A pump registration judged before anything is read or written: its field errors, and the
    flow, starting dose and concentration it comes to (a constant-flow pump's from its model)."""

    errors: dict[str, str]
    flow_ml_per_day: Decimal | None
    starting_daily_dose_mcg: Decimal | None
    concentration_mcg_per_ml: Decimal | None


def implant_entry_check(
    *,
    pump_model: PumpModel,
    implanted_on: dt.date,
    now: dt.datetime,
    skew_minutes: int = 5,
    starting_daily_dose_mcg: Decimal | None = None,
    concentration_mcg_per_ml: Decimal | None = None,
    fill_volume_ml: Decimal | None = None,
    fill_drug: Drug | None = None,
    fill_drug_lot: str = "",
    fill_alarm_threshold_ml: Decimal | None = None,
    flow_ml_per_day: Decimal | None = None,
) -> ImplantEntry:
    """The rules of `implant_register` that need no query (the implant date, the fill, the flow).

    `now` is aware, in the clinic's zone. A bulk import judges each row with it, then checks the
    patients' active pumps and the serials for the whole file at once.
    """
    errors = event_time_errors(
        field="implanted_on", at=implanted_on, now=now, skew_minutes=skew_minutes, what="The implant"
    )
    if fill_drug is not None:
        errors.update(
            theatre_fill_errors(
                pump_model=pump_model,
                fill_drug=fill_drug,
                fill_volume_ml=fill_volume_ml,
                fill_drug_lot=fill_drug_lot,
                fill_alarm_threshold_ml=fill_alarm_threshold_ml,
            )
        )
        if concentration_mcg_per_ml is not None and concentration_mcg_per_ml != fill_drug.concentration_mcg_per_ml:
            errors["concentration_mcg_per_ml"] = "The concentration is the fill drug's."
        concentration_mcg_per_ml = fill_drug.concentration_mcg_per_ml
        if starting_daily_dose_mcg is None and not pump_model.is_constant_flow:
            errors["starting_daily_dose_mcg"] = "Give the starting dose programmed in theatre."
    elif fill_volume_ml is not None:
        errors["fill_drug"] = "Give the drug and concentration filled in theatre."
    if pump_model.is_constant_flow:
        flow_ml_per_day = flow_ml_per_day or pump_model.default_flow_ml_per_day
        if flow_ml_per_day is None:
            errors["flow_ml_per_day"] = "Give the flow labelled on this constant-flow pump."
        else:
            errors.update(
                flow_errors(
                    field="flow_ml_per_day",
                    flow_ml_per_day=flow_ml_per_day,
                    min_flow_ml_per_day=pump_model.min_flow_ml_per_day,
                    max_flow_ml_per_day=pump_model.max_flow_ml_per_day,
                )
            )
        if starting_daily_dose_mcg is None and flow_ml_per_day and concentration_mcg_per_ml:
            starting_daily_dose_mcg = (flow_ml_per_day * concentration_mcg_per_ml).quantize(Decimal("0.01"))
    elif flow_ml_per_day is not None:
        errors["flow_ml_per_day"] = "Only a constant-flow pump has a fixed flow."
    return ImplantEntry(
        errors=errors,
        flow_ml_per_day=flow_ml_per_day,
        starting_daily_dose_mcg=starting_daily_dose_mcg,
        concentration_mcg_per_ml=concentration_mcg_per_ml,
    )


def implant_build(
    *,
    patient: Patient,
    pump_model: PumpModel,
    serial_number: str,
    implanted_on: dt.date,
    surgeon: str,
    hospital: str,
    catheter_tip_level: str,
    recorded_by: User,
    entry: ImplantEntry,
    catheter_model: str = "",
    mri_notes: str = "",
    fill_volume_ml: Decimal | None = None,
    fill_drug: Drug | None = None,
    fill_drug_lot: str = "",
    fill_alarm_threshold_ml: Decimal | None = None,
) -> Implant:
    """The implant row `implant_register` saves (not saved, not cleaned), from a checked entry."""
    if (entry.starting_daily_dose_mcg is None) != (entry.concentration_mcg_per_ml is None):
        raise ValidationError({"concentration_mcg_per_ml": "Give both the starting dose and the concentration."})
    return Implant(
        patient=patient,
        pump_model=pump_model,
        manufacturer=pump_model.manufacturer,
        serial_number=serial_number.strip(),
        implanted_on=implanted_on,
        surgeon=surgeon,
        hospital=hospital,
        catheter_model=catheter_model,
        catheter_tip_level=catheter_tip_level,
        mri_notes=mri_notes or pump_model.mri_note,
        recorded_by=recorded_by,
        fill_volume_ml=fill_volume_ml if fill_drug is not None else None,
        fill_drug=fill_drug,
        fill_drug_lot=fill_drug_lot.strip(),
        fill_alarm_threshold_ml=fill_alarm_threshold_ml if fill_drug is not None else None,
        flow_ml_per_day=entry.flow_ml_per_day,
    )


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
    recorded_by: User,
    catheter_model: str = "",
    mri_notes: str = "",
    starting_daily_dose_mcg: Decimal | None = None,
    concentration_mcg_per_ml: Decimal | None = None,
    dose_effective_at: dt.datetime | None = None,
    fill_volume_ml: Decimal | None = None,
    fill_drug: Drug | None = None,
    fill_drug_lot: str = "",
    fill_alarm_threshold_ml: Decimal | None = None,
    flow_ml_per_day: Decimal | None = None,
    now: dt.datetime | None = None,
    skew_minutes: int = 5,
) -> Implant:
    """Register a pump with its fill in theatre (volume, drug, lot, alarm volume) and starting dose.

    The care schedule (`refills.services.implant_register_with_fill`) stores its first forecast;
    without a fill the pump is on the worklist as "fill not recorded" until one is entered.
    """
    now = timezone.localtime(now or timezone.now())
    # Lock the patient so two clinicians registering at once cannot both pass the check below.
    Patient.objects.select_for_update().filter(pk=patient.pk).first()
    entry = implant_entry_check(
        pump_model=pump_model,
        implanted_on=implanted_on,
        now=now,
        skew_minutes=skew_minutes,
        starting_daily_dose_mcg=starting_daily_dose_mcg,
        concentration_mcg_per_ml=concentration_mcg_per_ml,
        fill_volume_ml=fill_volume_ml,
        fill_drug=fill_drug,
        fill_drug_lot=fill_drug_lot,
        fill_alarm_threshold_ml=fill_alarm_threshold_ml,
        flow_ml_per_day=flow_ml_per_day,
    )
    if entry.errors:
        raise ValidationError(entry.errors)
    if Implant.objects.valid().filter(patient=patient, explanted_on__isnull=True).exists():
        raise ValidationError({"patient": "This patient already has an active pump: record its explant first."})
    serial_number = serial_number.strip()
    if Implant.objects.valid().filter(manufacturer=pump_model.manufacturer, serial_number=serial_number).exists():
        raise ValidationError({"serial_number": f"A {pump_model.manufacturer} pump with this serial is registered."})
    implant = implant_build(
        patient=patient,
        pump_model=pump_model,
        serial_number=serial_number,
        implanted_on=implanted_on,
        surgeon=surgeon,
        hospital=hospital,
        catheter_tip_level=catheter_tip_level,
        recorded_by=recorded_by,
        entry=entry,
        catheter_model=catheter_model,
        mri_notes=mri_notes,
        fill_volume_ml=fill_volume_ml,
        fill_drug=fill_drug,
        fill_drug_lot=fill_drug_lot,
        fill_alarm_threshold_ml=fill_alarm_threshold_ml,
    )
    implant.full_clean(validate_constraints=False)
    try:
        with transaction.atomic():
            implant.save()
    except IntegrityError as exc:
        raise ValidationError({"patient": "This patient already has an active pump, or the serial is taken."}) from exc
    if entry.starting_daily_dose_mcg is not None:
        dose_prescribe(
            implant=implant,
            daily_dose_mcg=entry.starting_daily_dose_mcg,
            concentration_mcg_per_ml=entry.concentration_mcg_per_ml,
            # The dose programmed in theatre runs from the fill (the forecast counts the day whole).
            effective_at=dose_effective_at
            or dt.datetime.combine(implanted_on, dt.time.min, tzinfo=timezone.get_current_timezone()),
            prescribed_by=recorded_by,
            reason="Starting dose at implant",
        )
    return implant


@transaction.atomic
def implant_record_eri(
    *, implant: Implant, eri_on: dt.date, by: User, now: dt.datetime | None = None, skew_minutes: int = 5
) -> Implant:
    now = timezone.localtime(now or timezone.now())
    implant = Implant.objects.select_for_update().get(pk=implant.pk)
    errors = event_time_errors(
        field="eri_reported_on",
        at=eri_on,
        now=now,
        skew_minutes=skew_minutes,
        not_before=implant.implanted_on,
        not_before_what="the implant",
        what="The ERI",
    )
    if errors:
        raise ValidationError(errors)
    if implant.explanted_on is not None:
        raise ValidationError({"eri_reported_on": "This pump has been explanted."})
    implant.eri_reported_on = eri_on
    implant.save(update_fields=["eri_reported_on", "updated_at"])
    return implant


@transaction.atomic
def implant_explant(
    *,
    implant: Implant,
    explanted_on: dt.date,
    reason: str,
    by: User,
    now: dt.datetime | None = None,
    skew_minutes: int = 5,
) -> Implant:
    """The pump explanted (the care schedule's `implant_explant_record` also closes its bookings)."""
    now = timezone.localtime(now or timezone.now())
    implant = Implant.objects.select_for_update().get(pk=implant.pk)
    errors = {}
    if implant.explanted_on is not None:
        errors["explanted_on"] = "This pump is already explanted."
    else:
        errors.update(
            event_time_errors(
                field="explanted_on",
                at=explanted_on,
                now=now,
                skew_minutes=skew_minutes,
                not_before=implant.implanted_on,
                not_before_what="the implant",
                what="The explant",
            )
        )
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
    daily_dose_mcg: Decimal | None,
    concentration_mcg_per_ml: Decimal | None,
    effective_at: dt.datetime,
    prescribed_by: User,
    dosing_mode: str = DosePrescription.Mode.SIMPLE_CONTINUOUS,
    schedule: list[dict[str, Any]] | None = None,
    patient_bolus_mcg: Decimal | None = None,
    patient_boluses_per_day: int | None = None,
    titration_confirmed: bool = False,
    reason: str = "",
) -> DosePrescription:
    """One row of the prescription history; the callers check bounds, titration and time."""
    prescription = dose_prescription_build(
        implant=implant,
        daily_dose_mcg=daily_dose_mcg,
        concentration_mcg_per_ml=concentration_mcg_per_ml,
        effective_at=effective_at,
        prescribed_by=prescribed_by,
        dosing_mode=dosing_mode,
        schedule=schedule,
        patient_bolus_mcg=patient_bolus_mcg,
        patient_boluses_per_day=patient_boluses_per_day,
        titration_confirmed=titration_confirmed,
        reason=reason,
    )
    prescription.full_clean()
    prescription.save()
    return prescription


def dose_prescription_build(
    *,
    implant: Implant,
    daily_dose_mcg: Decimal | None,
    concentration_mcg_per_ml: Decimal | None,
    effective_at: dt.datetime,
    prescribed_by: User,
    dosing_mode: str = DosePrescription.Mode.SIMPLE_CONTINUOUS,
    schedule: list[dict[str, Any]] | None = None,
    patient_bolus_mcg: Decimal | None = None,
    patient_boluses_per_day: int | None = None,
    titration_confirmed: bool = False,
    reason: str = "",
) -> DosePrescription:
    """The row `dose_prescribe` saves, after its own checks (the model's `full_clean` is the caller's)."""
    errors = {}
    if daily_dose_mcg is None or daily_dose_mcg <= 0:
        errors["daily_dose_mcg"] = "The daily dose must be above zero."
    if concentration_mcg_per_ml is None or concentration_mcg_per_ml <= 0:
        errors["concentration_mcg_per_ml"] = "The concentration must be above zero."
    if not implant.is_active:
        errors["implant"] = "This pump is not active."
    if errors:
        raise ValidationError(errors)
    assert daily_dose_mcg is not None and concentration_mcg_per_ml is not None  # the errors above
    prescription = DosePrescription(
        implant=implant,
        daily_dose_mcg=daily_dose_mcg,
        concentration_mcg_per_ml=concentration_mcg_per_ml,
        effective_at=effective_at,
        dosing_mode=dosing_mode,
        schedule=schedule or [],
        patient_bolus_mcg=patient_bolus_mcg,
        patient_boluses_per_day=patient_boluses_per_day,
        prescribed_by=prescribed_by,
        titration_confirmed=titration_confirmed,
        reason=reason,
    )
    return prescription
