"""
The forecast in force for one implant: the last refill, then every dose change since.

Pure like calculations.py (dates and Decimals in, a dataclass out): a dose change between two
refills starts a new segment from the volume the old dose left on that day, so the forecast
always uses the dose in force (DOMAIN.md "Refill arithmetic"; STYLE.md 2).

The volume carried from one segment to the next is a 28-digit Decimal. Where a compounded
strength makes it a recurring decimal, rounding can only move a day count that lands exactly on
a whole day down by one (an earlier, safer date), never later.
"""

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from .calculations import RefillForecast, forecast_remaining_volume, refill_forecast


@dataclass(frozen=True, slots=True)
class DoseChange:
    on: dt.date
    daily_dose_mcg: Decimal


def remaining_volume_on(
    *,
    refilled_on: dt.date,
    volume_ml: Decimal,
    concentration_mcg_per_ml: Decimal,
    daily_dose_mcg: Decimal,
    dose_changes: Sequence[DoseChange],
    on: dt.date,
) -> Decimal:
    """Volume expected in the reservoir on `on`, each day at the dose then in force."""
    start, volume, dose = refilled_on, volume_ml, daily_dose_mcg
    for change in sorted(dose_changes, key=lambda c: c.on):
        if change.on > on or volume == 0:
            break
        if change.on > start:
            volume = forecast_remaining_volume(
                refilled_on=start,
                volume_ml=volume,
                concentration_mcg_per_ml=concentration_mcg_per_ml,
                daily_dose_mcg=dose,
                on=change.on,
            )
            start = change.on
        dose = change.daily_dose_mcg
    if volume == 0 or on <= start:
        return volume
    return forecast_remaining_volume(
        refilled_on=start,
        volume_ml=volume,
        concentration_mcg_per_ml=concentration_mcg_per_ml,
        daily_dose_mcg=dose,
        on=on,
    )


def forecast_in_force(
    *,
    refilled_on: dt.date,
    volume_ml: Decimal,
    concentration_mcg_per_ml: Decimal,
    daily_dose_mcg: Decimal,
    dose_changes: Sequence[DoseChange],
    alarm_threshold_ml: Decimal,
    safety_margin_days: int,
    max_interval_days: int | None,
) -> RefillForecast:
    """refill_forecast() from the last dose change, with the stability cap counted from the refill."""
    changes = sorted((c for c in dose_changes if c.on >= refilled_on), key=lambda c: c.on)
    start, dose = refilled_on, daily_dose_mcg
    if changes:
        start, dose = changes[-1].on, changes[-1].daily_dose_mcg
    volume = remaining_volume_on(
        refilled_on=refilled_on,
        volume_ml=volume_ml,
        concentration_mcg_per_ml=concentration_mcg_per_ml,
        daily_dose_mcg=daily_dose_mcg,
        dose_changes=changes,
        on=start,
    )
    if volume == 0:
        # Ran dry on paper: everything is today-or-past; keep the arithmetic total.
        volume = Decimal("0.0001")
    forecast = refill_forecast(
        refilled_on=start,
        volume_ml=volume,
        concentration_mcg_per_ml=concentration_mcg_per_ml,
        daily_dose_mcg=dose,
        alarm_threshold_ml=alarm_threshold_ml,
        safety_margin_days=safety_margin_days,
    )
    if max_interval_days is None:
        return forecast
    capped = min(forecast.due_by, refilled_on + dt.timedelta(days=max_interval_days))
    return RefillForecast(
        daily_volume_ml=forecast.daily_volume_ml,
        days_to_alarm=forecast.days_to_alarm,
        days_to_empty=forecast.days_to_empty,
        alarm_on=forecast.alarm_on,
        empty_on=forecast.empty_on,
        due_by=capped,
    )
