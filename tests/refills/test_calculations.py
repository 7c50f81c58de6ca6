import math
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from refills.calculations import (
    RefillForecast,
    ResidualDiscrepancy,
    refill_forecast,
    residual_discrepancy,
)
from refills.forecasting import Dose, Fill, reservoir_volume_on

D = Decimal

# Worked example 1 in docs/domain.md "Refill arithmetic": 20 mL SynchroMed II.
EXAMPLE = {
    "refilled_on": date(2025, 1, 6),
    "volume_ml": D("20"),
    "concentration_mcg_per_ml": D("2000"),
    "daily_dose_mcg": D("400"),
    "alarm_threshold_ml": D("2.0"),
}


def forecast(**overrides):
    return refill_forecast(**{**EXAMPLE, **overrides})


# --- worked examples -------------------------------------------------------------------


def test_worked_example_20_ml_synchromed_ii_is_due_by_1_april():
    # when
    result = refill_forecast(
        refilled_on=date(2025, 1, 6),
        volume_ml=D("20"),
        concentration_mcg_per_ml=D("2000"),
        daily_dose_mcg=D("400"),
        alarm_threshold_ml=D("2.0"),
        safety_margin_days=5,
    )

    # then
    assert result == RefillForecast(
        daily_volume_ml=D("0.2"),
        days_to_alarm=90,
        days_to_empty=100,
        alarm_on=date(2025, 4, 6),
        empty_on=date(2025, 4, 16),
        due_by=date(2025, 4, 1),
    )


def test_worked_example_40_ml_at_500_mcg_per_day_alarms_after_152_days():
    result = refill_forecast(
        refilled_on=date(2025, 1, 6),
        volume_ml=D("40"),
        concentration_mcg_per_ml=D("2000"),
        daily_dose_mcg=D("500"),
        alarm_threshold_ml=D("2.0"),
    )

    assert result == RefillForecast(
        daily_volume_ml=D("0.25"),
        days_to_alarm=152,
        days_to_empty=160,
        alarm_on=date(2025, 6, 7),
        empty_on=date(2025, 6, 15),
        due_by=date(2025, 6, 2),
    )


def test_forecast_is_a_frozen_dataclass():
    result = forecast()

    with pytest.raises(AttributeError):
        result.due_by = date(2030, 1, 1)


# --- rounding down ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("volume", "dose", "days_to_alarm", "days_to_empty"),
    [
        # 0.225 mL/day: 18 / 0.225 = 80 exactly, 20 / 0.225 = 88.9
        (D("20"), D("450"), 80, 88),
        # 0.205 mL/day: 18 / 0.205 = 87.8, 20 / 0.205 = 97.6
        (D("20"), D("410"), 87, 97),
        # 0.2 mL/day: 17.99 / 0.2 = 89.95, 19.99 / 0.2 = 99.95
        (D("19.99"), D("400"), 89, 99),
        # 0.2 mL/day: 18.01 / 0.2 = 90.05, 20.01 / 0.2 = 100.05
        (D("20.01"), D("400"), 90, 100),
        # 0.75 mL/day (1500 mcg/day): 38 / 0.75 = 50.7, 40 / 0.75 = 53.3
        (D("40"), D("1500"), 50, 53),
    ],
)
def test_partial_days_round_down(volume, dose, days_to_alarm, days_to_empty):
    result = forecast(volume_ml=volume, daily_dose_mcg=dose)

    assert (result.days_to_alarm, result.days_to_empty) == (days_to_alarm, days_to_empty)
    assert result.alarm_on == date(2025, 1, 6) + timedelta(days=days_to_alarm)
    assert result.empty_on == date(2025, 1, 6) + timedelta(days=days_to_empty)


@pytest.mark.parametrize(
    ("volume", "threshold"),
    [(D("2.0"), D("2.0")), (D("1.5"), D("2.0")), (D("2.1"), D("3.0"))],
)
def test_days_to_alarm_is_zero_not_negative_when_the_fill_is_at_or_below_the_alarm_volume(volume, threshold):
    result = forecast(volume_ml=volume, alarm_threshold_ml=threshold)

    assert result.days_to_alarm == 0
    assert result.alarm_on == date(2025, 1, 6)
    # the refill is already overdue: due_by falls before the refill date
    assert result.due_by == date(2025, 1, 1)


def test_alarm_volume_reached_within_the_first_day_gives_zero_days_to_alarm():
    # 0.2 mL/day, 0.1 mL above the alarm volume: half a day, rounded down
    result = forecast(volume_ml=D("2.1"))

    assert result.days_to_alarm == 0
    assert result.days_to_empty == 10


@pytest.mark.parametrize(
    ("dose", "concentration", "threshold", "days_to_alarm", "days_to_empty"),
    [
        # 3 mL/day against a 2 mL alarm: floor(18/3) == floor(20/3) == 6
        (D("1500"), D("500"), D("2.0"), 6, 6),
        # a zero alarm volume alarms when the reservoir is empty
        (D("400"), D("2000"), D("0"), 100, 100),
    ],
)
def test_alarm_and_empty_fall_on_the_same_day_when_the_alarm_volume_holds_less_than_a_day(
    dose, concentration, threshold, days_to_alarm, days_to_empty
):
    result = forecast(daily_dose_mcg=dose, concentration_mcg_per_ml=concentration, alarm_threshold_ml=threshold)

    assert (result.days_to_alarm, result.days_to_empty) == (days_to_alarm, days_to_empty)
    assert result.alarm_on == result.empty_on


# --- exact arithmetic: cases where float or a rounded Decimal loses a day -------------


@pytest.mark.parametrize(
    ("volume", "concentration", "dose", "threshold", "days_to_alarm", "days_to_empty"),
    [
        # Prometra II alarm at 3.0 mL: 17 / 0.34 = 50, float gives 49.99999999999999
        (D("20"), D("1000"), D("340"), D("3.0"), 50, 58),
        # 17 / 0.085 = 200, float gives 199.99999999999997
        (D("20"), D("2000"), D("170"), D("3.0"), 200, 235),
        # 37.8 / 0.9 = 42, float gives 41.99999999999999
        (D("40"), D("1000"), D("900"), D("2.2"), 42, 44),
        # 0.3 mL above the alarm at 0.1 mL/day: float gives 2.9999999999999982 days;
        # and 2.3 / 0.1 = 23 days to empty, float gives 22.999999999999996
        (D("2.3"), D("1000"), D("100"), D("2.0"), 3, 23),
    ],
)
def test_days_are_exact_where_float_division_falls_just_short_of_a_whole_day(
    volume, concentration, dose, threshold, days_to_alarm, days_to_empty
):
    # given: naive float arithmetic loses a day
    float_daily_volume = float(dose) / float(concentration)
    float_days_to_alarm = math.floor((float(volume) - float(threshold)) / float_daily_volume)
    assert float_days_to_alarm == days_to_alarm - 1

    # when
    result = forecast(
        volume_ml=volume,
        concentration_mcg_per_ml=concentration,
        daily_dose_mcg=dose,
        alarm_threshold_ml=threshold,
    )

    # then
    assert (result.days_to_alarm, result.days_to_empty) == (days_to_alarm, days_to_empty)


def test_days_to_empty_is_exact_where_float_gives_one_day_less():
    assert math.floor(2.3 / (100 / 1000)) == 22

    result = forecast(volume_ml=D("2.3"), concentration_mcg_per_ml=D("1000"), daily_dose_mcg=D("100"))

    assert result.days_to_empty == 23


@pytest.mark.parametrize(
    ("volume", "concentration", "dose", "places", "days_to_alarm"),
    [
        # compounded 1500 mcg/mL at 190 mcg/day: 38 / (19/150) = 300; the 28-digit daily
        # volume 0.1266666666666666666666666667 is rounded up, giving 299.99999...
        (D("40"), D("1500"), D("190"), None, 300),
        # 1000 mcg/day of 1500 mcg/mL is 2/3 mL/day: 18 / 0.6667 = 26.998
        (D("20"), D("1500"), D("1000"), D("0.0001"), 27),
        # 425 mcg/day of 2000 mcg/mL is 0.2125 mL/day, displayed as 0.21: 18 / 0.21 = 85.7
        (D("20"), D("2000"), D("425"), D("0.01"), 84),
    ],
)
def test_days_are_exact_where_a_rounded_decimal_daily_volume_gives_another_day(
    volume, concentration, dose, places, days_to_alarm
):
    # given: dividing by a daily volume rounded to 28 digits or to `places` lands wrong
    rounded_daily_volume = dose / concentration
    if places is not None:
        rounded_daily_volume = rounded_daily_volume.quantize(places)
    assert math.floor((volume - D("2.0")) / rounded_daily_volume) != days_to_alarm

    # when
    result = forecast(volume_ml=volume, concentration_mcg_per_ml=concentration, daily_dose_mcg=dose)

    # then
    assert result.days_to_alarm == days_to_alarm


@pytest.mark.parametrize(
    ("concentration", "dose", "daily_volume"),
    [
        (D("2000"), D("400"), D("0.2")),
        (D("500"), D("1500"), D("3")),
        (D("50"), D("25"), D("0.5")),
        (D("3000"), D("400"), D("0.1333333333333333333333333333")),
        (D("1500"), D("1000"), D("0.6666666666666666666666666667")),
    ],
)
def test_daily_volume_is_dose_over_concentration_to_28_significant_digits(concentration, dose, daily_volume):
    result = forecast(concentration_mcg_per_ml=concentration, daily_dose_mcg=dose)

    assert result.daily_volume_ml == daily_volume


# --- due date: margin and maximum interval ---------------------------------------------


@pytest.mark.parametrize(
    ("margin", "due_by"),
    [(0, date(2025, 4, 6)), (3, date(2025, 4, 3)), (5, date(2025, 4, 1)), (10, date(2025, 3, 27))],
)
def test_due_by_is_the_alarm_date_minus_the_safety_margin(margin, due_by):
    assert forecast(safety_margin_days=margin).due_by == due_by


@pytest.mark.parametrize(
    ("max_interval_days", "due_by"),
    [
        # diluted Prialt: 40 days whatever the volume
        (40, date(2025, 2, 15)),
        # cap equal to alarm minus margin: either rule gives 1 April
        (85, date(2025, 4, 1)),
        # morphine: 90 days, later than alarm minus margin, so the alarm rules
        (90, date(2025, 4, 1)),
        (None, date(2025, 4, 1)),
    ],
)
def test_max_interval_caps_the_due_date(max_interval_days, due_by):
    result = forecast(max_interval_days=max_interval_days)

    assert result.due_by == due_by
    # the cap moves the due date only, never the alarm or empty date
    assert (result.alarm_on, result.empty_on) == (date(2025, 4, 6), date(2025, 4, 16))


# --- calendar edges --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("refilled_on", "alarm_on", "empty_on", "due_by"),
    [
        # 2024 is a leap year: 90 days from 28 Feb crosses 29 Feb
        (date(2024, 2, 28), date(2024, 5, 28), date(2024, 6, 7), date(2024, 5, 23)),
        (date(2023, 2, 28), date(2023, 5, 29), date(2023, 6, 8), date(2023, 5, 24)),
        (date(2024, 2, 29), date(2024, 5, 29), date(2024, 6, 8), date(2024, 5, 24)),
        # month end and year end
        (date(2025, 1, 31), date(2025, 5, 1), date(2025, 5, 11), date(2025, 4, 26)),
        (date(2025, 10, 3), date(2026, 1, 1), date(2026, 1, 11), date(2025, 12, 27)),
    ],
)
def test_dates_count_calendar_days_across_leap_days_and_month_ends(refilled_on, alarm_on, empty_on, due_by):
    result = forecast(refilled_on=refilled_on)

    assert (result.alarm_on, result.empty_on, result.due_by) == (alarm_on, empty_on, due_by)


def test_short_interval_from_28_february_lands_on_the_leap_day():
    # 0.2 mL/day, 0.2 mL above the alarm: one day
    result = forecast(refilled_on=date(2024, 2, 28), volume_ml=D("2.2"), safety_margin_days=0)

    assert result.alarm_on == date(2024, 2, 29)
    assert result.due_by == date(2024, 2, 29)
    assert result.empty_on == date(2024, 3, 10)


# --- validation ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argument", "value"),
    [
        ("volume_ml", D("0")),
        ("volume_ml", D("-1")),
        ("concentration_mcg_per_ml", D("0")),
        ("concentration_mcg_per_ml", D("-500")),
        ("daily_dose_mcg", D("0")),
        ("daily_dose_mcg", D("-400")),
        ("daily_dose_mcg", D("NaN")),
        ("volume_ml", D("Infinity")),
        ("alarm_threshold_ml", D("-0.1")),
        ("safety_margin_days", -1),
        ("max_interval_days", 0),
        ("max_interval_days", -40),
    ],
)
def test_forecast_rejects_out_of_range_arguments_by_name(argument, value):
    with pytest.raises(ValueError, match=argument):
        forecast(**{argument: value})


@pytest.mark.parametrize(
    "argument",
    ["volume_ml", "concentration_mcg_per_ml", "daily_dose_mcg", "alarm_threshold_ml"],
)
def test_forecast_rejects_floats_which_cannot_be_exact(argument):
    with pytest.raises(TypeError, match=argument):
        forecast(**{argument: 2.0})


def test_zero_alarm_threshold_is_allowed():
    assert forecast(alarm_threshold_ml=D("0")).days_to_alarm == 100


def test_forecast_is_keyword_only():
    with pytest.raises(TypeError):
        refill_forecast(date(2025, 1, 6), D("20"), D("2000"), D("400"), D("2.0"))  # type: ignore[misc]


# --- expected residual volume: the forecast's reservoir after one fill at one dose -------


def forecast_remaining_volume(*, refilled_on, volume_ml, concentration_mcg_per_ml, daily_dose_mcg, on):
    """The expected residual as the refill form reads it: refills.forecasting.reservoir_volume_on."""
    start = datetime.combine(refilled_on, time.min, tzinfo=UTC)
    fill = Fill(
        at=start, volume_ml=volume_ml, concentration_mcg_per_ml=concentration_mcg_per_ml, alarm_threshold_ml=D(0)
    )
    events = [fill, Dose(at=start, daily_dose_mcg=daily_dose_mcg)]
    return reservoir_volume_on(events=events, tz=UTC, on=on)


@pytest.mark.parametrize(
    ("on", "remaining"),
    [
        (date(2025, 1, 6), D("20")),
        (date(2025, 1, 16), D("18")),
        (date(2025, 4, 1), D("3")),
        (date(2025, 4, 6), D("2")),
        (date(2025, 4, 16), D("0")),
        (date(2025, 6, 1), D("0")),  # never below empty
    ],
)
def test_remaining_volume_falls_by_the_daily_volume(on, remaining):
    result = forecast_remaining_volume(
        refilled_on=date(2025, 1, 6),
        volume_ml=D("20"),
        concentration_mcg_per_ml=D("2000"),
        daily_dose_mcg=D("400"),
        on=on,
    )

    assert result == remaining


@pytest.mark.parametrize(
    ("refilled_on", "on", "remaining"),
    [
        (date(2024, 2, 28), date(2024, 3, 1), D("19.6")),  # two days: 29 Feb counts
        (date(2023, 2, 28), date(2023, 3, 1), D("19.8")),
    ],
)
def test_remaining_volume_counts_the_leap_day(refilled_on, on, remaining):
    result = forecast_remaining_volume(
        refilled_on=refilled_on,
        volume_ml=D("20"),
        concentration_mcg_per_ml=D("2000"),
        daily_dose_mcg=D("400"),
        on=on,
    )

    assert result == remaining


def test_remaining_volume_is_exact_where_float_is_not():
    # 0.1 mL/day for 3 days out of 0.3 mL: float leaves -5.551115123125783e-17 mL
    assert 0.3 - 3 * (100 / 1000) < 0

    result = forecast_remaining_volume(
        refilled_on=date(2025, 1, 6),
        volume_ml=D("0.3"),
        concentration_mcg_per_ml=D("1000"),
        daily_dose_mcg=D("100"),
        on=date(2025, 1, 9),
    )

    assert result == 0


def test_remaining_volume_with_a_recurring_daily_volume_has_28_significant_digits():
    result = forecast_remaining_volume(
        refilled_on=date(2025, 1, 6),
        volume_ml=D("20"),
        concentration_mcg_per_ml=D("3000"),
        daily_dose_mcg=D("400"),
        on=date(2025, 1, 7),
    )

    assert result == D("19.86666666666666666666666667")


@pytest.mark.parametrize(
    ("argument", "value"),
    [("volume_ml", D("0")), ("concentration_mcg_per_ml", D("-1")), ("daily_dose_mcg", D("0"))],
)
def test_remaining_volume_rejects_out_of_range_arguments_by_name(argument, value):
    arguments = {
        "refilled_on": date(2025, 1, 6),
        "volume_ml": D("20"),
        "concentration_mcg_per_ml": D("2000"),
        "daily_dose_mcg": D("400"),
        "on": date(2025, 2, 1),
    }
    with pytest.raises(ValueError, match=argument):
        forecast_remaining_volume(**{**arguments, argument: value})


# --- aspiration discrepancy ------------------------------------------------------------


@pytest.mark.parametrize(
    ("expected", "actual", "tolerance", "difference", "flagged"),
    [
        (D("10.0"), D("10.0"), D("2.0"), D("0.0"), False),
        (D("10.0"), D("12.0"), D("2.0"), D("2.0"), False),  # exactly at tolerance
        (D("10.0"), D("8.0"), D("2.0"), D("-2.0"), False),
        (D("10.0"), D("12.01"), D("2.0"), D("2.01"), True),  # just above
        (D("10.0"), D("7.99"), D("2.0"), D("-2.01"), True),  # less drug came back
        (D("10.0"), D("2.5"), D("2.0"), D("-7.5"), True),
        (D("0"), D("0"), D("2.0"), D("0"), False),
        # a model's own accuracy tolerance (a setting)
        (D("5.0"), D("6.0"), D("1.0"), D("1.0"), False),
        (D("5.0"), D("6.1"), D("1.0"), D("1.1"), True),
        (D("5.0"), D("5.1"), D("0"), D("0.1"), True),
    ],
)
def test_discrepancy_is_flagged_strictly_above_tolerance(expected, actual, tolerance, difference, flagged):
    result = residual_discrepancy(expected_ml=expected, actual_ml=actual, tolerance_ml=tolerance)

    assert result == ResidualDiscrepancy(difference_ml=difference, flagged=flagged)


def test_discrepancy_tolerance_defaults_to_2_ml():
    assert not residual_discrepancy(expected_ml=D("10"), actual_ml=D("12")).flagged
    assert residual_discrepancy(expected_ml=D("10"), actual_ml=D("12.001")).flagged


def test_discrepancy_exactly_at_tolerance_is_not_flagged_where_float_would_flag_it():
    # float: 4.03 - 2.03 == 2.0000000000000004 > 2.0
    assert abs(4.03 - 2.03) > 2.0

    result = residual_discrepancy(expected_ml=D("2.03"), actual_ml=D("4.03"))

    assert result == ResidualDiscrepancy(difference_ml=D("2.00"), flagged=False)


def test_discrepancy_keeps_the_entered_scale():
    result = residual_discrepancy(expected_ml=D("10.0"), actual_ml=D("12.50"))

    assert str(result.difference_ml) == "2.50"


@pytest.mark.parametrize(
    ("argument", "value"),
    [("expected_ml", D("-0.1")), ("actual_ml", D("-1")), ("tolerance_ml", D("-2"))],
)
def test_discrepancy_rejects_negative_volumes_by_name(argument, value):
    arguments = {"expected_ml": D("10"), "actual_ml": D("10"), "tolerance_ml": D("2.0")}
    with pytest.raises(ValueError, match=argument):
        residual_discrepancy(**{**arguments, argument: value})


# --- properties ------------------------------------------------------------------------

STANDARD_CONCENTRATIONS = [D(50), D(500), D(1000), D(2000)]

refill_dates = st.dates(min_value=date(2000, 1, 1), max_value=date(2099, 12, 31))
volumes = st.decimals(min_value=D(1), max_value=D(40), places=2)
concentrations = st.one_of(
    st.sampled_from(STANDARD_CONCENTRATIONS),
    st.decimals(min_value=D(10), max_value=D(4000), places=1),
)
doses = st.decimals(min_value=D(10), max_value=D(1500), places=1)
thresholds = st.decimals(min_value=D(0), max_value=D(5), places=2)
margins = st.integers(min_value=0, max_value=10)
max_intervals = st.none() | st.integers(min_value=1, max_value=400)


@given(
    refilled_on=refill_dates,
    volume=volumes,
    concentration=concentrations,
    dose=doses,
    threshold=thresholds,
    margin=margins,
    max_interval=max_intervals,
)
def test_property_days_are_the_whole_days_of_drug_above_each_volume(
    refilled_on, volume, concentration, dose, threshold, margin, max_interval
):
    assume(volume > threshold)

    result = refill_forecast(
        refilled_on=refilled_on,
        volume_ml=volume,
        concentration_mcg_per_ml=concentration,
        daily_dose_mcg=dose,
        alarm_threshold_ml=threshold,
        safety_margin_days=margin,
        max_interval_days=max_interval,
    )

    daily_volume = Fraction(dose) / Fraction(concentration)
    above_alarm = Fraction(volume) - Fraction(threshold)
    n = result.days_to_alarm
    assert n * daily_volume <= above_alarm < (n + 1) * daily_volume
    m = result.days_to_empty
    assert m * daily_volume <= Fraction(volume) < (m + 1) * daily_volume


@given(
    refilled_on=refill_dates,
    volume=volumes,
    concentration=concentrations,
    dose=doses,
    threshold=thresholds,
    margin=margins,
    max_interval=max_intervals,
)
def test_property_due_date_is_on_or_before_the_alarm_which_is_on_or_before_empty(
    refilled_on, volume, concentration, dose, threshold, margin, max_interval
):
    # Over the full range alarm_on may equal empty_on: when the alarm volume holds less
    # than one day of drug, both floors can agree (e.g. 3 mL/day against a 2 mL alarm,
    # or a 0 mL alarm). The strict order is the next property.
    result = refill_forecast(
        refilled_on=refilled_on,
        volume_ml=volume,
        concentration_mcg_per_ml=concentration,
        daily_dose_mcg=dose,
        alarm_threshold_ml=threshold,
        safety_margin_days=margin,
        max_interval_days=max_interval,
    )

    assert result.due_by <= result.alarm_on - timedelta(days=margin)
    assert result.due_by <= result.alarm_on <= result.empty_on
    assert refilled_on <= result.alarm_on
    if max_interval is not None:
        assert result.due_by <= refilled_on + timedelta(days=max_interval)
    if volume <= threshold:
        assert result.alarm_on == refilled_on


@st.composite
def clinical_fills(draw):
    """A pump fill with an alarm volume that holds at least one day of drug.

    The strict order alarm < empty of STYLE.md point 15 holds exactly when the alarm volume
    is at least one day's volume: then floor(v / d) >= floor((v - t) / d) + 1. Clinically it
    always is (the usual aim is 0.25-0.5 mL/day [S26] against a 2-3 mL alarm); the
    generator keeps the labelled pump strengths (50 mcg/mL is for screening only [S9]) and
    the brief's 10-1500 mcg/day, 1-40 mL and 0-5 mL ranges, and draws the alarm volume from
    one day's volume up to 5 mL and below the fill.
    """
    concentration = draw(st.sampled_from([D(500), D(1000), D(2000)]))
    dose = draw(doses)
    daily_volume = dose / concentration  # exact: these strengths give terminating decimals
    volume = draw(volumes)
    assume(daily_volume < volume)
    threshold = draw(st.decimals(min_value=daily_volume, max_value=min(D(5), volume), places=5))
    assume(threshold < volume)
    return volume, concentration, dose, threshold


@given(
    refilled_on=refill_dates,
    fill=clinical_fills(),
    margin=margins,
    max_interval=max_intervals,
)
def test_property_due_date_is_on_or_before_the_alarm_which_is_before_empty(refilled_on, fill, margin, max_interval):
    volume, concentration, dose, threshold = fill

    result = refill_forecast(
        refilled_on=refilled_on,
        volume_ml=volume,
        concentration_mcg_per_ml=concentration,
        daily_dose_mcg=dose,
        alarm_threshold_ml=threshold,
        safety_margin_days=margin,
        max_interval_days=max_interval,
    )

    assert result.days_to_empty >= 1
    assert result.due_by <= result.alarm_on < result.empty_on


@given(
    refilled_on=refill_dates,
    volume=volumes,
    concentration=concentrations,
    dose=doses,
    threshold=thresholds,
)
def test_property_expected_residual_crosses_the_alarm_volume_on_the_alarm_date(
    refilled_on, volume, concentration, dose, threshold
):
    # a 0 mL alarm is the empty reservoir, where the expected residual stops at 0
    assume(D(0) < threshold < volume)
    result = refill_forecast(
        refilled_on=refilled_on,
        volume_ml=volume,
        concentration_mcg_per_ml=concentration,
        daily_dose_mcg=dose,
        alarm_threshold_ml=threshold,
    )

    def remaining(on):
        return forecast_remaining_volume(
            refilled_on=refilled_on,
            volume_ml=volume,
            concentration_mcg_per_ml=concentration,
            daily_dose_mcg=dose,
            on=on,
        )

    assert remaining(result.alarm_on) >= threshold
    assert remaining(result.alarm_on + timedelta(days=1)) < threshold


@given(
    expected=st.decimals(min_value=D(0), max_value=D(40), places=2),
    actual=st.decimals(min_value=D(0), max_value=D(40), places=2),
    tolerance=st.decimals(min_value=D(0), max_value=D(5), places=1),
)
def test_property_discrepancy_is_actual_minus_expected_flagged_above_tolerance(expected, actual, tolerance):
    result = residual_discrepancy(expected_ml=expected, actual_ml=actual, tolerance_ml=tolerance)

    assert expected + result.difference_ml == actual
    assert result.flagged == (abs(actual - expected) > tolerance)
