"""The functions users build graphs with (``from compiler import ops as F``).

Python numbers become constants; shapes broadcast as in numpy; a misuse raises
a ``GradcError`` located at the user's line.

>>> from compiler import Input, ops as F
>>> x = Input("x", ("B", 3))
>>> F.sum(F.tanh(x) * 2.0, axis=1).shape
(B,)
"""
import builtins
import numbers

import numpy as np
import sympy

from compiler.graph import DATA_DTYPES, Node, make, user_location
from compiler.naming import Unnamed
from compiler.ops.registry import OPS
from compiler.shapes import as_shape, broadcast_shapes, fmt, numel
from runtime.errors import GradcError
from runtime.init import INITIALIZERS, resolve as resolve_init


def const(value):
    """A scalar constant: a number, or a sympy formula in the shape symbols."""
    if isinstance(value, sympy.Basic):
        return make("const", value=value)
    if isinstance(value, (bool, np.bool_)):
        value = int(value)
    if isinstance(value, numbers.Integral):
        return make("const", value=sympy.Integer(int(value)))
    if isinstance(value, numbers.Real):
        value = float(value)
        if value.is_integer() and builtins.abs(value) < 2**53:
            return make("const", value=sympy.Integer(int(value)))
        return make("const", value=sympy.Float(value, 17))
    raise GradcError(f"cannot use {type(value).__name__} {value!r} in a graph; "
                     "use a number or a graph node", where=user_location())


def as_node(x):
    return x if isinstance(x, Node) else const(x)


def const_value(node):
    """The number a constant node holds, or ``None`` for other nodes."""
    if node.op == "const" and node.attr("value").is_Number:
        return node.attr("value")
    return None


def Input(name, shape, dtype="float32"):
    """A data input fed by name at run time, e.g. ``Input("x", ("B", 784))``."""
    if not isinstance(name, str) or not name.isidentifier():
        raise GradcError(f"input name {name!r} must be a Python identifier", where=user_location())
    if dtype not in DATA_DTYPES:
        raise GradcError(f"input {name!r} has unknown dtype {dtype!r}; "
                         f"use one of {', '.join(DATA_DTYPES)}", where=user_location())
    return make("input", name=name, shape=as_shape(shape), dtype=dtype)


def Param(name, shape, init="xavier"):
    """A trainable parameter with a fixed shape and an initialiser name."""
    if not isinstance(name, str) or not name or not all(p.isidentifier() for p in name.split(".")):
        raise GradcError(f"parameter name {name!r} must be dotted identifiers", where=user_location())
    shape = as_shape(shape)
    if not all(isinstance(d, int) for d in shape):
        raise GradcError(f"parameter {name!r} needs a concrete shape, got {fmt(shape)}",
                         where=user_location())
    if resolve_init(init) is None:
        raise GradcError(f"unknown init {init!r} for parameter {name!r}; "
                         f"use one of {', '.join(INITIALIZERS)} or normal(STD)",
                         where=user_location())
    return make("param", name=name, shape=shape, init=init)


def layer_param(layer, field, shape, init):
    """A parameter of a layer that has no name yet (``layer``, a ``naming.Unnamed``): the
    ``Model`` names it ``<layer name>.<field>`` (``compiler.naming``)."""
    return make("param", name=f"{layer.kind}.{field}", field=field, layer=layer, shape=shape,
                init=init)


def Buffer(name, shape, init="zeros"):
    """State with a fixed shape that is fed with the parameters but not trained (as
    PyTorch's ``register_buffer``): batch norm's running mean and variance."""
    param = Param(name, shape, init)  # the same checks of the name, shape and init
    return make("buffer", name=param.name, shape=param.shape, init=init)


def layer_buffer(layer, field, shape, init):
    """A buffer of a layer that has no name yet (see ``layer_param``)."""
    return make("buffer", name=f"{layer.kind}.{field}", field=field, layer=layer, shape=shape,
                init=init)


def tangent(name, shape):
    """A tangent leaf, fed by parameter ``name`` (forward mode, Hessian-vector products)."""
    return make("tangent", name=name, shape=shape)


def _as_number(x):
    """``x``, with a boolean node as 1.0/0.0: arithmetic promotes booleans (as PyTorch;
    numpy would add two masks as a logical or and refuse to negate one)."""
    x = as_node(x)
    return make("where", (x, const(1), const(0))) if x.dtype == "bool" else x


def _ew(op, *args, **attrs):
    return make(op, [_as_number(a) for a in args], **attrs)


def elementwise_function(name):
    """The function users call for the elementwise op ``name``: ``F.exp(x)``, ``F.erf(x)``.

    Every registered elementwise op without a hand-written function here has one,
    made from its registry entry (``F.<name>``), so adding an op is one registry line.
    """
    op = OPS.get(name)
    if op is None or op.kind != "elementwise":
        raise AttributeError(f"gradc has no elementwise op {name!r}")

    def apply(*args):
        return _ew(name, *args)

    apply.__name__ = apply.__qualname__ = name
    apply.__doc__ = op.doc or f"``{name}`` elementwise."
    return apply


def __getattr__(name):  # F.exp, F.erf, ...: see elementwise_function
    if name.startswith("__"):
        raise AttributeError(name)
    return elementwise_function(name)


def _identity_operand(a, b, neutral, both_sides):
    """``a`` when ``b`` is the neutral constant and does not widen ``a`` (else ``None``)."""
    try:
        widened = broadcast_shapes(a.shape, b.shape) != a.shape
    except ValueError:
        return None
    if const_value(b) == neutral and not widened:
        return a
    if both_sides and const_value(a) == neutral and broadcast_shapes(a.shape, b.shape) == b.shape:
        return b
    return None


def add(a, b):
    a, b = _as_number(a), _as_number(b)
    same = _identity_operand(a, b, 0, True)
    return same if same is not None else make("add", (a, b))


def sub(a, b):
    a, b = _as_number(a), _as_number(b)
    same = _identity_operand(a, b, 0, False)
    return same if same is not None else make("sub", (a, b))


def mul(a, b):
    a, b = _as_number(a), _as_number(b)
    same = _identity_operand(a, b, 1, True)
    return same if same is not None else make("mul", (a, b))


def div(a, b):
    a, b = _as_number(a), _as_number(b)
    same = _identity_operand(a, b, 1, False)
    return same if same is not None else make("div", (a, b))















def heaviside(x, at0=0):
    return _ew("heaviside", x, at0=sympy.nsimplify(at0))




def clip(x, min=None, max=None):  # noqa: A002
    """``torch.clamp``: ``x`` limited to ``[min, max]`` (numbers or tensors; either may be
    None); the gradient flows to ``x`` inside the bounds, bounds included, and to a bound
    where it is taken.  Where ``min > max`` the result is ``max``."""
    if min is None and max is None:
        raise GradcError("clip needs min or max", where=user_location())
    out = _as_number(x)
    if min is not None:
        out = where(less(out, min), min, out)
    if max is not None:
        out = where(greater(out, max), max, out)
    return out


COMPOSED_ACTIVATIONS = ("gelu",)  # act= names of F functions made of several ops


def gelu(x, approximate="none"):
    """``torch.nn.functional.gelu``: ``x * ndtr(x)`` (``approximate="none"``; ``ndtr`` is
    Phi, the normal distribution function) or its tanh approximation (``"tanh"``, one op).
    Two ops, so that the backward pass can read the forward's ``Phi(x)``: numpy stores it
    and evaluates erf once, Triton computes it again where it is read (cheaper there)."""
    if approximate not in ("none", "tanh"):
        raise GradcError(f"gelu's approximate must be 'none' or 'tanh', got {approximate!r}",
                         where=user_location())
    if approximate == "tanh":
        return _ew("gelu_tanh", x)
    x = _as_number(x)
    return x * _ew("ndtr", x)


def greater(a, b):
    return make("greater", (as_node(a), as_node(b)))


def greater_equal(a, b):
    return make("greater_equal", (as_node(a), as_node(b)))


def less(a, b):
    return make("less", (as_node(a), as_node(b)))


def less_equal(a, b):
    return make("less_equal", (as_node(a), as_node(b)))


def equal(a, b):
    """``a == b`` elementwise, a boolean tensor (also written ``a == b`` on nodes)."""
    return make("equal", (as_node(a), as_node(b)))


def not_equal(a, b):
    """``a != b`` elementwise, a boolean tensor (also written ``a != b`` on nodes)."""
    return make("not_equal", (as_node(a), as_node(b)))


def where(cond, a, b):
    """``a`` where ``cond`` is true, else ``b`` (all three broadcast)."""
    return make("where", (as_node(cond), _as_number(a), _as_number(b)))



def matmul(a, b):
    """Matrix product with numpy's rules: batch dimensions broadcast, a 1-D operand is a
    row (first) or a column (second) whose added axis is removed.  ``(B, T, D) @ (D, E)``
    folds the batch into the rows: one 2-D matmul, as PyTorch does.

    >>> from compiler import Input, ops as F
    >>> (Input("q", ("B", 4, 5, 8)) @ Input("k", ("B", 4, 8, 5))).shape
    (B, 4, 5, 5)
    """
    a, b = as_node(a), as_node(b)
    for operand in (a, b):
        if operand.ndim == 0:
            raise GradcError(f"matmul needs operands of at least one dimension, got "
                             f"{fmt(a.shape)} @ {fmt(b.shape)}", where=user_location())
    if a.ndim == 1:  # (with a 1-D b too: a dot product, of shape ())
        inner = matmul(reshape(a, (1,) + a.shape), b)
        return reshape(inner, inner.shape[:-1] if b.ndim == 1 else inner.shape[:-2] + inner.shape[-1:])
    if b.ndim == 1:
        return reshape(matmul(a, reshape(b, b.shape + (1,))), a.shape[:-1])
    if a.ndim > 2 and b.ndim == 2 and a.shape[-1] == b.shape[0]:
        rows = reshape(a, (numel(a.shape[:-1]), a.shape[-1]))
        return reshape(make("matmul", (rows, b)), a.shape[:-1] + b.shape[-1:])
    return make("matmul", (a, b))


def swap_last(x):
    """``x`` with its last two axes swapped (a view): the transpose of a batch of matrices."""
    perm = tuple(range(x.ndim - 2)) + (x.ndim - 1, x.ndim - 2)
    return transpose(x, perm)


def transpose(x, axes=None):
    """Permute axes (default: reverse them); ``x.T`` for a matrix."""
    x = as_node(x)
    perm = tuple(reversed(range(x.ndim))) if axes is None else tuple(_axis(a, x) for a in axes)
    if len(perm) == x.ndim and x.op == "transpose":  # a permutation of a permutation: one
        outer = x.attr("perm")
        x, perm = x.inputs[0], tuple(outer[p] for p in perm)
    if perm == tuple(range(x.ndim)):
        return x
    return make("transpose", (x,), perm=perm)


def reshape(x, shape):
    """Same elements in a new shape; one dimension may be -1."""
    x = as_node(x)
    if isinstance(shape, (int, str)):
        shape = (shape,)
    shape = list(shape)
    if shape.count(-1) == 1:
        known = numel([d for d in as_shape([d for d in shape if d != -1])])
        shape[shape.index(-1)] = sympy.simplify(sympy.sympify(numel(x.shape)) / known)
    shape = as_shape(shape)
    if x.op == "reshape":  # a reshape of a reshape: one
        x = x.inputs[0]
    if shape == x.shape:
        return x
    return make("reshape", (x,), shape=shape)


def broadcast_to(x, shape):
    x = as_node(x)
    shape = as_shape(shape)
    if shape == x.shape:
        return x
    return make("broadcast_to", (x,), shape=shape)


def unbroadcast(g, shape):
    """Sum ``g`` down to ``shape``: the adjoint of numpy broadcasting."""
    shape = as_shape(shape)
    if g.shape == shape:
        return g
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, d in enumerate(shape) if d == 1 and g.shape[lead + i] != 1)
    return reshape(sum(g, axes, keepdims=True), shape)


def _axis(a, x):
    if not isinstance(a, (int, np.integer)) or not -x.ndim <= a < builtins.max(x.ndim, 1):
        raise GradcError(f"axis {a!r} is out of range for shape {fmt(x.shape)}",
                         where=user_location())
    return int(a) % builtins.max(x.ndim, 1)


def axes_of(axis, x):
    """The sorted axes ``axis`` names; of a 0-d tensor, axis 0 or -1 is no axis (PyTorch)."""
    if axis is None:
        return tuple(range(x.ndim))
    if isinstance(axis, (int, np.integer)):
        axis = (axis,)
    if x.ndim == 0:
        for a in axis:
            if not isinstance(a, (int, np.integer)) or a not in (0, -1):
                raise GradcError(f"axis {a!r} is out of range for a 0-d tensor",
                                 where=user_location())
        return ()
    return tuple(sorted({_axis(a, x) for a in axis}))


def _reduce(op, x, axis, keepdims):
    x = as_node(x)
    axes = axes_of(axis, x)
    if not axes:
        return x
    return make(op, (x,), axes=axes, keepdims=bool(keepdims))


def sum(x, axis=None, keepdims=False):  # noqa: A001
    return _reduce("sum", x, axis, keepdims)


def max(x, axis=None, keepdims=False):  # noqa: A001
    """Largest element over axes; tied maxima share the gradient equally."""
    x = as_node(x)
    if any(x.shape[a] == 0 for a in axes_of(axis, x)):
        raise GradcError(f"max over an empty axis of shape {fmt(x.shape)} has no value "
                         "(as in PyTorch)", where=user_location())
    return _reduce("max", x, axis, keepdims)


def logsumexp(x, axis=None, keepdims=False):
    """``log(sum(exp(x)))`` over axes, without overflow."""
    return _reduce("logsumexp", x, axis, keepdims)


def mean(x, axis=None, keepdims=False):
    x = as_node(x)
    axes = axes_of(axis, x)
    count = numel([x.shape[a] for a in axes])
    return sum(x, axes, keepdims) * const(1 / sympy.sympify(count))


def dropout(x, rate=0.5, salt=None):
    """Zero each element with probability ``rate`` while training (scaling the rest by
    ``1/(1 - rate)``); the identity in ``predict`` and evaluation.

    Each call draws its own mask: ``salt`` numbers it, and the ``Model`` numbers
    the calls without one 1, 2, ... in graph order; masks are reproducible from
    the training seed and step.
    """
    if not isinstance(rate, (int, float)) or not 0 <= rate < 1:
        raise GradcError(f"dropout rate must be in [0, 1), got {rate!r}", where=user_location())
    x = as_node(x)
    if rate == 0:
        return x
    if salt is None:
        salt = Unnamed("salt")
    elif not isinstance(salt, Unnamed):
        salt = int(salt)
    return make("dropout", (x,), rate=float(rate), salt=salt)


def one_hot(labels, n):
    """Integer labels of shape S -> float rows of shape S + (n,)."""
    if not isinstance(n, int) or n < 1:
        raise GradcError(f"one_hot needs a positive class count, got {n!r}", where=user_location())
    return make("one_hot", (as_node(labels),), n=n)
