"""Charts as inline SVG, so a report is one self-contained file with nothing to fetch."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

__all__ = ["Bar", "Line", "bar_chart", "line_chart"]

_FONT = 'font-family="system-ui, sans-serif"'


@dataclass(frozen=True, slots=True, kw_only=True)
class Bar:
    """One row of a horizontal stacked bar chart."""

    label: str
    values: tuple[float, ...]
    """One value per series, stacked left to right."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Line:
    """One series of a line chart."""

    label: str
    color: str
    points: tuple[tuple[float, float], ...]
    dashed: bool = False


def _text(
    x: float, y: float, text: str, *, size: int = 11, anchor: str = "start", **attrs: str
) -> str:
    extra = "".join(f' {key.replace("_", "-")}="{escape(value)}"' for key, value in attrs.items())
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" {_FONT}'
        f"{extra}>{escape(text)}</text>"
    )


def bar_chart(
    bars: Sequence[Bar],
    series: Sequence[tuple[str, str]],
    *,
    title: str,
    width: int = 640,
    row_height: int = 22,
    label_width: int = 170,
    fmt: Callable[[float], str] = lambda v: f"{v:g}",
) -> str:
    """Horizontal stacked bars, one row per `Bar`; `series` gives each stack's name and color."""
    legend_height = 22
    top = 28 + legend_height
    height = top + row_height * max(len(bars), 1) + 10
    largest = max((sum(bar.values) for bar in bars), default=0.0) or 1.0
    plot = width - label_width - 60
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}"'
        f' height="{height}" role="img" aria-label="{escape(title)}">',
        _text(0, 16, title, size=14, font_weight="600"),
    ]
    x = 0.0
    for name, color in series:
        parts.append(f'<rect x="{x:.1f}" y="30" width="10" height="10" fill="{color}"/>')
        parts.append(_text(x + 14, 39, name))
        x += 24 + 7 * len(name)
    for index, bar in enumerate(bars):
        y = top + index * row_height
        parts.append(_text(label_width - 6, y + row_height * 0.65, bar.label, anchor="end"))
        offset = float(label_width)
        for value, (name, color) in zip(bar.values, series, strict=True):
            length = plot * value / largest
            if length > 0:
                parts.append(
                    f'<rect x="{offset:.1f}" y="{y + 3:.1f}" width="{length:.1f}"'
                    f' height="{row_height - 6}" fill="{color}">'
                    f"<title>{escape(bar.label)}: {escape(name)} {escape(fmt(value))}</title>"
                    "</rect>"
                )
            offset += length
        parts.append(_text(offset + 4, y + row_height * 0.65, fmt(sum(bar.values))))
    parts.append("</svg>")
    return "".join(parts)


def line_chart(
    lines: Sequence[Line],
    *,
    title: str,
    x_label: str,
    y_label: str,
    width: int = 640,
    height: int = 280,
    y_fmt: Callable[[float], str] = lambda v: f"{v:g}",
) -> str:
    """Lines over a shared x axis, with a legend and four y grid lines."""
    left, right, top, bottom = 70, 16, 48, 40
    xs = [x for line in lines for x, _ in line.points] or [0.0, 1.0]
    ys = [y for line in lines for _, y in line.points] or [0.0, 1.0]
    x_min, x_max = min(xs), max(xs)
    y_max = max(max(ys), 0.0) or 1.0
    span_x = (x_max - x_min) or 1.0
    plot_w, plot_h = width - left - right, height - top - bottom

    def px(x: float) -> float:
        return left + plot_w * (x - x_min) / span_x

    def py(y: float) -> float:
        return top + plot_h * (1 - y / y_max)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}"'
        f' height="{height}" role="img" aria-label="{escape(title)}">',
        _text(0, 16, title, size=14, font_weight="600"),
    ]
    for step in range(5):
        value = y_max * step / 4
        y = py(value)
        parts.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="#ddd"/>'
        )
        parts.append(_text(left - 6, y + 4, y_fmt(value), size=10, anchor="end"))
    parts.append(
        f'<line x1="{left}" y1="{top + plot_h}" x2="{width - right}" y2="{top + plot_h}"'
        ' stroke="#888"/>'
    )
    parts.append(_text(left, height - 8, f"{x_min:g}", size=10))
    parts.append(_text(width - right, height - 8, f"{x_max:g}", size=10, anchor="end"))
    parts.append(_text(left + plot_w / 2, height - 8, x_label, size=11, anchor="middle"))
    parts.append(
        _text(
            14,
            top + plot_h / 2,
            y_label,
            size=11,
            anchor="middle",
            transform=f"rotate(-90 14 {top + plot_h / 2:.1f})",
        )
    )
    legend_x = float(left)
    for line in lines:
        dash = ' stroke-dasharray="6 4"' if line.dashed else ""
        parts.append(
            f'<line x1="{legend_x:.1f}" y1="34" x2="{legend_x + 18:.1f}" y2="34"'
            f' stroke="{line.color}" stroke-width="3"{dash}/>'
        )
        parts.append(_text(legend_x + 22, 38, line.label))
        legend_x += 40 + 7 * len(line.label)
        path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in line.points)
        parts.append(
            f'<polyline points="{path}" fill="none" stroke="{line.color}" stroke-width="2.5"'
            f"{dash}><title>{escape(line.label)}</title></polyline>"
        )
    parts.append("</svg>")
    return "".join(parts)
