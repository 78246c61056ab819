"""Server-side SVG charts for the managers' dashboard: a line chart of weekly points, drawn from exact
values (Decimal or int) into coordinates with one decimal, with its axes, the lowest and highest value
on the value axis, each week's date below and each point's value above it. No script, no CDN.

    {% load charts %}{% line_chart points "credit_balances" "Credit balances" "money" %}

`fmt` is "money" (1,234.56), "percent" (a rate 0.0375 shown as 3.8%), "hours" (2.50 h) or "count".
A point whose value is None (nothing to measure that week) is left out of the line; the line is
broken there."""

from decimal import Decimal

from django import template
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

register = template.Library()

WIDTH, HEIGHT = 400, 190
LEFT, RIGHT, TOP, BOTTOM = 64, 30, 22, 34  # the plot's margins


def show(value, fmt: str) -> str:
    """A value for display: money 1,234.56, a rate as 87.0%, hours as 2.50 h, a count as 1,234."""
    if value is None:
        return "—"
    value = Decimal(value)
    if fmt == "money":
        return f"{value:,.2f}"
    if fmt == "percent":
        return f"{value * 100:,.1f}%"
    if fmt == "hours":
        return f"{value:,.2f} h"
    return f"{value:,.0f}"


def _coordinate(value: Decimal) -> str:
    return f"{value.quantize(Decimal('0.1'))}"


def scale(values: list, lowest: Decimal | None = None) -> tuple[Decimal, Decimal]:
    """The value axis's (bottom, top): from 0 (or below, for negatives) to the highest value; a flat
    line of zeros gets an axis of 0..1."""
    known = [Decimal(v) for v in values if v is not None]
    bottom = min([Decimal(0), *known]) if lowest is None else lowest
    top = max([bottom, *known])
    if top == bottom:
        top = bottom + 1
    return bottom, top


def chart_svg(points: list[dict], key: str, title: str, fmt: str = "count", date_key: str = "week_end") -> str:
    values = [p[key] for p in points]
    bottom, top = scale(values)
    plot_w, plot_h = Decimal(WIDTH - LEFT - RIGHT), Decimal(HEIGHT - TOP - BOTTOM)
    n = len(points)
    step = plot_w / (n - 1) if n > 1 else Decimal(0)

    def x(i):
        return Decimal(LEFT) + step * i if n > 1 else Decimal(LEFT) + plot_w / 2

    def y(v):
        return Decimal(TOP) + plot_h - (Decimal(v) - bottom) / (top - bottom) * plot_h

    segments, current = [], []
    for i, v in enumerate(values):
        if v is None:
            if current:
                segments.append(current)
            current = []
        else:
            current.append(f"{_coordinate(x(i))},{_coordinate(y(v))}")
    if current:
        segments.append(current)
    x0, x1 = _coordinate(Decimal(LEFT)), _coordinate(Decimal(WIDTH - RIGHT))
    y_top, y_bottom = _coordinate(Decimal(TOP)), _coordinate(Decimal(TOP) + plot_h)
    axes = format_html(
        '<line class="axis" x1="{}" y1="{}" x2="{}" y2="{}"/><line class="axis" x1="{}" y1="{}" x2="{}" y2="{}"/>'
        '<line class="grid" x1="{}" y1="{}" x2="{}" y2="{}"/>'
        '<text class="tick" x="{}" y="{}" text-anchor="end">{}</text>'
        '<text class="tick" x="{}" y="{}" text-anchor="end">{}</text>',
        x0, y_top, x0, y_bottom, x0, y_bottom, x1, y_bottom, x0, y_top, x1, y_top,
        LEFT - 4, _coordinate(Decimal(TOP) + 4), show(top, fmt), LEFT - 4, y_bottom, show(bottom, fmt))
    lines = format_html_join("", '<polyline class="line" points="{}"/>', ((" ".join(s),) for s in segments))
    every = 1 if n <= 6 else 2  # every other week's date below the axis when there are many
    dates = format_html_join("", '<text class="tick" x="{}" y="{}" text-anchor="middle">{}</text>', (
        (_coordinate(x(i)), HEIGHT - BOTTOM + 14, f"{p[date_key]:%m/%d}")
        for i, p in enumerate(points) if (n - 1 - i) % every == 0))
    dots = format_html_join("", '<circle class="dot" cx="{}" cy="{}" r="3"><title>{}: {}</title></circle>', (
        (_coordinate(x(i)), _coordinate(y(v)), f"{points[i][date_key]:%m/%d/%Y}", show(v, fmt))
        for i, v in enumerate(values) if v is not None))
    dots += format_html_join("", '<text class="value" x="{}" y="{}" text-anchor="middle">{}</text>', (
        (_coordinate(x(i)), _coordinate(y(v) - 6), show(v, fmt))
        for i, v in enumerate(values) if v is not None and (n - 1 - i) % every == 0))
    return format_html(
        '<svg class="settle-chart" role="img" viewBox="0 0 {} {}" width="100%" preserveAspectRatio="xMidYMid meet"'
        ' aria-label="{}, weekly, {} to {}" data-series="{}"><title>{}</title>{}{}{}{}'
        '<text class="tick" x="{}" y="{}" text-anchor="middle">week ending</text></svg>',
        WIDTH, HEIGHT, title, f"{points[0][date_key]:%m/%d/%Y}" if points else "",
        f"{points[-1][date_key]:%m/%d/%Y}" if points else "", key, title, axes, lines, dots, dates,
        _coordinate(Decimal(LEFT) + plot_w / 2), HEIGHT - 4)


@register.simple_tag
def line_chart(points, key, title, fmt="count"):
    if not points:
        return mark_safe('<p class="settle-muted">No weeks to chart.</p>')
    return chart_svg(list(points), key, title, fmt)


@register.filter
def shown(value, fmt="count"):
    return show(value, fmt)
