"""The op registry: one ``OpDef`` per primitive, filled in by the op families.

Every rule is a value in this table so that it can be listed, tested and
checked for completeness (``missing_rules()``).  An op's fields:

- ``kind``: ``leaf``, ``elementwise``, ``matmul``, ``reduce``, ``shape`` or ``random``;
- ``shape(inputs, attrs) -> shape`` and ``dtype(inputs, attrs) -> dtype``;
- ``scalar(*args, **attrs) -> sympy expression`` for elementwise ops: the op's
  meaning at the scalar level; its derivative is ``sympy.diff`` of it;
- ``vjp(node, g) -> [input gradients]`` and ``jvp(node, tangents) -> output tangent``
  for structural ops (hand-written, side by side; ``None`` stands for zero);
- ``numpy(args, attrs) -> str``: how the numpy backend prints the op;
- ``definition(node) -> node``: for a fused primitive (``loss`` kind), its meaning in
  the other primitives (used for its flops, the naive baseline and the tests).
"""
import re
from dataclasses import dataclass
from typing import Callable, Optional

KINDS = ("leaf", "elementwise", "matmul", "reduce", "shape", "random", "loss")


@dataclass(frozen=True)
class OpDef:
    name: str
    kind: str
    shape: Callable
    dtype: Callable
    scalar: Optional[Callable] = None
    vjp: Optional[Callable] = None
    jvp: Optional[Callable] = None
    numpy: Optional[Callable] = None
    definition: Optional[Callable] = None
    differentiable: bool = True
    doc: str = ""


OPS = {}


def register(op):
    """Add ``op`` to the registry (each name once)."""
    if op.name in OPS:
        raise KeyError(f"op {op.name!r} registered twice")
    if op.kind not in KINDS:
        raise ValueError(f"op {op.name!r} has unknown kind {op.kind!r}")
    OPS[op.name] = op
    return op


def missing_rules():
    """Names of ops that lack a rule they need (empty when the table is complete)."""
    missing = []
    for op in OPS.values():
        if op.kind == "leaf":
            continue
        if op.kind == "elementwise" and op.scalar is None:
            missing.append(f"{op.name}: scalar")
        if op.kind != "elementwise" and op.numpy is None:
            missing.append(f"{op.name}: numpy")
        if op.differentiable and op.scalar is None and op.vjp is None:
            missing.append(f"{op.name}: vjp")
        if op.differentiable and op.scalar is None and op.jvp is None:
            missing.append(f"{op.name}: jvp")
    return missing


_ATOM = re.compile(r"^[A-Za-z_][\w.]*$")


def paren(code):
    """``code`` wrapped in parentheses unless it is a plain name (for ``x.T``, ``a @ b``)."""
    return code if _ATOM.match(code) else f"({code})"
