"""Writes of the care schedule: refill visits, dose changes, appointments.

Every service runs in one transaction and locks the implant row it schedules against, so two
nurses acting on one pump at once are serialised: exactly one wins, the other gets a clear error.
"""

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, models, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from core.errors import ConflictError
from core.formatting import format_concentration, format_count, format_day, format_dose, format_volume
from core.records import clinical_record_mark_entered_in_error
from itbclinic.accounts.models import User
from itbclinic.accounts.roles import Role, has_role
from patients.models import Patient
from pumps.models import DosePrescription, Drug, DrugPumpInterval, Implant, PumpModel
from pumps.rules import alarm_volume_errors, event_time_errors, planned_time_errors
from pumps.selectors import dose_get_in_force, implant_get_active
from pumps.services import (
    dose_prescribe,
    implant_explant,
    implant_record_eri,
    implant_register,
    theatre_fill_errors,
)

from .alerts.services import alert_raise_change_request, alerts_resolve_change_request
from .forecasting import Event, PumpForecast
from .models import (
    SAFETY_CHECK_ITEMS,
    Alert,
    Appointment,
    AppointmentChangeRequest,
    AppointmentNotice,
    ClinicSettings,
    RefillVisit,
    Reminder,
    ReservoirEmptying,
)
from .notices import appointment_notice_create
from .reminders.planning import reminders_materialise_for_appointment
from .selectors import (
    change_request_due_by,
    clinic_closed_days,
    day_capacity_get,
    implant_forecast_compute,
    refill_dose_for,
    refill_visit_get_latest,
    refill_visit_preview,
    refill_window_get,
)
from .validation import dose_bounds_errors, dosing_total, titration_confirmation_errors

# The `place` of a home visit: where it is, is the patient's address.
HOME_VISIT_PLACE = "Home visit"
# The reason of the prescription a refill sets (a new dose, concentration or mode).
REFILL_DOSE_REASON = "Set at refill visit"


class BookingConflict(ConflictError):
    """Another booking for the same pump won the race (HTTP 409, a form error in the UI)."""

    code = "booking_conflict"


def _lock_implant(implant: Implant) -> Implant:
    locked: Implant = Implant.objects.select_for_update().select_related("pump_model", "patient").get(pk=implant.pk)
    return locked


def implant_forecast_refresh(*, implant: Implant, clinic: ClinicSettings | None = None) -> PumpForecast:
    """Store the forecast in force on the implant (the schedule's one set-based source).

    Called in the same transaction as every write that changes the pump's history. An explanted
    or erroneous pump has no forecast and no problem: it is no longer on the schedule.
    """
    forecast = implant_forecast_compute(implant=implant, clinic=clinic) if implant.is_active else PumpForecast()
    implant.forecast_alarm_on = forecast.alarm_on
    implant.forecast_empty_on = forecast.empty_on
    implant.forecast_due_by = forecast.due_by
    implant.forecast_problem = forecast.problem if implant.is_active else ""
    Implant.objects.filter(pk=implant.pk).update(
        forecast_alarm_on=implant.forecast_alarm_on,
        forecast_empty_on=implant.forecast_empty_on,
        forecast_due_by=implant.forecast_due_by,
        forecast_problem=implant.forecast_problem,
    )
    return forecast


def forecasts_recompute(*, implants: QuerySet[Implant] | None = None) -> int:
    """Recompute the stored forecast of every active pump (or of `implants`), one row at a time.

    A clinic setting or a catalogue row that feeds the forecast (safety margin, stability cap,
    alarm volume, flow) changes the due dates of every affected pump at once. A row that cannot
    be computed is stored with its problem and the rest carry on (STYLE.md 20).
    """
    clinic = ClinicSettings.load()
    qs = implants if implants is not None else Implant.objects.valid().filter(explanted_on__isnull=True)
    count = 0
    for implant in qs.select_related("pump_model", "fill_drug").order_by("pk").iterator(chunk_size=500):
        with transaction.atomic():
            implant_forecast_refresh(implant=implant, clinic=clinic)
        count += 1
    return count


def forecasts_recompute_after_catalogue_change(*, record: models.Model) -> int:
    """Recompute the pumps whose forecast a changed settings or catalogue row feeds.

    ClinicSettings (safety margin): every active pump. A PumpModel (alarm volume, constant flow):
    its pumps. A Drug (stability cap) or a DrugPumpInterval: the pumps that have held that drug.
    """
    active = Implant.objects.valid().filter(explanted_on__isnull=True)
    if isinstance(record, ClinicSettings):
        affected = active
    elif isinstance(record, PumpModel):
        affected = active.filter(pump_model=record)
    elif isinstance(record, Drug):
        held = RefillVisit.objects.valid().filter(drug=record).values("implant_id")
        affected = active.filter(Q(fill_drug=record) | Q(pk__in=held))
    elif isinstance(record, DrugPumpInterval):
        held = RefillVisit.objects.valid().filter(drug_id=record.drug_id).values("implant_id")
        affected = active.filter(pump_model_id=record.pump_model_id).filter(
            Q(fill_drug_id=record.drug_id) | Q(pk__in=held)
        )
    else:
        return 0
    return forecasts_recompute(implants=affected)


def forecasts_refresh_missing() -> int:
    """Compute the forecast of active pumps that have never had one computed (a safety net).

    Every service stores the forecast as it writes; a row written another way (a data import, the
    shell, an older release) has neither dates nor a problem, and is computed by the next scan.
    """
    missing = Implant.objects.valid().filter(
        explanted_on__isnull=True, forecast_due_by__isnull=True, forecast_problem=""
    )
    return forecasts_recompute(implants=missing)


def _is_clinician(user: User | None) -> bool:
    return user is not None and has_role(user, Role.CLINICIAN)


@dataclass(frozen=True)
class PreparedRefill:
    """A refill visit validated and built, not saved: what `refill_visit_record` writes."""

    visit: RefillVisit
    # The prescription changes at this refill (dose, concentration, mode or boluses): a new
    # DosePrescription row from the visit's time, by `prescriber`.
    dose_changed: bool
    prescriber: User | None


def refill_visit_prepare(
    *,
    implant: Implant,
    clinic: ClinicSettings,
    now: dt.datetime,
    performed_at: dt.datetime,
    performed_by: User,
    actual_residual_ml: Decimal,
    volume_added_ml: Decimal,
    drug: Drug,
    drug_lot: str,
    daily_dose_after_mcg: Decimal | None = None,
    dosing_mode: str = DosePrescription.Mode.SIMPLE_CONTINUOUS,
    schedule: list[dict[str, str]] | None = None,
    prescriber: User | None = None,
    alarm_threshold_ml: Decimal | None = None,
    battery_status: str = RefillVisit.BatteryStatus.OK,
    battery_event_on: dt.date | None = None,
    bridge_bolus_mcg: Decimal | None = None,
    patient_bolus_mcg: Decimal | None = None,
    patient_boluses_per_day: int | None = None,
    post_fill_check: str = RefillVisit.PostFillCheck.NOT_DONE,
    post_fill_discrepancy_ml: Decimal | None = None,
    titration_confirmed: bool = False,
    notes: str = "",
    appointment: Appointment | None = None,
    drug_lot_expires_on: dt.date | None = None,
    kit_lot: str = "",
    post_fill_check_reason: str = "",
    check_pump_site: str = "",
    check_pump_site_reason: str = "",
    check_needle_placement: str = "",
    check_needle_placement_reason: str = "",
    check_aspiration: str = "",
    check_aspiration_reason: str = "",
    check_alarm_settings: str = "",
    check_alarm_settings_reason: str = "",
    check_symptom_screen: str = "",
    check_symptom_screen_reason: str = "",
    history: list[Event] | None = None,
    caps: dict[int, int | None] | None = None,
    dose_in_force: Callable[[dt.datetime], DosePrescription | None] | None = None,
) -> PreparedRefill:
    """Every rule of a refill (the form's, the API's, the import's), then the visit it records.

    ValidationError names the field. `implant` comes with its pump model and patient. The pump's
    history, stability caps and prescription in force are read from the database unless given:
    a bulk import of new pumps gives them (none yet), so each row costs no query.
    """
    model = implant.pump_model
    errors: dict[str, str] = {}
    if not implant.is_active:
        errors["implant"] = "This pump is explanted or was entered in error."
    if timezone.is_naive(performed_at):
        raise ValidationError({"performed_at": "Give the time with its time zone."})
    refilled_on = timezone.localdate(performed_at)
    errors.update(
        event_time_errors(
            field="performed_at",
            at=performed_at,
            now=now,
            skew_minutes=clinic.clock_skew_minutes,
            not_before=implant.implanted_on,
            not_before_what="the implant",
            what="The refill",
        )
    )
    if drug.screening_only:
        errors["drug"] = f"{drug} is for screening only, never for the pump."
    if volume_added_ml is None or volume_added_ml <= 0:
        errors["volume_added_ml"] = "The volume added must be above zero."
    elif volume_added_ml > model.reservoir_ml:
        errors["volume_added_ml"] = f"The reservoir holds {format_volume(model.reservoir_ml)} at most."
    if actual_residual_ml is None or actual_residual_ml < 0:
        errors["actual_residual_ml"] = "The aspirated residual cannot be negative."
    elif actual_residual_ml > model.reservoir_ml:
        errors["actual_residual_ml"] = (
            f"More than the reservoir's {format_volume(model.reservoir_ml)} cannot come back."
        )
    if not drug_lot.strip():
        errors["drug_lot"] = "Record the drug's lot number."
    if drug_lot_expires_on is not None and drug_lot_expires_on < refilled_on:
        errors["drug_lot_expires_on"] = (
            f"Lot {drug_lot.strip()} expired on {drug_lot_expires_on:%d %b %Y}, before the refill on "
            f"{refilled_on:%d %b %Y}: never fill the pump with expired drug."
        )
    checks = {
        "check_pump_site": (check_pump_site, check_pump_site_reason),
        "check_needle_placement": (check_needle_placement, check_needle_placement_reason),
        "check_aspiration": (check_aspiration, check_aspiration_reason),
        "check_alarm_settings": (check_alarm_settings, check_alarm_settings_reason),
        "check_symptom_screen": (check_symptom_screen, check_symptom_screen_reason),
    }
    errors.update(
        safety_checklist_errors(
            checks=checks, post_fill_check=post_fill_check, post_fill_check_reason=post_fill_check_reason
        )
    )
    threshold = model.alarm_threshold_ml if alarm_threshold_ml is None else alarm_threshold_ml
    if volume_added_ml and volume_added_ml > 0:
        errors.update(
            alarm_volume_errors(
                field="alarm_threshold_ml",
                alarm_ml=threshold,
                fill_ml=volume_added_ml,
                alarm_min_ml=model.alarm_min_ml,
                alarm_max_ml=model.alarm_max_ml,
            )
        )
    if appointment is not None and appointment.implant_id != implant.pk:
        errors["appointment"] = "This appointment is for another pump."
    if battery_event_on is not None:
        errors.update(
            event_time_errors(
                field="battery_event_on",
                at=battery_event_on,
                now=now,
                skew_minutes=clinic.clock_skew_minutes,
                not_before=implant.implanted_on,
                not_before_what="the implant",
                what="The battery event",
            )
        )
    if patient_bolus_mcg is not None and not model.patient_boluses:
        errors["patient_bolus_mcg"] = f"The {model} has no patient-activated boluses."
    if (patient_bolus_mcg is None) != (patient_boluses_per_day is None):
        errors["patient_boluses_per_day"] = "Give both the bolus dose and the number allowed per day."
    dose_total, schedule_errors = dosing_total(
        field="daily_dose_after_mcg", dosing_mode=dosing_mode, daily_dose_mcg=daily_dose_after_mcg, schedule=schedule
    )
    errors.update(schedule_errors)
    dose = refill_dose_for(implant=implant, drug=drug, daily_dose_mcg=dose_total)
    if dose is None or dose <= 0:
        errors.setdefault("daily_dose_after_mcg", "The daily dose must be above zero.")
    if errors or dose is None:
        raise ValidationError(errors)

    errors.update(
        dose_bounds_errors(field="daily_dose_after_mcg", daily_dose_mcg=dose, drug=drug, model=model, implant=implant)
    )
    if dose_in_force is None:
        dose_before = dose_get_in_force(implant=implant, at=performed_at)
    else:
        dose_before = dose_in_force(performed_at)
    changed = (
        dose_before is None
        or dose_before.daily_dose_mcg != dose
        or dose_before.concentration_mcg_per_ml != drug.concentration_mcg_per_ml
        or dose_before.dosing_mode != dosing_mode
        or dose_before.patient_bolus_mcg != patient_bolus_mcg
        or dose_before.patient_boluses_per_day != patient_boluses_per_day
    )
    if changed and dose_before is not None:
        if prescriber is None and _is_clinician(performed_by):
            prescriber = performed_by
        if not _is_clinician(prescriber):
            errors["prescriber"] = (
                f"The prescribed dose is {format_dose(dose_before.daily_dose_mcg)} at "
                f"{format_concentration(dose_before.concentration_mcg_per_ml)}: a change at a refill names the "
                "clinician who prescribed it."
            )
    if changed and not errors:
        errors.update(
            titration_confirmation_errors(
                field="daily_dose_after_mcg",
                implant=implant,
                daily_dose_mcg=dose,
                previous=dose_before,
                confirmed=titration_confirmed,
                clinic=clinic,
                on=refilled_on,
            )
        )
    if errors:
        raise ValidationError(errors)

    preview = refill_visit_preview(
        implant=implant,
        performed_at=performed_at,
        actual_residual_ml=actual_residual_ml,
        volume_added_ml=volume_added_ml,
        drug=drug,
        daily_dose_mcg=dose,
        alarm_threshold_ml=threshold,
        bridge_bolus_mcg=bridge_bolus_mcg,
        patient_bolus_mcg=patient_bolus_mcg,
        patient_boluses_per_day=patient_boluses_per_day,
        clinic=clinic,
        history=history,
        caps=caps,
    )
    forecast = preview.forecast
    if forecast is None or forecast.alarm_on is None or forecast.empty_on is None or forecast.due_by is None:
        raise ValidationError({"volume_added_ml": "The forecast cannot be computed from these values."})
    discrepancy = preview.discrepancy
    visit = RefillVisit(
        implant=implant,
        performed_at=performed_at,
        performed_by=performed_by,
        prescriber=prescriber,
        pump_serial=implant.serial_number,
        reservoir_ml=model.reservoir_ml,
        expected_residual_ml=preview.expected_residual_ml,
        actual_residual_ml=actual_residual_ml,
        discrepancy_ml=discrepancy.difference_ml if discrepancy else None,
        discrepancy_flagged=bool(discrepancy and discrepancy.flagged),
        volume_added_ml=volume_added_ml,
        drug=drug,
        drug_lot=drug_lot.strip(),
        concentration_mcg_per_ml=drug.concentration_mcg_per_ml,
        daily_dose_before_mcg=dose_before.daily_dose_mcg if dose_before else None,
        daily_dose_after_mcg=dose,
        dosing_mode=dosing_mode,
        schedule=schedule or [],
        bridge_bolus_mcg=bridge_bolus_mcg,
        patient_bolus_mcg=patient_bolus_mcg,
        patient_boluses_per_day=patient_boluses_per_day,
        alarm_threshold_ml=threshold,
        alarm_on=forecast.alarm_on,
        empty_on=forecast.empty_on,
        due_by=forecast.due_by,
        battery_status=battery_status,
        battery_event_on=battery_event_on,
        post_fill_check=post_fill_check,
        post_fill_discrepancy_ml=post_fill_discrepancy_ml,
        post_fill_check_reason=_skip_reason(post_fill_check, post_fill_check_reason),
        drug_lot_expires_on=drug_lot_expires_on,
        kit_lot=kit_lot.strip(),
        **{name: value for name, (value, _reason) in checks.items()},
        **{f"{name}_reason": _skip_reason(value, reason) for name, (value, reason) in checks.items()},
        after_empty_date=preview.after_empty_date,
        notes=notes,
    )
    return PreparedRefill(visit=visit, dose_changed=changed, prescriber=prescriber)


@transaction.atomic
def refill_visit_record(
    *,
    implant: Implant,
    performed_at: dt.datetime,
    performed_by: User,
    actual_residual_ml: Decimal,
    volume_added_ml: Decimal,
    drug: Drug,
    drug_lot: str,
    daily_dose_after_mcg: Decimal | None = None,
    dosing_mode: str = DosePrescription.Mode.SIMPLE_CONTINUOUS,
    schedule: list[dict[str, str]] | None = None,
    prescriber: User | None = None,
    alarm_threshold_ml: Decimal | None = None,
    battery_status: str = RefillVisit.BatteryStatus.OK,
    battery_event_on: dt.date | None = None,
    bridge_bolus_mcg: Decimal | None = None,
    patient_bolus_mcg: Decimal | None = None,
    patient_boluses_per_day: int | None = None,
    post_fill_check: str = RefillVisit.PostFillCheck.NOT_DONE,
    post_fill_discrepancy_ml: Decimal | None = None,
    titration_confirmed: bool = False,
    notes: str = "",
    appointment: Appointment | None = None,
    complete_booking: bool = True,
    now: dt.datetime | None = None,
    drug_lot_expires_on: dt.date | None = None,
    kit_lot: str = "",
    post_fill_check_reason: str = "",
    check_pump_site: str = "",
    check_pump_site_reason: str = "",
    check_needle_placement: str = "",
    check_needle_placement_reason: str = "",
    check_aspiration: str = "",
    check_aspiration_reason: str = "",
    check_alarm_settings: str = "",
    check_alarm_settings_reason: str = "",
    check_symptom_screen: str = "",
    check_symptom_screen_reason: str = "",
) -> RefillVisit:
    """Record a refill: discrepancy against the history, the new forecast, dose history, appointment.

    A nurse refills at the prescribed dose; a change of dose, concentration or mode at the refill
    names the clinician who prescribed it (docs/domain.md "Entries that cannot be true").
    `complete_booking=False` (a correction re-entering an earlier refill) leaves the next booked
    refill booked: that booking is for the refill after this one. The rules are
    `refill_visit_prepare`'s.
    """
    now = timezone.localtime(now or timezone.now())
    implant = _lock_implant(implant)
    clinic = ClinicSettings.load()
    prepared = refill_visit_prepare(
        implant=implant,
        clinic=clinic,
        now=now,
        performed_at=performed_at,
        performed_by=performed_by,
        actual_residual_ml=actual_residual_ml,
        volume_added_ml=volume_added_ml,
        drug=drug,
        drug_lot=drug_lot,
        daily_dose_after_mcg=daily_dose_after_mcg,
        dosing_mode=dosing_mode,
        schedule=schedule,
        prescriber=prescriber,
        alarm_threshold_ml=alarm_threshold_ml,
        battery_status=battery_status,
        battery_event_on=battery_event_on,
        bridge_bolus_mcg=bridge_bolus_mcg,
        patient_bolus_mcg=patient_bolus_mcg,
        patient_boluses_per_day=patient_boluses_per_day,
        post_fill_check=post_fill_check,
        post_fill_discrepancy_ml=post_fill_discrepancy_ml,
        titration_confirmed=titration_confirmed,
        notes=notes,
        appointment=appointment,
        drug_lot_expires_on=drug_lot_expires_on,
        kit_lot=kit_lot,
        post_fill_check_reason=post_fill_check_reason,
        check_pump_site=check_pump_site,
        check_pump_site_reason=check_pump_site_reason,
        check_needle_placement=check_needle_placement,
        check_needle_placement_reason=check_needle_placement_reason,
        check_aspiration=check_aspiration,
        check_aspiration_reason=check_aspiration_reason,
        check_alarm_settings=check_alarm_settings,
        check_alarm_settings_reason=check_alarm_settings_reason,
        check_symptom_screen=check_symptom_screen,
        check_symptom_screen_reason=check_symptom_screen_reason,
    )
    visit = prepared.visit
    visit.save(force_insert=True)
    if prepared.dose_changed:
        dose_prescribe(
            implant=implant,
            daily_dose_mcg=visit.daily_dose_after_mcg,
            concentration_mcg_per_ml=drug.concentration_mcg_per_ml,
            effective_at=performed_at,
            prescribed_by=prepared.prescriber or performed_by,
            dosing_mode=dosing_mode,
            schedule=schedule,
            patient_bolus_mcg=patient_bolus_mcg,
            patient_boluses_per_day=patient_boluses_per_day,
            titration_confirmed=titration_confirmed,
            reason=REFILL_DOSE_REASON,
        )
    implant_forecast_refresh(implant=implant, clinic=clinic)
    booked = appointment or (
        Appointment.objects.booked_refills().select_for_update().filter(implant=implant).order_by("starts_at").first()
        if complete_booking
        else None
    )
    if booked is not None and booked.status == Appointment.Status.BOOKED:
        booked.status = Appointment.Status.COMPLETED
        booked.visit = visit
        booked.save(update_fields=["status", "visit", "updated_at"])
    battery_warning = battery_status in (RefillVisit.BatteryStatus.ERI, RefillVisit.BatteryStatus.EOS)
    refilled_on = timezone.localdate(performed_at)
    if battery_warning and implant.eri_reported_on is None:
        # The date the pump logged it, not the visit's (docs/domain.md "Events that must escalate").
        implant_record_eri(implant=implant, eri_on=battery_event_on or refilled_on, by=performed_by, now=now)
    return visit


def safety_checklist_errors(
    *, checks: dict[str, tuple[str, str]], post_fill_check: str, post_fill_check_reason: str
) -> dict[str, str]:
    """The refill's safety checklist: every item done or not done, a skipped item with its reason.

    `checks` maps each item of SAFETY_CHECK_ITEMS to (outcome, reason). A checklist is recorded
    whole or not at all (visits recorded before it existed, and callers that predate it, record
    none: shown as "not recorded"); once recorded, a post-fill check not done needs its reason too.
    """
    errors: dict[str, str] = {}
    valid = {RefillVisit.SafetyCheck.DONE, RefillVisit.SafetyCheck.NOT_DONE}
    recorded = any(value for value, _reason in checks.values())
    for name, (value, reason) in checks.items():
        label = SAFETY_CHECK_ITEMS[name]
        if value and value not in valid:
            errors[name] = f"{label}: answer done or not done."
        elif recorded and not value:
            errors[name] = f"{label}: record whether it was done."
        elif value == RefillVisit.SafetyCheck.NOT_DONE and not reason.strip():
            errors[f"{name}_reason"] = f"{label} was not done: give the reason."
    if recorded and post_fill_check == RefillVisit.PostFillCheck.NOT_DONE and not post_fill_check_reason.strip():
        errors["post_fill_check_reason"] = "The post-fill check was not done: give the reason."
    return errors


def _skip_reason(outcome: str, reason: str) -> str:
    """A reason is kept only for an item not done (a done item needs none)."""
    return reason.strip() if outcome in (RefillVisit.SafetyCheck.NOT_DONE, RefillVisit.PostFillCheck.NOT_DONE) else ""


def _fill_in_force_concentration(*, implant: Implant, at: dt.datetime) -> Decimal | None:
    """The concentration in the reservoir at `at`: the last refill before it, else the theatre fill."""
    visit = (
        RefillVisit.objects.valid()
        .filter(implant=implant, performed_at__lte=at)
        .order_by("-performed_at", "-id")
        .first()
    )
    if visit is not None:
        concentration: Decimal = visit.concentration_mcg_per_ml
        return concentration
    if implant.fill_drug is not None:
        return implant.fill_drug.concentration_mcg_per_ml
    in_force = dose_get_in_force(implant=implant, at=at)
    return in_force.concentration_mcg_per_ml if in_force else None


@transaction.atomic
def dose_change_record(
    *,
    implant: Implant,
    daily_dose_mcg: Decimal | None,
    effective_at: dt.datetime,
    prescribed_by: User,
    dosing_mode: str = DosePrescription.Mode.SIMPLE_CONTINUOUS,
    schedule: list[dict[str, str]] | None = None,
    patient_bolus_mcg: Decimal | None = None,
    patient_boluses_per_day: int | None = None,
    titration_confirmed: bool = False,
    reason: str = "",
    now: dt.datetime | None = None,
) -> DosePrescription:
    """A dose change between refills, at its exact time, past or future (within a year).

    The concentration is what is in the reservoir at that time. On a constant-flow pump the dose
    changes only by refilling at another concentration [S25].
    """
    now = timezone.localtime(now or timezone.now())
    implant = _lock_implant(implant)
    clinic = ClinicSettings.load()
    model = implant.pump_model
    if not _is_clinician(prescribed_by):
        raise ValidationError({"prescribed_by": "Only a clinician may change the prescribed dose."})
    if model.is_constant_flow:
        raise ValidationError(
            {
                "daily_dose_mcg": f"The {model} has a constant flow: the dose changes only by refilling "
                "at another concentration."
            }
        )
    if timezone.is_naive(effective_at):
        raise ValidationError({"effective_at": "Give the time with its time zone."})
    # Not before the last refill: the pump was programmed then, and that refill's record (dose
    # before and after, expected residual) would no longer match the history.
    last_visit = refill_visit_get_latest(implant=implant)
    errors = planned_time_errors(
        field="effective_at",
        at=effective_at,
        now=now,
        not_before=last_visit.performed_at if last_visit else implant.implanted_on,
        not_before_what="the last refill" if last_visit else "the implant",
        what="The dose change",
    )
    dose, schedule_errors = dosing_total(
        field="daily_dose_mcg", dosing_mode=dosing_mode, daily_dose_mcg=daily_dose_mcg, schedule=schedule
    )
    errors.update(schedule_errors)
    if dose is None and not schedule_errors:
        errors["daily_dose_mcg"] = "Give the new daily dose."
    if patient_bolus_mcg is not None and not model.patient_boluses:
        errors["patient_bolus_mcg"] = f"The {model} has no patient-activated boluses."
    if (patient_bolus_mcg is None) != (patient_boluses_per_day is None):
        errors["patient_boluses_per_day"] = "Give both the bolus dose and the number allowed per day."
    if errors or dose is None:
        raise ValidationError(errors)
    concentration = _fill_in_force_concentration(implant=implant, at=effective_at)
    if concentration is None:
        raise ValidationError({"implant": "No fill or starting dose is recorded: the concentration is unknown."})
    drug = Drug.objects.filter(concentration_mcg_per_ml=concentration).order_by("screening_only", "pk").first()
    errors.update(
        dose_bounds_errors(
            field="daily_dose_mcg",
            daily_dose_mcg=dose,
            drug=drug,
            model=model,
            implant=implant,
            concentration_mcg_per_ml=concentration,
        )
    )
    previous = dose_get_in_force(implant=implant, at=effective_at)
    if not errors:
        errors.update(
            titration_confirmation_errors(
                field="daily_dose_mcg",
                implant=implant,
                daily_dose_mcg=dose,
                previous=previous,
                confirmed=titration_confirmed,
                clinic=clinic,
                on=timezone.localdate(effective_at),
            )
        )
    if errors:
        raise ValidationError(errors)
    prescription = dose_prescribe(
        implant=implant,
        daily_dose_mcg=dose,
        concentration_mcg_per_ml=concentration,
        effective_at=effective_at,
        prescribed_by=prescribed_by,
        dosing_mode=dosing_mode,
        schedule=schedule,
        patient_bolus_mcg=patient_bolus_mcg,
        patient_boluses_per_day=patient_boluses_per_day,
        titration_confirmed=titration_confirmed,
        reason=reason,
    )
    implant_forecast_refresh(implant=implant, clinic=clinic)
    return prescription


@transaction.atomic
def reservoir_empty_record(
    *,
    implant: Implant,
    emptied_at: dt.datetime,
    recorded_by: User,
    reason: str = ReservoirEmptying.Reason.MRI,
    volume_removed_ml: Decimal | None = None,
    notes: str = "",
    now: dt.datetime | None = None,
) -> ReservoirEmptying:
    """The reservoir emptied (before MRI): 0 mL from then on, and an urgent "refill it" until refilled."""
    now = timezone.localtime(now or timezone.now())
    implant = _lock_implant(implant)
    clinic = ClinicSettings.load()
    errors = {}
    if not implant.is_active:
        errors["implant"] = "This pump is explanted or was entered in error."
    errors.update(
        event_time_errors(
            field="emptied_at",
            at=emptied_at,
            now=now,
            skew_minutes=clinic.clock_skew_minutes,
            not_before=implant.implanted_on,
            not_before_what="the implant",
            what="The emptying",
        )
    )
    if volume_removed_ml is not None and not (0 <= volume_removed_ml <= implant.pump_model.reservoir_ml):
        reservoir = format_volume(implant.pump_model.reservoir_ml)
        errors["volume_removed_ml"] = f"Between 0 and the reservoir's {reservoir}."
    if errors:
        raise ValidationError(errors)
    emptying = ReservoirEmptying.objects.create(
        implant=implant,
        emptied_at=emptied_at,
        volume_removed_ml=volume_removed_ml,
        reason=reason,
        recorded_by=recorded_by,
        notes=notes,
    )
    implant_forecast_refresh(implant=implant, clinic=clinic)
    return emptying


@transaction.atomic
def implant_register_with_fill(
    *, patient: Patient, recorded_by: User, now: dt.datetime | None = None, **fields: Any
) -> Implant:
    """Register a pump with its fill in theatre, so its forecast starts at the implant.

    `fields` are those of `pumps.services.implant_register`; the forecast is stored in the same
    transaction (a pump registered without its fill gets the urgent "fill not recorded" problem).
    """
    now = now or timezone.now()
    clinic = ClinicSettings.load()
    fill_drug = fields.get("fill_drug")
    if fill_drug is not None and fields.get("starting_daily_dose_mcg") is not None:
        model = fields["pump_model"]
        flow = fields.get("flow_ml_per_day") or (model.default_flow_ml_per_day if model.is_constant_flow else None)
        if model.is_constant_flow and flow is not None:
            fields["starting_daily_dose_mcg"] = (flow * fill_drug.concentration_mcg_per_ml).quantize(Decimal("0.01"))
        errors = dose_bounds_errors(
            field="starting_daily_dose_mcg",
            daily_dose_mcg=fields["starting_daily_dose_mcg"],
            drug=fill_drug,
            model=model,
            implant=None,
            constant_flow_ml_per_day=flow,
        )
        if errors:
            raise ValidationError(errors)
    implant = implant_register(
        patient=patient, recorded_by=recorded_by, now=now, skew_minutes=clinic.clock_skew_minutes, **fields
    )
    implant_forecast_refresh(implant=implant, clinic=clinic)
    return implant


@transaction.atomic
def implant_fill_record(
    *,
    implant: Implant,
    recorded_by: User,
    fill_drug: Drug,
    fill_volume_ml: Decimal,
    fill_drug_lot: str,
    starting_daily_dose_mcg: Decimal | None,
    fill_alarm_threshold_ml: Decimal | None = None,
    flow_ml_per_day: Decimal | None = None,
    titration_confirmed: bool = False,
    now: dt.datetime | None = None,
) -> Implant:
    """The theatre fill of a pump registered without it: its forecast starts at the implant.

    Only before the first refill (after that, the refill is the history's start), and only by a
    clinician, who also prescribes the starting dose programmed in theatre.
    """
    now = timezone.localtime(now or timezone.now())
    implant = _lock_implant(implant)
    model = implant.pump_model
    clinic = ClinicSettings.load()
    errors: dict[str, str] = {}
    if not implant.is_active:
        errors["implant"] = "This pump is explanted or was entered in error."
    elif implant.fill_drug_id:
        errors["implant"] = "The theatre fill of this pump is already recorded: correct it in its history."
    elif RefillVisit.objects.valid().filter(implant=implant).exists():
        errors["implant"] = "This pump has been refilled since: its forecast starts at the refill."
    if not _is_clinician(recorded_by):
        errors["recorded_by"] = "Only a clinician records the theatre fill and its starting dose."
    errors.update(
        theatre_fill_errors(
            pump_model=model,
            fill_drug=fill_drug,
            fill_volume_ml=fill_volume_ml,
            fill_drug_lot=fill_drug_lot,
            fill_alarm_threshold_ml=fill_alarm_threshold_ml,
        )
    )
    flow = (
        (flow_ml_per_day or implant.flow_ml_per_day or model.default_flow_ml_per_day)
        if model.is_constant_flow
        else None
    )
    dose = (flow * fill_drug.concentration_mcg_per_ml).quantize(Decimal("0.01")) if flow else starting_daily_dose_mcg
    if dose is None:
        errors["starting_daily_dose_mcg"] = "Give the starting dose programmed in theatre."
    if errors or dose is None:
        raise ValidationError(errors)
    errors.update(
        dose_bounds_errors(
            field="starting_daily_dose_mcg", daily_dose_mcg=dose, drug=fill_drug, model=model, implant=implant
        )
    )
    if errors:
        raise ValidationError(errors)
    start = dt.datetime.combine(implant.implanted_on, dt.time.min, tzinfo=timezone.get_current_timezone())
    previous = dose_get_in_force(implant=implant, at=start)
    errors.update(
        titration_confirmation_errors(
            field="starting_daily_dose_mcg",
            implant=implant,
            daily_dose_mcg=dose,
            previous=None,
            confirmed=titration_confirmed,
            clinic=clinic,
            on=implant.implanted_on,
        )
    )
    if errors:
        raise ValidationError(errors)
    implant.fill_drug, implant.fill_volume_ml, implant.fill_drug_lot = fill_drug, fill_volume_ml, fill_drug_lot.strip()
    implant.fill_alarm_threshold_ml = fill_alarm_threshold_ml
    if flow:
        implant.flow_ml_per_day = flow
    implant.save(
        update_fields=[
            "fill_drug",
            "fill_volume_ml",
            "fill_drug_lot",
            "fill_alarm_threshold_ml",
            "flow_ml_per_day",
            "updated_at",
        ]
    )
    same = previous is not None and (previous.daily_dose_mcg, previous.concentration_mcg_per_ml) == (
        dose,
        fill_drug.concentration_mcg_per_ml,
    )
    if not same:
        dose_prescribe(
            implant=implant,
            daily_dose_mcg=dose,
            concentration_mcg_per_ml=fill_drug.concentration_mcg_per_ml,
            effective_at=start,
            prescribed_by=recorded_by,
            titration_confirmed=titration_confirmed,
            reason="Starting dose at implant",
        )
    implant_forecast_refresh(implant=implant, clinic=clinic)
    return implant


def _close_schedule_of(*, implant: Implant, reason: str, by: User) -> int:
    """Cancel the pump's booked refill appointments and their pending reminders (the pump is gone)."""
    cancelled = 0
    for appointment in Appointment.objects.valid().booked_refills().filter(implant=implant).select_for_update():
        appointment.status = Appointment.Status.CANCELLED
        appointment.cancel_reason = reason
        appointment.save(update_fields=["status", "cancel_reason", "updated_at"])
        cancelled += 1
    Reminder.objects.filter(
        appointment__implant=implant, status__in=[Reminder.Status.PENDING, Reminder.Status.SENDING]
    ).exclude(appointment__status=Appointment.Status.BOOKED).update(
        status=Reminder.Status.CANCELLED,
        reason_code=Reminder.ReasonCode.OBSOLETE,
        status_reason=reason[:200],
        updated_at=timezone.now(),
    )
    return cancelled


@transaction.atomic
def implant_explant_record(
    *, implant: Implant, explanted_on: dt.date, reason: str, by: User, now: dt.datetime | None = None
) -> Implant:
    """The pump explanted: its booked refills and pending reminders end with it, with the reason."""
    now = now or timezone.now()
    implant = implant_explant(
        implant=implant,
        explanted_on=explanted_on,
        reason=reason,
        by=by,
        now=now,
        skew_minutes=ClinicSettings.load().clock_skew_minutes,
    )
    _close_schedule_of(
        implant=implant, reason=f"Pump explanted on {format_day(explanted_on, 'j M Y')}: {reason.strip()}", by=by
    )
    implant_forecast_refresh(implant=implant)
    return implant


@transaction.atomic
def implant_replace(
    *,
    implant: Implant,
    explanted_on: dt.date,
    reason: str,
    recorded_by: User,
    now: dt.datetime | None = None,
    **new_fields: Any,
) -> Implant:
    """Replace a pump in one action: the old one explanted (its schedule closed), the new one
    registered with its fill, so the patient is never without a forecast.

    A ValidationError about either pump leaves both as they were (one transaction).
    """
    now = now or timezone.now()
    old = _lock_implant(implant)
    implant_explant_record(implant=old, explanted_on=explanted_on, reason=reason, by=recorded_by, now=now)
    new_fields.setdefault("implanted_on", explanted_on)
    if new_fields["implanted_on"] < explanted_on:
        raise ValidationError({"implanted_on": "The new pump cannot be implanted before the old one came out."})
    return implant_register_with_fill(patient=old.patient, recorded_by=recorded_by, now=now, **new_fields)


def _open_refill_day_before(
    *, after: dt.date, until: dt.date, clinic: ClinicSettings, exclude_id: int | None, location: str
) -> dt.date | None:
    """The first day from `after` to `until` that is open and not full (for that location), if any."""
    if until < after:
        return None
    capacity, booked = day_capacity_get(location=location, start=after, end=until, clinic=clinic, exclude_id=exclude_id)
    closed = clinic_closed_days(start=after, end=until, clinic=clinic)
    for offset in range((until - after).days + 1):
        day = after + dt.timedelta(days=offset)
        if day not in closed and booked.get(day, 0) < capacity:
            return day
    return None


def _validate_slot(
    *,
    implant: Implant | None,
    kind: str,
    starts_at: dt.datetime,
    booked_by: User,
    outside_window_reason: str,
    now: dt.datetime,
    exclude_id: int | None = None,
    override_reason: str = "",
    location: str = Appointment.Location.CLINIC,
    clinic: ClinicSettings | None = None,
) -> None:
    """The booking rules of a slot (closed or full day, safe window). `clinic`: the settings the
    calling service has already read in its transaction, so one call reads them once."""
    if timezone.is_naive(starts_at):
        raise ValidationError({"starts_at": "Give the time with its time zone."})
    if starts_at < now:
        raise ValidationError({"starts_at": "This time has already passed."})
    home = location == Appointment.Location.HOME
    # A refill takes a clinic slot; a home visit of any kind takes one of the day's home visits
    # (a nurse travels), and neither happens on a day the clinic is closed.
    if kind != Appointment.Kind.REFILL and not home:
        return
    clinic = clinic or ClinicSettings.load()
    day = timezone.localdate(starts_at)
    closed_days = clinic_closed_days(start=day, end=day, clinic=clinic)
    closed = day in closed_days
    capacity, booked = day_capacity_get(location=location, start=day, end=day, clinic=clinic, exclude_id=exclude_id)
    full = booked.get(day, 0) >= capacity
    if closed or full:
        if closed and closed_days[day]:
            # A public holiday or a ClosedDay with its reason: "Christmas Day — the clinic is closed …".
            why = f"{closed_days[day]} — the clinic is closed on {format_day(day, 'l j F Y')}"
        elif closed:
            why = f"The clinic is closed on {format_day(day, 'l j F Y')}"
        elif home:
            why = f"{format_day(day, 'l j F')} is full for home visits ({capacity} a day)"
        else:
            why = f"{format_day(day, 'l j F')} is full ({format_count(capacity, 'refill')})"
        if not override_reason.strip():
            raise ValidationError(
                {
                    "starts_at": f"{why}. A clinician may book it as urgent, with a reason, "
                    "when the alarm date leaves no open day."
                }
            )
        if not _is_clinician(booked_by):
            raise ValidationError({"override_reason": "Only a clinician may book on a closed or full day."})
        alarm_on = implant.forecast_alarm_on if implant and kind == Appointment.Kind.REFILL else None
        if alarm_on is not None:
            open_day = _open_refill_day_before(
                after=timezone.localdate(now),
                until=min(alarm_on, day - dt.timedelta(days=1)),
                clinic=clinic,
                exclude_id=exclude_id,
                location=location,
            )
            if open_day is not None:
                raise ValidationError(
                    {
                        "starts_at": f"{why}, but {format_day(open_day, 'l j F')} is open before the alarm date "
                        f"({format_day(alarm_on, 'j M')}): book that."
                    }
                )
        # The override is recorded on the appointment (Appointment.override_reason); the window
        # rule below is waived too: the urgent booking exists because the window cannot be kept.
        return
    if kind != Appointment.Kind.REFILL:
        return
    window = refill_window_get(implant=implant, clinic=clinic) if implant is not None else None
    if implant is None or window is None or window.opens_on <= day <= window.due_by:
        return
    if window.due_by < timezone.localdate(now) and implant.forecast_alarm_on and day <= implant.forecast_alarm_on:
        # Already overdue: the window has closed, and the soonest refill before the alarm is what
        # any nurse must be able to book at once. Past the alarm date a clinician decides.
        return
    where = "after the due-by date" if day > window.due_by else "before the safe window opens"
    message = (
        f"{format_day(day, 'j M Y')} is {where} "
        f"({format_day(window.opens_on, 'j M')} to {format_day(window.due_by, 'j M Y')}); "
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
    booked_by: User,
    implant: Implant | None = None,
    place: str = "",
    location: str = Appointment.Location.CLINIC,
    duration_minutes: int = 30,
    outside_window_reason: str = "",
    override_reason: str = "",
    notes: str = "",
    now: dt.datetime | None = None,
) -> Appointment:
    """Book an appointment at the clinic (in `place`) or a home visit (at the patient's address,
    counted against the day's home visits instead of the clinic's refill slots)."""
    now = now or timezone.now()
    if location not in Appointment.Location.values:
        raise ValidationError({"location": "Choose the clinic or a home visit."})
    home = location == Appointment.Location.HOME
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
    if home and not patient.address_lines:
        raise ValidationError(
            {
                "location": f"{patient.full_name} has no address on record: add the address to the patient's "
                "details before booking a home visit."
            }
        )
    if kind == Appointment.Kind.REFILL:
        existing = Appointment.objects.booked_refills().filter(implant=implant).first()
        if existing is not None:
            raise BookingConflict(
                "A refill is already booked for this pump on "
                f"{format_day(timezone.localtime(existing.starts_at), 'j M Y H:i')}:"
                " move it instead."
            )
    # Read once for the whole booking (slot rules, default place, reminders), not once each.
    clinic = ClinicSettings.load()
    _validate_slot(
        implant=implant,
        kind=kind,
        starts_at=starts_at,
        booked_by=booked_by,
        outside_window_reason=outside_window_reason,
        now=now,
        override_reason=override_reason,
        location=location,
        clinic=clinic,
    )
    appointment = Appointment(
        patient=patient,
        implant=implant,
        kind=kind,
        starts_at=starts_at,
        duration_minutes=duration_minutes,
        location=location,
        # A home visit is at the patient's address as it stands (read where it is shown).
        place=HOME_VISIT_PLACE if home else (place or clinic.default_place),
        outside_window_reason=outside_window_reason.strip(),
        override_reason=override_reason.strip(),
        booked_by=booked_by,
        notes=notes,
    )
    appointment.full_clean(validate_constraints=False)
    try:
        with transaction.atomic():
            appointment.save()
    except IntegrityError as exc:
        raise BookingConflict("Another refill was booked for this pump at the same moment.") from exc
    # The reminder rows exist in the booking's own transaction (the scan would add them later).
    reminders_materialise_for_appointment(appointment=appointment, now=now, clinic=clinic)
    return appointment


@transaction.atomic
def appointment_move(
    *,
    appointment: Appointment,
    starts_at: dt.datetime,
    moved_by: User,
    outside_window_reason: str = "",
    override_reason: str = "",
    place: str = "",
    now: dt.datetime | None = None,
) -> Appointment:
    now = now or timezone.now()
    appointment = Appointment.objects.select_for_update().get(pk=appointment.pk)
    if appointment.status != Appointment.Status.BOOKED:
        raise ValidationError({"status": "Only a booked appointment can be moved."})
    implant = _lock_implant(appointment.implant) if appointment.implant is not None else None
    # Read once for the whole move (slot rules, reminders), not once each.
    clinic = ClinicSettings.load()
    _validate_slot(
        implant=implant,
        kind=appointment.kind,
        starts_at=starts_at,
        booked_by=moved_by,
        outside_window_reason=outside_window_reason,
        now=now,
        exclude_id=appointment.pk,
        override_reason=override_reason,
        location=appointment.location,
        clinic=clinic,
    )
    previous_at, previous_place = appointment.starts_at, appointment.place
    appointment.starts_at = starts_at
    if place and not appointment.is_home_visit:
        appointment.place = place
        appointment.clean_fields(exclude=[f.name for f in Appointment._meta.fields if f.name != "place"])
    if outside_window_reason.strip():
        appointment.outside_window_reason = outside_window_reason.strip()
    if override_reason.strip():
        appointment.override_reason = override_reason.strip()
    appointment.save(update_fields=["starts_at", "place", "outside_window_reason", "override_reason", "updated_at"])
    reminders_materialise_for_appointment(appointment=appointment, now=now, clinic=clinic)
    # The patient's open request is met by the move, and the patient is told (after commit).
    _change_requests_close(
        appointment=appointment,
        status=AppointmentChangeRequest.Status.DONE,
        by=moved_by,
        now=now,
        moved_to=appointment.starts_at,
        resolution=f"Moved to {format_day(timezone.localtime(appointment.starts_at), 'j M Y H:i')}.",
    )
    if (previous_at, previous_place) != (appointment.starts_at, appointment.place):
        appointment_notice_create(appointment=appointment, kind=AppointmentNotice.Kind.MOVED, previous_at=previous_at)
    return appointment


@transaction.atomic
def appointment_cancel(
    *, appointment: Appointment, reason: str, cancelled_by: User, now: dt.datetime | None = None
) -> Appointment:
    """Cancel a booked appointment (of any kind): its reminders end, an open request closes, the patient is told."""
    now = now or timezone.now()
    appointment = Appointment.objects.select_for_update().get(pk=appointment.pk)
    if appointment.status != Appointment.Status.BOOKED:
        raise ValidationError({"status": "Only a booked appointment can be cancelled."})
    if not reason.strip():
        raise ValidationError({"cancel_reason": "Say why the appointment is cancelled."})
    appointment.status = Appointment.Status.CANCELLED
    appointment.cancel_reason = reason.strip()
    appointment.save(update_fields=["status", "cancel_reason", "updated_at"])
    reminders_materialise_for_appointment(appointment=appointment, now=now)
    _change_requests_close(
        appointment=appointment,
        status=AppointmentChangeRequest.Status.CANCELLED,
        by=cancelled_by,
        now=now,
        resolution="The appointment was cancelled.",
    )
    if appointment.starts_at > now:
        # The reason is the clinic's own note: the patient is told the fact and whom to call.
        appointment_notice_create(appointment=appointment, kind=AppointmentNotice.Kind.CANCELLED)
    return appointment


@transaction.atomic
def appointment_mark_attended(*, appointment: Appointment, by: User, now: dt.datetime) -> Appointment:
    """A review, trial or replacement appointment took place (a refill completes with its visit record)."""
    appointment = Appointment.objects.select_for_update().get(pk=appointment.pk)
    if appointment.kind == Appointment.Kind.REFILL:
        raise ValidationError({"status": "A refill is completed by recording the refill visit."})
    if appointment.status != Appointment.Status.BOOKED:
        raise ValidationError({"status": "Only a booked appointment can be marked as attended."})
    if appointment.starts_at > now:
        raise ValidationError({"status": "This appointment has not happened yet."})
    appointment.status = Appointment.Status.COMPLETED
    appointment.save(update_fields=["status", "updated_at"])
    reminders_materialise_for_appointment(appointment=appointment, now=now)
    _change_requests_close(
        appointment=appointment,
        status=AppointmentChangeRequest.Status.CANCELLED,
        by=by,
        now=now,
        resolution="The appointment took place.",
    )
    return appointment


def _change_requests_close(
    *,
    appointment: Appointment,
    status: str,
    by: User | None,
    now: dt.datetime,
    resolution: str,
    moved_to: dt.datetime | None = None,
) -> int:
    """Close the open change requests of `appointment` with `status`, and their worklist alerts."""
    closed = 0
    for request in appointment.change_requests.select_for_update().filter(status=AppointmentChangeRequest.Status.OPEN):
        request.status, request.handled_by, request.handled_at, request.moved_to = status, by, now, moved_to
        request.save(update_fields=["status", "handled_by", "handled_at", "moved_to"])
        closed += 1
    if closed:
        alerts_resolve_change_request(appointment=appointment, resolution=resolution, by=by, now=now)
    return closed


def _change_request_lock_open(change_request: AppointmentChangeRequest) -> AppointmentChangeRequest:
    locked = AppointmentChangeRequest.objects.select_for_update().select_related("appointment__patient")
    request = locked.get(pk=change_request.pk)
    if request.status != AppointmentChangeRequest.Status.OPEN:
        raise ValidationError({"status": f"This request is already closed ({request.get_status_display().lower()})."})
    return request


@transaction.atomic
def appointment_change_request_decline(
    *, change_request: AppointmentChangeRequest, reason: str, declined_by: User, now: dt.datetime | None = None
) -> AppointmentChangeRequest:
    """The clinic cannot give the patient the date asked for: the request closes with the reason,
    which the patient reads in the portal and in the message sent to them."""
    now = now or timezone.now()
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": "Say why the appointment cannot be changed: the patient reads it."})
    request = _change_request_lock_open(change_request)
    request.status = AppointmentChangeRequest.Status.DECLINED
    request.response, request.handled_by, request.handled_at = reason, declined_by, now
    request.save(update_fields=["status", "response", "handled_by", "handled_at"])
    alerts_resolve_change_request(
        appointment=request.appointment, resolution=f"Declined: {reason}", by=declined_by, now=now
    )
    appointment = request.appointment
    if appointment.status == Appointment.Status.BOOKED and not appointment.entered_in_error:
        appointment_notice_create(
            appointment=appointment, kind=AppointmentNotice.Kind.REQUEST_DECLINED, response=reason
        )
    return request


@transaction.atomic
def appointment_change_request_withdraw(
    *, change_request: AppointmentChangeRequest, withdrawn_by: User, now: dt.datetime | None = None
) -> AppointmentChangeRequest:
    """The patient (or carer) no longer needs another date: the request and its alert close."""
    now = now or timezone.now()
    request = _change_request_lock_open(change_request)
    request.status = AppointmentChangeRequest.Status.WITHDRAWN
    request.handled_by, request.handled_at = withdrawn_by, now
    request.save(update_fields=["status", "handled_by", "handled_at"])
    alerts_resolve_change_request(
        appointment=request.appointment, resolution="Withdrawn by the patient.", by=None, now=now
    )
    return request


@transaction.atomic
def appointment_change_request_create(
    *,
    appointment: Appointment,
    requested_by: User,
    preferred_date: dt.date,
    message: str,
    today: dt.date,
) -> AppointmentChangeRequest:
    """The patient asks for another date (the portal): a request row, and an alert on the nurses' worklist."""
    message = (message or "").strip()
    if not message:
        raise ValidationError({"message": "Tell the clinic why you need another date, or what suits you."})
    if preferred_date <= today:
        raise ValidationError({"preferred_date": "Choose a date after today."})
    if appointment.status != Appointment.Status.BOOKED or appointment.entered_in_error:
        raise ValidationError("This appointment can no longer be changed online: please phone the clinic.")
    locked = Appointment.objects.select_for_update().get(pk=appointment.pk)
    if locked.change_requests.filter(status=AppointmentChangeRequest.Status.OPEN).exists():
        raise ValidationError("You have already asked to change this appointment: the clinic will contact you.")
    due_by = change_request_due_by(appointment=locked)
    urgent = due_by is not None and preferred_date > due_by
    request = AppointmentChangeRequest.objects.create(
        appointment=locked,
        requested_by=requested_by,
        preferred_dates=preferred_date.isoformat(),
        message=message,
        urgent=urgent,
    )
    local_start = timezone.localtime(locked.starts_at)
    text = (
        f"{locked.patient.full_name} asks to move the {locked.get_kind_display().lower()} appointment of "
        f"{format_day(local_start, 'j M Y H:i')} to {format_day(preferred_date, 'j M Y')}: {message[:300]}"
    )
    if urgent and due_by is not None:
        text = f"URGENT: the date asked for is after the pump's due-by date ({format_day(due_by, 'j M Y')}). {text}"
    alert_raise_change_request(
        appointment=locked,
        message=text,
        today=today,
        severity=Alert.Severity.URGENT if urgent else Alert.Severity.WARNING,
    )
    return request


@transaction.atomic
def care_record_mark_entered_in_error(
    *, record: RefillVisit | DosePrescription | ReservoirEmptying | Appointment, by: User, reason: str
) -> None:
    """Mark a refill visit, dose prescription or appointment entered in error.

    A refill or dose that no longer counts changes the forecast in force: the implant's stored
    forecast (the schedule's source) is recomputed in the same transaction.
    """
    implant = _lock_implant(record.implant) if record.implant is not None else None
    clinical_record_mark_entered_in_error(record=record, by=by, reason=reason)
    if implant is not None and isinstance(record, RefillVisit | DosePrescription | ReservoirEmptying):
        implant_forecast_refresh(implant=implant)
