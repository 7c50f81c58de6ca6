"""Entries that cannot be true: the pure checks of pumps/rules.py (no database)."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pumps.rules import (
    ScheduleTotal,
    alarm_volume_errors,
    dose_errors,
    dose_needs_confirmation,
    event_time_errors,
    flex_schedule_total,
    flow_errors,
    is_child,
    periodic_bolus_total,
    planned_time_errors,
)

LONDON = ZoneInfo("Europe/London")
NOW = datetime(2025, 3, 20, 9, 0, tzinfo=LONDON)
D = Decimal


def event(at, *, now=NOW, skew=5, not_before=None):
    return event_time_errors(
        field="performed_at",
        at=at,
        now=now,
        skew_minutes=skew,
        what="The refill",
        not_before=not_before,
        not_before_what="the implant",
    )


# --- event_time_errors -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("at", "refused"),
    [
        (NOW, False),
        (NOW + timedelta(minutes=5), False),  # exactly at the skew: allowed
        (NOW + timedelta(minutes=5, seconds=1), True),
        (NOW + timedelta(days=1), True),
        (NOW - timedelta(days=3650), False),
        (datetime(1900, 1, 1, 0, 0, tzinfo=UTC), False),
        (datetime(1899, 12, 31, 23, 59, tzinfo=UTC), True),
        # Another zone, same instant as NOW + 4 min: compared as instants.
        (datetime(2025, 3, 20, 10, 4, tzinfo=ZoneInfo("Europe/Paris")), False),
        (datetime(2025, 3, 20, 10, 6, tzinfo=ZoneInfo("Europe/Paris")), True),
    ],
)
def test_event_time_refuses_the_future_beyond_the_skew_and_before_1900(at, refused):
    errors = event(at)
    assert bool(errors) is refused
    if refused:
        assert list(errors) == ["performed_at"]
        assert errors["performed_at"].startswith("The refill is dated ")


def test_event_time_message_names_the_value_and_the_limit():
    errors = event(NOW + timedelta(hours=2))
    assert errors == {
        "performed_at": "The refill is dated 2025-03-20 11:00, in the future "
        "(it is now 2025-03-20 09:00, allowing 5 minutes for clock differences)."
    }
    assert event(date(1899, 12, 31)) == {"performed_at": "The refill is dated 1899-12-31, before 1900: check the year."}


@pytest.mark.parametrize(
    ("at", "now", "refused"),
    [
        (date(2025, 3, 20), NOW, False),  # today
        (date(2025, 3, 21), NOW, True),  # tomorrow
        (date(1900, 1, 1), NOW, False),
        (date(1899, 12, 31), NOW, True),
        (date(2024, 2, 29), NOW, False),  # leap day
        # 23:58 clinic time: the skew reaches tomorrow's date, which is then allowed.
        (date(2025, 3, 21), datetime(2025, 3, 20, 23, 58, tzinfo=LONDON), False),
        (date(2025, 3, 21), datetime(2025, 3, 20, 23, 54, tzinfo=LONDON), True),
        # 00:30 clinic time in summer is 23:30 UTC the day before: the clinic's date rules.
        (date(2025, 6, 2), datetime(2025, 6, 2, 0, 30, tzinfo=LONDON), False),
    ],
)
def test_event_date_is_compared_with_the_clinic_local_date(at, now, refused):
    assert bool(event(at, now=now)) is refused


def test_event_date_after_today_names_today():
    assert event(date(2025, 3, 21)) == {"performed_at": "The refill is dated 2025-03-21, after today (2025-03-20)."}


# 26 October 2025, London: 01:00–02:00 happens twice (BST, fold=0, then GMT, fold=1).
FIRST_0130 = datetime(2025, 10, 26, 1, 30, tzinfo=LONDON)  # 00:30 UTC
SECOND_0130 = datetime(2025, 10, 26, 1, 30, fold=1, tzinfo=LONDON)  # 01:30 UTC


@pytest.mark.parametrize(
    ("at", "now", "refused"),
    [
        # Wall clock says 20 minutes later, but it is 40 minutes earlier: allowed.
        (datetime(2025, 10, 26, 1, 50, tzinfo=LONDON), SECOND_0130, False),
        # Wall clock says 20 minutes earlier, but it is 40 minutes later: refused.
        (datetime(2025, 10, 26, 1, 10, fold=1, tzinfo=LONDON), FIRST_0130, True),
        (FIRST_0130 + timedelta(minutes=5), FIRST_0130, False),
        # Spring forward, 30 March 2025: 00:59 GMT then 02:00 BST, one minute later.
        (datetime(2025, 3, 30, 2, 0, tzinfo=LONDON), datetime(2025, 3, 30, 0, 59, tzinfo=LONDON), False),
        (datetime(2025, 3, 30, 2, 5, tzinfo=LONDON), datetime(2025, 3, 30, 0, 59, tzinfo=LONDON), True),
    ],
)
def test_event_time_on_a_dst_day_compares_instants_not_wall_clocks(at, now, refused):
    assert bool(event(at, now=now)) is refused


@pytest.mark.parametrize(
    ("at", "not_before", "refused"),
    [
        (date(2021, 5, 4), date(2021, 5, 4), False),  # the same day as the implant
        (date(2021, 5, 3), date(2021, 5, 4), True),
        (datetime(2021, 5, 4, 0, 30, tzinfo=LONDON), date(2021, 5, 4), False),
        # 23:30 UTC on 3 May is 00:30 on 4 May in London: the clinic-local day counts.
        (datetime(2021, 5, 3, 23, 30, tzinfo=UTC), date(2021, 5, 4), False),
        (datetime(2021, 5, 3, 22, 30, tzinfo=UTC), date(2021, 5, 4), True),
        (datetime(2021, 5, 4, 10, 0, tzinfo=LONDON), datetime(2021, 5, 4, 10, 0, tzinfo=LONDON), False),
        (datetime(2021, 5, 4, 9, 59, tzinfo=LONDON), datetime(2021, 5, 4, 10, 0, tzinfo=LONDON), True),
        (date(2021, 5, 4), datetime(2021, 5, 4, 10, 0, tzinfo=LONDON), False),
        (date(2021, 5, 3), datetime(2021, 5, 4, 10, 0, tzinfo=LONDON), True),
    ],
)
def test_event_before_not_before_is_refused(at, not_before, refused):
    assert bool(event(at, not_before=not_before)) is refused


def test_event_before_the_implant_names_it():
    assert event(date(2021, 5, 3), not_before=date(2021, 5, 4)) == {
        "performed_at": "The refill is dated 2021-05-03, before the implant (2021-05-04)."
    }


def test_event_time_refuses_a_naive_datetime_as_a_programming_error():
    with pytest.raises(TypeError):
        event(datetime(2025, 3, 20, 9, 0))
    with pytest.raises(TypeError):
        event(date(2025, 3, 20), now=datetime(2025, 3, 20, 9, 0))


# --- planned_time_errors -----------------------------------------------------------------


def planned(at, *, not_before=None, max_ahead_days=365):
    return planned_time_errors(
        field="effective_at",
        at=at,
        now=NOW,
        what="The dose change",
        not_before=not_before,
        not_before_what="the last refill",
        max_ahead_days=max_ahead_days,
    )


@pytest.mark.parametrize(
    ("at", "refused"),
    [
        (NOW + timedelta(days=30), False),
        (NOW + timedelta(days=365), False),
        (NOW + timedelta(days=365, minutes=1), True),
        (date(2026, 3, 20), False),
        (date(2026, 3, 21), True),
        (date(1899, 12, 31), True),
    ],
)
def test_a_dose_change_may_be_ahead_but_not_beyond_a_year(at, refused):
    assert bool(planned(at)) is refused


def test_a_dose_change_before_the_last_refill_is_refused():
    refill = datetime(2025, 3, 10, 10, 0, tzinfo=LONDON)
    assert planned(refill, not_before=refill) == {}
    assert planned(refill - timedelta(minutes=1), not_before=refill) == {
        "effective_at": "The dose change is dated 2025-03-10 09:59, before the last refill (2025-03-10 10:00)."
    }


def test_a_dose_change_too_far_ahead_names_the_limit():
    assert planned(date(2026, 4, 1)) == {
        "effective_at": "The dose change is dated 2026-04-01, more than 365 days ahead (the latest is 2026-03-20)."
    }


# --- flex_schedule_total -----------------------------------------------------------------


def test_flex_total_is_the_sum_of_rate_times_duration():
    steps = [
        {"start": "00:00", "mcg_per_hour": "10"},  # 7 h → 70
        {"start": "07:00", "mcg_per_hour": "25"},  # 15 h → 375
        {"start": "22:00", "mcg_per_hour": "12.5"},  # 2 h → 25
    ]
    assert flex_schedule_total(steps=steps) == ScheduleTotal(D("470.00"), {})


def test_flex_total_rounds_up_to_the_hundredth_so_the_forecast_runs_early():
    # 0.01 mcg/h for 7 minutes, then 0 for the rest: 0.07/60 = 0.00117 mcg → 0.01.
    steps = [{"start": "00:00", "mcg_per_hour": "0.01"}, {"start": "00:07", "mcg_per_hour": "0"}]
    assert flex_schedule_total(steps=steps).daily_dose_mcg == D("0.01")


def test_flex_one_step_is_a_simple_continuous_day():
    assert flex_schedule_total(steps=[{"start": "00:00", "mcg_per_hour": D("16.67")}]).daily_dose_mcg == D("400.08")


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        ([], "A flexible schedule needs at least one step, starting at 00:00."),
        (
            [{"start": "01:00", "mcg_per_hour": "10"}],
            "The first step starts at 01:00: it must start at 00:00 to cover the day.",
        ),
        (
            [{"start": "00:00", "mcg_per_hour": "10"}, {"start": "00:00", "mcg_per_hour": "12"}],
            "The step at 00:00 must start after the one at 00:00.",
        ),
        (
            [
                {"start": "00:00", "mcg_per_hour": "10"},
                {"start": "08:00", "mcg_per_hour": "12"},
                {"start": "06:00", "mcg_per_hour": "12"},
            ],
            "The step at 06:00 must start after the one at 08:00.",
        ),
        ([{"start": "24:00", "mcg_per_hour": "10"}], "Step 1: give the start as HH:MM (00:00 to 23:59), not '24:00'."),
        ([{"start": "7:00", "mcg_per_hour": "10"}], "Step 1: give the start as HH:MM (00:00 to 23:59), not '7:00'."),
        ([{"start": "00:00", "mcg_per_hour": "-1"}], "Step 1: the rate must be 0 mcg/hour or more, not '-1'."),
        ([{"start": "00:00", "mcg_per_hour": 12.5}], "Step 1: the rate must be 0 mcg/hour or more, not 12.5."),
        ([{"start": "00:00", "mcg_per_hour": "NaN"}], "Step 1: the rate must be 0 mcg/hour or more, not 'NaN'."),
        ([{"start": "00:00"}], "Step 1: the rate must be 0 mcg/hour or more, not None."),
        (["00:00"], "Step 1 is not a start time with a rate."),
    ],
)
def test_flex_schedule_that_does_not_cover_the_day_is_refused(steps, message):
    assert flex_schedule_total(steps=steps) == ScheduleTotal(None, {"schedule": message})


@pytest.mark.parametrize(("count", "ok"), [(13, True), (14, False)])
def test_flex_takes_at_most_13_steps(count, ok):
    steps = [{"start": f"{hour:02d}:00", "mcg_per_hour": "10"} for hour in range(count)]
    result = flex_schedule_total(steps=steps)
    assert result.ok is ok
    if not ok:
        assert result.errors == {"schedule": "14 steps: this pump takes at most 13 a day."}


_RATE = st.decimals(min_value=0, max_value=200, places=2, allow_nan=False, allow_infinity=False)


@given(
    starts=st.sets(st.integers(min_value=1, max_value=24 * 60 - 1), max_size=12).map(sorted),
    data=st.data(),
)
def test_flex_total_property_every_covering_schedule_is_accepted_and_sums_exactly(starts, data):
    minutes = [0, *starts]
    rates = [data.draw(_RATE) for _ in minutes]
    steps = [
        {"start": f"{m // 60:02d}:{m % 60:02d}", "mcg_per_hour": str(rate)}
        for m, rate in zip(minutes, rates, strict=True)
    ]

    result = flex_schedule_total(steps=steps)

    ends = [*minutes[1:], 24 * 60]
    exact = sum(
        (Fraction(rate) * Fraction(end - start, 60) for rate, start, end in zip(rates, minutes, ends, strict=True)),
        Fraction(0),
    )
    assert result.errors == {}
    assert Fraction(result.daily_dose_mcg) >= exact
    assert Fraction(result.daily_dose_mcg) - exact < Fraction(1, 100)


# --- periodic_bolus_total ----------------------------------------------------------------


def test_periodic_boluses_add_to_the_basal():
    boluses = [{"at": "08:00", "mcg": "25"}, {"at": "20:00", "mcg": D("37.5")}]
    assert periodic_bolus_total(basal_daily_dose_mcg=D("300"), boluses=boluses) == ScheduleTotal(D("362.50"), {})


@pytest.mark.parametrize(
    ("basal", "boluses", "message"),
    [
        ("300", [], "A periodic-bolus schedule needs at least one bolus."),
        (
            "300",
            [{"at": "08:00", "mcg": "25"}, {"at": "08:00", "mcg": "25"}],
            "Two boluses at 08:00: give each its own time.",
        ),
        ("300", [{"at": "25:00", "mcg": "25"}], "Bolus 1: give the time as HH:MM (00:00 to 23:59), not '25:00'."),
        ("300", [{"at": "08:00", "mcg": "0"}], "Bolus 1: the dose must be more than 0 mcg, not '0'."),
        ("-1", [{"at": "08:00", "mcg": "25"}], "The basal dose must be 0 mcg/day or more, not -1."),
    ],
)
def test_periodic_bolus_schedule_errors_name_the_bolus(basal, boluses, message):
    assert periodic_bolus_total(basal_daily_dose_mcg=D(basal), boluses=boluses) == ScheduleTotal(
        None, {"schedule": message}
    )


# --- dose_errors -------------------------------------------------------------------------


def dose(daily, concentration="2000", *, low="10", high="2000", min_flow="0.020", max_flow="24.000"):
    return dose_errors(
        field="daily_dose_mcg",
        daily_dose_mcg=D(daily),
        concentration_mcg_per_ml=D(concentration),
        drug_min_mcg=D(low),
        drug_max_mcg=D(high),
        min_flow_ml_per_day=D(min_flow),
        max_flow_ml_per_day=D(max_flow),
    )


@pytest.mark.parametrize(
    ("daily", "concentration", "refused"),
    [
        ("400", "2000", False),
        ("2000", "2000", False),  # exactly the drug's maximum
        ("2000.01", "2000", True),
        ("10", "500", False),  # exactly the drug's minimum (0.02 mL/day, exactly the slowest rate)
        ("9.99", "500", True),
        ("0", "2000", True),
        ("-5", "2000", True),
        ("40", "2000", False),  # 0.02 mL/day: the slowest rate
        ("39.99", "2000", True),
        ("1200", "50", False),  # 24 mL/day: the fastest rate
        ("1200.01", "50", True),
    ],
)
def test_dose_hard_bounds(daily, concentration, refused):
    assert bool(dose(daily, concentration)) is refused


def test_dose_above_the_drug_limit_names_value_and_limit():
    assert dose("99999") == {"daily_dose_mcg": "99999 mcg/day is above the 2000 mcg/day limit for this drug."}
    assert dose("5") == {"daily_dose_mcg": "5 mcg/day is below the 10 mcg/day minimum for this drug."}


def test_dose_below_the_pump_rate_names_the_volume():
    assert dose("30", "2000") == {
        "daily_dose_mcg": "30 mcg/day at 2000 mcg/mL is 0.015 mL/day, below the slowest rate this pump can deliver "
        "(0.02 mL/day): use a lower concentration."
    }
    assert dose("1500", "50") == {
        "daily_dose_mcg": "1500 mcg/day at 50 mcg/mL is 30 mL/day, above the fastest rate this pump can deliver "
        "(24 mL/day): use a higher concentration."
    }


def test_dose_refuses_a_float_as_a_programming_error():
    with pytest.raises(TypeError):
        dose_errors(
            field="daily_dose_mcg",
            daily_dose_mcg=400.0,
            concentration_mcg_per_ml=D("2000"),
            drug_min_mcg=D("10"),
            drug_max_mcg=D("2000"),
            min_flow_ml_per_day=D("0.02"),
            max_flow_ml_per_day=D("24"),
        )


# --- dose_needs_confirmation -------------------------------------------------------------

USUAL = {"spinal": [300, 800], "cerebral": [90, 703], "other": [90, 800], "child": [25, 1000]}


def confirm(daily, previous=None, *, origin="spinal", child=False, ranges=USUAL):
    return dose_needs_confirmation(
        daily_dose_mcg=D(daily),
        previous_daily_dose_mcg=None if previous is None else D(previous),
        spasticity_origin=origin,
        is_child=child,
        usual_ranges=ranges,
        max_increase_pct=20,
        max_increase_cerebral_pct=15,
        max_decrease_pct=20,
    )


@pytest.mark.parametrize(
    ("daily", "previous", "origin", "child", "count"),
    [
        ("440", "400", "spinal", False, 0),  # +10 %: nothing to confirm
        ("480", "400", "spinal", False, 0),  # +20 % exactly: within the limit
        ("480.01", "400", "spinal", False, 1),
        ("460", "400", "cerebral", False, 0),  # +15 % exactly, cerebral
        ("460.01", "400", "cerebral", False, 1),
        ("320", "400", "spinal", False, 0),  # −20 % exactly
        ("319.99", "400", "spinal", False, 1),
        ("300", None, "spinal", False, 0),  # the ends of the usual range are usual
        ("800", None, "spinal", False, 0),
        ("299.99", None, "spinal", False, 1),
        ("800.01", None, "spinal", False, 1),
        ("703", None, "cerebral", False, 0),
        ("704", None, "cerebral", False, 1),
        ("25", None, "spinal", True, 0),  # a child: the child range, not the spinal one
        ("1000", None, "cerebral", True, 0),
        ("1001", None, "cerebral", True, 1),
        ("4000", "400", "spinal", False, 2),  # a tenfold slip: unusual and beyond titration
    ],
)
def test_dose_needs_confirmation_outside_usual_range_or_titration_limits(daily, previous, origin, child, count):
    assert len(confirm(daily, previous, origin=origin, child=child)) == count


def test_confirmation_reasons_are_plain_words():
    assert confirm("4000", "400") == [
        "4000 mcg/day is above the usual 300–800 mcg/day for spinal-origin spasticity.",
        "A rise from 400 to 4000 mcg/day (+900 %) is beyond the clinic's +20 % limit.",
    ]
    assert confirm("300", "400", origin="cerebral") == [
        "A reduction from 400 to 300 mcg/day (−25 %) is beyond the clinic's −20 % limit."
    ]
    assert confirm("20", child=True) == ["20 mcg/day is below the usual 25–1000 mcg/day for a child."]


def test_an_origin_without_a_range_uses_other_and_no_range_checks_nothing():
    assert confirm("850", origin="unknown") == [
        "850 mcg/day is above the usual 90–800 mcg/day for unknown-origin spasticity."
    ]
    assert confirm("5000", ranges={}) == []


def test_a_tenfold_slip_is_both_refused_and_flagged():
    assert dose("4000") != {}
    assert confirm("4000", "400") != []


# --- alarm_volume_errors, flow_errors, is_child ------------------------------------------


@pytest.mark.parametrize(
    ("alarm", "fill", "refused"),
    [
        ("2.0", "20", False),
        ("0.0", "20", False),  # the model's minimum
        ("10.0", "20", False),  # the model's maximum
        ("10.1", "20", True),
        ("-0.1", "20", True),
        ("2.0", "2.0", True),  # at the volume filled: it would sound at once
        ("2.0", "2.1", False),
        ("2.0", None, False),
    ],
)
def test_alarm_volume_within_the_model_range_and_below_the_fill(alarm, fill, refused):
    errors = alarm_volume_errors(
        field="alarm_threshold_ml",
        alarm_ml=D(alarm),
        fill_ml=None if fill is None else D(fill),
        alarm_min_ml=D("0.0"),
        alarm_max_ml=D("10.0"),
    )
    assert bool(errors) is refused


def test_alarm_volume_messages_name_the_limit():
    common = {"field": "alarm_threshold_ml", "alarm_min_ml": D("0.0"), "alarm_max_ml": D("10.0")}
    assert alarm_volume_errors(alarm_ml=D("12"), fill_ml=D("20"), **common) == {
        "alarm_threshold_ml": "An alarm at 12 mL is outside what this pump can be set to (0–10 mL)."
    }
    assert alarm_volume_errors(alarm_ml=D("5"), fill_ml=D("4"), **common) == {
        "alarm_threshold_ml": "An alarm at 5 mL is not below the 4 mL in the reservoir: it would sound at once."
    }


@pytest.mark.parametrize(
    ("flow", "refused"), [("0.5", False), ("0.1", False), ("1.5", False), ("0.099", True), ("1.501", True), ("0", True)]
)
def test_constant_flow_within_the_model_range(flow, refused):
    errors = flow_errors(
        field="flow_ml_per_day", flow_ml_per_day=D(flow), min_flow_ml_per_day=D("0.1"), max_flow_ml_per_day=D("1.5")
    )
    assert bool(errors) is refused


def test_constant_flow_message():
    assert flow_errors(
        field="flow_ml_per_day", flow_ml_per_day=D("3"), min_flow_ml_per_day=D("0.1"), max_flow_ml_per_day=D("1.5")
    ) == {"flow_ml_per_day": "A flow of 3 mL/day is outside this pump model's range (0.1–1.5 mL/day)."}


@pytest.mark.parametrize(
    ("born", "on", "child"),
    [
        (date(2007, 3, 20), date(2025, 3, 19), True),
        (date(2007, 3, 20), date(2025, 3, 20), False),  # the 18th birthday
        (date(2008, 2, 29), date(2026, 2, 28), True),  # leap-day birthday in a common year
        (date(2008, 2, 29), date(2026, 3, 1), False),
        (date(2006, 2, 28), date(2024, 2, 28), False),  # the 18th birthday in a leap year
        (date(2006, 3, 1), date(2024, 2, 29), True),  # leap day, the day before the 18th birthday
        (date(2020, 1, 1), date(2020, 1, 1), True),
        (date(1950, 6, 1), date(2025, 3, 20), False),
    ],
)
def test_is_child_under_18(born, on, child):
    assert is_child(date_of_birth=born, on=on) is child
