"""Flops and bytes as sympy formulas in the shape symbols, counted from our IR.

Conventions (``DEFAULT_WEIGHTS`` may be overridden per call):

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
from compiler.ops.registry import OPS
from compiler.shapes import numel

DEFAULT_WEIGHTS = {"exp": 1, "log": 1, "sin": 1, "cos": 1, "tanh": 1, "sqrt": 1, "pow": 1}
ONE = {"add", "sub", "mul", "div", "neg", "maximum", "minimum", "greater", "greater_equal",
       "less", "less_equal", "equal", "not_equal", "where", "abs", "sign", "relu", "heaviside"}
FREE = {"reshape", "transpose", "broadcast_to", "stop_gradient", "input", "param", "const",
        "tangent"}
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


def _pow_flops(node, weights):
    exponent = node.inputs[1]
    value = exponent.attr("value") if exponent.op == "const" else None
    if value is not None and value.is_Integer:
        n = abs(int(value))
        return max(n - 1, 0) + (1 if value < 0 else 0)
    if value is not None and value == sympy.S.Half:
        return weights["sqrt"]
    return weights["pow"]


def flops_per_element(node, weights=None):
    """Flops for one output element of an elementwise node."""
    w = {**DEFAULT_WEIGHTS, **(weights or {})}
    op = node.op
    if op in FREE:
        return 0
    if op in ONE:
        return 1
    if op in w and op != "pow":
        return w[op]
    if op == "pow":
        return _pow_flops(node, w)
    if op == "sigmoid":
        return 3 + w["exp"]
    if op == "softplus":
        return 1 + w["exp"] + w["log"]
    if op == "one_hot":
        return 1
    if op == "dropout":
        return 2
    raise KeyError(f"no cost rule for op {op!r}")


def node_cost(node, weights=None):
    """Estimates of one node: its flops (bytes are counted per kernel)."""
    kind = OPS[node.op].kind
    out = numel(node.shape)
    if kind == "matmul":
        (m, k), (_, n) = node.inputs[0].shape, node.inputs[1].shape
        return Estimates(2 * m * n * k, 0)
    if kind == "loss":  # a fused primitive costs what its definition in primitives costs
        inner = [n for n in toposort([OPS[node.op].definition(node)], stop=node.inputs)
                 if OPS[n.op].kind != "leaf"]
        return Estimates(graph_cost(inner, weights).flops, 0)
    if kind == "reduce":
        n_in = numel(node.inputs[0].shape)
        folded = sympy.expand(n_in - out) if n_in != 0 else sympy.S.Zero  # nothing to fold
        if node.op == "logsumexp":
            w = {**DEFAULT_WEIGHTS, **(weights or {})}
            return Estimates(sympy.expand(2 * folded + n_in * (1 + w["exp"]) + out * (w["log"] + 1)), 0)
        return Estimates(folded, 0)
    return Estimates(sympy.expand(flops_per_element(node, weights) * out), 0)


def nbytes(node, dtype):
    item = ITEMSIZE[dtype] if node.dtype == "float" else ITEMSIZE[node.dtype]
    return sympy.expand(item * numel(node.shape))


def kernel_cost(kernel, dtype="float32", weights=None):
    """Flops of every fused node; bytes of the inputs read once and the results written once."""
    flops = sum((node_cost(m, weights).flops for m in kernel.members), sympy.S.Zero)
    moved = sum((nbytes(i, dtype) for i in kernel.inputs + kernel.outputs), sympy.S.Zero)
    return Estimates(sympy.expand(flops), sympy.expand(moved))


def graph_cost(nodes, weights=None):
    """Flops of a set of nodes (each counted once)."""
    total = sum((node_cost(n, weights).flops for n in nodes), sympy.S.Zero)
    return Estimates(sympy.expand(total), 0)


def matmul_flops(nodes):
    return sympy.expand(sum((node_cost(n).flops for n in nodes if n.op == "matmul"), sympy.S.Zero))


def at_batch(formula, batch):
    """A formula with every size symbol set to ``batch`` (None: unchanged), as a number when
    it becomes one, else as text."""
    value = sympy.sympify(formula)
    if batch is not None:
        value = value.subs({s: batch for s in value.free_symbols})
    return int(value) if value.is_Integer else (float(value) if value.is_number else str(value))


@functools.lru_cache(maxsize=4096)
def fmt(x):
    """A formula as text: ``4*B + 12`` (remembered: kernels of a big graph share a few)."""
    return str(sympy.sympify(x))
