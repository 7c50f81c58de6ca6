"""Refill arithmetic: pure functions, no ORM, no clock, no settings.

Days are computed with exact rational arithmetic (``fractions.Fraction``): a float, or a
daily volume rounded to a finite number of digits, can land on the wrong side of a whole
number (17 / 0.34 is 49.99999999999999 in float) and lose or invent a day of drug. Decimal results meant
for display are divided in a 28-significant-digit context.
"""

import math
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal, localcontext
from fractions import Fraction

DISPLAY_PRECISION = 28


@dataclass(frozen=True, slots=True)
class RefillForecast:
    daily_volume_ml: Decimal
    days_to_alarm: int
    days_to_empty: int
    alarm_on: date
    empty_on: date
    due_by: date


@dataclass(frozen=True, slots=True)
class ResidualDiscrepancy:
    difference_ml: Decimal
    flagged: bool


def _exact(name: str, value: Decimal, *, allow_zero: bool) -> Fraction:
    if not isinstance(value, Decimal):
        raise TypeError(f"{name} must be a Decimal, got {value!r}")
    if not value.is_finite() or value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name} must be {'non-negative' if allow_zero else 'positive'}, got {value}")
    return Fraction(value)


def _to_decimal(value: Fraction) -> Decimal:
    with localcontext(prec=DISPLAY_PRECISION):
        return Decimal(value.numerator) / Decimal(value.denominator)


def refill_forecast(
    *,
    refilled_on: date,
    volume_ml: Decimal,
    concentration_mcg_per_ml: Decimal,
    daily_dose_mcg: Decimal,
    alarm_threshold_ml: Decimal,
    safety_margin_days: int = 5,
    max_interval_days: int | None = None,
) -> RefillForecast:
    """When the reservoir reaches its alarm volume and runs dry, and when to refill. [S8][S25]

    daily_volume  = daily_dose / concentration     (flex or bolus dosing: the day's total dose)
    days_to_alarm = floor((volume - alarm_threshold) / daily_volume), never below 0
    days_to_empty = floor(volume / daily_volume)
    alarm_on      = refilled_on + days_to_alarm
    empty_on      = refilled_on + days_to_empty
    due_by        = min(alarm_on - safety_margin_days, refilled_on + max_interval_days)

    Days round down: a partial day is not a day of drug. ``daily_volume_ml`` is for display
    (28 significant digits); the day counts use the exact ratio. ``due_by`` may fall before
    ``refilled_on`` when the fill barely clears the alarm volume: the refill is already due.
    """
    volume = _exact("volume_ml", volume_ml, allow_zero=False)
    concentration = _exact("concentration_mcg_per_ml", concentration_mcg_per_ml, allow_zero=False)
    dose = _exact("daily_dose_mcg", daily_dose_mcg, allow_zero=False)
    threshold = _exact("alarm_threshold_ml", alarm_threshold_ml, allow_zero=True)
    if safety_margin_days < 0:
        raise ValueError(f"safety_margin_days must be non-negative, got {safety_margin_days}")
    if max_interval_days is not None and max_interval_days < 1:
        raise ValueError(f"max_interval_days must be positive, got {max_interval_days}")

    daily_volume = dose / concentration
    days_to_alarm = max(0, math.floor((volume - threshold) / daily_volume))
    days_to_empty = math.floor(volume / daily_volume)
    alarm_on = refilled_on + timedelta(days=days_to_alarm)
    due_by = alarm_on - timedelta(days=safety_margin_days)
    if max_interval_days is not None:
        due_by = min(due_by, refilled_on + timedelta(days=max_interval_days))
    return RefillForecast(
        daily_volume_ml=_to_decimal(daily_volume),
        days_to_alarm=days_to_alarm,
        days_to_empty=days_to_empty,
        alarm_on=alarm_on,
        empty_on=refilled_on + timedelta(days=days_to_empty),
        due_by=due_by,
    )


def forecast_remaining_volume(
    *,
    refilled_on: date,
    volume_ml: Decimal,
    concentration_mcg_per_ml: Decimal,
    daily_dose_mcg: Decimal,
    on: date,
) -> Decimal:
    """Volume the forecast expects in the reservoir on a later date: the expected residual. [S8]

    remaining = max(0, volume - (on - refilled_on in days) * daily_dose / concentration)

    Exact where the result terminates, else 28 significant digits: quantize for display.
    """
    volume = _exact("volume_ml", volume_ml, allow_zero=False)
    concentration = _exact("concentration_mcg_per_ml", concentration_mcg_per_ml, allow_zero=False)
    dose = _exact("daily_dose_mcg", daily_dose_mcg, allow_zero=False)
    elapsed_days = (on - refilled_on).days
    if elapsed_days < 0:
        raise ValueError(f"on ({on}) must not be before refilled_on ({refilled_on})")
    return _to_decimal(max(Fraction(0), volume - elapsed_days * dose / concentration))


def residual_discrepancy(
    *,
    expected_ml: Decimal,
    actual_ml: Decimal,
    tolerance_ml: Decimal = Decimal("2.0"),
) -> ResidualDiscrepancy:
    """Aspirated versus expected residual volume. [S27]

    difference = actual - expected      (negative: less drug came back than forecast)
    flagged    = |difference| > tolerance   (strictly above: exactly at tolerance passes)
    """
    expected = _exact("expected_ml", expected_ml, allow_zero=True)
    actual = _exact("actual_ml", actual_ml, allow_zero=True)
    tolerance = _exact("tolerance_ml", tolerance_ml, allow_zero=True)
    with localcontext(prec=DISPLAY_PRECISION):
        difference_ml = actual_ml - expected_ml  # keeps the entered scale: 1.50, not 1.5
    return ResidualDiscrepancy(difference_ml=difference_ml, flagged=abs(actual - expected) > tolerance)
