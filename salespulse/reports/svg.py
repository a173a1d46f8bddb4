"""Small inline SVG bar charts, drawn in Python: a report must open anywhere, offline.

Every text that reaches the markup is escaped here; callers pass plain strings.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import NamedTuple

_BAR = "#3b6ea5"
_LOW = "#c0504d"
_NORM = "#222"


class Bar(NamedTuple):
    label: str  # shown next to the bar
    value: float
    text: str  # the value as a reader reads it
    norm: float | None = None  # drawn as a mark; a bar below it is drawn in red


def bar_chart(title: str, bars: Sequence[Bar], scale: Sequence[float] | None = None) -> str:
    """Horizontal bars, one per item. ``scale``: the full length of each bar (default: the
    largest value or norm of the chart), so bars of different metrics can share a meaning."""
    label_width, bar_width, row, top = 150, 220, 20, 22
    height = top + row * len(bars) + 6
    width = label_width + bar_width + 110
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">',
        f'<text x="0" y="14" font-weight="bold">{escape(title)}</text>',
    ]
    common = max((max(b.value, b.norm or 0) for b in bars), default=0.0) or 1.0
    for n, bar in enumerate(bars):
        full = (scale[n] if scale is not None else common) or 1.0
        y = top + n * row
        length = bar_width * min(bar.value / full, 1.0)
        colour = _LOW if bar.norm is not None and bar.value < bar.norm else _BAR
        parts.append(
            f'<text x="{label_width - 6}" y="{y + 13}" text-anchor="end">'
            f"{escape(_clip(bar.label, 24))}</text>"
        )
        parts.append(
            f'<rect x="{label_width}" y="{y + 3}" width="{length:.1f}" height="{row - 6}" '
            f'fill="{colour}"><title>{escape(bar.label)}: {escape(bar.text)}</title></rect>'
        )
        if bar.norm is not None:
            x = label_width + bar_width * min(bar.norm / full, 1.0)
            parts.append(
                f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{y + 1}" y2="{y + row - 1}" '
                f'stroke="{_NORM}" stroke-width="2"/>'
            )
        parts.append(
            f'<text x="{label_width + bar_width + 6}" y="{y + 13}">{escape(bar.text)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def column_chart(title: str, columns: Sequence[Bar], top_text: str) -> str:
    """Vertical columns (over days, say); ``top_text`` names the largest value, the scale's
    top. A column's ``label`` (short: a day of the month) goes under it, its ``text`` into its
    tooltip."""
    left, column, plot, bottom = 76, 20, 90, 18
    width = left + column * len(columns) + 10
    height = 20 + plot + bottom
    peak = max((c.value for c in columns), default=0.0) or 1.0
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">',
        f'<text x="0" y="14" font-weight="bold">{escape(title)}</text>',
        f'<text x="{left - 4}" y="32" text-anchor="end" font-size="10">{escape(top_text)}</text>',
        f'<line x1="{left}" x2="{width - 6}" y1="{20 + plot}" y2="{20 + plot}" stroke="#999"/>',
    ]
    for n, item in enumerate(columns):
        h = plot * item.value / peak
        x = left + n * column
        parts.append(
            f'<rect x="{x + 2}" y="{20 + plot - h:.1f}" width="{column - 4}" height="{h:.1f}" '
            f'fill="{_BAR}"><title>{escape(item.text)}</title></rect>'
        )
        parts.append(
            f'<text x="{x + column / 2:.1f}" y="{20 + plot + 12}" text-anchor="middle" '
            f'font-size="9">{escape(item.label)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _clip(text: str, length: int) -> str:
    return text if len(text) <= length else text[: length - 1] + "…"
