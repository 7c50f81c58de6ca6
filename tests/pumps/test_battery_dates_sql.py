"""The battery dates computed in SQL (for the worklist) equal the pure functions', on the edge dates."""

import datetime as dt

import pytest
from django.db.models import F

from core.db import AddDays, AddMonths
from pumps.calculations import add_months
from pumps.models import Implant, PumpModel
from pumps.selectors import (
    implant_get_battery_window_opens_on,
    implant_get_replacement_plan,
    implant_list_with_battery_dates,
)
from tests import factories

pytestmark = pytest.mark.django_db

EDGE_DAYS = [
    dt.date(2024, 2, 29),
    dt.date(2023, 1, 31),
    dt.date(2023, 8, 31),
    dt.date(2020, 12, 31),
    dt.date(2021, 3, 1),
    dt.date(2019, 6, 15),
]


@pytest.mark.parametrize("months", [-6, -1, 1, 6, 12, 18, 60, 84, 1200])
def test_add_months_in_sql_clamps_to_the_month_end_like_python(months):
    implants = [factories.ImplantFactory(implanted_on=day) for day in EDGE_DAYS]
    rows = dict(
        Implant.objects.filter(pk__in=[i.pk for i in implants])
        .annotate(moved=AddMonths("implanted_on", months))
        .values_list("implanted_on", "moved")
    )
    assert rows == {day: add_months(day=day, months=months) for day in EDGE_DAYS}


def test_add_days_and_months_take_column_expressions():
    implant = factories.ImplantFactory(implanted_on=dt.date(2024, 2, 29))
    row = (
        Implant.objects.filter(pk=implant.pk)
        .annotate(
            plus_life=AddMonths("implanted_on", F("pump_model__battery_hard_stop_years") * 12),
            plus_days=AddDays("implanted_on", F("pump_model__replacement_plan_months_before") * -30),
        )
        .get()
    )
    assert row.plus_life == dt.date(2031, 2, 28)
    assert row.plus_days == dt.date(2024, 2, 29) - dt.timedelta(days=180)


ERI_CASES = [None, dt.date(2030, 12, 1), dt.date(2031, 1, 1), dt.date(2024, 3, 1)]


@pytest.mark.parametrize(
    "model_name", ["SynchroMed II", "Prometra II", "Codman 3000", "SynchroMed EL"], ids=lambda n: n
)
def test_battery_dates_in_sql_equal_the_pure_functions(model_name):
    model = PumpModel.objects.filter(name=model_name).first()
    assert model is not None
    implants = [
        factories.ImplantFactory(implanted_on=day, eri_reported_on=eri, pump_model=model)
        for day in EDGE_DAYS
        for eri in ERI_CASES
        if eri is None or eri >= day
    ]
    rows = {row.pk: row for row in implant_list_with_battery_dates().filter(pk__in=[i.pk for i in implants])}
    assert len(rows) == len(implants)
    for implant in implants:
        row = rows[implant.pk]
        plan = implant_get_replacement_plan(implant=implant)
        assert row.battery_computable is True
        assert row.battery_plan_by == (plan.plan_by if plan else None), implant.implanted_on
        assert row.battery_plan_stops_on == (plan.stops_on if plan else None)
        assert row.battery_window_opens_on == implant_get_battery_window_opens_on(implant=implant)


@pytest.mark.parametrize(
    ("implanted_on", "eri"),
    [(dt.date(2024, 1, 10), dt.date(9999, 12, 1)), (dt.date(2017, 1, 10), dt.date(9999, 12, 31))],
    ids=["ERI of 9999-12-01", "ERI on the calendar's last day"],
)
def test_a_record_the_pure_functions_refuse_is_not_computable_in_sql(implanted_on, eri):
    implant = factories.ImplantFactory(implanted_on=implanted_on, eri_reported_on=eri)
    with pytest.raises((ArithmeticError, ValueError, OverflowError)):
        implant_get_replacement_plan(implant=implant)
    row = implant_list_with_battery_dates().get(pk=implant.pk)
    assert row.battery_computable is False
    assert (row.battery_plan_by, row.battery_plan_stops_on, row.battery_window_opens_on) == (None, None, None)
