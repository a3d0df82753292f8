"""Partition a graph into kernels that both backends can emit.

A kernel is a tree of nodes computed together, of one of three shapes:

- elementwise: elementwise ops over the root's shape;
- matmul + epilogue: one matmul (its operands buffers, possibly transposed) and the
  elementwise ops that consume its result (bias, activation, ...);
- reduction: one reduction (sum, max, logsumexp) with its elementwise producers
  fused before it and elementwise consumers after it.

A node with exactly one user joins that user's kernel when the kernel keeps one of
these shapes: at most one matmul or reduction per kernel; nothing is computed into a
matmul operand (a transpose of a buffer is only a change of strides); a reshape,
transpose or broadcast reads a buffer directly (it is index arithmetic), except that a
reshape may relabel a kernel's result; one_hot and dropout stand alone.  A node also
becomes a boundary, stored in a buffer, when it is a graph output, when several nodes
use it, or when its kernel has reached ``MAX_NODES``.  Leaves (inputs, parameters) are
buffers; constants are inlined.

The fusion report (``report(kernels)``) says what went where and why each
boundary is there.
"""
from dataclasses import dataclass, field

from compiler.graph import users_of
from compiler.ops.registry import OPS

MAX_NODES = 24


@dataclass(eq=False)
class Kernel:
    """One fused kernel: ``members`` in topological order, ``root`` (last) is its result."""

    index: int
    members: list
    phase: str
    boundary: str
    inputs: list = field(default_factory=list)
    name: str = ""

    @property
    def root(self):
        return self.members[-1]


def _boundary_reason(node, users, outputs):
    if node in outputs:
        return "graph output"
    if len(users[node]) > 1:
        return f"used by {len(users[node])} nodes"
    if not users[node]:
        return "unused"
    return None


HEAVY = ("matmul", "reduce")
ALONE = ("one_hot", "dropout")


def _join_rule(n, user, user_is_root, heavy, members):
    """``None`` when ``n`` may join the kernel of ``user``, else the rule that forbids it."""
    nk, uk = OPS[n.op].kind, OPS[user.op].kind
    if n.op in ALONE or user.op in ALONE:
        return f"{n.op if n.op in ALONE else user.op} stands alone"
    if nk in HEAVY and heavy is not None:
        return f"one {heavy.op} per kernel already"
    if nk in HEAVY and any(m.shape != n.shape for m in members
                           if not (m.op == "reshape" and OPS[m.inputs[0].op].kind in HEAVY + ("elementwise",)
                                   and m is members[0])):
        return f"the {n.op}'s consumers have a larger shape than its result"
    if uk == "shape":
        if user.op == "reshape" and user_is_root and nk != "shape":
            return None  # relabelling the kernel's result costs nothing
        return f"{user.op} reads a buffer"
    if uk == "matmul":
        return None if n.op == "transpose" else "matmul operands are buffers"
    if uk == "reduce" and nk == "matmul":
        return "matmul result is reduced in its own kernel"
    return None


def kernel_name(index, members):
    ops = []
    for m in members:
        if m.op not in ops:
            ops.append(m.op)
    return f"k{index}_" + "_".join(ops[:4])


def partition(graph, forward_nodes, predict_nodes=()):
    """The kernels of ``graph`` in execution order.

    ``forward_nodes`` marks the nodes of the forward pass (the rest are ``backward``);
    of those, the ones ``predict_nodes`` does not hold compute the ``loss``.
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
                     "forward" if n in predict_nodes or not predict_nodes else "loss")
            k = Kernel(len(kernels), members[n], phase, reasons[n])
            seen = set(k.members)
            for m in k.members:
                for i in m.inputs:
                    if i not in seen and i.op != "const" and i not in k.inputs:
                        k.inputs.append(i)
            k.name = kernel_name(k.index, k.members)
            kernels.append(k)
    return kernels


def report(kernels, index):
    """Text: each kernel, its nodes (``%i op file:line``) and the boundary rule that ended it."""
    lines = []
    for k in kernels:
        lines.append(f"{k.name} ({k.phase}; boundary: {k.boundary})")
        for m in k.members:
            lines.append(f"    %{index[m]} {m.op}")
    return "\n".join(lines)
