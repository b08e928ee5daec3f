"""Bar charts as inline SVG, drawn on the server: no script, no library, readable in text.

Each chart has a title and a description for screen readers, and each bar a `<title>` with
its figure; the page shows the same figures in a table beside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from markupsafe import Markup

WIDTH, HEIGHT, PAD = 720, 180, 28


@dataclass(frozen=True)
class Series:
    """One kind of figure over the same slots, drawn in its own CSS class."""

    name: str
    css_class: str
    values: Sequence[int]


def bars(title: str, labels: Sequence[str], series: Sequence[Series]) -> Markup:
    """Grouped bars, one group per label, one bar per series; a legend below."""
    top = max((v for s in series for v in s.values), default=0) or 1
    slots = max(len(labels), 1)
    slot = (WIDTH - 2 * PAD) / slots
    bar = max(slot / (len(series) + 1), 1.0)
    plot = HEIGHT - 2 * PAD
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT + 24}" role="img" '
        f'aria-labelledby="chart-title chart-desc">',
        f'<title id="chart-title">{escape(title)}</title>',
        f'<desc id="chart-desc">{escape(_describe(labels, series))}</desc>',
        f'<line class="axis" x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - PAD}" '
        f'y2="{HEIGHT - PAD}"/>',
        f'<text class="tick" x="{PAD - 4}" y="{PAD + 4}" text-anchor="end">{top}</text>',
        f'<text class="tick" x="{PAD - 4}" y="{HEIGHT - PAD}" text-anchor="end">0</text>',
    ]
    for i, label in enumerate(labels):
        x0 = PAD + i * slot
        for j, s in enumerate(series):
            value = s.values[i] if i < len(s.values) else 0
            height = plot * value / top
            x, y = x0 + (j + 0.5) * bar, HEIGHT - PAD - height
            parts.append(
                f'<rect class="{s.css_class}" x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" '
                f'height="{height:.1f}"><title>{escape(label)}: {value} {escape(s.name)}</title>'
                "</rect>"
            )
    step = max(1, slots // 6)
    for i in range(0, len(labels), step):
        x = PAD + (i + 0.5) * slot
        parts.append(
            f'<text class="tick" x="{x:.1f}" y="{HEIGHT - PAD + 14}" text-anchor="middle">'
            f"{escape(labels[i])}</text>"
        )
    x = PAD
    for s in series:
        parts.append(
            f'<rect class="{s.css_class}" x="{x}" y="{HEIGHT + 8}" width="10" height="10"/>'
        )
        parts.append(f'<text class="legend" x="{x + 14}" y="{HEIGHT + 17}">{escape(s.name)}</text>')
        x += 30 + round(6.5 * len(s.name))
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 (every text in it is escaped above)


def _describe(labels: Sequence[str], series: Sequence[Series]) -> str:
    totals = ", ".join(f"{sum(s.values)} {s.name}" for s in series)
    span = f"from {labels[0]} to {labels[-1]}" if labels else "no data"
    return f"{span}: {totals} in all"
