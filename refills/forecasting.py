"""
The forecast in force for one pump, from its whole history: one pure function, one home.

Pure like calculations.py: no ORM, no clock, no settings. The events of one pump (the fill in
theatre and every refill, every dose change at its exact time past or future, bridge and priming
boluses, the reservoir emptied) go in; the dates the schedule runs on come out
(docs/domain.md "What feeds the forecast"). The staff pages, the refill form's live preview, the API,
the portal, the wallet card, the worklist and the scan all read this one result, stored on the
implant by `refills.services.implant_forecast_refresh` in the same transaction as each write.

How time is counted, and why it is safe:
- Time is counted in clinic days: day index of the local date plus the local wall-clock fraction
  of the day, in exact rationals (``Fraction``), so no float or rounded daily volume can land on
  the wrong side of a whole day (see calculations.py).
- A fill counts from the start of its day, with the dose in force at the fill: the drug is
  assumed to flow for the hours before the fill too, so the dates can only come out earlier than
  the exact computation, never later; and one interval at one dose is exactly the docs/domain.md formula
  ``alarm_date = refill_date + floor((volume − alarm) / daily_volume)``.
- A dose change after the fill takes effect at its exact time: a reduction at 22:00 runs at the
  old, higher rate until 22:00.
- Dates are the local day in which the reservoir crosses the alarm volume or runs dry, i.e.
  rounded down (a partial day is not a day of drug).
- Constant-flow pumps (Codman 3000) fall at the pump's labelled flow whatever the dose [S25].
- The dose of a Dose event is the worst-case day: patient-activated boluses at their daily
  maximum are counted in by the caller [S21].
"""

import datetime as dt
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction

from .exact import exact, to_decimal


class Problem(StrEnum):
    """Why a pump has no forecast (stored in `Implant.forecast_problem`; blank when it has one)."""

    FILL_NOT_RECORDED = "fill_not_recorded"
    DOSE_NOT_RECORDED = "dose_not_recorded"
    RESERVOIR_EMPTIED = "reservoir_emptied"
    CANNOT_COMPUTE = "cannot_compute"


PROBLEM_LABELS = {
    Problem.FILL_NOT_RECORDED: "Fill not recorded",
    Problem.DOSE_NOT_RECORDED: "Dose not recorded",
    Problem.RESERVOIR_EMPTIED: "Reservoir emptied, not refilled",
    Problem.CANNOT_COMPUTE: "Record needs attention: the forecast cannot be computed",
}


@dataclass(frozen=True, slots=True)
class Fill:
    """The reservoir filled (at implant or at a refill): it then holds `volume_ml`."""

    at: dt.datetime
    volume_ml: Decimal
    concentration_mcg_per_ml: Decimal
    alarm_threshold_ml: Decimal
    max_interval_days: int | None = None


@dataclass(frozen=True, slots=True)
class Dose:
    """The daily dose (the worst-case day, mcg) in force from `at` on."""

    at: dt.datetime
    daily_dose_mcg: Decimal


@dataclass(frozen=True, slots=True)
class Bolus:
    """A bridge or priming bolus: its volume leaves the reservoir at once."""

    at: dt.datetime
    dose_mcg: Decimal


@dataclass(frozen=True, slots=True)
class Emptied:
    """The reservoir emptied (before MRI, at explant): 0 mL until the next fill."""

    at: dt.datetime


Event = Fill | Dose | Bolus | Emptied

# At one instant: an emptying, then the fill, then the dose set with it, then its priming bolus.
_RANK = {Emptied: 0, Fill: 1, Dose: 2, Bolus: 3}


@dataclass(frozen=True, slots=True)
class PumpForecast:
    """The forecast in force; every date is None, and `problem` says why, when there is none."""

    problem: str = ""
    filled_on: dt.date | None = None
    concentration_mcg_per_ml: Decimal | None = None
    # The rate the forecast ends on (after any planned change), for display.
    daily_volume_ml: Decimal | None = None
    days_to_alarm: int | None = None
    days_to_empty: int | None = None
    alarm_on: dt.date | None = None
    empty_on: dt.date | None = None
    due_by: dt.date | None = None

    @property
    def ok(self) -> bool:
        return not self.problem


class _Reservoir:
    """The state of the walk through one pump's history."""

    def __init__(self, *, tz: dt.tzinfo, origin: dt.date, constant_flow: Fraction | None) -> None:
        self.tz, self.origin, self.constant_flow = tz, origin, constant_flow
        self.fill: Fill | None = None
        self.emptied = False
        self.dose: Fraction | None = None
        self.volume = Fraction(0)
        self.t = Fraction(0)
        self.alarm_t: Fraction | None = None
        self.empty_t: Fraction | None = None

    def day_index(self, at: dt.datetime) -> int:
        return (at.astimezone(self.tz).date() - self.origin).days

    def time(self, at: dt.datetime) -> Fraction:
        local = at.astimezone(self.tz)
        seconds = local.hour * 3600 + local.minute * 60 + local.second
        return self.day_index(at) + Fraction(seconds * 1_000_000 + local.microsecond, 86_400_000_000)

    @property
    def rate(self) -> Fraction | None:
        """mL/day: the pump's fixed flow, or the dose over the concentration in the reservoir."""
        if self.constant_flow is not None:
            return self.constant_flow
        if self.dose is None or self.fill is None:
            return None
        return self.dose / Fraction(self.fill.concentration_mcg_per_ml)

    def _note_crossings(self, until: Fraction | None) -> None:
        """Record when the volume reaches the alarm volume and zero, if before `until`."""
        assert self.fill is not None, "crossings are only noted after a fill"
        rate, threshold = self.rate, Fraction(self.fill.alarm_threshold_ml)
        for level, attr in ((threshold, "alarm_t"), (Fraction(0), "empty_t")):
            if getattr(self, attr) is not None:
                continue
            if self.volume <= level:
                setattr(self, attr, self.t)
            elif rate:
                crossing = self.t + (self.volume - level) / rate
                if until is None or crossing <= until:
                    setattr(self, attr, crossing)

    def advance(self, to: Fraction) -> None:
        if self.fill is None or self.emptied or to <= self.t:
            return
        self._note_crossings(until=to)
        rate = self.rate
        if rate:
            self.volume = max(Fraction(0), self.volume - rate * (to - self.t))
        self.t = to

    def apply(self, event: Event) -> None:
        if isinstance(event, Fill):
            self.fill, self.emptied = event, False
            self.volume = exact("volume_ml", event.volume_ml, allow_zero=False)
            exact("concentration_mcg_per_ml", event.concentration_mcg_per_ml, allow_zero=False)
            exact("alarm_threshold_ml", event.alarm_threshold_ml, allow_zero=True)
            self.t = Fraction(self.day_index(event.at))  # counted from the start of its day
            self.alarm_t = self.empty_t = None
            return
        if isinstance(event, Dose):
            dose = exact("daily_dose_mcg", event.daily_dose_mcg, allow_zero=False)
            if self.fill is not None and event.at > self.fill.at:
                self.advance(self.time(event.at))
            # else: the dose in force at the fill runs from the start of the fill's day.
            self.dose = dose
            return
        self.advance(self.time(event.at))
        if self.fill is None or self.emptied:
            return
        if isinstance(event, Bolus):
            dose = exact("dose_mcg", event.dose_mcg, allow_zero=True)
            self.volume = max(Fraction(0), self.volume - dose / Fraction(self.fill.concentration_mcg_per_ml))
            self._note_crossings(until=self.t)
        elif isinstance(event, Emptied):
            self.volume, self.emptied = Fraction(0), True


def _ordered(events: Iterable[Event]) -> list[Event]:
    return sorted(events, key=lambda e: (e.at, _RANK[type(e)]))


def _walk(
    *, events: Sequence[Event], tz: dt.tzinfo, constant_flow_ml_per_day: Decimal | None, until: dt.datetime | None
) -> _Reservoir | None:
    ordered = _ordered(events)
    if not ordered:
        return None
    flow = None
    if constant_flow_ml_per_day is not None:
        flow = exact("constant_flow_ml_per_day", constant_flow_ml_per_day, allow_zero=False)
    reservoir = _Reservoir(tz=tz, origin=ordered[0].at.astimezone(tz).date(), constant_flow=flow)
    for event in ordered:
        if until is not None and event.at >= until:
            break
        reservoir.apply(event)
    return reservoir


def pump_forecast(
    *,
    events: Sequence[Event],
    tz: dt.tzinfo,
    safety_margin_days: int,
    constant_flow_ml_per_day: Decimal | None = None,
) -> PumpForecast:
    """The forecast in force after every event of one pump's history. [S8][S21][S25]

    Between two events the reservoir falls at that segment's daily volume
    (dose ÷ concentration, or the pump's constant flow); a bolus takes its volume at once; an
    emptying leaves 0 mL until the next fill. From the last fill:
        alarm_on = the day the volume reaches the alarm volume   (rounded down)
        empty_on = the day it reaches 0                          (rounded down)
        due_by   = min(alarm_on − safety_margin_days, filled_on + max_interval_days)
    """
    if safety_margin_days < 0:
        raise ValueError(f"safety_margin_days must be non-negative, got {safety_margin_days}")
    reservoir = _walk(events=events, tz=tz, constant_flow_ml_per_day=constant_flow_ml_per_day, until=None)
    if reservoir is None or reservoir.fill is None:
        return PumpForecast(problem=Problem.FILL_NOT_RECORDED)
    if reservoir.emptied:
        return PumpForecast(problem=Problem.RESERVOIR_EMPTIED)
    rate = reservoir.rate
    if not rate:
        return PumpForecast(problem=Problem.DOSE_NOT_RECORDED)
    reservoir._note_crossings(until=None)
    # With a rate and no `until`, both crossings are always noted.
    assert reservoir.alarm_t is not None and reservoir.empty_t is not None
    fill = reservoir.fill
    filled_on = fill.at.astimezone(tz).date()
    alarm_on = reservoir.origin + dt.timedelta(days=math.floor(reservoir.alarm_t))
    empty_on = reservoir.origin + dt.timedelta(days=math.floor(reservoir.empty_t))
    due_by = alarm_on - dt.timedelta(days=safety_margin_days)
    if fill.max_interval_days is not None:
        if fill.max_interval_days < 1:
            raise ValueError(f"max_interval_days must be positive, got {fill.max_interval_days}")
        due_by = min(due_by, filled_on + dt.timedelta(days=fill.max_interval_days))
    return PumpForecast(
        filled_on=filled_on,
        concentration_mcg_per_ml=fill.concentration_mcg_per_ml,
        daily_volume_ml=to_decimal(rate),
        days_to_alarm=(alarm_on - filled_on).days,
        days_to_empty=(empty_on - filled_on).days,
        alarm_on=alarm_on,
        empty_on=empty_on,
        due_by=due_by,
    )


def reservoir_volume_on(
    *,
    events: Sequence[Event],
    tz: dt.tzinfo,
    on: dt.date,
    before: dt.datetime | None = None,
    constant_flow_ml_per_day: Decimal | None = None,
) -> Decimal | None:
    """Volume the history says is in the reservoir at the start of `on`: the expected residual.

    Only events before `before` count (the refill being recorded is not part of its own
    expectation). At the start of the day, like the fill, so the interval matches the forecast's.
    None before the first fill. After an emptying: 0 (not a discrepancy against 0 aspirated).
    """
    reservoir = _walk(events=events, tz=tz, constant_flow_ml_per_day=constant_flow_ml_per_day, until=before)
    if reservoir is None or reservoir.fill is None:
        return None
    reservoir.advance(Fraction((on - reservoir.origin).days))
    return to_decimal(reservoir.volume)
