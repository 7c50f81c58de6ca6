import calendar
from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pumps.calculations import (
    BatteryWindow,
    ReplacementPlan,
    add_months,
    battery_window,
    replacement_plan,
)

# --- month arithmetic ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "months", "expected"),
    [
        (date(2025, 3, 15), 0, date(2025, 3, 15)),
        (date(2024, 1, 31), 1, date(2024, 2, 29)),
        (date(2023, 1, 31), 1, date(2023, 2, 28)),
        (date(2024, 3, 31), -1, date(2024, 2, 29)),
        (date(2025, 3, 31), -1, date(2025, 2, 28)),
        (date(2024, 5, 31), -6, date(2023, 11, 30)),
        (date(2024, 8, 31), 1, date(2024, 9, 30)),
        (date(2024, 12, 15), 1, date(2025, 1, 15)),
        (date(2025, 1, 15), -1, date(2024, 12, 15)),
        (date(2025, 1, 31), -13, date(2023, 12, 31)),
        (date(2024, 2, 29), 12, date(2025, 2, 28)),
        (date(2024, 2, 29), 48, date(2028, 2, 29)),
        (date(2024, 2, 29), -12, date(2023, 2, 28)),
        (date(2099, 12, 31), 84, date(2106, 12, 31)),
    ],
)
def test_add_months_clamps_the_day_to_the_end_of_the_month(day, months, expected):
    assert add_months(day=day, months=months) == expected


@given(
    day=st.dates(min_value=date(1900, 1, 1), max_value=date(2200, 12, 31)),
    months=st.integers(min_value=-240, max_value=240),
)
def test_property_add_months_moves_the_month_and_keeps_the_day_where_it_exists(day, months):
    result = add_months(day=day, months=months)

    assert (result.year * 12 + result.month) - (day.year * 12 + day.month) == months
    assert result.day == min(day.day, calendar.monthrange(result.year, result.month)[1])


# --- replacement plan ------------------------------------------------------------------


def test_synchromed_ii_stops_7_years_after_implant_and_is_planned_6_months_before():
    # when
    plan = replacement_plan(implanted_on=date(2020, 3, 15))

    # then
    assert plan == ReplacementPlan(
        hard_stop_on=date(2027, 3, 15),
        plan_by=date(2026, 9, 15),
        stops_on=date(2027, 3, 15),
    )


@pytest.mark.parametrize(
    ("implanted_on", "hard_stop_on", "plan_by"),
    [
        # leap-day implant: no 29 Feb seven years on
        (date(2024, 2, 29), date(2031, 2, 28), date(2030, 8, 28)),
        # 31 Aug - 6 months: end of February, leap or not
        (date(2019, 8, 31), date(2026, 8, 31), date(2026, 2, 28)),
        (date(2017, 8, 31), date(2024, 8, 31), date(2024, 2, 29)),
        (date(2018, 3, 31), date(2025, 3, 31), date(2024, 9, 30)),
        (date(2020, 12, 31), date(2027, 12, 31), date(2027, 6, 30)),
        # planning crosses back into the previous year
        (date(2019, 2, 15), date(2026, 2, 15), date(2025, 8, 15)),
        (date(2018, 1, 1), date(2025, 1, 1), date(2024, 7, 1)),
    ],
)
def test_hard_stop_and_plan_by_clamp_to_the_end_of_the_month(implanted_on, hard_stop_on, plan_by):
    plan = replacement_plan(implanted_on=implanted_on)

    assert (plan.hard_stop_on, plan.plan_by, plan.stops_on) == (hard_stop_on, plan_by, hard_stop_on)


@pytest.mark.parametrize(
    ("service_life_years", "plan_months_before", "hard_stop_on", "plan_by"),
    [
        (7, 6, date(2031, 2, 28), date(2030, 8, 28)),
        (8, 6, date(2032, 2, 29), date(2031, 8, 29)),
        (4, 12, date(2028, 2, 29), date(2027, 2, 28)),
        (5, 0, date(2029, 2, 28), date(2029, 2, 28)),
        (7, 3, date(2031, 2, 28), date(2030, 11, 28)),
    ],
)
def test_service_life_and_planning_lead_are_settings(service_life_years, plan_months_before, hard_stop_on, plan_by):
    plan = replacement_plan(
        implanted_on=date(2024, 2, 29),
        service_life_years=service_life_years,
        plan_months_before=plan_months_before,
    )

    assert (plan.hard_stop_on, plan.plan_by) == (hard_stop_on, plan_by)


@pytest.mark.parametrize(
    ("eri_on", "eri_grace_days", "stops_on", "plan_by"),
    [
        # ERI well before the hard stop: the pump stops 90 days later, before the planned
        # date, so the plan date moves up to the stop
        (date(2025, 6, 1), 90, date(2025, 8, 30), date(2025, 8, 30)),
        # ERI stop between the plan date and the hard stop: ERI rules the stop only
        (date(2026, 10, 1), 90, date(2026, 12, 30), date(2026, 9, 15)),
        # ERI stop exactly on the hard stop
        (date(2026, 12, 15), 90, date(2027, 3, 15), date(2026, 9, 15)),
        # ERI stop after the hard stop: the hard stop rules
        (date(2027, 1, 1), 90, date(2027, 3, 15), date(2026, 9, 15)),
        (date(2027, 3, 15), 90, date(2027, 3, 15), date(2026, 9, 15)),
        # grace period as a setting
        (date(2025, 6, 1), 0, date(2025, 6, 1), date(2025, 6, 1)),
        (date(2025, 6, 1), 30, date(2025, 7, 1), date(2025, 7, 1)),
    ],
)
def test_eri_stop_or_hard_stop_whichever_comes_first(eri_on, eri_grace_days, stops_on, plan_by):
    plan = replacement_plan(implanted_on=date(2020, 3, 15), eri_on=eri_on, eri_grace_days=eri_grace_days)

    assert plan == ReplacementPlan(hard_stop_on=date(2027, 3, 15), plan_by=plan_by, stops_on=stops_on)


def test_eri_across_a_leap_day_counts_calendar_days():
    plan = replacement_plan(implanted_on=date(2020, 3, 15), eri_on=date(2024, 1, 1))

    # 2024 has a 29 February: 1 Jan + 90 days = 31 March
    assert plan.stops_on == date(2024, 3, 31)


@pytest.mark.parametrize(
    ("overrides", "argument"),
    [
        ({"service_life_years": 0}, "service_life_years"),
        ({"plan_months_before": -1}, "plan_months_before"),
        ({"eri_grace_days": -1}, "eri_grace_days"),
        ({"eri_on": date(2020, 3, 14)}, "eri_on"),
    ],
)
def test_replacement_plan_rejects_out_of_range_arguments_by_name(overrides, argument):
    with pytest.raises(ValueError, match=argument):
        replacement_plan(implanted_on=date(2020, 3, 15), **overrides)


def test_eri_on_the_implant_day_is_allowed():
    plan = replacement_plan(implanted_on=date(2020, 3, 15), eri_on=date(2020, 3, 15))

    assert plan.stops_on == date(2020, 6, 13)


@given(
    implanted_on=st.dates(min_value=date(1990, 1, 1), max_value=date(2090, 12, 31)),
    service_life_years=st.integers(min_value=1, max_value=10),
    plan_months_before=st.integers(min_value=0, max_value=12),
    eri_days_after_implant=st.none() | st.integers(min_value=0, max_value=4000),
    eri_grace_days=st.integers(min_value=0, max_value=180),
)
def test_property_plan_by_is_on_or_before_the_stop_which_is_on_or_before_the_hard_stop(
    implanted_on, service_life_years, plan_months_before, eri_days_after_implant, eri_grace_days
):
    eri_on = None if eri_days_after_implant is None else implanted_on + timedelta(days=eri_days_after_implant)

    plan = replacement_plan(
        implanted_on=implanted_on,
        service_life_years=service_life_years,
        plan_months_before=plan_months_before,
        eri_on=eri_on,
        eri_grace_days=eri_grace_days,
    )

    assert implanted_on < plan.hard_stop_on
    assert plan.plan_by <= plan.stops_on <= plan.hard_stop_on
    if eri_on is not None:
        assert plan.stops_on <= eri_on + timedelta(days=eri_grace_days)


# --- battery window --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("implanted_on", "window_opens_on", "hard_stop_on"),
    [
        (date(2020, 3, 15), date(2025, 3, 15), date(2027, 3, 15)),
        (date(2024, 2, 29), date(2029, 2, 28), date(2031, 2, 28)),
        (date(2019, 2, 28), date(2024, 2, 28), date(2026, 2, 28)),
    ],
)
def test_synchromed_ii_battery_window_runs_from_5_to_7_years(implanted_on, window_opens_on, hard_stop_on):
    window = battery_window(implanted_on=implanted_on, earliest_end_years=5, hard_stop_years=7)

    assert window == BatteryWindow(window_opens_on=window_opens_on, hard_stop_on=hard_stop_on)


def test_battery_window_hard_stop_matches_the_replacement_plan():
    window = battery_window(implanted_on=date(2024, 2, 29), earliest_end_years=5, hard_stop_years=7)

    assert window.hard_stop_on == replacement_plan(implanted_on=date(2024, 2, 29)).hard_stop_on


def test_battery_window_may_open_at_the_hard_stop():
    window = battery_window(implanted_on=date(2020, 3, 15), earliest_end_years=7, hard_stop_years=7)

    assert window.window_opens_on == window.hard_stop_on == date(2027, 3, 15)


@pytest.mark.parametrize(
    ("earliest_end_years", "hard_stop_years", "argument"),
    [(0, 7, "earliest_end_years"), (-1, 7, "earliest_end_years"), (7, 5, "hard_stop_years")],
)
def test_battery_window_rejects_out_of_range_years_by_name(earliest_end_years, hard_stop_years, argument):
    with pytest.raises(ValueError, match=argument):
        battery_window(
            implanted_on=date(2020, 3, 15), earliest_end_years=earliest_end_years, hard_stop_years=hard_stop_years
        )
