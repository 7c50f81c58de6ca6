"""Refill arithmetic: pure functions, no ORM, no clock, no settings.

The one-interval forecast is the forecast's own function (refills/forecasting.py) for a history
of one fill, and the expected residual is its reservoir (`reservoir_volume_on`); the arithmetic
is exact (refills/exact.py).
"""

from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal, localcontext

from .exact import DISPLAY_PRECISION, exact
from .forecasting import Dose, Fill, pump_forecast


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

    One interval at one dose: the forecast's history of a single fill (refills/forecasting.py),
    so this formula has one home. Days round down: a partial day is not a day of drug.
    ``daily_volume_ml`` is for display (28 significant digits); the day counts use the exact
    ratio. ``due_by`` may fall before ``refilled_on`` when the fill barely clears the alarm
    volume: the refill is already due.
    """
    start = datetime.combine(refilled_on, time.min, tzinfo=UTC)
    forecast = pump_forecast(
        events=[
            Fill(
                at=start,
                volume_ml=volume_ml,
                concentration_mcg_per_ml=concentration_mcg_per_ml,
                alarm_threshold_ml=alarm_threshold_ml,
                max_interval_days=max_interval_days,
            ),
            Dose(at=start, daily_dose_mcg=daily_dose_mcg),
        ],
        tz=UTC,
        safety_margin_days=safety_margin_days,
    )
    assert forecast.daily_volume_ml is not None and forecast.days_to_alarm is not None  # one fill, one dose
    assert forecast.days_to_empty is not None and forecast.alarm_on is not None
    assert forecast.empty_on is not None and forecast.due_by is not None
    return RefillForecast(
        daily_volume_ml=forecast.daily_volume_ml,
        days_to_alarm=forecast.days_to_alarm,
        days_to_empty=forecast.days_to_empty,
        alarm_on=forecast.alarm_on,
        empty_on=forecast.empty_on,
        due_by=forecast.due_by,
    )


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
    expected = exact("expected_ml", expected_ml, allow_zero=True)
    actual = exact("actual_ml", actual_ml, allow_zero=True)
    tolerance = exact("tolerance_ml", tolerance_ml, allow_zero=True)
    with localcontext(prec=DISPLAY_PRECISION):
        difference_ml = actual_ml - expected_ml  # keeps the entered scale: 1.50, not 1.5
    return ResidualDiscrepancy(difference_ml=difference_ml, flagged=abs(actual - expected) > tolerance)


def one_year_after(day: date) -> date:
    """The same date a year later; 29 February becomes 28 February."""
    try:
        return day.replace(year=day.year + 1)
    except ValueError:
        return day.replace(year=day.year + 1, day=28)


@dataclass(frozen=True, slots=True)
class AnnualReview:
    due_on: date
    is_due: bool


def annual_review_due(
    *, last_review_on: date | None, implanted_on: date | None, review_booked: bool, today: date, notice_days: int
) -> AnnualReview | None:
    """The yearly review of a patient with a pump [S31]: due a year after the last review done,
    or a year after the implant when none has been done since; proposed from `notice_days` before
    that date until one is booked. None when the patient has no pump (nothing to review yearly).
    """
    if implanted_on is None:
        return None
    anchor = max(implanted_on, last_review_on) if last_review_on is not None else implanted_on
    due_on = one_year_after(anchor)
    return AnnualReview(due_on=due_on, is_due=not review_booked and (due_on - today).days <= notice_days)
