"""Partition a graph into kernels that both backends can emit.

A kernel is a tree of nodes computed together, of one of four shapes:

- elementwise: elementwise ops over the root's shape;
- matmul + epilogue: one matmul (its operands buffers, possibly transposed) and the
  elementwise ops that consume its result (bias, activation, ...);
- reduction: one reduction (sum, max, logsumexp) with its elementwise producers
  fused before it and elementwise consumers after it;
- loss: the row-wise softmax cross-entropy (or its gradient, or the accuracy), reading
  its logits and labels.

Then siblings that read the same buffer merge into one kernel with several results
(``merge_siblings``): the cross-entropy's gradient and the training accuracy join the
loss (the loss's forward and backward and the metric read the logits once), and a bias
gradient, the column sums of the
matmul operand ``dz`` in ``dW = x.T @ dz``, joins that matmul (summed while the
matmul loads ``dz``).

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

The fusion report (``report(kernels, index)``) says what went where and why each
boundary is there.
"""
from dataclasses import dataclass, field

from compiler.graph import contains, users_of
from compiler.ops.leaf import is_const
from compiler.ops.reduce import is_column_sum
from compiler.ops.registry import OPS

MAX_NODES = 24


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

    def __post_init__(self):
        self.groups = self.groups or [list(self.members)]

    @property
    def root(self):
        """The main result: the last node of the first group."""
        return self.groups[0][-1]

    @property
    def outputs(self):
        """Every result the kernel stores: the root, then each merged sibling's."""
        return [g[-1] for g in self.groups]


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


def partition(graph, forward_nodes, predict_nodes=(), loss_nodes=None):
    """The kernels of ``graph`` in execution order.

    ``forward_nodes`` marks the nodes of the forward pass (the rest are ``backward``);
    of those, the ones ``predict_nodes`` does not hold compute the ``loss``, or a
    ``metric`` when ``loss_nodes`` is given and does not hold them either.
    """
    predict_nodes = set(predict_nodes)
    nodes = [n for n in graph.nodes if OPS[n.op].kind != "leaf"]
    users = users_of(graph.nodes)
    outputs = set(graph.outputs.values())
    owner, joined, reasons, heavy = {}, {}, {}, {}
    for n in reversed(nodes):
        reason = _boundary_reason(n, users, outputs)
        if reason is None:
            (user,) = users[n]
            root = owner[user]
            reason = _join_rule(n, user, user is root, heavy.get(root), joined[root])
            if reason is None and len(joined[root]) >= MAX_NODES:
                reason = f"kernel reached {MAX_NODES} nodes"
            if reason is None:
                owner[n] = root
                joined[root].append(n)
                if OPS[n.op].kind in HEAVY:
                    heavy[root] = n
                continue
        owner[n] = n
        joined[n] = [n]
        reasons[n] = reason
        if OPS[n.op].kind in HEAVY:
            heavy[n] = n
    members = {}
    for n in nodes:
        members.setdefault(owner[n], []).append(n)
    kernels = []
    for n in nodes:
        if owner[n] is n:
            phase = ("backward" if n not in forward_nodes else
                     "forward" if n in predict_nodes or not predict_nodes else
                     "metric" if loss_nodes is not None and n not in loss_nodes else "loss")
            kernels.append(Kernel(len(kernels), members[n], phase, reasons[n]))
    kernels = merge_siblings(kernels)
    for i, k in enumerate(kernels):
        k.index = i
        inside, reads = set(k.members), {}  # sets and dicts: nodes compare by identity
        for m in k.members:
            for inp in m.inputs:
                if inp not in inside and not is_const(inp):
                    reads[inp] = None
        k.inputs = list(reads)
        k.name = kernel_name(i, k.groups)
    return kernels


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
    users = {}
    for k in kernels:
        for m in k.members:
            for i in m.inputs:
                users.setdefault(i, set()).add(k)
    absorbed = set()
    for b in kernels:
        if OPS[b.root.op].result in ("grad", "accuracy"):
            a = candidates.get(b.root.inputs[:2])
            reason = a and _loss_sibling(a, b, position)
        else:
            a = candidates.get(b.members[0].inputs[0]) if b.members[0].inputs else None
            reason = a and len(a.groups) == 1 and _bias_sibling(a, b)
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
