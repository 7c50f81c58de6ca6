"""Battery and replacement dates: pure functions, no ORM, no clock, no settings."""

import calendar
from dataclasses import dataclass
from datetime import date, timedelta


@dataclass(frozen=True, slots=True)
class ReplacementPlan:
    hard_stop_on: date
    plan_by: date
    stops_on: date


@dataclass(frozen=True, slots=True)
class BatteryWindow:
    window_opens_on: date
    hard_stop_on: date


def add_months(*, day: date, months: int) -> date:
    """``day`` moved by ``months`` calendar months (may be negative), clamped to the month's end.

    31 Aug - 6 months = 28 Feb (29 in a leap year); 29 Feb + 12 months = 28 Feb.
    """
    month_index = day.year * 12 + day.month - 1 + months
    year, month = divmod(month_index, 12)
    last_day = calendar.monthrange(year, month + 1)[1]
    return date(year, month + 1, min(day.day, last_day))


def replacement_plan(
    *,
    implanted_on: date,
    service_life_years: int = 7,
    plan_months_before: int = 6,
    eri_on: date | None = None,
    eri_grace_days: int = 90,
) -> ReplacementPlan:
    """When a battery-powered pump stops and when its replacement must be planned. [S1][S4]

    hard_stop_on = implanted_on + service_life_years   (29 Feb -> 28 Feb in a non-leap year)
    stops_on     = min(hard_stop_on, eri_on + eri_grace_days)   (whichever comes first rules)
    plan_by      = min(hard_stop_on - plan_months_before months, stops_on)

    An elective replacement indicator (ERI) late in the pump's life can stop it before the
    planned date, so ``plan_by`` is never later than ``stops_on``.
    """
    if service_life_years < 1:
        raise ValueError(f"service_life_years must be positive, got {service_life_years}")
    if plan_months_before < 0:
        raise ValueError(f"plan_months_before must be non-negative, got {plan_months_before}")
    if eri_grace_days < 0:
        raise ValueError(f"eri_grace_days must be non-negative, got {eri_grace_days}")
    if eri_on is not None and eri_on < implanted_on:
        raise ValueError(f"eri_on ({eri_on}) must not be before implanted_on ({implanted_on})")

    hard_stop_on = add_months(day=implanted_on, months=12 * service_life_years)
    stops_on = hard_stop_on
    if eri_on is not None:
        stops_on = min(hard_stop_on, eri_on + timedelta(days=eri_grace_days))
    plan_by = min(add_months(day=hard_stop_on, months=-plan_months_before), stops_on)
    return ReplacementPlan(hard_stop_on=hard_stop_on, plan_by=plan_by, stops_on=stops_on)


def battery_window(*, implanted_on: date, earliest_end_years: int, hard_stop_years: int) -> BatteryWindow:
    """From when the battery may run out, and when it stops at the latest. [S1][S4]

    window_opens_on = implanted_on + earliest_end_years   (e.g. 5 years for SynchroMed II)
    hard_stop_on    = implanted_on + hard_stop_years      (e.g. 7 years for SynchroMed II)
    """
    if earliest_end_years < 1:
        raise ValueError(f"earliest_end_years must be positive, got {earliest_end_years}")
    if hard_stop_years < earliest_end_years:
        raise ValueError(
            f"hard_stop_years ({hard_stop_years}) must not be before earliest_end_years ({earliest_end_years})"
        )
    return BatteryWindow(
        window_opens_on=add_months(day=implanted_on, months=12 * earliest_end_years),
        hard_stop_on=add_months(day=implanted_on, months=12 * hard_stop_years),
    )
