"""The op registry: one ``OpDef`` per primitive, filled in by the op families.

Every rule is a value in this table so that it can be listed, tested and
checked for completeness (``missing_rules()``).  An op's fields:

- ``kind``: ``leaf``, ``elementwise``, ``contraction`` (matmul), ``reduce``, ``shape``,
  ``random``, ``loss`` (a fused primitive) or ``mode`` (one value while training, another
  while evaluating: ``Model`` resolves it, so nothing after it sees one);
- ``shape(inputs, attrs) -> shape`` and ``dtype(inputs, attrs) -> dtype``;
- ``scalar(*args, **attrs) -> sympy expression`` for elementwise ops: the op's
  meaning at the scalar level; its derivative is ``sympy.diff`` of it; ``arity``: how
  many tensors it takes (1 by default);
- ``vjp(node, g) -> [input gradients]`` and ``jvp(node, tangents) -> output tangent``
  for structural ops (hand-written, side by side; ``None`` stands for zero);
- ``numpy(node, args) -> str``: how the numpy backend prints a structural op (``args``:
  its inputs, printed); ``numpy_out(node, args, out) -> str or None``: how it writes
  the result into the array ``out`` without a copy, where it can (a parameter gradient);
- ``scalarize(node, args, shape) -> object array``: a structural op's elements as sympy
  expressions of its inputs' (``args``, object arrays; ``shape`` its shape with the
  sizes fixed), for the naive baseline;
- ``definition(node) -> node``: for a fused primitive (``loss`` kind), its meaning in
  the other primitives (used for its flops, the naive baseline and the tests);
  ``result``: what it computes in the kernel it shares with its family (``loss``,
  ``grad``, ``accuracy``: the backends' fused kernel names its results so);
- ``flops``: what one node costs.  An int is flops per output element; a function
  ``flops(node) -> sympy expression`` is the node's total; ``None`` for an elementwise
  op means "count its scalar body" (``a - b``: 1, ``a**3``: 2, ``sigmoid(a)``: 4);
- ``function``: the sympy function class an elementwise op's body introduces
  (``sympy.exp`` for ``exp``), with ``function_flops`` (what one call costs, in bodies,
  derivatives and the naive baseline) and its printing: ``numpy_code`` and
  ``triton_code``, each a format string over the printed arguments
  (``"numpy.exp({0})"``) or a function ``(printer, *args) -> str``.  The printers,
  ``compiler.symbolic`` (sympy back to graph nodes) and the flop counters read
  ``functions()``, so an op's function is known everywhere from this one entry;
- ``view``: for a shape op that moves no data, which view of its input it is:
  ``relabel`` (the same elements in order under a new shape: fusion lets it relabel a
  kernel's result), ``permute`` (axes permuted: a matmul reads it through swapped
  strides) or ``broadcast`` (repeated along axes: an elementwise user broadcasts by
  itself, so ``passes`` drops it there); the Triton backend reads each as a strided view;
- ``triton(node, read, index) -> dict``: an op the Triton elementwise skeleton computes
  with code of its own (``one_hot``, ``dropout``); such an op has a kernel to itself.
  ``read(input, suffix="")`` names an input loaded as an operand (``suffix`` changes its
  host view), ``index`` is the last axis's index; the dict holds ``body`` (device lines
  setting ``result``) and optionally ``host`` (host lines before the launch) and
  ``extra`` (host names passed to the kernel);
- ``triton_passes``: for a reduction, the Triton reduction skeleton's passes over the
  reduced axes, each a dict of ``init`` (the accumulator's start), ``combine`` (of
  ``acc`` and the loaded ``v``, masked by ``rmask``) and ``result`` (code leaving the
  reduction in ``total``); ``triton_row(v, out) -> lines``: the same reduction over whole
  rows held in registers (``v`` a ``[BLOCK_M, BLOCK_N]`` value, ``mask`` the elements
  inside), lines setting ``out`` to a ``[BLOCK_M, 1]`` result (the row-wise skeleton);
- ``positional``: for an op with ``triton`` code of its own, that code reads its input only
  at the element it writes and uses only the iteration space's indices (``tril``), so a
  row-wise kernel can hold it;
- ``by_index``: for an op with ``triton`` code of its own, that code computes any element
  from its index alone, reading its inputs only by index (``read(x, at=...)``), with no
  host code (``patches``): a matmul computes such an operand while it loads it (implicit
  GEMM) instead of reading a copy;
- ``numpy_windows``: the op's numpy result is a strided view of sliding windows, the
  window's offsets its last two axes (``patches``): a reshape of it is copied one
  offset at a time (``_rt.windows_reshape``);
- ``feed``: for a leaf fed at run time, the argument of a generated entry point it is
  read from (``batch``, ``params``, ``tangents``); ``text(node) -> str``: how
  ``Graph.format`` writes a leaf;
- ``label``: the op's word in kernel names when not its name (``cross_entropy``);
- ``classes(node) -> (indices, count, none)``: for an op that reads class indices, the
  input holding them, the number of classes and the index that stands for no class
  (``ignore_index``, or None): data fed to such an input must hold classes in
  ``[0, count)`` or ``none``, as PyTorch's errors say (``Program.check_batch``);
- ``indexes(node) -> (indices, size)``: for an op that reads integer indices into an
  axis of ``size`` elements (a gather, a scatter): data fed to the input under
  ``indices`` (through views) must hold indices in ``[-size, size)``, as numpy's errors
  say (on Triton an index outside would read or write nothing, without an error).
"""
import re
from dataclasses import dataclass
from typing import Callable, Optional

KINDS = ("leaf", "elementwise", "contraction", "reduce", "shape", "random", "loss", "mode")
VIEWS = ("", "relabel", "permute", "broadcast")


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
    arity: int = 1
    numpy_out: Optional[Callable] = None
    scalarize: Optional[Callable] = None
    result: str = ""
    view: str = ""
    triton: Optional[Callable] = None
    triton_passes: tuple = ()
    triton_row: Optional[Callable] = None
    positional: bool = False
    by_index: bool = False
    numpy_windows: bool = False
    feed: str = ""
    text: Optional[Callable] = None
    label: str = ""
    classes: Optional[Callable] = None
    indexes: Optional[Callable] = None


OPS = {}


def register(op):
    """Add ``op`` to the registry (each name once)."""
    if op.name in OPS:
        raise KeyError(f"op {op.name!r} registered twice")
    if op.kind not in KINDS:
        raise ValueError(f"op {op.name!r} has unknown kind {op.kind!r}")
    if op.view not in VIEWS:
        raise ValueError(f"op {op.name!r} has unknown view {op.view!r}")
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
    a scalar body or vjp/jvp, a cost, a numpy emitter and a scalarization, Triton code
    (a view, code of its own or reduction passes), a fused primitive's definition and
    result, a leaf's text, and for every function an elementwise op introduces, its
    numpy and Triton printing."""
    missing = []
    for op in OPS.values():
        if op.kind == "mode":  # resolved by Model before anything reads these rules
            continue
        if op.kind == "leaf":
            if op.text is None:
                missing.append(f"{op.name}: text")
            continue
        if op.kind == "elementwise" and op.scalar is None:
            missing.append(f"{op.name}: scalar")
        if op.kind != "elementwise" and op.numpy is None:
            missing.append(f"{op.name}: numpy")
        if op.kind not in ("elementwise", "loss") and op.flops is None:
            missing.append(f"{op.name}: flops")
        if op.kind not in ("elementwise", "loss") and op.scalarize is None:
            missing.append(f"{op.name}: scalarize")
        if op.kind in ("shape", "random") and not op.view and op.triton is None:
            missing.append(f"{op.name}: view or triton")
        if op.kind == "reduce" and not (op.triton_passes and op.triton_row):
            missing.append(f"{op.name}: triton_passes and triton_row")
        if op.kind == "loss" and op.definition is None:
            missing.append(f"{op.name}: definition")
        if op.kind == "loss" and not op.result:
            missing.append(f"{op.name}: result")
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
