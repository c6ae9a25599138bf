"""Static HTML pieces: a self-contained page (no CDN, no script) and a horizontal SVG bar chart."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#222}
table{border-collapse:collapse;margin:1rem 0}
th,td{border:1px solid #ccc;padding:.3rem .6rem;text-align:right}
th:first-child,td:first-child,th:nth-child(2),td:nth-child(2){text-align:left}
.ok{color:#1b7f3b}.bad{color:#b3261e}.muted{color:#777}
"""


@dataclass(frozen=True)
class Bar:
    label: str
    value: float  # 0..max
    colour: str = "#3b6fb6"
    text: str = ""


def page(title: str, body: str) -> str:
    return (
        '<!doctype html>\n<html lang="ru"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head>"
        f"<body><h1>{escape(title)}</h1>\n{body}\n</body></html>\n"
    )


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], classes: Sequence[str] | None = None) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    lines = []
    for index, row in enumerate(rows):
        css = f' class="{classes[index]}"' if classes and classes[index] else ""
        lines.append(f"<tr{css}>" + "".join(f"<td>{escape(cell)}</td>" for cell in row) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(lines)}</tbody></table>"


def bar_chart(bars: Sequence[Bar], maximum: float, markers: Sequence[tuple[int, float]] = ()) -> str:
    """Horizontal bars; `markers` draws a norm line (bar index, value) across a bar."""
    label_w, bar_w, row_h = 220, 420, 24
    height = row_h * len(bars) + 10
    width_all = label_w + bar_w + 80
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width_all}" height="{height}" role="img">']
    scale = bar_w / maximum if maximum > 0 else 0
    for index, bar in enumerate(bars):
        y = 5 + index * row_h
        width = max(bar.value * scale, 0)
        parts.append(f'<text x="0" y="{y + 15}" font-size="12">{escape(bar.label)}</text>')
        parts.append(
            f'<rect x="{label_w}" y="{y + 3}" width="{width:.1f}" height="{row_h - 8}" fill="{bar.colour}"/>'
        )
        parts.append(
            f'<text x="{label_w + width + 4:.1f}" y="{y + 15}" font-size="11">{escape(bar.text)}</text>'
        )
    for index, value in markers:
        x = label_w + value * scale
        y = 5 + index * row_h
        parts.append(
            f'<line x1="{x:.1f}" y1="{y}" x2="{x:.1f}" y2="{y + row_h - 2}" stroke="#222" '
            'stroke-width="2" stroke-dasharray="3,2"/>'
        )
    parts.append("</svg>")
    return "".join(parts)
