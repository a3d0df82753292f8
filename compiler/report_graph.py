"""The graph pane of ``gradc report``: the training step's graph as boxes and edges.

Each node is a box labelled with its index, op and shape, filled with the colour of
the kernel it fuses into and outlined by its phase (forward, loss, backward, metric);
inputs and parameters are white, constants (inlined into the code) are not drawn, and
one box at the bottom is the optimizer's update kernel, fed by every gradient.  A
graph of more than ``NODE_LIMIT`` nodes is collapsed to one box per kernel, so a
10,000-node step still draws as about 2,000 boxes.  Positions come from
``report_layout``.
"""
import os
from dataclasses import dataclass, field

from compiler.codegen.names import location
from compiler.ops.leaf import is_const, is_input, is_param
from compiler.report_layout import layout, width
from compiler.shapes import fmt

NODE_LIMIT = 1500
BOX_W, BOX_H, GAP_X, GAP_Y, MARGIN = 150, 36, 16, 46, 16
LABEL_CHARS = 21  # what fits in a box at the page's font size
LONG_ROWS = 8  # a longer edge is drawn faintly (hidden in a collapsed graph until selected)


@dataclass
class Box:
    """One drawn box: ``node`` (its index, "" for a kernel box), the ``kernel`` it belongs
    to (a kernel box: itself), the kernels that read it (``reads``, for an input or a
    parameter), its model-file ``line`` ("" when elsewhere), ``kind`` (node, data,
    parameter, kernel, update) and ``phase``."""

    x: int
    y: int
    label: str
    sub: str
    title: str
    kind: str
    phase: str
    fill: str
    node: str = ""
    kernel: str = ""
    reads: list = field(default_factory=list)
    line: str = ""
    tag: str = ""


@dataclass
class Pane:
    """The SVG's size, its boxes and edges, and whether it was collapsed."""

    width: int
    height: int
    boxes: list
    edges: list
    collapsed: bool
    box_w: int = BOX_W
    box_h: int = BOX_H


def colour(index):
    """Kernel ``index``'s fill: hues a golden angle apart, so neighbours differ."""
    return f"hsl({index * 137 % 360}, 62%, 82%)"


def _short(text):
    return text if len(text) <= LABEL_CHARS else text[:LABEL_CHARS - 1] + "\u2026"


def model_line(where, model_file):
    """The line number (text) of ``where`` (``path:line``) when it is in ``model_file``."""
    if not where:
        return ""
    path, _, line = where.rpartition(":")
    return line if path and os.path.abspath(path) == os.path.abspath(model_file) else ""


class _Update:
    """The update kernel's place in the layout (a key unlike any node)."""

    def __init__(self, name):
        self.name = name


@dataclass
class Edge:
    """One drawn edge: its SVG path, the nodes (indices, "" for a kernel box) and kernels
    at its two ends, and whether it spans more than ``LONG_ROWS`` rows."""

    d: str
    source: str
    target: str
    kernel_from: str
    kernel_to: str
    long: bool


def _xy(place, widest):
    return (MARGIN + (place.slot + widest - 1) * (BOX_W + GAP_X) // 2,
            MARGIN + place.row * (BOX_H + GAP_Y))


def _pane(order, preds, sources, make_box, collapsed):
    places = layout(order, preds, sources, sinks=order[-1:])
    widest = max(width(places), 1)
    boxes = {k: make_box(k, *_xy(places[k], widest)) for k in order}
    edges = []
    for k in order:
        b = boxes[k]
        x2 = b.x + BOX_W // 2
        for p in preds[k]:
            a = boxes[p]
            x1, y1 = a.x + BOX_W // 2, a.y + BOX_H
            bend = min(GAP_Y, (b.y - y1) // 2)
            edges.append(Edge(f"M{x1},{y1} C{x1},{y1 + bend} {x2},{b.y - bend} {x2},{b.y}",
                              a.node, b.node, a.kernel, b.kernel,
                              places[k].row - places[p].row > LONG_ROWS))
    rows = max((p.row for p in places.values()), default=0) + 1
    return Pane(widest * (BOX_W + GAP_X) - GAP_X + 2 * MARGIN,
                rows * (BOX_H + GAP_Y) - GAP_Y + 2 * MARGIN + 12, list(boxes.values()), edges,
                collapsed)


def graph_pane(graph, kernels, update, model_file):
    """The pane of ``graph`` partitioned into ``kernels`` (``update``: the name of the
    update kernel the gradients feed)."""
    nodes = [n for n in graph.nodes if not is_const(n)]
    if len(nodes) > NODE_LIMIT:
        return _kernel_pane(graph, kernels, update)
    index = {n: i for i, n in enumerate(graph.nodes)}
    computed_in = {}  # a node's kernels: more than one when it is recomputed (views, windows)
    for k in kernels:
        for m in k.members:
            computed_in.setdefault(m, []).append(k)
    owner = {m: ks[0] for m, ks in computed_in.items()}  # the box's colour: its first kernel
    readers = {}
    for k in kernels:
        for i in k.inputs:
            readers.setdefault(i, []).append(k.name)
    tags = {}
    for name, node in graph.outputs.items():
        tags.setdefault(node, []).append(name)
    grads = [n for name, n in graph.outputs.items() if name.startswith("grad:")]
    step = _Update(update)
    order = nodes + [step]
    preds = {n: [i for i in n.inputs if not is_const(i)] for n in nodes}
    preds[step] = [g for g in dict.fromkeys(grads) if not is_const(g)]
    sources = [n for n in nodes if n not in owner]

    def make_box(n, x, y):
        if n is step:
            return Box(x, y, update, "the optimizer step", f"{update}: one kernel over every "
                       "parameter", "update", "update", "#ffffff", kernel=update)
        tag = ", ".join(tags.get(n, []))
        line = model_line(n.source_line, model_file)
        where = location(n.source_line)
        if n in owner:
            k = owner[n]
            also = "".join(f", again in {c.name}" for c in computed_in[n][1:])
            title = f"%{index[n]} {n.op} {fmt(n.shape)} in {k.name} ({k.phase}){also}, {where}"
            return Box(x, y, _short(f"%{index[n]} {n.op}"), _short(fmt(n.shape)), title, "node",
                       k.phase, colour(k.index), str(index[n]), k.name, line=line, tag=_short(tag))
        kind = "data" if is_input(n) else "parameter" if is_param(n) else "leaf"
        title = f"{kind} {n.name} {fmt(n.shape)}, read by {', '.join(readers.get(n, [])) or 'none'}"
        return Box(x, y, _short(n.name or n.op), _short(fmt(n.shape)), title, kind, "leaf",
                   "#ffffff", str(index[n]), reads=readers.get(n, []), line=line, tag=_short(tag))

    return _pane(order, preds, sources, make_box, collapsed=False)


def _kernel_pane(graph, kernels, update):
    owner = {m: k for k in kernels for m in k.members}
    grads = [n for name, n in graph.outputs.items() if name.startswith("grad:")]
    step = _Update(update)
    order = list(kernels) + [step]
    preds = {k: list(dict.fromkeys(owner[i] for i in k.inputs if i in owner)) for k in kernels}
    preds[step] = list(dict.fromkeys(owner[g] for g in grads if g in owner))

    def make_box(k, x, y):
        if k is step:
            return Box(x, y, update, "the optimizer step", update, "update", "update", "#ffffff",
                       kernel=update)
        n = len(k.members)
        return Box(x, y, _short(k.name), f"{n} node{'s' if n != 1 else ''}",
                   f"{k.name} ({k.phase}): {n} nodes", "kernel", k.phase, colour(k.index),
                   kernel=k.name)

    return _pane(order, preds, (), make_box, collapsed=True)
