"""Small server-rendered charts: inline SVG, no JavaScript and no CDN.

Every piece of text that reaches the SVG (metric keys, numbers) goes through
format_html/escape, so a metric key like `<script>` is shown, never run.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

WIDTH, HEIGHT = 520, 200
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 64, 16, 14, 34


def _label(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1e5 or abs(value) < 1e-3:
        return f"{value:.3g}"
    return f"{value:.4g}"


def _span(low: float, high: float) -> tuple[float, float]:
    """Axis bounds; a flat series gets some room so its line sits in the middle."""
    if low == high:
        pad = abs(low) * 0.1 or 1.0
        return low - pad, high + pad
    return low, high


def line_chart(points: Sequence[tuple[float, float]], *, title: str, x_label: str = "step",
               x_ticks: Sequence[float] | None = None) -> SafeString:
    """An SVG line chart of (x, y) points, sorted by x; each point has a tooltip. The x axis is
    labelled at its two ends, or at each of `x_ticks` (e.g. every version number)."""
    points = sorted((float(x), float(y)) for x, y in points if math.isfinite(x) and math.isfinite(y))
    if not points:
        return mark_safe("")
    x_low, x_high = _span(min(p[0] for p in points), max(p[0] for p in points))
    y_low, y_high = _span(min(p[1] for p in points), max(p[1] for p in points))
    plot_w, plot_h = WIDTH - PAD_LEFT - PAD_RIGHT, HEIGHT - PAD_TOP - PAD_BOTTOM

    def sx(x: float) -> float:
        return PAD_LEFT + (x - x_low) / (x_high - x_low) * plot_w

    def sy(y: float) -> float:
        return PAD_TOP + (1 - (y - y_low) / (y_high - y_low)) * plot_h

    coords = [(round(sx(x), 1), round(sy(y), 1)) for x, y in points]
    polyline = " ".join(f"{cx},{cy}" for cx, cy in coords)
    dots = format_html_join(
        "", '<circle cx="{}" cy="{}" r="3"><title>{} {}: {}</title></circle>',
        ((cx, cy, x_label, _label(x), _label(y)) for (cx, cy), (x, y) in zip(coords, points, strict=True)),
    )
    grid = format_html_join(
        "",
        '<line class="grid" x1="{}" x2="{}" y1="{}" y2="{}"/>'
        '<text class="tick" x="{}" y="{}" text-anchor="end">{}</text>',
        ((PAD_LEFT, WIDTH - PAD_RIGHT, round(sy(v), 1), round(sy(v), 1), PAD_LEFT - 6, round(sy(v), 1) + 4, _label(v))
         for v in (y_low, (y_low + y_high) / 2, y_high)),
    )
    x_ticks = format_html_join(
        "", '<text class="tick" x="{}" y="{}" text-anchor="middle">{}</text>',
        ((round(sx(v), 1), HEIGHT - PAD_BOTTOM + 16, _label(v))
         for v in (x_ticks if x_ticks is not None else (x_low, x_high))),
    )
    return format_html(
        '<svg class="chart" viewBox="0 0 {w} {h}" role="img" aria-label="{title}" preserveAspectRatio="xMidYMid meet">'
        "<title>{title}</title>{grid}{x_ticks}"
        '<text class="axis" x="{mid}" y="{axis_y}" text-anchor="middle">{x_label}</text>'
        '<polyline points="{polyline}"/>{dots}</svg>',
        w=WIDTH, h=HEIGHT, title=title, grid=grid, x_ticks=x_ticks, mid=PAD_LEFT + plot_w / 2,
        axis_y=HEIGHT - 4, x_label=x_label, polyline=polyline, dots=dots,
    )


def metric_charts(metrics) -> list[dict]:
    """One entry per metric key, in key order: {key, count, last, chart}.

    Points are plotted over `step`; a series where some values have no step is plotted
    in logging order instead (x = 1, 2, 3...). Text values are listed, never plotted.
    """
    series: dict[str, list] = {}
    for metric in metrics:
        series.setdefault(metric.key, []).append(metric)
    charts = []
    for key, rows in series.items():
        numeric = [row for row in rows if row.value_number is not None]
        by_step = all(row.step is not None for row in numeric)
        points = [(row.step if by_step else index, row.value_number) for index, row in enumerate(numeric, 1)]
        charts.append({
            "key": key,
            "count": len(rows),
            "last": rows[-1].value,
            "chart": line_chart(points, title=key, x_label="step" if by_step else "logged #") if numeric else "",
        })
    return charts


MAX_VERSION_TICKS = 30  # beyond it, the version axis is labelled at its ends only


def across_versions_chart(points: Sequence[tuple[int, float]], *, key: str) -> SafeString:
    """One metric's value per version number, each version labelled on the x axis."""
    numbers = sorted({number for number, _ in points})
    return line_chart(points, title=f"{key} by version", x_label="version",
                      x_ticks=numbers if len(numbers) <= MAX_VERSION_TICKS else None)
