from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from patients.calculations import MAS_NUMERIC, mas_numeric, mean_change_from_baseline, starting_daily_dose

D = Decimal

# --- starting dose ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bolus", "hours", "daily_dose"),
    [
        (D("50"), D("4"), D("100")),
        (D("50"), D("7.99"), D("100")),
        (D("50"), D("8"), D("100")),  # exactly 8 h is not "over 8 h": still doubled
        (D("50"), D("8.01"), D("50")),
        (D("50"), D("12"), D("50")),
        (D("75"), D("6"), D("150")),
        (D("100"), D("5"), D("200")),
        (D("100"), D("24"), D("100")),
        (D("25"), D("0.5"), D("50")),  # very small patients
        (D("62.5"), D("6"), D("125.0")),
    ],
)
def test_starting_dose_doubles_the_effective_bolus_unless_the_effect_lasted_over_8_hours(bolus, hours, daily_dose):
    assert starting_daily_dose(effective_bolus_mcg=bolus, effect_hours=hours) == daily_dose


@pytest.mark.parametrize(
    ("overrides", "argument"),
    [
        ({"effective_bolus_mcg": D("0")}, "effective_bolus_mcg"),
        ({"effective_bolus_mcg": D("-50")}, "effective_bolus_mcg"),
        ({"effective_bolus_mcg": D("NaN")}, "effective_bolus_mcg"),
        ({"effect_hours": D("0")}, "effect_hours"),
        ({"effect_hours": D("-4")}, "effect_hours"),
    ],
)
def test_starting_dose_rejects_out_of_range_arguments_by_name(overrides, argument):
    arguments = {"effective_bolus_mcg": D("50"), "effect_hours": D("6")}
    with pytest.raises(ValueError, match=argument):
        starting_daily_dose(**{**arguments, **overrides})


def test_starting_dose_rejects_floats():
    with pytest.raises(TypeError, match="effect_hours"):
        starting_daily_dose(effective_bolus_mcg=D("50"), effect_hours=8.0)


# --- Modified Ashworth Scale -----------------------------------------------------------


@pytest.mark.parametrize(
    ("score", "value"),
    [("0", D("0")), ("1", D("1")), ("1+", D("1.5")), ("2", D("2")), ("3", D("3")), ("4", D("4"))],
)
def test_mas_grade_maps_to_its_number_with_1_plus_as_one_and_a_half(score, value):
    assert mas_numeric(score) == value


@pytest.mark.parametrize("score", ["5", "-1", "1-", "2+", "1.5", "", " 1", "1 +", "one", None, 1])
def test_unknown_mas_grade_is_rejected(score):
    with pytest.raises(ValueError, match="Modified Ashworth"):
        mas_numeric(score)


def test_mas_table_cannot_be_changed_at_runtime():
    with pytest.raises(TypeError):
        MAS_NUMERIC["1+"] = D("1.3")  # type: ignore[index]


@pytest.mark.parametrize(
    ("baseline", "after", "change"),
    [
        # two groups: (1.5 - 3) + (1 - 2) = -2.5 over 2
        (
            {"hip_adductors_l": "3", "knee_extensors_l": "2"},
            {"hip_adductors_l": "1+", "knee_extensors_l": "1"},
            D("-1.25"),
        ),
        # (-1) + (-1) + (-0.5) over 3 groups recurs: 28 significant digits
        ({"a": "4", "b": "3", "c": "1+"}, {"a": "3", "b": "2", "c": "1"}, D("-0.8333333333333333333333333333")),
        ({"a": "2", "b": "2", "c": "1"}, {"a": "1", "b": "1", "c": "1"}, D("-0.6666666666666666666666666667")),
        # no change
        ({"a": "1+"}, {"a": "1+"}, D("0")),
        # worse: positive
        ({"a": "1", "b": "1+"}, {"a": "2", "b": "3"}, D("1.25")),
        # only groups scored at both times count
        ({"a": "3", "b": "3"}, {"a": "1", "c": "0"}, D("-2")),
    ],
)
def test_mean_change_over_groups_scored_before_and_after(baseline, after, change):
    assert mean_change_from_baseline(baseline=baseline, after=after) == change


@pytest.mark.parametrize(
    ("baseline", "after"),
    [({}, {}), ({"a": "3"}, {}), ({}, {"a": "3"}), ({"a": "3"}, {"b": "2"})],
)
def test_mean_change_is_none_when_no_group_was_scored_twice(baseline, after):
    assert mean_change_from_baseline(baseline=baseline, after=after) is None


@pytest.mark.parametrize(
    ("baseline", "after"),
    [({"a": "3", "b": "5"}, {"a": "2"}), ({"a": "3"}, {"a": "2", "z": "x"}), ({"a": "3"}, {"a": "1 +"})],
)
def test_mean_change_rejects_an_unknown_grade_in_any_group(baseline, after):
    with pytest.raises(ValueError, match="Modified Ashworth"):
        mean_change_from_baseline(baseline=baseline, after=after)


grades = st.sampled_from(list(MAS_NUMERIC))
groups = st.dictionaries(st.sampled_from(["a", "b", "c", "d", "e"]), grades)


@given(baseline=groups, after=groups)
def test_property_mean_change_lies_within_the_scale_and_vanishes_without_change(baseline, after):
    change = mean_change_from_baseline(baseline=baseline, after=after)

    if not baseline.keys() & after.keys():
        assert change is None
    else:
        assert D(-4) <= change <= D(4)
    assert mean_change_from_baseline(baseline=baseline, after=baseline) in (None, D(0))
