"""Screening (trial) arithmetic: pure functions, no ORM, no clock, no settings."""

from collections.abc import Mapping
from decimal import Decimal, localcontext
from types import MappingProxyType

LONG_EFFECT_HOURS = Decimal(8)

MAS_NUMERIC: Mapping[str, Decimal] = MappingProxyType(
    {
        "0": Decimal(0),
        "1": Decimal(1),
        "1+": Decimal("1.5"),
        "2": Decimal(2),
        "3": Decimal(3),
        "4": Decimal(4),
    }
)


def starting_daily_dose(*, effective_bolus_mcg: Decimal, effect_hours: Decimal) -> Decimal:
    """Starting pump dose per 24 h after a positive screening bolus. [S13]

    daily_dose = 2 x effective_bolus   if the effect lasted 8 h or less
               = 1 x effective_bolus   if it lasted more than 8 h
    """
    for name, value in (("effective_bolus_mcg", effective_bolus_mcg), ("effect_hours", effect_hours)):
        if not isinstance(value, Decimal):
            raise TypeError(f"{name} must be a Decimal, got {value!r}")
        if not (value.is_finite() and value > 0):
            raise ValueError(f"{name} must be positive, got {value}")
    return effective_bolus_mcg if effect_hours > LONG_EFFECT_HOURS else 2 * effective_bolus_mcg


def mas_numeric(score: str) -> Decimal:
    """Modified Ashworth Scale grade as a number: 0, 1, 1+, 2, 3, 4 -> 0, 1, 1.5, 2, 3, 4. [S43]

    "1+" counts as 1.5, halfway between 1 and 2: the common convention when trial analyses
    average MAS grades (the scale itself is ordinal).
    """
    try:
        return MAS_NUMERIC[score]
    except (KeyError, TypeError):
        raise ValueError(f"unknown Modified Ashworth score {score!r}; expected one of {list(MAS_NUMERIC)}") from None


def mean_change_from_baseline(*, baseline: Mapping[str, str], after: Mapping[str, str]) -> Decimal | None:
    """Mean MAS change per muscle group scored both at baseline and after the bolus. [S39-S41]

    change = mean(mas_numeric(after[g]) - mas_numeric(baseline[g]))  over groups g in both
    Negative is an improvement (less spasticity). None when no muscle group is in both.
    """
    baseline_values = {group: mas_numeric(score) for group, score in baseline.items()}
    after_values = {group: mas_numeric(score) for group, score in after.items()}
    groups = baseline_values.keys() & after_values.keys()
    if not groups:
        return None
    with localcontext(prec=28):
        return sum((after_values[g] - baseline_values[g] for g in groups), Decimal(0)) / len(groups)
