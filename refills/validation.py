"""The rules of pumps/rules.py applied to this clinic's rows: catalogue bounds, clinic settings.

The pure checks judge values; these adapters fetch the limits they are judged by (the drug's and
the pump model's catalogue rows, the clinic's titration settings, the patient's age and origin)
so that the refill, dose-change and implant services, the forms and the API share one rule.
"""

import datetime as dt
from decimal import Decimal

from core.formatting import format_dose, format_number
from pumps.models import DosePrescription, Drug, Implant, PumpModel
from pumps.rules import (
    Errors,
    dose_errors,
    dose_needs_confirmation,
    flex_schedule_total,
    is_child,
    periodic_bolus_total,
)

from .models import ClinicSettings


def dosing_total(
    *, field: str, dosing_mode: str, daily_dose_mcg: Decimal | None, schedule: list | None
) -> tuple[Decimal | None, Errors]:
    """The programmed day: the entered dose, a flex schedule's sum, or the basal plus its boluses.

    For flex dosing the schedule is the prescription and the daily dose is computed from it; an
    entered dose that disagrees with the schedule is refused rather than silently replaced.
    """
    if dosing_mode == DosePrescription.Mode.FLEX:
        total = flex_schedule_total(steps=schedule or [], field="schedule")
        if not total.ok:
            return None, total.errors
        if daily_dose_mcg is not None and daily_dose_mcg != total.daily_dose_mcg:
            return None, {
                field: f"The flex steps add up to {format_dose(total.daily_dose_mcg)}, "
                f"not {format_number(daily_dose_mcg)}: correct one of them."
            }
        return total.daily_dose_mcg, {}
    if dosing_mode == DosePrescription.Mode.PERIODIC_BOLUS and schedule:
        if daily_dose_mcg is None:
            return None, {field: "Give the basal daily dose."}
        total = periodic_bolus_total(basal_daily_dose_mcg=daily_dose_mcg, boluses=schedule, field="schedule")
        return (total.daily_dose_mcg, {}) if total.ok else (None, total.errors)
    return daily_dose_mcg, {}


def dose_bounds_errors(
    *,
    field: str,
    daily_dose_mcg: Decimal,
    drug: Drug | None,
    model: PumpModel,
    implant: Implant | None,
    concentration_mcg_per_ml: Decimal | None = None,
    constant_flow_ml_per_day: Decimal | None = None,
) -> Errors:
    """Hard bounds: the drug's dose limits and the pump model's programmable flow (refused outside).

    A constant-flow pump's dose follows from its labelled flow: only the drug's limits apply.
    """
    concentration = concentration_mcg_per_ml or (drug.concentration_mcg_per_ml if drug else None)
    if concentration is None:
        return {}
    constant = model.is_constant_flow or constant_flow_ml_per_day is not None
    return dose_errors(
        field=field,
        daily_dose_mcg=daily_dose_mcg,
        concentration_mcg_per_ml=concentration,
        drug_min_mcg=drug.min_daily_dose_mcg if drug else Decimal("10"),
        drug_max_mcg=drug.max_daily_dose_mcg if drug else Decimal("2000"),
        # The restrictor sets a constant flow: the programmable range does not apply to it.
        min_flow_ml_per_day=Decimal(0) if constant else model.min_flow_ml_per_day,
        max_flow_ml_per_day=Decimal("1e6") if constant else model.max_flow_ml_per_day,
    )


# The last words of a dose needing confirmation: the onboarding import names its own column instead.
CONFIRMATION_HINT = "Tick the confirmation if this is the prescription."


def titration_confirmation_errors(
    *,
    field: str,
    implant: Implant,
    daily_dose_mcg: Decimal,
    previous: DosePrescription | None,
    confirmed: bool,
    clinic: ClinicSettings,
    on: dt.date,
) -> Errors:
    """A dose outside the usual range, or a change beyond the titration limits, needs the
    prescribing clinician's explicit confirmation [S13][S14][S47]."""
    patient = implant.patient
    reasons = dose_needs_confirmation(
        daily_dose_mcg=daily_dose_mcg,
        previous_daily_dose_mcg=previous.daily_dose_mcg if previous else None,
        spasticity_origin=patient.spasticity_origin,
        is_child=is_child(date_of_birth=patient.date_of_birth, on=on),
        usual_ranges=clinic.usual_dose_ranges or {},
        max_increase_pct=clinic.titration_max_increase_pct,
        max_increase_cerebral_pct=clinic.titration_max_increase_cerebral_pct,
        max_decrease_pct=clinic.titration_max_decrease_pct,
    )
    if not reasons or confirmed:
        return {}
    return {field: " ".join(reasons) + " " + CONFIRMATION_HINT}
