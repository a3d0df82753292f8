"""Partition a graph into kernels that both backends can emit.

A kernel is a tree of nodes computed together (a DAG, for row-wise ones), of one of five
shapes:

- elementwise: elementwise ops over the root's shape;
- matmul + epilogue: one matmul (its operands buffers, possibly transposed) and the
  elementwise ops that consume its result (bias, activation, ...);
- reduction: one reduction (sum, max, logsumexp) with its elementwise producers
  fused before it and elementwise consumers after it;
- loss: the row-wise softmax cross-entropy (or its gradient, or the accuracy), reading
  its logits and labels;
- row-wise: reductions over the last axes of one shape ``S`` (a layer norm's mean and
  variance, a softmax's max and sum) with the elementwise ops around them, each row held
  in registers: a DAG, not a tree, and it stores every member that something outside
  reads (``Kernel.stored``).

Then siblings that read the same buffer merge into one kernel with several results
(``merge_siblings``): the cross-entropy's gradient and the training accuracy join the
loss (the loss's forward and backward and the metric read the logits once), a bias
gradient, the column sums of the
matmul operand ``dz`` in ``dW = x.T @ dz``, joins that matmul (summed while the
matmul loads ``dz``), and column sums of one shape over the same leading axes that read
a common buffer are one kernel (a layer norm's weight and bias gradients,
``sum(g * xhat)`` and ``sum(g)``: ``column_key``).

A node with exactly one user joins that user's kernel when the kernel keeps one of
these shapes: at most one matmul or reduction per kernel; nothing is computed into a
matmul operand (a transpose of a buffer is only a change of strides); a reshape,
transpose or broadcast reads a buffer directly (it is index arithmetic), except that a
reshape may relabel a kernel's result; an op with Triton code of its own (one_hot,
dropout) stands alone.  Which op is which comes from its registry entry (``kind``,
``view``, ``triton``, ``result``), never from its name.  A node also
becomes a boundary, stored in a buffer, when it is a graph output, when several nodes
use it, or when its kernel has reached ``MAX_NODES``.  Leaves (inputs, parameters) are
buffers; constants are inlined.

A node that these rules stop joins a row-wise kernel instead (``_row_join``) when it and
the kernel are rows of one shape: every member's shape is ``S``, its rows ``L + (1,)*k`` or
``L`` (``S = L + R``, ``R`` the last ``k`` axes, of a known length from 2 to ``MAX_ROW``), and
every reduction reduces ``R`` of ``S``.  Such a node may also have users outside: the kernel
then stores it too.  Kernels run in an order where each runs after those it reads; should
stored members make two kernels read each other, those members lose their row join and
the partition is made again.

The fusion report (``report(kernels, index)``) says what went where and why each
boundary is there.
"""
import heapq

import sympy
from dataclasses import dataclass, field

from compiler.graph import contains, users_of
from compiler.ops.leaf import is_const
from compiler.ops.reduce import is_column_sum, leading_sum
from compiler.ops.registry import OPS
from compiler.shapes import fmt, numel
from compiler.view_index import operand_chain, operand_index, readable

MAX_NODES = 24
MAX_ROW = 4096  # the longest row a row-wise kernel holds in registers
MAX_ROW_NODES = 48


@dataclass(eq=False)
class Kernel:
    """One fused kernel.  ``groups`` are its trees (one, or more once siblings merged),
    each in topological order with its result last; ``members`` is all of them in order,
    ``root`` the first group's result, ``outputs`` every group's result, ``merged`` why
    the siblings joined, ``boundary`` the rule that ended the first group."""

    index: int
    members: list
    phase: str
    boundary: str
    inputs: list = field(default_factory=list)
    name: str = ""
    groups: list = field(default_factory=list)
    merged: str = ""
    rows: tuple = None    # a row-wise kernel: (S, k), rows of the last k axes of shape S
    stored: list = None   # a row-wise kernel: the root, then the members read outside

    def __post_init__(self):
        self.groups = self.groups or [list(self.members)]

    @property
    def root(self):
        """The main result: the last node of the first group."""
        return self.groups[0][-1]

    @property
    def outputs(self):
        """Every result the kernel stores: the root, then each merged sibling's (or, for a
        row-wise kernel, each member read outside it)."""
        return list(self.stored) if self.stored else [g[-1] for g in self.groups]


def _boundary_reason(node, users, outputs):
    if node in outputs:
        return "graph output"
    if len(users[node]) > 1:
        return f"used by {len(users[node])} nodes"
    if not users[node]:
        return "unused"
    return None


HEAVY = ("contraction", "reduce")


def _join_rule(n, user, user_is_root, heavy, members):
    """``None`` when ``n`` may join the kernel of ``user``, else the rule that forbids it."""
    nd, ud = OPS[n.op], OPS[user.op]
    nk, uk = nd.kind, ud.kind
    if nd.triton is not None or ud.triton is not None:
        return f"{n.op if nd.triton is not None else user.op} stands alone"
    if nk == "loss" or uk == "loss":
        return "a loss kernel reads and writes buffers"
    if nk in HEAVY and heavy is not None:
        return f"one {heavy.op} per kernel already"
    if nk in HEAVY and any(m.shape != n.shape for m in members
                           if not (OPS[m.op].view == "relabel" and m is members[0]
                                   and OPS[m.inputs[0].op].kind in HEAVY + ("elementwise",))):
        return f"the {n.op}'s consumers have a larger shape than its result"
    if uk == "shape":
        if ud.view == "relabel" and user_is_root and nk != "shape":
            return None  # relabelling the kernel's result costs nothing
        return f"{user.op} reads a buffer"
    if uk == "contraction":
        return None if nd.view == "permute" else "matmul operands are buffers"
    if uk == "reduce" and nk == "contraction":
        return "matmul result is reduced in its own kernel"
    return None


NAME_OPS = 5  # a group with more distinct ops is named by its first and last op


def _story(group):
    """A group's part of a kernel name: its ops in order, each once, views left out
    (they are strides): ``matmul_pow_sub_mul``.  A longer story keeps its first op, its
    matmul or reduction and its last op, with the number of ops: ``mul_to_sum_to_add_13ops``."""
    nodes = [m for m in group if not OPS[m.op].view] or group
    ops = list(dict.fromkeys(OPS[m.op].label or m.op for m in nodes))
    if len(ops) <= NAME_OPS:
        return "_".join(ops)
    heavy = next((OPS[m.op].label or m.op for m in nodes if OPS[m.op].kind in HEAVY), None)
    middle = [heavy] if heavy not in (None, ops[0], ops[-1]) else []
    return "_to_".join([ops[0], *middle, ops[-1]]) + f"_{len(nodes)}ops"


def kernel_name(index, groups):
    """``k<index>_<story>``, merged groups' stories joined by ``_and_``:
    ``k0_matmul_add_tanh``, ``k8_matmul_and_sum``, ``k2_cross_entropy_and_grad``."""
    return f"k{index}_" + "_and_".join(_story(g) for g in groups)


def partition(graph, forward_nodes, predict_nodes=(), loss_nodes=None, gpu=True):
    """The kernels of ``graph`` in execution order.

    ``forward_nodes`` marks the nodes of the forward pass (the rest are ``backward``);
    of those, the ones ``predict_nodes`` does not hold compute the ``loss``, or a
    ``metric`` when ``loss_nodes`` is given and does not hold them either.
    ``gpu``: the kernels run on a GPU (Triton), where a matmul computes a gathered operand
    as it loads it (``free_gathers``) and an elementwise value is recomputed by the kernels
    that read it (``free_recomputes``): arithmetic costs a GPU less than memory traffic.
    On numpy (``gpu=False``) every pass is paid for, so both are stored once: a reshape of
    a gather is a copy, made once.
    """
    predict_nodes = set(predict_nodes)
    nodes = [n for n in graph.nodes if OPS[n.op].kind != "leaf"]
    users = users_of(graph.nodes)
    outputs = set(graph.outputs.values())

    def phase(n):
        return ("backward" if n not in forward_nodes else
                "forward" if n in predict_nodes or not predict_nodes else
                "metric" if loss_nodes is not None and n not in loss_nodes else "loss")

    hints = _row_hints(nodes, users)
    kept_inside = set()  # nodes whose row join may not store them (it made a cycle)
    while True:
        owner, joined, reasons, rows = _assign(nodes, users, outputs, kept_inside, phase, hints)
        kernels, cyclic = _ordered(nodes, owner, joined, reasons, rows, users, outputs)
        if not cyclic:
            break
        kept_inside.update(cyclic)
    for i, k in enumerate(kernels):
        k.index, k.phase = i, phase(k.root)
    kernels = free_views(merge_siblings(kernels), outputs, gpu)
    if gpu:
        kernels = free_recomputes(free_gathers(kernels, outputs), outputs)
    for i, k in enumerate(kernels):
        k.index = i
        k.inputs = list(_kernel_reads(k))
        k.name = kernel_name(i, k.groups)
    return kernels


def _assign(nodes, users, outputs, kept_inside, phase, hints):
    """Each node's kernel (``owner``: node -> the kernel's root), each kernel's members
    (``joined``), why each kernel ended (``reasons``) and the row-wise kernels' ``(S, k)``.
    A row join stores a node only in a kernel of its own ``phase`` (``predict`` runs the
    forward kernels alone)."""
    owner, joined, reasons, heavy, rows = {}, {}, {}, {}, {}
    for n in reversed(nodes):
        reason = _boundary_reason(n, users, outputs)
        if reason is not None and _epilogue_dag(n, users, outputs, owner, rows):
            reason = None  # a matmul's result read by several ops of its one epilogue
        if reason is None:
            user = users[n][0]
            root = owner[user]
            reason = next((r for r in (_join_rule(n, u, u is root, heavy.get(root), joined[root])
                                       for u in users[n]) if r is not None), None)
            if reason is None and root in rows:
                reason = _row_misfit(n, joined[root], rows[root], users)
            limit = MAX_ROW_NODES if root in rows else MAX_NODES
            if reason is None and len(joined[root]) >= limit:
                reason = f"kernel reached {limit} nodes"
            if reason is None:
                owner[n] = root
                joined[root].append(n)
                if OPS[n.op].kind in HEAVY:
                    heavy[root] = n
                continue
        row = _row_join(n, users, outputs, owner, joined, rows, n in kept_inside, phase, hints)
        if row is not None:
            root, rows[root] = row
            owner[n] = root
            joined[root].append(n)
            if OPS[n.op].kind in HEAVY:
                heavy.setdefault(root, n)
            continue
        owner[n] = n
        joined[n] = [n]
        reasons[n] = reason
        if OPS[n.op].kind in HEAVY:
            heavy[n] = n
    return owner, joined, reasons, rows


def _epilogue_dag(n, users, outputs, owner, rows):
    """Whether matmul ``n``, read by several nodes, can still join their kernel: they are
    all in one kernel (not a row-wise one), so its epilogue reads the result twice from
    registers (the backward of ``x * Phi(x)``: ``g * Phi(x) + (g * x) * phi(x)``)."""
    if OPS[n.op].kind != "contraction" or n in outputs or len(users[n]) < 2:
        return False
    roots = {owner[u] for u in users[n]}
    return len(roots) == 1 and all(r not in rows for r in roots)


def _ordered(nodes, owner, joined, reasons, rows, users, outputs):
    """The kernels, each after the kernels it reads (by their roots' order where free),
    and the stored row members of kernels that read each other (empty when none do)."""
    members, position = {}, {}
    for i, n in enumerate(nodes):
        members.setdefault(owner[n], []).append(n)
        position[n] = i
    kernels = {}
    for root, group in members.items():
        k = Kernel(0, group, "", reasons[root])
        if root in rows:
            inside = set(group)
            k.rows = rows[root]
            k.stored = [root] + [m for m in group if m is not root and (
                m in outputs or any(u not in inside for u in users[m]))]
        kernels[root] = k
    needs = {root: {owner[i] for m in group for i in m.inputs
                    if i in owner and owner[i] is not root} for root, group in members.items()}
    waiting = {root: len(needs[root]) for root in members}
    readers = {}
    for root, needed in needs.items():
        for r in needed:
            readers.setdefault(r, []).append(root)
    ready = [(position[root], id(root), root) for root in members if not waiting[root]]
    heapq.heapify(ready)
    order = []
    while ready:
        _, _, root = heapq.heappop(ready)
        order.append(kernels[root])
        for r in readers.get(root, ()):
            waiting[r] -= 1
            if not waiting[r]:
                heapq.heappush(ready, (position[r], id(r), r))
    if len(order) == len(members):
        return order, set()
    left = {root for root in members if waiting[root]}

    def reaches(start, goal):
        seen, stack = {start}, [start]
        while stack:
            for r in readers.get(stack.pop(), ()):
                if r is goal:
                    return True
                if r in left and r not in seen:
                    seen.add(r)
                    stack.append(r)
        return False

    # the stored members that make a cycle: read by a kernel that (through others) K reads
    stored = {m for r in left if kernels[r].stored for m in kernels[r].stored[1:]
              if any(owner[u] in left and owner[u] is not r and reaches(owner[u], r)
                     for u in users[m])}
    if not stored:
        raise AssertionError("fusion: kernels that read each other, and no row join to undo")
    return order, stored


def row_signature(node):
    """``(S, k)`` when ``node`` is a reduction over the last ``k`` axes of its input of shape
    ``S`` whose rows have a known length from 2 to ``MAX_ROW``, else None."""
    if OPS[node.op].kind != "reduce":
        return None
    x, axes = node.inputs[0], tuple(node.attr("axes"))
    k = len(axes)
    if not k or axes != tuple(range(x.ndim - k, x.ndim)):
        return None
    length = numel(x.shape[x.ndim - k:])
    if not isinstance(length, int) or not 2 <= length <= MAX_ROW:
        return None
    return tuple(x.shape), k


def row_class(shape, rows):
    """``full`` for the shape ``S`` of ``rows = (S, k)``, ``row`` for ``L + (1,)*k`` and ``lead``
    for ``L`` (one value per row), ``flat`` for another shape of as many elements as ``S``
    (a reshape of the result, stored in the same order), else None."""
    S, k = rows
    lead = S[:len(S) - k]
    if tuple(shape) == S:
        return "full"
    if tuple(shape) == lead + (1,) * k:
        return "row"
    if tuple(shape) == lead:
        return "lead"
    return "flat" if sympy.sympify(numel(shape) - numel(S)) == 0 else None


# (class of a producer, class of its user) that a row-wise kernel computes in registers
ROW_EDGES = {
    "elementwise": {("full", "full"), ("row", "full"), ("row", "row"), ("lead", "lead")},
    "relabel": {("full", "full"), ("row", "row"), ("lead", "lead"), ("row", "lead"),
                ("lead", "row"), ("full", "flat")},
    "broadcast": {("full", "full"), ("row", "full"), ("row", "row")},
    "reduce": {("full", "row"), ("full", "lead")},
    "positional": {("full", "full")},
}


def _row_form(node):
    """How a row-wise kernel computes ``node`` (a key of ``ROW_EDGES``), or None."""
    op = OPS[node.op]
    if op.kind in ("elementwise", "reduce"):
        return op.kind
    if op.kind == "shape" and op.view in ("relabel", "broadcast"):
        return op.view
    return "positional" if op.positional else None


def _row_hints(nodes, users):
    """Each node that a row-wise kernel could hold -> the ``(S, k)`` of the first reduction
    (in graph order) it is connected to through such nodes: a node with no reduction in its
    kernel yet (a layer norm's last ops) joins the rows of the reductions before it."""
    hints = {}
    for r in nodes:
        sig = row_signature(r)
        if sig is None or r in hints:
            continue
        hints[r], stack = sig, [r]
        while stack:
            n = stack.pop()
            for m in list(n.inputs) + list(users[n]):
                if m not in hints and OPS[m.op].kind != "leaf" and _row_form(m) and \
                        row_class(m.shape, sig) not in (None, "flat"):
                    hints[m] = sig
                    stack.append(m)
    return hints


def _row_misfit(n, members, rows, users):
    """None when ``n`` can be computed in a row-wise kernel over ``rows`` holding
    ``members``, else why not."""
    form, cls = _row_form(n), row_class(n.shape, rows)
    if form is None:
        return f"{n.op} has no row-wise form"
    if cls is None or (cls == "flat" and form != "relabel") or (
            form == "reduce" and row_signature(n) != rows):
        return f"{n.op} {fmt(n.shape)} is not a row of {fmt(rows[0])}"
    inside = set(members)
    for u in users[n]:
        if u in inside and (cls, row_class(u.shape, rows)) not in ROW_EDGES.get(_row_form(u), ()):
            return f"{u.op} reads {n.op} across rows"
    return None


def _row_join(n, users, outputs, owner, joined, rows, keep_inside, phase, hints):
    """``(root, (S, k))`` of the row-wise kernel ``n`` joins, or None (see the docstring)."""
    for root in dict.fromkeys(owner[u] for u in users[n]):
        members = joined[root]
        if len(members) >= MAX_ROW_NODES:
            continue
        outside = n in outputs or any(owner[u] is not root for u in users[n])
        if outside and (keep_inside or phase(n) != phase(root)):
            continue
        sig = rows.get(root) or row_signature(n) or next(
            (row_signature(m) for m in members if row_signature(m)), None) or hints.get(n)
        if sig is None or _row_misfit(n, members, sig, users) is not None:
            continue
        if root not in rows and any(_row_misfit(m, members, sig, users) for m in members):
            continue
        return root, sig
    return None


def _loss_sibling(a, b, position):
    """Why kernel ``b`` (a cross-entropy gradient or accuracy) may join kernel ``a`` (its
    loss), or None."""
    if not (len(b.members) == 1 and len(a.root.inputs) == 2
            and all(x is y for x, y in zip(b.root.inputs, a.root.inputs))
            and all(a.root.attr(key) == value for key, value in b.root.attrs)  # same options
            and all(len(g) == 1 and g[0].op != b.root.op for g in a.groups)):
        return None
    if OPS[b.root.op].result == "accuracy":
        return "the accuracy reads the same logits"
    g = b.root.inputs[2]
    if OPS[g.op].kind == "leaf" or position.get(g, len(position)) < a.index:
        return "the loss's gradient reads the same logits"
    return None


def _bias_sibling(m, r):
    """Why kernel ``r`` (column sums of a buffer) may join matmul kernel ``m``, or None."""
    if not (len(r.members) <= 2 and is_column_sum(r.members[0])
            and all(OPS[x.op].view == "relabel" for x in r.members[1:])):
        return None
    return "the column sums of the matmul's operand are added while it is loaded"


def column_key(group):
    """``(S, axes)`` when ``group`` is elementwise ops over ``S`` (and views of buffers)
    ending in a sum over the leading ``axes`` of ``S``, maybe reshaped; else None."""
    sums = [i for i, m in enumerate(group) if OPS[m.op].kind == "reduce"]
    if len(sums) != 1 or not leading_sum(group[sums[0]]):
        return None
    r = group[sums[0]]
    shape = r.inputs[0].shape
    before, after = group[:sums[0]], group[sums[0] + 1:]
    if any(m.shape != shape or not (OPS[m.op].kind == "elementwise" or (
            OPS[m.op].view and not contains(group, m.inputs[0]))) for m in before):
        return None
    if any(OPS[m.op].view != "relabel" for m in after):
        return None
    return tuple(shape), tuple(r.attr("axes"))


def _column_sibling(a, b, position):
    """Why column sums ``b`` may join column sums ``a`` (run where ``a`` runs), or None."""
    key = column_key(b.groups[0])
    if len(b.groups) > 1 or key is None or any(column_key(g) != key for g in a.groups):
        return None
    inside = set(b.members)
    if any(position.get(i, -1) >= a.index for m in b.members for i in m.inputs if i not in inside):
        return None  # b reads something made after a runs
    return "column sums of one shape that read the same buffer are added in one pass"


def merge_siblings(kernels):
    """Kernels with a sibling merged in (see the module docstring), in execution order."""
    position = {}
    for k in kernels:
        for out in k.outputs:
            position[out] = k.index
    candidates = {}  # the buffer a sibling reads -> the kernel it may join
    for k in kernels:
        if OPS[k.root.op].result == "loss":
            candidates[k.root.inputs] = k
        mm = next((x for x in k.members if OPS[x.op].kind == "contraction"), None)
        if mm is not None and mm.ndim == 2 and not contains(k.members, mm.inputs[1]):
            candidates.setdefault(mm.inputs[1], k)
        if column_key(k.groups[0]) is not None:
            for m in k.members:
                for i in m.inputs:
                    if not contains(k.members, i):
                        candidates.setdefault(("columns", column_key(k.groups[0]), i), k)
    users = _kernels_reading(kernels)
    absorbed = set()
    for b in kernels:
        if OPS[b.root.op].result in ("grad", "accuracy"):
            a = candidates.get(b.root.inputs[:2])
            reason = a and _loss_sibling(a, b, position)
        else:
            a = candidates.get(b.members[0].inputs[0]) if b.members[0].inputs else None
            reason = a and len(a.groups) == 1 and _bias_sibling(a, b)
            if not reason and column_key(b.members) is not None:
                a = next((candidates[c] for c in (("columns", column_key(b.members), i)
                                                  for m in b.members for i in m.inputs)
                          if c in candidates and candidates[c] is not b), None)
                reason = a and a.index < b.index and _column_sibling(a, b, position)
        if not reason or a is b or a in absorbed:
            continue
        # every consumer of b's result must still come after the merged kernel
        if any(b.index < u.index <= a.index for u in users.get(b.root, ())):
            continue
        a.groups.append(list(b.members))
        a.members = [x for g in a.groups for x in g]
        a.merged = reason if not a.merged else f"{a.merged}; {reason}"
        absorbed.add(b)
    return [k for k in kernels if k not in absorbed]


def _kernels_reading(kernels):
    """Each node read by a kernel's member: the kernels that read it (in order)."""
    readers = {}
    for k in kernels:
        for m in k.members:
            for i in m.inputs:
                readers.setdefault(i, {})[k] = None
    return readers


def _reads_through(c, m, view):
    """Whether member ``m`` of kernel ``c`` can read ``view`` of a buffer as index arithmetic
    (in the kernel's first group, where the others are a matmul's column sums)."""
    op = OPS[m.op]
    if op.by_index:  # a gather reads its input by index: through the view's index arithmetic
        return readable([view])
    if op.kind == "contraction" and is_const(view.inputs[0]):
        return False  # a matmul's operands are buffers: a broadcast constant is made into one
    if op.kind == "loss" or (op.triton is not None and not op.positional):
        return False  # a fused loss reads buffers; a gather reads a buffer by its own strides
    if len(c.groups) > 1 and (column_key(c.groups[0]) is not None
                              or not any(x is m for x in c.groups[0])):
        return False
    if c.rows:  # a row of the kernel's rows, read by a member that is no view
        return not op.view and row_class(view.shape, c.rows) not in (None, "flat")
    return True


def free_views(kernels, outputs, gpu=True):
    """``kernels`` without those that only view a buffer (one reshape, transpose or
    broadcast of a leaf or a kernel's result, no graph output): each kernel that reads such
    a view computes it itself (index arithmetic, strides), instead of reading a copy.
    On numpy (not ``gpu``) a reshape of a gather's result (numpy's sliding windows, a
    strided view whose reshape copies) stays a kernel: the forward and backward matmuls of
    a convolution then share one im2col copy."""
    readers = {}
    for k in kernels:
        for m in k.members:
            for i in m.inputs:
                readers.setdefault(i, []).append((k, m))
    gone = set()  # the views dissolved
    for k in kernels:
        v = k.root
        if len(k.members) != 1 or not OPS[v.op].view or v in outputs or v.inputs[0] in gone:
            continue
        if not gpu and OPS[v.op].view == "relabel" and OPS[v.inputs[0].op].numpy_windows:
            continue
        users = readers.get(v, [])
        if not users or not all(_reads_through(c, m, v) for c, m in users):
            continue
        for c in dict.fromkeys(c for c, _ in users):
            c.groups[0].insert(0, v)
            c.members.insert(0, v)
        gone.add(v)
    return [k for k in kernels if k.root not in gone]


def _gathered_operand(c, g):
    """Whether every read of ``g`` in kernel ``c`` is a matmul operand made of views of
    ``g`` that the matmul skeleton can index (and ``c`` computes no other such operand)."""
    group = c.groups[0]
    mm = next((m for m in group if OPS[m.op].kind == "contraction"), None)
    if mm is None or c.rows or column_key(group) is not None:
        return False
    if any(OPS[m.op].by_index for m in c.members):
        return False  # one operand computed by index per kernel
    readers = [m for m in c.members if any(i is g for i in m.inputs)]
    for position in (0, 1):
        chain, under = operand_chain(mm, position, group)
        if under is g and operand_index(mm, position, chain) is not None:
            return all(m is (chain[-1] if chain else mm) for m in readers)
    return False


def free_gathers(kernels, outputs):
    """``kernels`` without those that only gather a buffer by index (``OpDef.by_index``:
    a convolution's windows) for matmuls: each matmul that reads it computes its operand
    from the buffer as it loads it (implicit GEMM), instead of reading the copy."""
    readers = _kernels_reading(kernels)
    gone = set()
    for k in kernels:
        g = k.root
        if not OPS[g.op].by_index or len(g.inputs) != 1 or g in outputs or any(
                not OPS[m.op].view for m in k.members[:-1]):
            continue  # (a gather, and the views of a buffer it reads through)
        users = readers.get(g, ())
        if not users or not all(_gathered_operand(c, g) for c in users):
            continue
        for c in users:
            c.groups[0][:0] = k.members
            c.members[:0] = k.members
        gone.add(k)
    return [k for k in kernels if k not in gone]


def _kernel_reads(k):
    """The nodes kernel ``k`` reads, in order (computed elsewhere; constants are inlined)."""
    inside = set(k.members)  # sets and dicts: nodes compare by identity
    return {i: None for m in k.members for i in m.inputs if i not in inside and not is_const(i)}


def _recomputable(k, outputs):
    """Whether kernel ``k`` only computes elementwise values of what it reads."""
    return (len(k.groups) == 1 and not k.rows and k.root not in outputs and all(
        OPS[m.op].kind == "elementwise" and OPS[m.op].triton is None for m in k.members))


def _recomputes_in(c, k):
    """Whether kernel ``c`` can compute ``k``'s result where it reads it: elementwise ops
    of its shape or a reduction of it in ``c``'s first group read it (no view, matmul
    operand, loss or row; so it is computed once per element it had; in a reduction
    kernel, only what flows into the reduction), the
    kernel stays within ``MAX_NODES``, and it reads at most one buffer more for it (in
    place of ``k``'s result: never more memory traffic)."""
    readers = [m for m in c.members if any(i is k.root for i in m.inputs)]
    if c.rows or len(c.groups) > 1 or len(c.members) + len(k.members) > MAX_NODES:
        return False
    if not all(OPS[m.op].kind in ("elementwise", "reduce") and OPS[m.op].triton is None
               and contains(c.groups[0], m)
               and (m.shape == k.root.shape or OPS[m.op].kind == "reduce") for m in readers):
        return False
    reduction = next((m for m in c.members if OPS[m.op].kind == "reduce"), None)
    if reduction is not None and not all(contains(_feeding(reduction, c.members), m)
                                         for m in readers):
        return False  # after its reduction, a kernel computes on reduced values only
    return sum(1 for i in _kernel_reads(k) if i not in _kernel_reads(c)) <= 1


def _feeding(node, members):
    """``node`` and the members whose values flow into it."""
    found, stack = [node], [node]
    while stack:
        for i in stack.pop().inputs:
            if contains(members, i) and not contains(found, i):
                found.append(i)
                stack.append(i)
    return found


def free_recomputes(kernels, outputs):
    """``kernels`` without those that only compute elementwise values read by kernels that
    can compute them too (``_recomputes_in``): each reader computes the value from
    the buffers it is made of, instead of reading a stored copy.  A GPU's arithmetic is
    cheaper than the store and the reads (GELU's ``Phi(x)`` is read by the forward
    ``x * Phi(x)`` and by the backward; ``x / sqrt(2)`` by two ops of one kernel)."""
    gone = set()
    for k in kernels:
        if not _recomputable(k, outputs):
            continue
        users = [c for c in kernels if c is not k and c not in gone
                 and any(i is k.root for i in _kernel_reads(c))]
        if not users or not all(_recomputes_in(c, k) for c in users):
            continue
        for c in users:  # k's members first, in order (c may already recompute some of them)
            c.groups[0] = k.members + [m for m in c.groups[0] if not contains(k.members, m)]
            c.members = list(c.groups[0])
        gone.add(k)
    return [k for k in kernels if k not in gone]


def report(kernels, index):
    """Text: each kernel, its nodes (``%i op``), the boundary rule that ended it and, for
    a merged kernel, why its sibling joined."""
    lines = []
    for k in kernels:
        merged = f"; merged: {k.merged}" if k.merged else ""
        lines.append(f"{k.name} ({k.phase}; boundary: {k.boundary}{merged})")
        for m in k.members:
            lines.append(f"    %{index[m]} {m.op}")
    return "\n".join(lines)
