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
  the other primitives (used for its flops, the naive baseline and the tests);
- ``flops``: what one node costs.  An int is flops per output element; a function
  ``flops(node) -> sympy expression`` is the node's total; ``None`` for an elementwise
  op means "count its scalar body" (``a - b``: 1, ``a**3``: 2, ``sigmoid(a)``: 4);
- ``function``: the sympy function class an elementwise op's body introduces
  (``sympy.exp`` for ``exp``), with ``function_flops`` (what one call costs, in bodies,
  derivatives and the naive baseline) and its printing: ``numpy_code`` and
  ``triton_code``, each a format string over the printed arguments
  (``"numpy.exp({0})"``) or a function ``(printer, *args) -> str``.  The printers,
  ``compiler.symbolic`` (sympy back to graph nodes) and the flop counters read
  ``functions()``, so an op's function is known everywhere from this one entry.
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
    flops: object = None
    function: object = None
    function_flops: int = 1
    numpy_code: object = None
    triton_code: object = None
    user_defined: bool = False


OPS = {}


def register(op):
    """Add ``op`` to the registry (each name once)."""
    if op.name in OPS:
        raise KeyError(f"op {op.name!r} registered twice")
    if op.kind not in KINDS:
        raise ValueError(f"op {op.name!r} has unknown kind {op.kind!r}")
    OPS[op.name] = op
    return op


_functions = {}


def functions():
    """The sympy function classes elementwise ops introduce, each mapped to its op."""
    if _functions.get("size") != len(OPS):  # rebuilt when an op was registered since
        _functions["size"] = len(OPS)
        _functions["table"] = {op.function: op for op in OPS.values() if op.function is not None}
    return _functions["table"]


def missing_rules():
    """Names of ops that lack a rule they need (empty when the table is complete):
    a scalar body or vjp/jvp, a cost, a numpy emitter, and for every function an
    elementwise op introduces, its numpy and Triton printing."""
    missing = []
    for op in OPS.values():
        if op.kind == "leaf":
            continue
        if op.kind == "elementwise" and op.scalar is None:
            missing.append(f"{op.name}: scalar")
        if op.kind != "elementwise" and op.numpy is None:
            missing.append(f"{op.name}: numpy")
        if op.kind not in ("elementwise", "loss") and op.flops is None:
            missing.append(f"{op.name}: flops")
        if op.kind == "loss" and op.definition is None:
            missing.append(f"{op.name}: definition")
        if op.function is not None and (op.numpy_code is None or op.triton_code is None):
            missing.append(f"{op.name}: numpy_code and triton_code of {op.function.__name__}")
        if op.differentiable and op.scalar is None and op.vjp is None:
            missing.append(f"{op.name}: vjp")
        if op.differentiable and op.scalar is None and op.jvp is None:
            missing.append(f"{op.name}: jvp")
    return missing


_ATOM = re.compile(r"^[A-Za-z_][\w.]*$")


def paren(code):
    """``code`` wrapped in parentheses unless it is a plain name (for ``x.T``, ``a @ b``)."""
    return code if _ATOM.match(code) else f"({code})"
