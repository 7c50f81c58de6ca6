import datetime as dt
from decimal import Decimal

from refills.forecasting import DoseChange, forecast_in_force, remaining_volume_on

BASE = dict(
    refilled_on=dt.date(2025, 1, 6),
    volume_ml=Decimal("20"),
    concentration_mcg_per_ml=Decimal("2000"),
    daily_dose_mcg=Decimal("400"),
)


def test_without_dose_changes_it_is_the_plain_forecast():
    f = forecast_in_force(
        **BASE, dose_changes=[], alarm_threshold_ml=Decimal("2"), safety_margin_days=5, max_interval_days=None
    )
    assert (f.alarm_on, f.empty_on, f.due_by) == (dt.date(2025, 4, 6), dt.date(2025, 4, 16), dt.date(2025, 4, 1))


def test_a_dose_increase_brings_the_alarm_forward():
    changes = [DoseChange(on=dt.date(2025, 2, 5), daily_dose_mcg=Decimal("500"))]
    f = forecast_in_force(
        **BASE, dose_changes=changes, alarm_threshold_ml=Decimal("2"), safety_margin_days=5, max_interval_days=None
    )
    # 14 mL left on 5 Feb; (14 − 2) / 0.25 = 48 days
    assert (f.alarm_on, f.empty_on, f.due_by) == (dt.date(2025, 3, 25), dt.date(2025, 4, 2), dt.date(2025, 3, 20))


def test_the_stability_cap_counts_from_the_refill_not_the_dose_change():
    changes = [DoseChange(on=dt.date(2025, 2, 5), daily_dose_mcg=Decimal("200"))]
    f = forecast_in_force(
        **BASE, dose_changes=changes, alarm_threshold_ml=Decimal("2"), safety_margin_days=5, max_interval_days=90
    )
    assert f.due_by == dt.date(2025, 4, 6)  # 6 Jan + 90 days, before the alarm at 0.1 mL/day


def test_remaining_volume_follows_each_dose_in_turn():
    changes = [
        DoseChange(on=dt.date(2025, 1, 16), daily_dose_mcg=Decimal("600")),
        DoseChange(on=dt.date(2025, 1, 26), daily_dose_mcg=Decimal("200")),
    ]
    # 10 days × 0.2 + 10 days × 0.3 + 10 days × 0.1 = 6 mL used
    assert remaining_volume_on(**BASE, dose_changes=changes, on=dt.date(2025, 2, 5)) == Decimal("14")


def test_remaining_volume_never_goes_below_zero():
    assert remaining_volume_on(**BASE, dose_changes=[], on=dt.date(2025, 6, 1)) == Decimal("0")
