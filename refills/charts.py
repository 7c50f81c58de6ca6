"""
Server-side SVG for the patient page: the reservoir chart and the battery bar.

Pure: dates and Decimals in, an SVG string out (no ORM, no clock). Colours come from CSS
classes (the content security policy forbids inline style attributes; SVG presentation
attributes are fine). Every text is escaped; each chart carries a <title> and <desc> so a
screen reader gets the same facts as the picture.
"""

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from html import escape

MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 52, 20, 26, 40


@dataclass(frozen=True, slots=True)
class ReservoirRefill:
    """One refill: what was aspirated (end of the previous period) and what the reservoir then held."""

    on: dt.date
    residual_ml: Decimal | None
    volume_ml: Decimal


@dataclass(frozen=True, slots=True)
class ReservoirProjection:
    """The forecast in force after the last refill."""

    alarm_on: dt.date
    empty_on: dt.date
    due_by: dt.date


def _fmt_ml(value: Decimal | float) -> str:
    return f"{Decimal(str(value)).normalize():f}"


def _fmt_day(day: dt.date) -> str:
    return f"{day.day} {day:%b %Y}"


class _Scale:
    def __init__(self, *, start: dt.date, end: dt.date, top_ml: float, width: int, height: int) -> None:
        self.start, self.end, self.top_ml = start, end, top_ml
        self.x0, self.x1 = MARGIN_LEFT, width - MARGIN_RIGHT
        self.y0, self.y1 = height - MARGIN_BOTTOM, MARGIN_TOP
        self.span_days = max((end - start).days, 1)

    def x(self, day: dt.date) -> float:
        return round(self.x0 + (self.x1 - self.x0) * (day - self.start).days / self.span_days, 1)

    def y(self, ml: Decimal | float) -> float:
        return round(self.y0 - (self.y0 - self.y1) * float(ml) / self.top_ml, 1)


def _month_ticks(start: dt.date, end: dt.date) -> list[dt.date]:
    ticks, day = [], dt.date(start.year, start.month, 1)
    while day <= end:
        if day >= start:
            ticks.append(day)
        day = dt.date(day.year + (day.month == 12), day.month % 12 + 1, 1)
    step = max(1, len(ticks) // 8)
    return ticks[::step]


def _ml_step(top: float) -> int:
    return 5 if top <= 25 else 10


def reservoir_chart_svg(
    *,
    refills: Sequence[ReservoirRefill],
    reservoir_ml: Decimal,
    alarm_threshold_ml: Decimal,
    projection: ReservoirProjection | None,
    today: dt.date,
    width: int = 760,
    height: int = 280,
) -> str:
    """Volume after each refill, the measured decline to the next, and the projected decline.

    History (solid): refill volume -> residual aspirated at the next refill -> that refill's volume.
    Projection (dashed): last refill volume -> alarm threshold on the alarm date -> 0 on the empty date.
    Vertical lines: the due-by date and today. Horizontal dashed line: the alarm threshold.
    """
    refills = sorted(refills, key=lambda r: r.on)
    title = "Reservoir volume over time"
    if not refills:
        desc = "No refill recorded yet: nothing to chart."
        return (
            f'<svg xmlns="http://www.w3.org/2000/svg" class="chart chart-empty" viewBox="0 0 {width} 60" '
            f'role="img" aria-labelledby="reservoir-title reservoir-desc">'
            f'<title id="reservoir-title">{escape(title)}</title><desc id="reservoir-desc">{escape(desc)}</desc>'
            f'<text x="{width / 2}" y="34" text-anchor="middle" class="chart-note">{escape(desc)}</text></svg>'
        )
    start = refills[0].on
    end = max(today, refills[-1].on)
    if projection is not None:
        end = max(end, projection.empty_on, projection.due_by)
    end = end + dt.timedelta(days=max(3, (end - start).days // 40))
    start = start - dt.timedelta(days=max(2, (end - start).days // 60))
    top = float(reservoir_ml)
    scale = _Scale(start=start, end=end, top_ml=top, width=width, height=height)
    parts: list[str] = []

    # Grid and axes.
    step = _ml_step(top)
    ml = 0
    while ml <= top + 0.001:
        y = scale.y(ml)
        parts.append(f'<line class="grid" x1="{scale.x0}" x2="{scale.x1}" y1="{y}" y2="{y}"/>')
        parts.append(f'<text class="axis-label" x="{scale.x0 - 8}" y="{y + 4}" text-anchor="end">{ml}</text>')
        ml += step
    parts.append(
        f'<text class="axis-label" x="14" y="{(scale.y0 + scale.y1) / 2}" text-anchor="middle" '
        f'transform="rotate(-90 14 {(scale.y0 + scale.y1) / 2})">mL</text>'
    )
    for tick in _month_ticks(start, end):
        x = scale.x(tick)
        label = f"{tick:%b}" if tick.month != 1 else f"{tick:%b %Y}"
        parts.append(f'<line class="tick" x1="{x}" x2="{x}" y1="{scale.y0}" y2="{scale.y0 + 5}"/>')
        anchor = "end" if x > scale.x1 - 24 else "middle"
        parts.append(f'<text class="axis-label" x="{x}" y="{scale.y0 + 20}" text-anchor="{anchor}">{label}</text>')
    parts.append(f'<line class="axis" x1="{scale.x0}" x2="{scale.x1}" y1="{scale.y0}" y2="{scale.y0}"/>')

    # Alarm threshold.
    ya = scale.y(alarm_threshold_ml)
    parts.append(f'<line class="threshold" x1="{scale.x0}" x2="{scale.x1}" y1="{ya}" y2="{ya}"/>')
    parts.append(
        f'<text class="threshold-label" x="{scale.x0 + 4}" y="{ya - 5}" text-anchor="start">'
        f"alarm {_fmt_ml(alarm_threshold_ml)} mL</text>"
    )

    # Measured history.
    points = [f"{scale.x(refills[0].on)},{scale.y(refills[0].volume_ml)}"]
    for refill in refills[1:]:
        if refill.residual_ml is not None:
            points.append(f"{scale.x(refill.on)},{scale.y(refill.residual_ml)}")
        points.append(f"{scale.x(refill.on)},{scale.y(refill.volume_ml)}")
    parts.append(f'<polyline class="history" fill="none" points="{" ".join(points)}"/>')

    # Projection of the forecast in force.
    last = refills[-1]
    if projection is not None:
        proj = [
            f"{scale.x(last.on)},{scale.y(last.volume_ml)}",
            f"{scale.x(projection.alarm_on)},{scale.y(alarm_threshold_ml)}",
            f"{scale.x(projection.empty_on)},{scale.y(0)}",
        ]
        parts.append(f'<polyline class="projection" fill="none" points="{" ".join(proj)}"/>')
        xd = scale.x(projection.due_by)
        parts.append(f'<line class="due-line" x1="{xd}" x2="{xd}" y1="{scale.y1 - 6}" y2="{scale.y0}"/>')
        parts.append(
            f'<text class="due-label" x="{xd - 4}" y="{scale.y1 - 10}" text-anchor="end">'
            f"due by {escape(_fmt_day(projection.due_by))}</text>"
        )
        for day, ml, label, css in (
            (projection.alarm_on, alarm_threshold_ml, "alarm", "marker-alarm"),
            (projection.empty_on, Decimal(0), "empty", "marker-empty"),
        ):
            parts.append(
                f'<circle class="{css}" cx="{scale.x(day)}" cy="{scale.y(ml)}" r="5">'
                f"<title>{label} {escape(_fmt_day(day))}</title></circle>"
            )

    # Today.
    if start <= today <= end:
        xt = scale.x(today)
        parts.append(f'<line class="today-line" x1="{xt}" x2="{xt}" y1="{scale.y1}" y2="{scale.y0}"/>')
        near_edge = xt > scale.x1 - 48
        parts.append(
            f'<text class="today-label" x="{xt - 4 if near_edge else xt + 4}" y="{scale.y1 + 10}" '
            f'text-anchor="{"end" if near_edge else "start"}">today</text>'
        )

    for refill in refills:
        parts.append(
            f'<circle class="refill-point" cx="{scale.x(refill.on)}" cy="{scale.y(refill.volume_ml)}" r="4">'
            f"<title>Refill {escape(_fmt_day(refill.on))}: {_fmt_ml(refill.volume_ml)} mL"
            + (f", residual {_fmt_ml(refill.residual_ml)} mL" if refill.residual_ml is not None else "")
            + "</title></circle>"
        )

    desc = f"{len(refills)} refill(s) from {_fmt_day(refills[0].on)} to {_fmt_day(last.on)}; last filled with "
    desc += f"{_fmt_ml(last.volume_ml)} mL of a {_fmt_ml(reservoir_ml)} mL reservoir."
    if projection is not None:
        desc += (
            f" Projected alarm ({_fmt_ml(alarm_threshold_ml)} mL) on {_fmt_day(projection.alarm_on)}, empty on "
            f"{_fmt_day(projection.empty_on)}; refill due by {_fmt_day(projection.due_by)}."
        )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart reservoir-chart" viewBox="0 0 {width} {height}" '
        f'role="img" aria-labelledby="reservoir-title reservoir-desc">'
        f'<title id="reservoir-title">{escape(title)}</title><desc id="reservoir-desc">{escape(desc)}</desc>'
        + "".join(parts)
        + "</svg>"
    )


def battery_bar_svg(
    *,
    implanted_on: dt.date,
    today: dt.date,
    hard_stop_on: dt.date | None,
    window_opens_on: dt.date | None,
    plan_by: dt.date | None,
    stops_on: dt.date | None,
    width: int = 440,
    height: int = 96,
) -> str:
    """The pump's age against its battery window (shaded), the planning date and the stop.

    Bar from the implant date to the stop (or the hard stop; or the window opening plus two years
    for pumps without an automatic shut-down). The filled part is the age today.
    """
    end = stops_on or hard_stop_on or (window_opens_on and window_opens_on.replace(year=window_opens_on.year + 2))
    title = "Battery life"
    if end is None:
        desc = "This pump has no battery: it is never replaced for battery."
        return (
            f'<svg xmlns="http://www.w3.org/2000/svg" class="chart battery-bar" viewBox="0 0 {width} 40" '
            f'role="img" aria-labelledby="battery-title battery-desc">'
            f'<title id="battery-title">{escape(title)}</title><desc id="battery-desc">{escape(desc)}</desc>'
            f'<text x="8" y="24" class="chart-note">{escape(desc)}</text></svg>'
        )
    x0, x1, y, bar_h = 6, width - 6, 26, 18
    span = max((end - implanted_on).days, 1)

    def x(day: dt.date) -> float:
        clamped = min(max(day, implanted_on), end)
        return round(x0 + (x1 - x0) * (clamped - implanted_on).days / span, 1)

    parts = [f'<rect class="battery-track" x="{x0}" y="{y}" width="{x1 - x0}" height="{bar_h}" rx="4"/>']
    if window_opens_on is not None:
        parts.append(
            f'<rect class="battery-window" x="{x(window_opens_on)}" y="{y}" '
            f'width="{round(x(end) - x(window_opens_on), 1)}" height="{bar_h}"/>'
        )
    age_class = "battery-age"
    if plan_by is not None and today >= plan_by:
        age_class += " battery-age-late"
    elif window_opens_on is not None and today >= window_opens_on:
        age_class += " battery-age-window"
    parts.append(
        f'<rect class="{age_class}" x="{x0}" y="{y + 4}" width="{round(x(today) - x0, 1)}" '
        f'height="{bar_h - 8}" rx="3"/>'
    )
    below, further = y + bar_h + 16, y + bar_h + 34
    parts.append(
        f'<text class="bar-label" x="{x0}" y="{below}" text-anchor="start">'
        f"implanted {escape(_fmt_day(implanted_on))}</text>"
    )
    parts.append(f'<line class="stop-line" x1="{x(end)}" x2="{x(end)}" y1="{y - 4}" y2="{y + bar_h + 4}"/>')
    parts.append(
        f'<text class="bar-label bar-stop" x="{x1}" y="{below}" text-anchor="end">'
        f"{'stops' if stops_on else 'end'} {escape(_fmt_day(end))}</text>"
    )
    if plan_by is not None:
        xp = x(plan_by)
        anchor = "end" if xp > x0 + (x1 - x0) * 0.7 else "middle"
        parts.append(f'<line class="plan-line" x1="{xp}" x2="{xp}" y1="{y - 4}" y2="{further - 12}"/>')
        parts.append(
            f'<text class="bar-label bar-plan" x="{xp}" y="{further}" text-anchor="{anchor}">'
            f"plan by {escape(_fmt_day(plan_by))}</text>"
        )
    age_days = (today - implanted_on).days
    years, months = divmod(age_days * 12 // 365, 12)
    parts.append(f'<text class="bar-label" x="{x0}" y="{y - 8}">age {years} y {months} m</text>')
    desc = f"Implanted {_fmt_day(implanted_on)}, {years} years {months} months ago."
    if window_opens_on is not None:
        desc += f" Battery window opens {_fmt_day(window_opens_on)}."
    if plan_by is not None:
        desc += f" Plan the replacement by {_fmt_day(plan_by)}."
    if stops_on is not None:
        desc += f" The pump stops on {_fmt_day(stops_on)} at the latest."
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart battery-bar" viewBox="0 0 {width} {height}" '
        f'role="img" aria-labelledby="battery-title battery-desc">'
        f'<title id="battery-title">{escape(title)}</title><desc id="battery-desc">{escape(desc)}</desc>'
        + "".join(parts)
        + "</svg>"
    )
