"""refills/charts.py: pure SVG from dates and volumes (no ORM, no clock)."""

import datetime as dt
import re
from decimal import Decimal
from xml.etree import ElementTree

from refills.charts import ReservoirProjection, ReservoirRefill, battery_bar_svg, reservoir_chart_svg

NS = "{http://www.w3.org/2000/svg}"


def parse(svg: str) -> ElementTree.Element:
    return ElementTree.fromstring(svg)  # noqa: S314 (our own output, parsed to prove it is well formed)


def _chart(**overrides):
    kwargs = {
        "refills": [
            ReservoirRefill(on=dt.date(2025, 1, 6), residual_ml=None, volume_ml=Decimal("20")),
            ReservoirRefill(on=dt.date(2025, 3, 31), residual_ml=Decimal("3.2"), volume_ml=Decimal("20")),
        ],
        "reservoir_ml": Decimal("20"),
        "alarm_threshold_ml": Decimal("2.0"),
        "projection": ReservoirProjection(
            alarm_on=dt.date(2025, 6, 29), empty_on=dt.date(2025, 7, 9), due_by=dt.date(2025, 6, 24)
        ),
        "today": dt.date(2025, 4, 2),
    }
    kwargs.update(overrides)
    return reservoir_chart_svg(**kwargs)


def test_reservoir_chart_is_well_formed_svg_with_a_text_alternative():
    svg = _chart()
    root = parse(svg)
    assert root.tag == f"{NS}svg" and root.get("role") == "img"
    desc = root.find(f"{NS}desc").text
    assert desc == (
        "2 refill(s) from 6 Jan 2025 to 31 Mar 2025; last filled with 20 mL of a 20 mL reservoir. "
        "Projected alarm (2 mL) on 29 Jun 2025, empty on 9 Jul 2025; refill due by 24 Jun 2025."
    )
    assert "style=" not in svg


def test_reservoir_chart_draws_history_projection_threshold_due_and_today():
    root = parse(_chart())
    classes = [el.get("class") for el in root.iter() if el.get("class")]
    for needed in ("history", "projection", "threshold", "due-line", "today-line", "marker-alarm", "marker-empty"):
        assert needed in classes
    history = root.find(f".//{NS}polyline[@class='history']").get("points").split()
    # refill volume → residual measured at the next refill → that refill's volume: 3 points
    assert len(history) == 3
    (x0, y0), (x1, y1), (x2, y2) = (tuple(map(float, p.split(","))) for p in history)
    assert y0 == y2 < y1 and x1 == x2 > x0
    projection = root.find(f".//{NS}polyline[@class='projection']").get("points").split()
    ys = [float(p.split(",")[1]) for p in projection]
    assert ys[0] < ys[1] < ys[2]  # falls to the alarm volume, then to empty
    due = root.find(f".//{NS}line[@class='due-line']")
    alarm = root.find(f".//{NS}circle[@class='marker-alarm']")
    assert float(due.get("x1")) < float(alarm.get("cx"))  # due-by before the alarm


def test_reservoir_chart_without_refills_says_so():
    svg = _chart(refills=[], projection=None)
    assert "No refill recorded yet" in svg and "polyline" not in svg


def test_battery_bar_past_the_planning_date():
    svg = battery_bar_svg(
        implanted_on=dt.date(2020, 4, 30),
        today=dt.date(2026, 11, 25),
        hard_stop_on=dt.date(2027, 4, 30),
        window_opens_on=dt.date(2025, 4, 30),
        plan_by=dt.date(2026, 10, 30),
        stops_on=dt.date(2027, 4, 30),
    )
    parse(svg)
    assert "Plan the replacement by 30 Oct 2026." in svg
    assert "battery-age battery-age-late" in svg  # past the planning date: red
    assert re.search(r"age 6 y 6 m", svg)


def test_battery_bar_for_a_pump_without_a_battery():
    svg = battery_bar_svg(
        implanted_on=dt.date(2020, 1, 1),
        today=dt.date(2025, 1, 1),
        hard_stop_on=None,
        window_opens_on=None,
        plan_by=None,
        stops_on=None,
    )
    assert "never replaced for battery" in svg
