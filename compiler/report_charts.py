"""Charts of ``gradc report`` as plain data for the page's SVG: the five flop counts as
bars on a logarithmic axis, and loss and metric curves.

Coordinates are rounded to 0.1 px and labels printed with fixed formats, so the same
numbers always give the same bytes.

>>> ticks(0.5, 300.0, logarithmic=True)
[0.1, 1.0, 10.0, 100.0, 1000.0]
"""
import math
from dataclasses import dataclass, field

W, H = 640, 260
LEFT, RIGHT, TOP, BOTTOM = 64, 150, 14, 36
BAR_LABELS = 120  # room for the row names left of the bars
MAX_POINTS = 1500  # a longer curve is drawn as the means of consecutive groups


@dataclass
class Chart:
    """An SVG chart: ``lines`` (each ``label``, ``cls``, ``points`` text), ``bars`` (``y``,
    ``width``, ``label``, ``value``), ``xticks`` and ``yticks`` (``pos``, ``label``), axis
    titles and a ``note``."""

    width: int = W
    height: int = H
    x0: int = LEFT
    x1: int = W - RIGHT
    y0: int = TOP
    y1: int = H - BOTTOM
    lines: list = field(default_factory=list)
    bars: list = field(default_factory=list)
    xticks: list = field(default_factory=list)
    yticks: list = field(default_factory=list)
    xlabel: str = ""
    ylabel: str = ""
    note: str = ""


def _num(v):
    return f"{v:.1f}".rstrip("0").rstrip(".")


def _label(v):
    return f"{v:g}" if abs(v) < 1e5 else f"{v:.0e}".replace("e+0", "e").replace("e+", "e")


def ticks(lo, hi, logarithmic=False):
    """Tick values covering ``[lo, hi]``: powers of ten, or about five round steps."""
    if logarithmic:
        first, last = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
        return [10.0 ** e for e in range(first, max(last, first + 1) + 1)]
    if hi <= lo:
        hi = lo + 1.0
    step = 10 ** math.floor(math.log10((hi - lo) / 4))
    for m in (1, 2, 5, 10):
        if (hi - lo) / (m * step) <= 5:
            step *= m
            break
    start = math.floor(lo / step) * step
    return [round(start + i * step, 12) for i in range(int(math.ceil((hi - start) / step)) + 1)]


class _Axis:
    """Data value -> pixel along one axis (linear or logarithmic)."""

    def __init__(self, lo, hi, p0, p1, logarithmic):
        self.logarithmic = logarithmic
        f = math.log10 if logarithmic else float
        self.lo, self.hi, self.p0, self.p1, self.f = f(lo), f(hi), p0, p1, f

    def __call__(self, v):
        span = (self.hi - self.lo) or 1.0
        return self.p0 + (self.f(v) - self.lo) / span * (self.p1 - self.p0)


def bar_chart(rows, xlabel):
    """Horizontal bars on a logarithmic axis; ``rows`` are ``(label, value)``, values > 0."""
    height = TOP + BOTTOM + 30 * len(rows)
    values = [v for _, v in rows]
    tv = ticks(min(values), max(values), logarithmic=True)
    x0, x1 = BAR_LABELS, W - 110
    x = _Axis(tv[0], tv[-1], x0, x1, True)
    chart = Chart(height=height, x0=x0, x1=x1, y1=height - BOTTOM, xlabel=xlabel, xticks=[
        {"pos": _num(x(t)), "label": _label(t)} for t in tv])
    for i, (label, value) in enumerate(rows):
        chart.bars.append({"y": _num(TOP + 30 * i + 4), "x": _num(x(tv[0])),
                           "width": _num(x(value) - x(tv[0])), "label": label,
                           "value": f"{value:,}", "end": _num(x(value) + 6)})
    return chart


def _thin(values):
    """At most ``MAX_POINTS`` (position, value) pairs: means of consecutive groups."""
    n = len(values)
    group = max(1, math.ceil(n / MAX_POINTS))
    out = []
    for start in range(0, n, group):
        part = values[start:start + group]
        out.append((start + (len(part) + 1) / 2, sum(part) / len(part)))
    return out, group


def line_chart(series, xlabel, ylabel, logarithmic=None, xmax=None, focus=None):
    """Curves over ``x = 1, 2, ...``: ``series`` holds ``(label, cls, values, scale)``, each
    value at ``x = (i + 1) * scale``.  Logarithmic when every value is above 0 (unless
    ``logarithmic`` says).  ``focus`` (values) sets the range on a logarithmic axis, from a
    quarter of its least to three times its largest, as ``gradc train --plot`` does: noisy
    minibatch losses outside it are drawn at its edge."""
    finite = [v for _, _, vs, _ in series for v in vs if math.isfinite(v)]
    if not finite:
        return None
    if logarithmic is None:
        logarithmic = min(finite) > 0
    lo, hi = min(finite), max(finite)
    kept = [v for v in focus or () if math.isfinite(v)]
    if logarithmic and kept:
        lo, hi = min(kept) / 4, max(kept) * 3
    yv = ticks(lo, hi, logarithmic)
    if not logarithmic:
        yv = [t for t in yv if t >= lo - (yv[1] - yv[0])]
    xmax = xmax or max(len(vs) * scale for _, _, vs, scale in series)
    x = _Axis(0, max(xmax, 1), LEFT, W - RIGHT, False)
    y = _Axis(yv[0], yv[-1], H - BOTTOM, TOP, logarithmic)
    chart = Chart(xlabel=xlabel, ylabel=ylabel,
                  yticks=[{"pos": _num(y(t)), "label": _label(t)} for t in yv],
                  xticks=[{"pos": _num(x(t)), "label": _label(t)}
                          for t in ticks(0, max(xmax, 1)) if t <= max(xmax, 1)])
    notes = []
    for label, cls, values, scale in series:
        points, group = _thin(values)
        text = " ".join(f"{_num(x(i * scale))},{_num(y(min(max(v, yv[0]), yv[-1])))}"
                        for i, v in points if math.isfinite(v))
        chart.lines.append({"label": label, "cls": cls, "points": text})
        if group > 1:
            notes.append(f"{label}: means of {group} consecutive values")
        if logarithmic and kept and any(not yv[0] <= v <= yv[-1] for v in values):
            notes.append(f"{label}: values outside the axis drawn at its edge")
    chart.note = "; ".join(notes)
    return chart
