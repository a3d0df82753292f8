"""The graph IR: hash-consed nodes with symbolic shapes, toposort, validator, printer.

A ``Node`` is one primitive applied to input nodes.  Nodes are hash-consed:
building the same op on the same inputs with the same attributes returns the
same object, so common subexpressions are shared for free and node identity is
a stable cache key.  Every node records the user's ``file:line`` it was built at.

>>> from compiler import Input, ops as F
>>> x = Input("x", ("B", 3))
>>> F.tanh(x) is F.tanh(x)
True
>>> print(Graph({"y": F.tanh(x)}).format())   # doctest: +ELLIPSIS
%0 = input x : (B, 3) float32...
%1 = tanh(%0) : (B, 3)...
"""
import os
import sys
import weakref

import sympy

from compiler.ops.leaf import is_const
from compiler.ops.registry import OPS
from compiler.shapes import as_shape, fmt
from runtime.errors import GradcError

_PACKAGE_DIRS = tuple(
    os.path.dirname(os.path.abspath(p)) + os.sep
    for p in (__file__, sys.modules["runtime.errors"].__file__)
)
_SKIP_PREFIXES = _PACKAGE_DIRS + ("<frozen",)
_cache = weakref.WeakValueDictionary()

FLOAT_DTYPES = ("float32", "float64")
INT_DTYPES = ("int32", "int64")
DATA_DTYPES = FLOAT_DTYPES + INT_DTYPES + ("bool",)


_override = []


class located:
    """Within this block, new nodes record ``where`` instead of the caller's line.

    Autodiff uses it so that a gradient node points at the forward line it differentiates.
    """

    def __init__(self, where):
        self.where = where

    def __enter__(self):
        _override.append(self.where)

    def __exit__(self, *exc):
        _override.pop()


def user_location():
    """``file:line`` of the innermost stack frame outside gradc's own packages."""
    if _override:
        return _override[-1]
    frame = sys._getframe(1)
    while frame is not None:
        filename = frame.f_code.co_filename
        if not filename.startswith(_SKIP_PREFIXES) and "importlib" not in filename:
            return f"{filename}:{frame.f_lineno}"
        frame = frame.f_back
    return None


class Node:
    """One op applied to input nodes.  Build nodes with ``make`` (or the ops API)."""

    # ``metrics``: for a classifier's loss, ``(name, build)`` pairs of the metrics a Model
    # adds by default (its accuracy); set by the loss function, None for other nodes.
    __slots__ = ("op", "inputs", "attrs", "shape", "dtype", "source_line", "metrics", "__weakref__")
    __array_priority__ = 1000  # numpy scalars on the left defer to our operators

    def attr(self, key, default=None):
        for k, v in self.attrs:
            if k == key:
                return v
        return default

    @property
    def ndim(self):
        return len(self.shape)

    @property
    def name(self):
        """The name of an input or parameter (``None`` for other nodes)."""
        return self.attr("name")

    def __repr__(self):
        label = f" {self.name}" if self.name else ""
        return f"<Node {self.op}{label} {fmt(self.shape)} {self.dtype}>"

    def __bool__(self):
        raise GradcError("a graph node has no truth value; use F.where for a choice "
                         "(and `is` to ask whether two nodes are the same)", where=user_location())

    # Operators build graph nodes through the ops API.
    def __add__(self, other):
        return _ops().add(self, other)

    def __radd__(self, other):
        return _ops().add(other, self)

    def __sub__(self, other):
        return _ops().sub(self, other)

    def __rsub__(self, other):
        return _ops().sub(other, self)

    def __mul__(self, other):
        return _ops().mul(self, other)

    def __rmul__(self, other):
        return _ops().mul(other, self)

    def __truediv__(self, other):
        return _ops().div(self, other)

    def __rtruediv__(self, other):
        return _ops().div(other, self)

    def __pow__(self, other):
        return _ops().pow(self, other)

    def __rpow__(self, other):
        return _ops().pow(other, self)

    def __matmul__(self, other):
        return _ops().matmul(self, other)

    def __rmatmul__(self, other):
        return _ops().matmul(other, self)

    def __neg__(self):
        return _ops().neg(self)

    def __pos__(self):
        return self

    def __abs__(self):
        return _ops().abs(self)

    def __gt__(self, other):
        return _ops().greater(self, other)

    def __lt__(self, other):
        return _ops().less(self, other)

    def __ge__(self, other):
        return _ops().greater_equal(self, other)

    def __le__(self, other):
        return _ops().less_equal(self, other)

    # ``a == b`` and ``a != b`` build comparison nodes, as ``<`` does (PyTorch, numpy).
    # So gradc itself never compares nodes with ``==`` or ``in`` on a list: identity
    # (``is``, dict and set membership by ``__hash__``) is node equality.
    def __eq__(self, other):
        return _ops().equal(self, other)

    def __ne__(self, other):
        return _ops().not_equal(self, other)

    __hash__ = object.__hash__

    @property
    def T(self):
        return _ops().transpose(self)

    def reshape(self, *shape):
        return _ops().reshape(self, shape[0] if len(shape) == 1 else shape)

    def sum(self, axis=None, keepdims=False):
        return _ops().sum(self, axis, keepdims)

    def mean(self, axis=None, keepdims=False):
        return _ops().mean(self, axis, keepdims)

    def max(self, axis=None, keepdims=False):
        return _ops().max(self, axis, keepdims)

    def __getitem__(self, key):
        return _ops().getitem(self, key)


def _ops():
    from compiler import ops

    return ops


def make(op, inputs=(), **attrs):
    """The node for ``op`` on ``inputs`` with ``attrs`` (hash-consed).

    Raises a ``GradcError`` located at the user's line when the shapes or
    dtypes do not fit the op.
    """
    opdef = OPS.get(op)
    if opdef is None:
        raise GradcError(f"unknown op {op!r}", where=user_location())
    inputs = tuple(inputs)
    attrs = tuple(sorted(attrs.items()))
    # The key holds only strings and ints: sympy values are keyed by their exact repr.
    key = (op, tuple(id(i) for i in inputs), repr(attrs))
    node = _cache.get(key)
    if node is not None:
        return node
    try:
        shape = as_shape(opdef.shape(inputs, dict(attrs)))
        dtype = opdef.dtype(inputs, dict(attrs))
    except GradcError as e:
        raise GradcError(e.message, where=e.where or user_location()) from None
    except ValueError as e:
        raise GradcError(f"shape mismatch in {op}: {e}", where=user_location()) from None
    node = Node()
    node.op, node.inputs, node.attrs = op, inputs, attrs
    node.shape, node.dtype = shape, dtype
    node.source_line = user_location()
    node.metrics = None
    _cache[key] = node
    return node


def contains(nodes, node):
    """Whether ``node`` is one of ``nodes`` (by identity: ``node in a_list`` would
    build an ``equal`` node, as ``==`` on nodes does)."""
    return any(n is node for n in nodes)


def toposort(roots, stop=()):
    """All nodes reachable from ``roots``, inputs before users, in first-visit order.

    Iterative (no recursion), so graphs of any depth work.  Nodes in ``stop`` are
    left out, and so is everything only reachable through them.
    """
    order, seen = [], set(stop)
    for root in roots:
        if root in seen:
            continue
        seen.add(root)
        stack = [(root, iter(root.inputs))]
        while stack:
            node, children = stack[-1]
            for child in children:
                if child not in seen:
                    seen.add(child)
                    stack.append((child, iter(child.inputs)))
                    break
            else:
                stack.pop()
                order.append(node)
    return order


def users_of(nodes):
    """Map each node to the list of nodes (among ``nodes``) that use it."""
    users = {n: {} for n in nodes}  # dicts keep insertion order and dedupe in O(1)
    for n in nodes:
        for i in n.inputs:
            if i in users:
                users[i][n] = None
    return {n: list(u) for n, u in users.items()}


class Graph:
    """Named output nodes and everything they depend on, in topological order."""

    def __init__(self, outputs):
        self.outputs = dict(outputs)
        self.nodes = toposort(self.outputs.values())

    def validate(self):
        """Check every node against its op's rules; raise ``GradcError`` on the first problem."""
        seen = set()
        for n in self.nodes:
            opdef = OPS.get(n.op)
            if opdef is None:
                raise GradcError(f"unknown op {n.op!r}", where=n.source_line)
            for i in n.inputs:
                if i not in seen:
                    raise GradcError(f"{n.op} uses a node that comes after it", where=n.source_line)
            attrs = dict(n.attrs)
            if as_shape(opdef.shape(n.inputs, attrs)) != n.shape:
                raise GradcError(f"{n.op} has shape {fmt(n.shape)} but its rule says otherwise",
                                 where=n.source_line)
            if opdef.dtype(n.inputs, attrs) != n.dtype:
                raise GradcError(f"{n.op} has dtype {n.dtype} but its rule says otherwise",
                                 where=n.source_line)
            seen.add(n)
        return self

    def format(self, locations=True):
        """One line per node: ``%3 = tanh(%2) : (B, 32)  # model.py:7``."""
        index = {n: i for i, n in enumerate(self.nodes)}
        out_names = {}
        for name, node in self.outputs.items():
            out_names.setdefault(node, []).append(name)
        lines = []
        for n in self.nodes:
            args = ", ".join(f"%{index[i]}" for i in n.inputs)
            extra = ", ".join(f"{k}={_fmt_attr(v)}" for k, v in n.attrs if k not in ("name", "dtype"))
            if OPS[n.op].text is not None:  # a leaf
                text = f"%{index[n]} = {OPS[n.op].text(n)}"
            else:
                inner = ", ".join(x for x in (args, extra) if x)
                text = f"%{index[n]} = {n.op}({inner}) : {fmt(n.shape)}"
                if n.dtype != "float":
                    text += f" {n.dtype}"
            if n in out_names:
                text += "  -> " + ", ".join(out_names[n])
            if locations and n.source_line and not is_const(n):  # constants are shared, not located
                text = f"{text:<56}  # {_short(n.source_line)}"
            lines.append(text)
        return "\n".join(lines)

    def __str__(self):
        return self.format()


def _fmt_attr(v):
    if isinstance(v, sympy.Basic):
        return str(v)
    if isinstance(v, tuple):
        return "(" + ", ".join(_fmt_attr(x) for x in v) + ("," if len(v) == 1 else "") + ")"
    return repr(v) if isinstance(v, str) else str(v)


def _short(where):
    path, _, line = where.rpartition(":")
    try:
        rel = os.path.relpath(path)
    except ValueError:
        rel = path
    return f"{rel if not rel.startswith('..') else path}:{line}"
