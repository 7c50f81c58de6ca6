"""The one forecast: a pump's whole history in, the dates the schedule runs on out (pure)."""

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from refills.forecasting import Bolus, Dose, Emptied, Fill, Problem, pump_forecast, reservoir_volume_on

TZ = ZoneInfo("Europe/London")


def at(day: dt.date | tuple, hour: int = 10, minute: int = 0) -> dt.datetime:
    day = dt.date(*day) if isinstance(day, tuple) else day
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=TZ)


def fill(when, volume="20", conc="2000", alarm="2", cap=None) -> Fill:
    return Fill(
        at=when,
        volume_ml=Decimal(volume),
        concentration_mcg_per_ml=Decimal(conc),
        alarm_threshold_ml=Decimal(alarm),
        max_interval_days=cap,
    )


def dose(when, mcg) -> Dose:
    return Dose(at=when, daily_dose_mcg=Decimal(mcg))


def dates(events, margin=5, flow=None):
    f = pump_forecast(events=events, tz=TZ, safety_margin_days=margin, constant_flow_ml_per_day=flow)
    return f.alarm_on, f.empty_on, f.due_by


REFILL = at((2025, 1, 6))
BASE = [fill(REFILL), dose(REFILL, "400")]


def test_one_interval_at_one_dose_is_the_domain_worked_example():
    # 20 mL, 2000 mcg/mL, 400 mcg/day → 0.2 mL/day: alarm after 90 days, empty after 100, due 5 days before
    assert dates(BASE) == (dt.date(2025, 4, 6), dt.date(2025, 4, 16), dt.date(2025, 4, 1))


def test_the_40_ml_worked_example():
    events = [fill(REFILL, volume="40"), dose(REFILL, "500")]
    f = pump_forecast(events=events, tz=TZ, safety_margin_days=5)
    assert (f.days_to_alarm, f.days_to_empty) == (152, 160)


def test_a_dose_increase_brings_the_alarm_forward():
    # 14 mL left on 5 Feb; (14 − 2) / 0.25 = 48 days
    events = [*BASE, dose(at((2025, 2, 5), 0), "500")]
    assert dates(events) == (dt.date(2025, 3, 25), dt.date(2025, 4, 2), dt.date(2025, 3, 20))


def test_a_future_dose_change_counts_from_its_own_time_not_from_today():
    # Planned for 1 Mar 00:00: 54 days at 0.2 (10.8 mL used, 9.2 left), then 0.4 mL/day → 18 days to 2 mL
    events = [*BASE, dose(at((2025, 3, 1), 0), "800")]
    assert dates(events) == (dt.date(2025, 3, 19), dt.date(2025, 3, 24), dt.date(2025, 3, 14))


def test_a_reduction_late_in_the_evening_runs_at_the_old_rate_until_then():
    # 2.0167 mL left at 22:00 on 5 Apr, then 0.1 mL/day: the alarm comes at 02:00 on 6 Apr.
    late = [*BASE, dose(at((2025, 4, 5), 22), "200")]
    assert dates(late)[0] == dt.date(2025, 4, 6)
    # Applied from the start of its day it would wrongly give the 7th.
    early = [*BASE, dose(at((2025, 4, 5), 0), "200")]
    assert dates(early)[0] == dt.date(2025, 4, 7)


def test_the_stability_cap_counts_from_the_fill_not_the_dose_change():
    events = [fill(REFILL, cap=90), dose(REFILL, "400"), dose(at((2025, 2, 5), 0), "200")]
    assert dates(events)[2] == dt.date(2025, 4, 6)  # 6 Jan + 90 days, before the alarm at 0.1 mL/day


def test_a_constant_flow_pump_falls_at_its_flow_whatever_the_dose():
    # Codman 3000, 30 mL, 1 mL/day: the concentration changes the dose, never the dates.
    for conc, mcg in (("500", "500"), ("1000", "500")):
        events = [fill(REFILL, volume="30", conc=conc), dose(REFILL, mcg)]
        assert dates(events, flow=Decimal("1")) == (dt.date(2025, 2, 3), dt.date(2025, 2, 5), dt.date(2025, 1, 29))


def test_a_bridge_bolus_takes_its_volume_at_once():
    # 2000 mcg at 2000 mcg/mL = 1 mL gone at the fill: 5 days earlier at 0.2 mL/day
    events = [*BASE, Bolus(at=REFILL, dose_mcg=Decimal("2000"))]
    assert dates(events) == (dt.date(2025, 4, 1), dt.date(2025, 4, 11), dt.date(2025, 3, 27))


def test_an_emptied_reservoir_has_no_forecast_until_the_next_fill():
    emptied = [*BASE, Emptied(at=at((2025, 2, 1), 9))]
    assert pump_forecast(events=emptied, tz=TZ, safety_margin_days=5).problem == Problem.RESERVOIR_EMPTIED
    assert reservoir_volume_on(events=emptied, tz=TZ, on=dt.date(2025, 2, 3)) == 0
    refilled = [*emptied, fill(at((2025, 2, 1), 15))]
    assert dates(refilled) == (dt.date(2025, 5, 2), dt.date(2025, 5, 12), dt.date(2025, 4, 27))


def test_no_fill_means_no_forecast_and_says_why():
    assert pump_forecast(events=[], tz=TZ, safety_margin_days=5).problem == Problem.FILL_NOT_RECORDED
    only_dose = [dose(REFILL, "400")]
    assert pump_forecast(events=only_dose, tz=TZ, safety_margin_days=5).problem == Problem.FILL_NOT_RECORDED
    only_fill = [fill(REFILL)]
    assert pump_forecast(events=only_fill, tz=TZ, safety_margin_days=5).problem == Problem.DOSE_NOT_RECORDED


def test_a_refill_starts_a_new_interval_with_the_dose_in_force():
    second = at((2025, 3, 31))
    events = [*BASE, fill(second)]
    assert dates(events) == (dt.date(2025, 6, 29), dt.date(2025, 7, 9), dt.date(2025, 6, 24))


def test_remaining_volume_follows_each_dose_in_turn():
    events = [*BASE, dose(at((2025, 1, 16), 0), "600"), dose(at((2025, 1, 26), 0), "200")]
    # 10 days × 0.2 + 10 days × 0.3 + 10 days × 0.1 = 6 mL used
    assert reservoir_volume_on(events=events, tz=TZ, on=dt.date(2025, 2, 5)) == Decimal("14")


def test_remaining_volume_never_goes_below_zero():
    assert reservoir_volume_on(events=BASE, tz=TZ, on=dt.date(2025, 6, 1)) == Decimal("0")


def test_the_refill_being_recorded_is_not_part_of_its_own_expected_residual():
    second = at((2025, 3, 31))
    events = [*BASE, fill(second)]
    assert reservoir_volume_on(events=events, tz=TZ, on=second.date(), before=second) == Decimal("3.2")  # 84 days × 0.2


def test_a_dst_change_does_not_move_the_dates():
    # Clocks go forward on 30 Mar 2025 in London: clinic days are counted, not hours.
    events = [fill(at((2025, 3, 1))), dose(at((2025, 3, 1)), "400")]
    assert dates(events)[0] == dt.date(2025, 5, 30)


def test_a_leap_day_is_a_day_of_drug():
    events = [fill(at((2024, 2, 1))), dose(at((2024, 2, 1)), "4000")]  # 2 mL/day: 9 days to alarm
    assert dates(events, margin=0)[0] == dt.date(2024, 2, 10)
    events = [fill(at((2024, 2, 25))), dose(at((2024, 2, 25)), "4000")]
    assert dates(events, margin=0)[0] == dt.date(2024, 3, 5)  # through 29 Feb


def test_an_impossible_value_raises_for_the_caller_to_isolate():
    with pytest.raises((ValueError, OverflowError)):
        pump_forecast(events=[fill(REFILL), dose(REFILL, "-1")], tz=TZ, safety_margin_days=5)
    with pytest.raises(OverflowError):
        pump_forecast(
            events=[fill(at((9999, 12, 1)), volume="40"), dose(at((9999, 12, 1)), "25")], tz=TZ, safety_margin_days=0
        )


volumes = st.decimals(min_value="2.5", max_value="40", places=1)
doses = st.decimals(min_value="25", max_value="1500", places=0)
concentrations = st.sampled_from([Decimal("500"), Decimal("1000"), Decimal("2000")])
hours = st.integers(min_value=0, max_value=23)


@given(volume=volumes, first=doses, second=doses, conc=concentrations, day=st.integers(0, 200), hour=hours)
def test_due_is_on_or_before_alarm_which_is_on_or_before_empty(volume, first, second, conc, day, hour):
    events = [fill(REFILL, volume=volume, conc=conc), dose(REFILL, first)]
    events.append(dose(REFILL + dt.timedelta(days=day, hours=hour), second))
    alarm, empty, due = dates(events)
    assert due <= alarm <= empty


@given(volume=volumes, first=doses, extra=doses, conc=concentrations, day=st.integers(0, 200), hour=hours)
def test_a_dose_increase_never_makes_the_alarm_later(volume, first, extra, conc, day, hour):
    base = [fill(REFILL, volume=volume, conc=conc), dose(REFILL, first)]
    raised = [*base, dose(REFILL + dt.timedelta(days=day, hours=hour), first + extra)]
    assert dates(raised)[0] <= dates(base)[0]
    assert dates(raised)[1] <= dates(base)[1]
