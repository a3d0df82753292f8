"""Partition a graph into kernels.

A kernel is a tree of nodes computed together: every node with exactly one
user is fused into that user's kernel (elementwise chains, a matmul into its
bias-and-activation epilogue, an elementwise producer into the reduction that
consumes it).  A node becomes a kernel boundary, stored in a buffer, when it is
a graph output, when several nodes use it, or when its kernel has reached
``MAX_NODES``.  Leaves (inputs, parameters) are buffers; constants are inlined.

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


def kernel_name(index, members):
    ops = []
    for m in members:
        if m.op not in ops:
            ops.append(m.op)
    return f"k{index}_" + "_".join(ops[:4])


def partition(graph, forward_nodes):
    """The kernels of ``graph`` in execution order.

    ``forward_nodes`` marks the nodes of the forward pass; the rest are backward.
    """
    nodes = [n for n in graph.nodes if OPS[n.op].kind != "leaf"]
    users = users_of(graph.nodes)
    outputs = set(graph.outputs.values())
    owner, size, reasons = {}, {}, {}
    for n in reversed(nodes):
        reason = _boundary_reason(n, users, outputs)
        if reason is None:
            (user,) = users[n]
            root = owner[user]
            if size[root] < MAX_NODES:
                owner[n] = root
                size[root] += 1
                continue
            reason = f"kernel reached {MAX_NODES} nodes"
        owner[n] = n
        size[n] = 1
        reasons[n] = reason
    members = {}
    for n in nodes:
        members.setdefault(owner[n], []).append(n)
    kernels = []
    for n in nodes:
        if owner[n] is n:
            k = Kernel(len(kernels), members[n], "forward" if n in forward_nodes else "backward",
                       reasons[n])
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
