"""Charts drawn on the server as inline SVG: no JavaScript, no CDN, nothing to load.

``line_chart`` draws one or more series over a shared x axis (seconds, or any number), with
optional horizontal threshold lines (a p95 target, a pool limit); ``sparkline`` is the small
version for a table cell. Every chart is an ``<svg class="perf-chart">`` with a ``<title>``
per point, so a browser shows the value under the pointer and a test can find the chart.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe

# Colour-blind safe (Okabe-Ito), in the order series are given.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000")


@dataclass
class Series:
    label: str
    points: Sequence[tuple[float, float | None]]  # (x, y); y None is a gap
    color: str | None = None


@dataclass
class Threshold:
    label: str
    value: float
    color: str = "#D55E00"


@dataclass
class Chart:
    title: str
    series: list[Series]
    thresholds: list[Threshold] = field(default_factory=list)
    y_unit: str = ""
    x_unit: str = "s"
    width: int = 720
    height: int = 220


def nice(value: float) -> str:
    """A number for people: 5.5, 1,234, 0.012."""
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:.1f}".rstrip("0").rstrip(".")
    if magnitude >= 1:
        return f"{value:.2f}".rstrip("0").rstrip(".")
    return f"{value:.3g}"


def _bounds(chart: Chart) -> tuple[float, float, float, float]:
    xs = [x for s in chart.series for x, y in s.points if y is not None]
    ys = [y for s in chart.series for _, y in s.points if y is not None]
    ys += [t.value for t in chart.thresholds]
    if not xs:
        return 0.0, 1.0, 0.0, 1.0
    x0, x1 = min(xs), max(xs)
    y1 = max(ys) if ys else 1.0
    return x0, (x1 if x1 > x0 else x0 + 1), 0.0, (y1 * 1.1 if y1 > 0 else 1.0)


def line_chart(chart: Chart) -> SafeString:
    """The chart as inline SVG, with a legend; an empty chart says it has no data."""
    left, right, top, bottom = 56, 12, 28, 28
    width, height = chart.width, chart.height
    plot_w, plot_h = width - left - right, height - top - bottom
    x0, x1, y0, y1 = _bounds(chart)

    def sx(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * plot_w

    def sy(y: float) -> float:
        return top + plot_h - (y - y0) / (y1 - y0) * plot_h

    parts = [
        f'<text x="{left}" y="16" class="perf-chart-title">{escape(chart.title)}</text>',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" class="perf-axis"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" class="perf-axis"/>',
    ]
    for fraction in (0, 0.5, 1):
        value = y0 + (y1 - y0) * fraction
        parts.append(
            f'<text x="{left - 6}" y="{sy(value) + 4:.1f}" text-anchor="end" class="perf-tick">'
            f"{escape(nice(value))}{escape(chart.y_unit)}</text>"
        )
    parts.append(
        f'<text x="{left}" y="{height - 8}" class="perf-tick">{escape(nice(x0))} {chart.x_unit}</text>'
    )
    parts.append(
        f'<text x="{left + plot_w}" y="{height - 8}" text-anchor="end" class="perf-tick">'
        f"{escape(nice(x1))} {chart.x_unit}</text>"
    )
    for threshold in chart.thresholds:
        y = sy(threshold.value)
        parts.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" stroke="{threshold.color}" '
            f'class="perf-threshold"><title>{escape(threshold.label)}: {escape(nice(threshold.value))}'
            f"{escape(chart.y_unit)}</title></line>"
        )
    has_data = False
    for index, series in enumerate(chart.series):
        color = series.color or PALETTE[index % len(PALETTE)]
        segments: list[list[tuple[float, float]]] = [[]]
        for x, y in series.points:
            if y is None:
                segments.append([])
            else:
                segments[-1].append((x, y))
        for segment in segments:
            if not segment:
                continue
            has_data = True
            path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in segment)
            parts.append(f'<polyline points="{path}" stroke="{color}" class="perf-series"/>')
            for x, y in segment:
                parts.append(
                    f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2" fill="{color}"><title>'
                    f"{escape(series.label)} at {escape(nice(x))} {chart.x_unit}: {escape(nice(y))}"
                    f"{escape(chart.y_unit)}</title></circle>"
                )
    if not has_data:
        parts.append(
            f'<text x="{left + plot_w / 2}" y="{top + plot_h / 2}" text-anchor="middle" class="perf-tick">'
            "no data yet</text>"
        )
    legend = "".join(
        format_html(
            '<span class="perf-legend-item"><span class="perf-swatch" style="background:{}"></span>{}</span>',
            series.color or PALETTE[index % len(PALETTE)],
            series.label,
        )
        for index, series in enumerate(chart.series)
    )
    svg = (
        f'<svg class="perf-chart" role="img" aria-label="{escape(chart.title)}" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">{"".join(parts)}</svg>'
    )
    return mark_safe(f'<figure class="perf-figure">{svg}<figcaption>{legend}</figcaption></figure>')  # noqa: S308 (every text above is escaped)


def sparkline(
    values: Sequence[float | None], *, width: int = 160, height: int = 28, label: str = ""
) -> SafeString:
    """A small trend line for a table cell; the last value is marked."""
    points = [(index, value) for index, value in enumerate(values) if value is not None]
    if not points:
        return mark_safe('<svg class="perf-chart perf-sparkline" width="0" height="0"></svg>')
    top = max(value for _, value in points) or 1.0
    last = len(values) - 1 or 1
    coords = [
        (2 + index / last * (width - 4), height - 2 - value / top * (height - 4)) for index, value in points
    ]
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
    end_x, end_y = coords[-1]
    title = f"{escape(label)}: last {escape(nice(points[-1][1]))}, max {escape(nice(top))}"
    return mark_safe(  # noqa: S308 (escaped above)
        f'<svg class="perf-chart perf-sparkline" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg"><title>{title}</title>'
        f'<polyline points="{path}" class="perf-series" stroke="{PALETTE[0]}"/>'
        f'<circle cx="{end_x:.1f}" cy="{end_y:.1f}" r="2" fill="{PALETTE[0]}"/></svg>'
    )
