"""Plots as inline SVG text: axes, step curves with bands, points with error bars, scatter
plots, heat maps and the lineage tree. Nothing is loaded from anywhere; every element that
stands for a design carries ``data-design`` so the page's script can select it."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

# viridis, in five stops: dark (low score) to yellow (high score)
_STOPS = ((68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37))
NO_SCORE = "#bbb"
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2")


def score_colour(value: float | None) -> str:
    """A colour for a score in [0, 1]; grey without a score."""
    if value is None or math.isnan(value):
        return NO_SCORE
    t = min(max(value, 0.0), 1.0) * (len(_STOPS) - 1)
    i = min(int(t), len(_STOPS) - 2)
    a, b, f = _STOPS[i], _STOPS[i + 1], t - i
    r, g, bl = (round(a[k] + (b[k] - a[k]) * f) for k in range(3))
    return f"#{r:02x}{g:02x}{bl:02x}"


def _n(value: float) -> str:
    """A coordinate, short."""
    return f"{value:.1f}".rstrip("0").rstrip(".")


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    if high <= low:
        return [low]
    raw = (high - low) / max(count, 1)
    step = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        if raw <= step * factor:
            step *= factor
            break
    start = math.ceil(low / step) * step
    ticks, value = [], start
    while value <= high + step * 1e-9:
        ticks.append(round(value, 10))
        value += step
    return ticks


def _label(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1e6:
        return f"{value / 1e6:g}M"
    if abs(value) >= 1e3:
        return f"{value / 1e3:g}k"
    if abs(value) < 0.01:
        return f"{value:.0e}"
    return f"{value:g}"


@dataclass
class Axes:
    """A plot area mapping data to pixels, collecting SVG elements."""

    x_range: tuple[float, float]
    y_range: tuple[float, float]
    width: int = 640
    height: int = 300
    x_label: str = ""
    y_label: str = ""
    left: int = 52
    right: int = 16
    top: int = 14
    bottom: int = 40
    parts: list[str] = field(default_factory=list)

    def x(self, value: float) -> float:
        low, high = self.x_range
        span = (high - low) or 1.0
        return self.left + (value - low) / span * (self.width - self.left - self.right)

    def y(self, value: float) -> float:
        low, high = self.y_range
        span = (high - low) or 1.0
        return (
            self.height
            - self.bottom
            - (value - low) / span * (self.height - self.top - self.bottom)
        )

    def frame(self, *, x_ticks: Sequence[float] | None = None) -> None:
        x0, x1 = self.left, self.width - self.right
        y0, y1 = self.top, self.height - self.bottom
        grid = []
        for tick in nice_ticks(*self.y_range):
            y = _n(self.y(tick))
            grid.append(f'<line class="grid" x1="{x0}" x2="{x1}" y1="{y}" y2="{y}"/>')
            grid.append(
                f'<text x="{x0 - 5}" y="{y}" text-anchor="end" dy="0.32em">{_label(tick)}</text>'
            )
        for tick in x_ticks if x_ticks is not None else nice_ticks(*self.x_range, count=8):
            x = _n(self.x(tick))
            grid.append(f'<line class="tick" x1="{x}" x2="{x}" y1="{y1}" y2="{y1 + 4}"/>')
            grid.append(f'<text x="{x}" y="{y1 + 16}" text-anchor="middle">{_label(tick)}</text>')
        grid.append(f'<rect class="frame" x="{x0}" y="{y0}" width="{x1 - x0}" height="{y1 - y0}"/>')
        grid.append(
            f'<text x="{(x0 + x1) / 2:.0f}" y="{self.height - 4}" text-anchor="middle">'
            f"{escape(self.x_label)}</text>"
        )
        grid.append(
            f'<text transform="translate(12 {(y0 + y1) / 2:.0f}) rotate(-90)" '
            f'text-anchor="middle">{escape(self.y_label)}</text>'
        )
        self.parts[:0] = grid

    def svg(self, title: str) -> str:
        return (
            f'<svg class="plot" viewBox="0 0 {self.width} {self.height}" width="{self.width}" '
            f'height="{self.height}" role="img" aria-label="{escape(title)}">'
            + "".join(self.parts)
            + "</svg>"
        )


@dataclass(frozen=True)
class Curve:
    """A step curve with a band (``low``/``high`` per point) and a name for the legend."""

    name: str
    points: Sequence[tuple[float, float, float, float]]  # x, y, low, high
    colour: str = PALETTE[0]
    designs: Sequence[str] = ()  # the design behind each point, to select it


def step_chart(
    curves: Sequence[Curve],
    *,
    title: str,
    x_label: str,
    y_label: str,
    dots: Sequence[tuple[float, float, str, str]] = (),  # x, y, design id, tooltip
    level: float | None = None,
    level_name: str = "",
) -> str:
    """Curves that hold their value until the next point (best so far), with their bands."""
    xs = [p[0] for c in curves for p in c.points] + [d[0] for d in dots] or [0.0]
    ys = [v for c in curves for p in c.points for v in p[1:]] + [d[1] for d in dots]
    ax = Axes(
        (min(xs), max(max(xs), min(xs) + 1)), _unit_range(ys), x_label=x_label, y_label=y_label
    )
    for x, y, design, tip in dots:
        ax.parts.append(
            f'<circle class="dot" data-design="{escape(design)}" cx="{_n(ax.x(x))}" '
            f'cy="{_n(ax.y(y))}" r="3"><title>{escape(tip)}</title></circle>'
        )
    for curve in curves:
        pts = list(curve.points)
        if not pts:
            continue
        upper, lower, line = [], [], []
        for i, (x, y, low, high) in enumerate(pts):
            nxt = pts[i + 1][0] if i + 1 < len(pts) else x
            for xx in (x, nxt) if nxt != x else (x,):
                upper.append(f"{_n(ax.x(xx))},{_n(ax.y(high))}")
                lower.append(f"{_n(ax.x(xx))},{_n(ax.y(low))}")
                line.append(f"{_n(ax.x(xx))},{_n(ax.y(y))}")
        band = " ".join(upper + lower[::-1])
        ax.parts.append(
            f'<polygon class="band" points="{band}" fill="{curve.colour}"/>'
            f'<polyline class="curve" points="{" ".join(line)}" stroke="{curve.colour}">'
            f"<title>{escape(curve.name)}</title></polyline>"
        )
        for i, (x, y, low, high) in enumerate(pts):
            design = curve.designs[i] if i < len(curve.designs) else ""
            tip = f"{curve.name}: {y:.3f} [{low:.3f}, {high:.3f}] at {x:g}"
            ax.parts.append(
                f'<circle class="mark" data-design="{escape(design)}" cx="{_n(ax.x(x))}" '
                f'cy="{_n(ax.y(y))}" r="3.5" fill="{curve.colour}"><title>{escape(tip)}</title>'
                "</circle>"
            )
    if level is not None:
        at = _n(ax.y(level))
        ax.parts.append(
            f'<line class="level" x1="{ax.left}" x2="{ax.width - ax.right}" y1="{at}" y2="{at}">'
            f"<title>{escape(level_name)}: {level:.3f}</title></line>"
        )
    ax.frame(x_ticks=[t for t in nice_ticks(*ax.x_range, count=8) if t == int(t)])  # iterations
    legend = [(c.name, c.colour) for c in curves]
    if level is not None:
        legend.append((level_name, "#888"))
    return ax.svg(title) + _legend(legend)


def error_bars(
    points: Sequence[tuple[float, float, float, float, str, str, str]],
    *,
    title: str,
    x_label: str,
    y_label: str,
    legend: Sequence[tuple[str, str]] = (),
) -> str:
    """Points with vertical intervals: x, y, low, high, colour, design id, tooltip."""
    xs = [p[0] for p in points] or [0.0]
    ys = [v for p in points for v in p[1:4]]
    ax = Axes((min(xs) - 0.5, max(xs) + 0.5), _unit_range(ys), x_label=x_label, y_label=y_label)
    for x, y, low, high, colour, design, tip in points:
        cx = _n(ax.x(x))
        ax.parts.append(
            f'<g class="pt" data-design="{escape(design)}"><title>{escape(tip)}</title>'
            f'<line x1="{cx}" x2="{cx}" y1="{_n(ax.y(low))}" y2="{_n(ax.y(high))}" '
            f'stroke="{colour}"/><circle cx="{cx}" cy="{_n(ax.y(y))}" r="3" fill="{colour}"/></g>'
        )
    ax.frame()
    return ax.svg(title) + _legend(legend)


def scatter(
    points: Sequence[tuple[float, float, str, str, str]],
    *,
    front: Sequence[int] = (),
    title: str,
    x_label: str,
    y_label: str,
) -> str:
    """Points (x, y, colour, design id, tooltip) and a line through the ``front`` points."""
    xs = [p[0] for p in points] or [0.0]
    ys = [p[1] for p in points]
    low, high = min(xs), max(xs)
    pad = (high - low) * 0.06 or max(abs(high) * 0.1, 1.0)
    ax = Axes((max(0.0, low - pad), high + pad), _unit_range(ys), x_label=x_label, y_label=y_label)
    if len(front) > 1:
        line = " ".join(f"{_n(ax.x(points[i][0]))},{_n(ax.y(points[i][1]))}" for i in front)
        ax.parts.append(f'<polyline class="front" points="{line}"/>')
    on_front = set(front)
    for i, (x, y, colour, design, tip) in enumerate(points):
        ring = ' class="on-front"' if i in on_front else ""
        ax.parts.append(
            f'<circle{ring} data-design="{escape(design)}" cx="{_n(ax.x(x))}" '
            f'cy="{_n(ax.y(y))}" r="4" fill="{colour}"><title>{escape(tip)}</title></circle>'
        )
    ax.frame()
    return ax.svg(title) + _legend([("Pareto front", "#d62728")] if front else [])


def heat_map(
    rows: Sequence[tuple[str, str]],  # design id, label
    columns: Sequence[str],
    values: Sequence[Sequence[float | None]],
    *,
    title: str,
) -> str:
    """Rows × columns of success rates in [0, 1]; a missing value is left blank."""
    cell, left, top = 14, 170, 90
    width = left + cell * max(len(columns), 1) + 10
    height = top + cell * max(len(rows), 1) + 10
    parts = []
    for j, column in enumerate(columns):
        x = left + j * cell + cell / 2
        parts.append(
            f'<text class="col" transform="translate({_n(x)} {top - 4}) rotate(-60)">'
            f"{escape(_short(column, 22))}<title>{escape(column)}</title></text>"
        )
    for i, (design, label) in enumerate(rows):
        y = top + i * cell
        parts.append(
            f'<g data-design="{escape(design)}"><text x="{left - 4}" y="{y + cell / 2:.0f}" '
            f'text-anchor="end" dy="0.32em">{escape(_short(label, 26))}</text>'
        )
        for j, value in enumerate(values[i]):
            if value is None:
                continue
            tip = f"{label} on {columns[j]}: {value:.2f}"
            parts.append(
                f'<rect x="{left + j * cell}" y="{y}" width="{cell - 1}" height="{cell - 1}" '
                f'fill="{score_colour(value)}"><title>{escape(tip)}</title></rect>'
            )
        parts.append("</g>")
    return (
        f'<svg class="heat" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" aria-label="{escape(title)}">' + "".join(parts) + "</svg>"
    )


@dataclass(frozen=True)
class TreeNode:
    id: str
    parent: str | None
    iteration: int
    label: str
    score: float | None
    tip: str
    best: bool = False
    failed: bool = False


def lineage_tree(nodes: Sequence[TreeNode], *, title: str) -> str:
    """Parent-to-child tree: one column per iteration, leaves on consecutive rows, a parent
    centred on its children; nodes coloured by score."""
    if not nodes:
        return '<p class="muted">No designs.</p>'
    known = {n.id for n in nodes}
    children: dict[str | None, list[TreeNode]] = {}
    for node in nodes:
        parent = node.parent if node.parent in known else None
        children.setdefault(parent, []).append(node)
    row_y: dict[str, float] = {}
    slot = 0
    # post-order walk without recursion (a lineage can be longer than Python's stack)
    stack: list[tuple[TreeNode, bool]] = [(n, False) for n in reversed(children.get(None, []))]
    while stack:
        node, expanded = stack.pop()
        kids = children.get(node.id, [])
        if not kids:
            row_y[node.id] = float(slot)
            slot += 1
        elif expanded:
            row_y[node.id] = (row_y[kids[0].id] + row_y[kids[-1].id]) / 2
        else:
            stack.append((node, True))
            stack.extend((kid, False) for kid in reversed(kids))
    last = max(n.iteration for n in nodes)
    labelled = len(nodes) <= 60
    column = 150 if labelled else max(24, min(90, 900 // (last + 1)))
    row, left, top = 18, 20, 24
    width = left + column * last + (170 if labelled else 30)
    height = top + row * max(slot, 1) + 10
    at: dict[str, tuple[float, float]] = {
        n.id: (left + n.iteration * column, top + row_y.get(n.id, 0.0) * row) for n in nodes
    }
    edges, marks = [], []
    for j in range(last + 1):
        marks.append(
            f'<text class="iter" x="{left + j * column}" y="12" text-anchor="middle">{j}</text>'
        )
    label_end = {n.id: 10 + 6.2 * len(_short(n.label, 22)) if labelled else 0.0 for n in nodes}
    for node in nodes:
        if node.parent in at:
            (x0, y0), (x1, y1) = at[node.parent], at[node.id]
            x0 += min(label_end[node.parent], (x1 - x0) * 0.8)  # leave the parent's label clear
            mid = (x0 + x1) / 2
            edges.append(
                f'<path d="M{_n(x0)} {_n(y0)}C{_n(mid)} {_n(y0)} {_n(mid)} {_n(y1)} '
                f'{_n(x1)} {_n(y1)}"/>'
            )
    for node in nodes:
        x, y = at[node.id]
        classes = "node" + (" best" if node.best else "") + (" failed" if node.failed else "")
        text = (
            f'<text x="{_n(x + 8)}" y="{_n(y)}" dy="0.32em">{escape(_short(node.label, 22))}</text>'
            if labelled
            else ""
        )
        marks.append(
            f'<g class="{classes}" data-design="{escape(node.id)}"><title>{escape(node.tip)}'
            f'</title><circle cx="{_n(x)}" cy="{_n(y)}" r="6" fill="{score_colour(node.score)}"/>'
            f"{text}</g>"
        )
    return (
        f'<svg class="tree" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" aria-label="{escape(title)}"><g class="edges">{"".join(edges)}</g>'
        + "".join(marks)
        + "</svg>"
    )


def colour_scale() -> str:
    """A small legend of the score colours."""
    stops = "".join(
        f'<rect x="{i * 12}" y="0" width="12" height="10" fill="{score_colour(i / 10)}"/>'
        for i in range(11)
    )
    return (
        '<span class="scale">score 0 <svg width="132" height="10" viewBox="0 0 132 10">'
        f'{stops}</svg> 1 · <svg width="10" height="10"><rect width="10" height="10" '
        f'fill="{NO_SCORE}"/></svg> no score</span>'
    )


def _legend(items: Sequence[tuple[str, str]]) -> str:
    if not items:
        return ""
    return (
        '<div class="legend">'
        + "".join(
            f'<span><i style="background:{colour}"></i>{escape(name)}</span>'
            for name, colour in items
        )
        + "</div>"
    )


def _unit_range(values: Sequence[float]) -> tuple[float, float]:
    """[0, 1] unless the values leave it (scores are success rates)."""
    finite = [v for v in values if not math.isnan(v)]
    low = min([0.0, *finite])
    high = max([1.0, *finite])
    return low, high


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
