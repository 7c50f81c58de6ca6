"""
Server-side SVG bar charts for the quality dashboard (refills/charts.py draws the patient page's).

Pure: labels and integers in, an SVG string out (no ORM, no clock). Colours come from CSS classes
(the content security policy forbids inline styles). Every text is escaped; each chart carries a
<title> and a <desc> listing its numbers, so a screen reader gets the same facts as the picture,
and the page shows the same numbers as a table beside it.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 44, 12, 16, 48


@dataclass(frozen=True, slots=True)
class Bar:
    label: str
    value: int
    # A CSS modifier (bar-ok, bar-warn, bar-danger); empty for the accent colour.
    tone: str = ""


def _nice_top(peak: int) -> int:
    """The axis top: the peak rounded up to 1, 2 or 5 × a power of ten (at least 1)."""
    if peak <= 0:
        return 1
    magnitude = 1
    while magnitude * 10 <= peak:
        magnitude *= 10
    for step in (1, 2, 5, 10):
        if step * magnitude >= peak:
            return step * magnitude
    return 10 * magnitude  # pragma: no cover - the loop above always returns


def bar_chart_svg(*, chart_id: str, title: str, bars: Sequence[Bar], width: int = 640, height: int = 240) -> str:
    """Vertical bars, one per label, with the value written above each bar."""
    desc = "; ".join(f"{bar.label}: {bar.value}" for bar in bars) or "No data in this period."
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart bar-chart" viewBox="0 0 {width} {height}" '
        f'role="img" aria-labelledby="{chart_id}-title {chart_id}-desc">'
        f'<title id="{chart_id}-title">{escape(title)}</title><desc id="{chart_id}-desc">{escape(desc)}</desc>'
    )
    if not bars or all(bar.value == 0 for bar in bars):
        return (
            head + f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" class="chart-note">'
            f"{escape('Nothing to chart in this period.')}</text></svg>"
        )
    top = _nice_top(max(bar.value for bar in bars))
    x0, x1 = MARGIN_LEFT, width - MARGIN_RIGHT
    y0, y1 = height - MARGIN_BOTTOM, MARGIN_TOP
    parts: list[str] = []
    for fraction in (0, 0.5, 1):
        y = round(y0 - (y0 - y1) * fraction, 1)
        value = top * fraction
        label = f"{value:g}"
        parts.append(f'<line class="grid" x1="{x0}" x2="{x1}" y1="{y}" y2="{y}"/>')
        parts.append(f'<text class="axis-label" x="{x0 - 6}" y="{y + 4}" text-anchor="end">{label}</text>')
    slot = (x1 - x0) / len(bars)
    bar_w = round(max(slot * 0.7, 2), 1)
    for i, bar in enumerate(bars):
        h = round((y0 - y1) * bar.value / top, 1)
        x = round(x0 + slot * i + (slot - bar_w) / 2, 1)
        centre = round(x + bar_w / 2, 1)
        css = f"bar {bar.tone}".strip()
        parts.append(
            f'<rect class="{css}" x="{x}" y="{round(y0 - h, 1)}" width="{bar_w}" height="{h}">'
            f"<title>{escape(bar.label)}: {bar.value}</title></rect>"
        )
        parts.append(
            f'<text class="bar-value" x="{centre}" y="{round(y0 - h - 4, 1)}" text-anchor="middle">{bar.value}</text>'
        )
        parts.append(
            f'<text class="axis-label" x="{centre}" y="{y0 + 16 + (12 if i % 2 and len(bars) > 8 else 0)}" '
            f'text-anchor="middle">{escape(bar.label)}</text>'
        )
    parts.append(f'<line class="axis" x1="{x0}" x2="{x1}" y1="{y0}" y2="{y0}"/>')
    return head + "".join(parts) + "</svg>"
