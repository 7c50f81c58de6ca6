"""Entries that cannot be true (docs/domain.md): pure checks, no ORM, no clock, no settings.

Each check takes the values to judge and the limits to judge them by (catalogue and clinic
settings, "now"), and returns ``{field_name: message}`` — empty when the entry is fine — so a
service can raise ``ValidationError(errors)`` and the form or the API names the field. Clinical
input never raises here; a programming slip (a naive datetime, a float dose) raises TypeError.

Where a value is computed from the entry (a flex schedule's daily dose) the result is a small
frozen dataclass carrying both the value and the errors.

`patients` cannot import this module (the apps depend one way: patients ← pumps ← refills), so
the patients services keep their own small date-of-birth / referral / trial date check.
"""

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation, localcontext
from fractions import Fraction
from itertools import pairwise

from core.formatting import format_count

Errors = dict[str, str]

EARLIEST_DAY = date(1900, 1, 1)
# SynchroMed II flexible dosing: up to 13 steps a day (docs/domain.md "Pumps").
MAX_FLEX_STEPS = 13
ADULT_AGE_YEARS = 18

_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_MINUTES_PER_DAY = 24 * 60


@dataclass(frozen=True, slots=True)
class ScheduleTotal:
    """A schedule's daily dose, or why it cannot be used.

    ``daily_dose_mcg`` is None exactly when ``errors`` is not empty. When set, it is the exact
    total rounded *up* to 0.01 mcg (the stored precision): counting a hair more drug per day
    brings the alarm and empty dates earlier, never later (docs/domain.md "What feeds the forecast").
    """

    daily_dose_mcg: Decimal | None
    errors: Errors = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors


# ---------------------------------------------------------------------------
# Dates and times
# ---------------------------------------------------------------------------
def event_time_errors(
    *,
    field: str,
    at: datetime | date,
    now: datetime,
    skew_minutes: int,
    what: str,
    not_before: datetime | date | None = None,
    not_before_what: str = "the earliest possible date",
) -> Errors:
    """A clinical event that has happened (refill done, implant, explant, ERI logged).

    Refused (docs/domain.md "Entries that cannot be true"):
    - later than ``now + skew_minutes`` (a few minutes allowed for clocks that disagree);
      a date later than the clinic-local date of ``now + skew_minutes``;
    - before 1900-01-01;
    - before ``not_before`` (e.g. an explant before its implant). The same day / instant is fine.

    ``now`` must be aware and in the clinic's zone (``timezone.localtime()``): its zone gives the
    clinic-local date a ``date`` is compared with, and the local date of an ``at`` datetime when
    ``not_before`` is a date. Instants are compared in UTC, so a DST change cannot move the limit.
    ``what`` names the event for the message: "The refill", "The implant".
    """
    _require_aware(now, "now")
    latest = _utc(now) + timedelta(minutes=skew_minutes)
    if isinstance(at, datetime):
        _require_aware(at, "at")
        local_at = at.astimezone(now.tzinfo)
        if _utc(at) > latest:
            allowance = (
                f", allowing {format_count(skew_minutes, 'minute')} for clock differences" if skew_minutes else ""
            )
            return {
                field: f"{what} is dated {_time_text(local_at)}, in the future "
                f"(it is now {_time_text(now)}{allowance})."
            }
        day = local_at.date()
    else:
        day = _as_date(at)
        today = latest.astimezone(now.tzinfo).date()
        if day > today:
            return {field: f"{what} is dated {day.isoformat()}, after today ({today.isoformat()})."}
    return _past_limits_errors(
        field=field, at=at, day=day, now=now, what=what, not_before=not_before, not_before_what=not_before_what
    )


def planned_time_errors(
    *,
    field: str,
    at: datetime | date,
    now: datetime,
    what: str,
    not_before: datetime | date | None = None,
    not_before_what: str = "the earliest possible date",
    max_ahead_days: int = 365,
) -> Errors:
    """An event that may lie ahead (a dose change taking effect): not beyond a year, not too early.

    Refused: later than ``now + max_ahead_days`` days (a date: later than today + that many days;
    exactly at the limit is fine), before 1900-01-01, before ``not_before`` (the implant, the last
    refill; the same instant is fine). ``now`` as in `event_time_errors`.
    """
    _require_aware(now, "now")
    if isinstance(at, datetime):
        _require_aware(at, "at")
        local_at = at.astimezone(now.tzinfo)
        if _utc(at) > _utc(now) + timedelta(days=max_ahead_days):
            return {
                field: f"{what} is dated {_time_text(local_at)}, more than {format_count(max_ahead_days, 'day')} ahead "
                f"(it is now {_time_text(now)})."
            }
        day = local_at.date()
    else:
        day = _as_date(at)
        limit = now.date() + timedelta(days=max_ahead_days)
        if day > limit:
            return {
                field: f"{what} is dated {day.isoformat()}, more than {format_count(max_ahead_days, 'day')} ahead "
                f"(the latest is {limit.isoformat()})."
            }
    return _past_limits_errors(
        field=field, at=at, day=day, now=now, what=what, not_before=not_before, not_before_what=not_before_what
    )


def _past_limits_errors(
    *,
    field: str,
    at: datetime | date,
    day: date,
    now: datetime,
    what: str,
    not_before: datetime | date | None,
    not_before_what: str,
) -> Errors:
    if day < EARLIEST_DAY:
        return {field: f"{what} is dated {day.isoformat()}, before 1900: check the year."}
    if not_before is None:
        return {}
    if isinstance(not_before, datetime):
        _require_aware(not_before, "not_before")
        if isinstance(at, datetime):
            too_early = _utc(at) < _utc(not_before)
        else:
            # A date against an instant: the whole day is earlier only if it ends before it.
            too_early = day < not_before.astimezone(now.tzinfo).date()
        limit_text = _time_text(not_before.astimezone(now.tzinfo))
    else:
        too_early = day < _as_date(not_before)
        limit_text = _as_date(not_before).isoformat()
    if too_early:
        shown = _time_text(at.astimezone(now.tzinfo)) if isinstance(at, datetime) else day.isoformat()
        return {field: f"{what} is dated {shown}, before {not_before_what} ({limit_text})."}
    return {}


def is_child(*, date_of_birth: date, on: date) -> bool:
    """Under 18 on ``on`` (the child usual range applies [S14][S47]).

    Born on 29 February: still a child on 28 February of the 18th year, an adult from 1 March.
    """
    had_birthday = (on.month, on.day) >= (date_of_birth.month, date_of_birth.day)
    age = on.year - date_of_birth.year - (0 if had_birthday else 1)
    return age < ADULT_AGE_YEARS


# ---------------------------------------------------------------------------
# Schedules
# ---------------------------------------------------------------------------
def flex_schedule_total(
    *, steps: Sequence[Mapping[str, object]], field: str = "schedule", max_steps: int = MAX_FLEX_STEPS
) -> ScheduleTotal:
    """The daily dose of a flexible (stepped) schedule: sum of rate × duration over 24 h.

        daily_dose_mcg = Σ mcg_per_hour_i × (start_{i+1} − start_i) / 60 min,  start_{n+1} = 24:00

    Steps are ``[{"start": "HH:MM", "mcg_per_hour": "12.5"}, …]``. They must cover the day: the
    first starts at 00:00, starts strictly increase, each runs until the next and the last until
    24:00. At most 13 steps (SynchroMed II); rates 0 or more (a zero rate is a pause; a day of
    nothing is left to `dose_errors`, which refuses it against the drug's minimum). docs/domain.md
    "Pumps"; rates as text or Decimal (exact), never float.
    """
    if not isinstance(steps, Sequence) or isinstance(steps, str | bytes) or not steps:
        return ScheduleTotal(None, {field: "A flexible schedule needs at least one step, starting at 00:00."})
    if len(steps) > max_steps:
        return ScheduleTotal(None, {field: f"{len(steps)} steps: this pump takes at most {max_steps} a day."})
    problems: list[str] = []
    starts: list[int] = []
    rates: list[Decimal] = []
    for number, step in enumerate(steps, start=1):
        if not isinstance(step, Mapping):
            problems.append(f"Step {number} is not a start time with a rate.")
            continue
        start = _minutes(step.get("start"))
        rate = _decimal(step.get("mcg_per_hour"))
        if start is None:
            problems.append(f"Step {number}: give the start as HH:MM (00:00 to 23:59), not {step.get('start')!r}.")
        if rate is None or rate < 0:
            problems.append(f"Step {number}: the rate must be 0 mcg/hour or more, not {step.get('mcg_per_hour')!r}.")
        if start is not None and rate is not None:
            starts.append(start)
            rates.append(rate)
    if not problems:
        if starts[0] != 0:
            problems.append(f"The first step starts at {_hhmm(starts[0])}: it must start at 00:00 to cover the day.")
        for earlier, later in pairwise(starts):
            if later <= earlier:
                problems.append(f"The step at {_hhmm(later)} must start after the one at {_hhmm(earlier)}.")
    if problems:
        return ScheduleTotal(None, {field: " ".join(problems)})
    ends = [*starts[1:], _MINUTES_PER_DAY]
    # Rate × minutes is exact; the one division by 60 comes last, then rounds up (see ScheduleTotal).
    mcg_minutes = sum((rate * (end - start) for rate, start, end in zip(rates, starts, ends, strict=True)), Decimal(0))
    return ScheduleTotal(_round_up(Fraction(mcg_minutes) / 60))


def periodic_bolus_total(
    *,
    basal_daily_dose_mcg: Decimal,
    boluses: Sequence[Mapping[str, object]],
    field: str = "schedule",
) -> ScheduleTotal:
    """The daily dose of a periodic-bolus schedule: the basal plus every bolus of the day.

        daily_dose_mcg = basal_daily_dose_mcg + Σ mcg_i

    Boluses are ``[{"at": "HH:MM", "mcg": "25"}, …]``: at least one, valid distinct times,
    each more than 0 mcg; the basal 0 or more. docs/domain.md "What feeds the forecast" (periodic boluses).
    """
    _require_decimal(basal_daily_dose_mcg, "basal_daily_dose_mcg")
    problems: list[str] = []
    if not basal_daily_dose_mcg.is_finite() or basal_daily_dose_mcg < 0:
        problems.append(f"The basal dose must be 0 mcg/day or more, not {basal_daily_dose_mcg}.")
    if not isinstance(boluses, Sequence) or isinstance(boluses, str | bytes) or not boluses:
        problems.append("A periodic-bolus schedule needs at least one bolus.")
        return ScheduleTotal(None, {field: " ".join(problems)})
    seen: set[int] = set()
    total = basal_daily_dose_mcg
    for number, bolus in enumerate(boluses, start=1):
        if not isinstance(bolus, Mapping):
            problems.append(f"Bolus {number} is not a time with a dose.")
            continue
        at = _minutes(bolus.get("at"))
        mcg = _decimal(bolus.get("mcg"))
        if at is None:
            problems.append(f"Bolus {number}: give the time as HH:MM (00:00 to 23:59), not {bolus.get('at')!r}.")
        elif at in seen:
            problems.append(f"Two boluses at {_hhmm(at)}: give each its own time.")
        else:
            seen.add(at)
        if mcg is None or mcg <= 0:
            problems.append(f"Bolus {number}: the dose must be more than 0 mcg, not {bolus.get('mcg')!r}.")
        else:
            total += mcg
    if problems:
        return ScheduleTotal(None, {field: " ".join(problems)})
    return ScheduleTotal(_round_up(Fraction(total)))


# ---------------------------------------------------------------------------
# Doses, flows, alarm volumes
# ---------------------------------------------------------------------------
def dose_errors(
    *,
    field: str,
    daily_dose_mcg: Decimal,
    concentration_mcg_per_ml: Decimal,
    drug_min_mcg: Decimal,
    drug_max_mcg: Decimal,
    min_flow_ml_per_day: Decimal,
    max_flow_ml_per_day: Decimal,
) -> Errors:
    """Hard bounds of a daily dose: refused outside them (docs/domain.md "Entries that cannot be true").

    - drug_min_mcg ≤ daily_dose_mcg ≤ drug_max_mcg  (the drug's catalogue bounds; limits pass);
    - min_flow ≤ daily_dose_mcg / concentration ≤ max_flow  (mL/day the pump model can deliver,
      from its IFU; limits pass). Compared as dose against flow × concentration: exact.

    For the worst-case day of a pump with patient boluses, pass the worst-case dose [S21].
    """
    for name, value in (
        ("daily_dose_mcg", daily_dose_mcg),
        ("concentration_mcg_per_ml", concentration_mcg_per_ml),
        ("drug_min_mcg", drug_min_mcg),
        ("drug_max_mcg", drug_max_mcg),
        ("min_flow_ml_per_day", min_flow_ml_per_day),
        ("max_flow_ml_per_day", max_flow_ml_per_day),
    ):
        _require_decimal(value, name)
    if not daily_dose_mcg.is_finite() or daily_dose_mcg <= 0:
        return {field: f"The daily dose must be more than 0 mcg/day, not {_plain(daily_dose_mcg)}."}
    if daily_dose_mcg > drug_max_mcg:
        return {
            field: f"{_plain(daily_dose_mcg)} mcg/day is above the {_plain(drug_max_mcg)} mcg/day limit for this drug."
        }
    if daily_dose_mcg < drug_min_mcg:
        return {
            field: f"{_plain(daily_dose_mcg)} mcg/day is below the {_plain(drug_min_mcg)} mcg/day minimum "
            "for this drug."
        }
    if not concentration_mcg_per_ml.is_finite() or concentration_mcg_per_ml <= 0:
        return {field: f"The concentration must be more than 0 mcg/mL, not {_plain(concentration_mcg_per_ml)}."}
    volume_text = _volume_text(daily_dose_mcg, concentration_mcg_per_ml)
    at_text = f"{_plain(daily_dose_mcg)} mcg/day at {_plain(concentration_mcg_per_ml)} mcg/mL is {volume_text} mL/day"
    if daily_dose_mcg < min_flow_ml_per_day * concentration_mcg_per_ml:
        return {
            field: f"{at_text}, below the slowest rate this pump can deliver ({_plain(min_flow_ml_per_day)} mL/day): "
            "use a lower concentration."
        }
    if daily_dose_mcg > max_flow_ml_per_day * concentration_mcg_per_ml:
        return {
            field: f"{at_text}, above the fastest rate this pump can deliver ({_plain(max_flow_ml_per_day)} mL/day): "
            "use a higher concentration."
        }
    return {}


def dose_needs_confirmation(
    *,
    daily_dose_mcg: Decimal,
    previous_daily_dose_mcg: Decimal | None,
    spasticity_origin: str,
    is_child: bool,
    usual_ranges: Mapping[str, Sequence[object]],
    max_increase_pct: int | Decimal,
    max_increase_cerebral_pct: int | Decimal,
    max_decrease_pct: int | Decimal,
) -> list[str]:
    """Why a dose needs an explicit confirmation by a prescribing clinician ([] when it does not).

    - Outside the usual maintenance range for the patient: children (under 18) the "child" range,
      else the range of the spasticity origin ("spinal", "cerebral", "other"; an origin with no
      range falls back to "other"). Defaults 300–800 spinal, 90–703 cerebral, 25–1000 children
      [S14][S47]; the ends of a range are usual.
    - A change from the previous dose beyond the clinic's titration limits: up by more than
      ``max_increase_pct`` (cerebral origin: ``max_increase_cerebral_pct``), down by more than
      ``max_decrease_pct``; exactly at a limit is within it. Defaults +20 % / +15 % / −20 % [S13].
      No previous dose (the first prescription): no titration check.

    Judged on the programmed daily dose. Hard bounds are `dose_errors`' job: a tenfold slip is
    both refused there and flagged here.
    """
    _require_decimal(daily_dose_mcg, "daily_dose_mcg")
    reasons: list[str] = []
    key = "child" if is_child else spasticity_origin
    usual = usual_ranges.get(key) or usual_ranges.get("other")
    low_high = _range(usual)
    if low_high is not None:
        low, high = low_high
        whose = "a child" if is_child else f"{spasticity_origin}-origin spasticity"
        if not low <= daily_dose_mcg <= high:
            side = "above" if daily_dose_mcg > high else "below"
            reasons.append(
                f"{_plain(daily_dose_mcg)} mcg/day is {side} the usual "
                f"{_plain(low)}–{_plain(high)} mcg/day for {whose}."
            )
    if previous_daily_dose_mcg is not None and previous_daily_dose_mcg > 0:
        _require_decimal(previous_daily_dose_mcg, "previous_daily_dose_mcg")
        cerebral = spasticity_origin == "cerebral"
        rise_limit = Decimal(max_increase_cerebral_pct if cerebral else max_increase_pct)
        fall_limit = Decimal(max_decrease_pct)
        hundred = Decimal(100)
        change_text = (
            f"{_plain(previous_daily_dose_mcg)} to {_plain(daily_dose_mcg)} mcg/day "
            f"({_pct_text(daily_dose_mcg, previous_daily_dose_mcg)})"
        )
        # Cross-multiplied so the limit is compared exactly: new > old × (1 + limit/100).
        if daily_dose_mcg * hundred > previous_daily_dose_mcg * (hundred + rise_limit):
            origin_text = " for cerebral-origin spasticity" if cerebral else ""
            reasons.append(
                f"A rise from {change_text} is beyond the clinic's +{_plain(rise_limit)} % limit{origin_text}."
            )
        elif daily_dose_mcg * hundred < previous_daily_dose_mcg * (hundred - fall_limit):
            reasons.append(f"A reduction from {change_text} is beyond the clinic's −{_plain(fall_limit)} % limit.")
    return reasons


def alarm_volume_errors(
    *,
    field: str,
    alarm_ml: Decimal,
    fill_ml: Decimal | None,
    alarm_min_ml: Decimal,
    alarm_max_ml: Decimal,
) -> Errors:
    """A low-reservoir alarm volume: within the model's programmable range (limits pass) and below
    the volume in the reservoir after the fill (an alarm at or above it would sound at once).
    docs/domain.md "Entries that cannot be true"; ``fill_ml`` None skips the second check.
    """
    _require_decimal(alarm_ml, "alarm_ml")
    if not alarm_ml.is_finite() or not alarm_min_ml <= alarm_ml <= alarm_max_ml:
        return {
            field: f"An alarm at {_plain(alarm_ml)} mL is outside what this pump can be set to "
            f"({_plain(alarm_min_ml)}–{_plain(alarm_max_ml)} mL)."
        }
    if fill_ml is not None and alarm_ml >= fill_ml:
        return {
            field: f"An alarm at {_plain(alarm_ml)} mL is not below the {_plain(fill_ml)} mL in the reservoir: "
            "it would sound at once."
        }
    return {}


def flow_errors(
    *,
    field: str,
    flow_ml_per_day: Decimal,
    min_flow_ml_per_day: Decimal,
    max_flow_ml_per_day: Decimal,
) -> Errors:
    """A constant-flow pump's labelled flow (mL/day, fixed by its restrictor [S25]): more than 0
    and within the model's range (limits pass)."""
    _require_decimal(flow_ml_per_day, "flow_ml_per_day")
    if not flow_ml_per_day.is_finite() or flow_ml_per_day <= 0:
        return {field: f"The flow must be more than 0 mL/day, not {_plain(flow_ml_per_day)}."}
    if not min_flow_ml_per_day <= flow_ml_per_day <= max_flow_ml_per_day:
        return {
            field: f"A flow of {_plain(flow_ml_per_day)} mL/day is outside this pump model's range "
            f"({_plain(min_flow_ml_per_day)}–{_plain(max_flow_ml_per_day)} mL/day)."
        }
    return {}


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------
def _require_aware(value: datetime, name: str) -> None:
    if not isinstance(value, datetime):
        raise TypeError(f"{name} must be a datetime, got {value!r}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise TypeError(f"{name} must be an aware datetime, got {value!r}")


def _require_decimal(value: object, name: str) -> None:
    if not isinstance(value, Decimal):
        raise TypeError(f"{name} must be a Decimal, got {value!r}")


def _as_date(value: date) -> date:
    if not isinstance(value, date):
        raise TypeError(f"expected a date or datetime, got {value!r}")
    return value


def _utc(value: datetime) -> datetime:
    # Aware datetimes sharing one tzinfo compare by wall time; in UTC a DST change cannot matter.
    return value.astimezone(UTC)


def _time_text(value: datetime) -> str:
    return f"{value:%Y-%m-%d %H:%M}"


def _minutes(value: object) -> int | None:
    if not isinstance(value, str):
        return None
    match = _HHMM.match(value)
    return int(match[1]) * 60 + int(match[2]) if match else None


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _decimal(value: object) -> Decimal | None:
    """An exact amount from JSON: a Decimal, an int or digits as text; never a float or a bool."""
    if isinstance(value, bool) or not isinstance(value, Decimal | int | str):
        return None
    try:
        number = Decimal(value.strip() if isinstance(value, str) else value)
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _range(value: object) -> tuple[Decimal, Decimal] | None:
    if not isinstance(value, Sequence) or isinstance(value, str) or len(value) != 2:
        return None
    low, high = (_decimal(v) for v in value)
    return (low, high) if low is not None and high is not None else None


def _round_up(value: Fraction) -> Decimal:
    # Exact: a Fraction holds rate × minutes / 60 without rounding; only the ceiling rounds.
    return Decimal(math.ceil(value * 100)).scaleb(-2)


def _plain(value: Decimal) -> str:
    """2000.00 → "2000", 0.020 → "0.02", never "2E+3"."""
    if not value.is_finite():
        return str(value)
    return f"{value.normalize():f}"


def _volume_text(dose: Decimal, concentration: Decimal) -> str:
    with localcontext(prec=28):
        volume = dose / concentration
    return _plain(volume.quantize(Decimal("0.001")) if volume >= Decimal("0.001") else volume.quantize(Decimal("1E-6")))


def _pct_text(new: Decimal, old: Decimal) -> str:
    with localcontext(prec=28):
        change = ((new - old) * 100 / old).quantize(Decimal("0.1"))
    sign = "+" if change > 0 else ("−" if change < 0 else "")
    return f"{sign}{_plain(abs(change))} %"
