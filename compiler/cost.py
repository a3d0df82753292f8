"""Flops and bytes as sympy formulas in the shape symbols, counted from our IR.

Conventions (each op's ``flops`` in the registry, or its body counted by
``compiler.ops.counting``):

- add, sub, mul, div, neg, maximum, minimum, comparisons, where, abs, sign,
  relu, heaviside: 1 flop per output element;
- each transcendental (exp, log, sin, cos, tanh, sqrt): 1 flop per element;
  sigmoid ``1/(1+exp(-x))`` = 4, softplus ``log(1+exp(x))`` = 3;
- ``x**n`` for an integer n: ``|n| - 1`` multiplications (plus one division when
  n < 0); any other power: one transcendental;
- matmul ``(M, K) @ (K, N)``: ``2*M*N*K`` (as PyTorch's FlopCounterMode);
- reductions: one add (sum) or compare (max) per element folded away, i.e.
  ``numel(in) - numel(out)``; logsumexp also subtracts, exponentiates, logs;
- reshape, transpose, broadcast_to, stop_gradient: 0; one_hot: 1 compare per
  output element; dropout: 2 per element (mask multiply and scale).

Bytes per kernel: every input buffer read once plus the result written once.

>>> from compiler import Input, ops as F
>>> x = Input("x", ("B", 3))
>>> node_cost(F.tanh(x) * 2.0).flops
3*B
"""
import functools
from dataclasses import dataclass

import sympy

from compiler.graph import toposort
from compiler.ops.counting import tree_flops
from compiler.ops.leaf import is_const
from compiler.ops.registry import OPS
from compiler.shapes import numel

ITEMSIZE = {"float32": 4, "float64": 8, "int": 8, "bool": 1}


@dataclass(frozen=True)
class Estimates:
    """Flops and bytes, each a sympy expression (or int)."""

    flops: object = 0
    bytes: object = 0

    def __add__(self, other):
        return Estimates(sympy.expand(self.flops + other.flops), sympy.expand(self.bytes + other.bytes))

    def at(self, **sizes):
        """Numbers for given sizes, e.g. ``est.at(B=128)``."""
        subs = {sympy.Symbol(k, integer=True, positive=True): v for k, v in sizes.items()}
        return Estimates(_number(sympy.sympify(self.flops).subs(subs)),
                         _number(sympy.sympify(self.bytes).subs(subs)))


def _number(x):
    return int(x) if x.is_Integer else (float(x) if x.is_number else x)


def flops_per_element(node):
    """Flops for one output element of a node whose op costs per element: its
    ``flops``, or for an elementwise op without one its body counted as written
    (constant inputs substituted: ``x**2`` is one multiply)."""
    op = OPS[node.op]
    if op.flops is not None:
        return op.flops
    if op.kind != "elementwise":
        raise KeyError(f"no cost rule for op {node.op!r}")
    args = [i.attr("value") if is_const(i) else sympy.Symbol(f"a{k}")
            for k, i in enumerate(node.inputs)]
    return tree_flops([op.scalar(*args, **dict(node.attrs))])


def node_cost(node):
    """Estimates of one node: its flops (bytes are counted per kernel)."""
    op = OPS[node.op]
    if op.definition is not None:  # a fused primitive costs what its definition costs
        inner = [n for n in toposort([op.definition(node)], stop=node.inputs)
                 if OPS[n.op].kind != "leaf"]
        return Estimates(graph_cost(inner).flops, 0)
    if callable(op.flops):
        return Estimates(sympy.expand(op.flops(node)), 0)
    return Estimates(sympy.expand(flops_per_element(node) * numel(node.shape)), 0)


def nbytes(node, dtype):
    item = ITEMSIZE[dtype] if node.dtype == "float" else ITEMSIZE[node.dtype]
    return sympy.expand(item * numel(node.shape))


def kernel_cost(kernel, dtype="float32"):
    """Flops of every fused node; bytes of the inputs read once and the results written once."""
    flops = sum((node_cost(m).flops for m in kernel.members), sympy.S.Zero)
    moved = sum((nbytes(i, dtype) for i in kernel.inputs + kernel.outputs), sympy.S.Zero)
    return Estimates(sympy.expand(flops), sympy.expand(moved))


def graph_cost(nodes):
    """Flops of a set of nodes (each counted once)."""
    total = sum((node_cost(n).flops for n in nodes), sympy.S.Zero)
    return Estimates(sympy.expand(total), 0)


def matmul_flops(nodes):
    return sympy.expand(sum((node_cost(n).flops for n in nodes if OPS[n.op].kind == "contraction"),
                            sympy.S.Zero))


def at_batch(formula, batch):
    """A formula with every size symbol set to ``batch`` (None: unchanged), as a number when
    it becomes one, else as text."""
    value = sympy.sympify(formula)
    if batch is not None:
        value = value.subs({s: batch for s in value.free_symbols})
    return int(value) if value.is_Integer else (float(value) if value.is_number else str(value))


@functools.lru_cache(maxsize=4096)
def formula_text(x):
    """A formula as text: ``4*B + 12`` (remembered: kernels of a big graph share a few)."""
    return str(sympy.sympify(x))
