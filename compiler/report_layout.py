"""A layered layout of a directed acyclic graph, for the graph pane of ``gradc report``.

Items are placed in rows by topological depth, so a training step reads top to bottom:
forward pass, loss, backward pass.  Each item first takes the row after its deepest
input (longest path), then sinks as far as its users allow, so a backward node that
reads only a parameter (the transpose of a weight) sits just above the node that uses
it rather than at the top; sources (inputs, parameters) sit just above their first
user, and the optimizer's update (fed by every gradient) takes a row of its own at the
bottom.  Within a row, items are ordered by a few sweeps of the barycenter heuristic
(each item moves toward the mean position of its neighbours in the row before, then
after), ties kept in topological order.  Every step is a loop over a list: no
recursion, and a graph of 10,000 items lays out in well under a second.

Graphviz ``dot`` draws nicer graphs, but the page must be the same bytes on every
machine, with or without Graphviz, so the layout is this one.

>>> rows = layout(["a", "b", "c"], {"a": [], "b": ["a"], "c": ["a", "b"]}, sources={"a"})
>>> [(k, rows[k].row) for k in "abc"]
[('a', 0), ('b', 1), ('c', 2)]
"""
from dataclasses import dataclass

SWEEPS = 4


@dataclass
class Place:
    """Where an item goes: its ``row`` and its ``slot`` (centred: the middle of a row is 0,
    neighbours are 2 apart, so every slot is an integer)."""

    row: int
    slot: int


def _rows(order, preds, users, sources, sinks):
    row = {}
    for k in order:
        if k not in sources and k not in sinks:
            row[k] = 1 + max((row[p] for p in preds[k] if p not in sources), default=0)
    for k in reversed(order):  # sink toward the users; they are placed already
        near = [row[u] for u in users[k] if u not in sinks]
        if k not in sources and k not in sinks and near:
            row[k] = min(near) - 1
    last = max(row.values(), default=0)
    for k in order:
        if k in sources:
            row[k] = min((row[u] if u not in sinks else last + 1 for u in users[k]), default=1) - 1
        elif k in sinks:
            row[k] = last + 1
    return row


def _slots(members):
    n = len(members)
    return {k: 2 * i - (n - 1) for i, k in enumerate(members)}


def layout(order, preds, sources=(), sinks=()):
    """``{item: Place}`` for ``order`` (items in topological order); ``preds[item]`` lists
    the items it reads; ``sources`` are items placed just above their first user, ``sinks``
    items placed in one row below all others (their inputs do not sink toward them)."""
    sources, sinks = set(sources), set(sinks)
    users = {k: [] for k in order}
    for k in order:
        for p in preds[k]:
            users[p].append(k)
    row = _rows(order, preds, users, sources, sinks)
    members = [[] for _ in range(max(row.values(), default=-1) + 1)]
    for k in order:
        members[row[k]].append(k)
    slot = {}
    for m in members:
        slot.update(_slots(m))
    rank = {k: i for i, k in enumerate(order)}
    for sweep in range(SWEEPS):
        down = sweep % 2 == 0
        neighbours = preds if down else users
        for m in (members if down else members[::-1]):
            def key(k, neighbours=neighbours):
                near = [slot[n] for n in neighbours[k]]
                return (sum(near) / len(near) if near else slot[k], rank[k])
            m.sort(key=key)
            slot.update(_slots(m))
    return {k: Place(row[k], slot[k]) for k in order}


def width(places):
    """The widest row's number of items."""
    counts = {}
    for p in places.values():
        counts[p.row] = counts.get(p.row, 0) + 1
    return max(counts.values(), default=0)
