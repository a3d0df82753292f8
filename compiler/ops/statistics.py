"""Statistics over axes: ``var``, ``std``, ``min``, ``argmax``, and ``layer_norm``.

``var``, ``std``, ``min`` and ``layer_norm`` are composites (their derivatives come
from the primitives they are written in); ``argmax`` is a primitive without a
derivative whose result is an integer tensor.
"""
import numpy as np
import sympy

from compiler.graph import make, user_location
from compiler.ops import api as F
from compiler.ops import scalar as S
from compiler.ops.registry import OpDef, register
from compiler.shapes import fmt, numel
from runtime.errors import GradcError


def var(x, axis=None, correction=1, keepdims=False):
    """``torch.var``: the mean squared deviation from the mean over ``axis``, divided by
    ``N - correction`` (``correction=1``: the unbiased estimate, ``0``: the population's);
    by ``max(0, N - correction)``, so too few elements give NaN or inf, as PyTorch."""
    x = F.as_node(x)
    axes = F.axes_of(axis, x)
    count = numel([x.shape[a] for a in axes])
    centred = x - F.mean(x, axes, keepdims=True)
    total = F.sum(centred * centred, axes, keepdims=keepdims)
    left = sympy.sympify(count - correction)
    if left.is_number and left <= 0:
        return total * F.const(float("inf"))  # 0 * inf is NaN, as 0 / 0
    return total * F.const(1 / left)


def std(x, axis=None, correction=1, keepdims=False):
    """``torch.std``: the square root of ``var``; where the variance is 0 the gradient is 0,
    as PyTorch's (the square root's slope there is infinite), written as a selection:
    ``where(v == 0, 0, sqrt(where(v == 0, 1, v)))``."""
    v = var(x, axis, correction, keepdims)
    none = F.equal(v, 0.0)
    return F.where(none, 0.0, F.sqrt(F.where(none, 1.0, v)))


def min(x, axis=None, keepdims=False):  # noqa: A001
    """Smallest element over axes (``torch.amin``); tied minima share the gradient equally."""
    x = F.as_node(x)
    if any(x.shape[a] == 0 for a in F.axes_of(axis, x)):
        raise GradcError(f"min over an empty axis of shape {fmt(x.shape)} has no value "
                         "(as in PyTorch)", where=user_location())
    return -F.max(-x, axis, keepdims)


def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    """``torch.nn.functional.layer_norm``: ``x`` normalised over its last axes (those of
    ``normalized_shape``) to mean 0 and variance 1 (the population's, plus ``eps``), then
    scaled by ``weight`` and shifted by ``bias``."""
    x = F.as_node(x)
    normalized_shape = (normalized_shape,) if isinstance(normalized_shape, int) else \
        tuple(normalized_shape)
    k = len(normalized_shape)
    if k == 0 or k > x.ndim or tuple(x.shape[x.ndim - k:]) != normalized_shape:
        raise GradcError(f"layer_norm over {normalized_shape} does not fit the last axes of "
                         f"{fmt(x.shape)}", where=user_location())
    axes = tuple(range(x.ndim - k, x.ndim))
    centred = x - F.mean(x, axes, keepdims=True)
    out = centred / F.sqrt(F.mean(centred * centred, axes, keepdims=True) + eps)
    if weight is not None:
        out = out * weight
    return out + bias if bias is not None else out


# -- argmax ----------------------------------------------------------------------------

def _argmax_shape(inputs, attrs):
    (x,), axis = inputs, attrs["axis"]
    if not 0 <= axis < x.ndim or x.shape[axis] == 0:
        raise GradcError(f"argmax over axis {axis} of {fmt(x.shape)}: no such axis or no element")
    return x.shape[:axis] + x.shape[axis + 1:]


def _argmax_dtype(inputs, attrs):
    if inputs[0].dtype != "float":
        raise GradcError(f"wrong dtype: argmax needs float input, got {inputs[0].dtype}")
    return "int"


def _argmax_triton(node, read, index):
    """A loop along the axis keeping the first largest value (NaN counts as largest)."""
    (x,), axis = node.inputs, node.attr("axis")
    out = [f"i{d}" for d in range(node.ndim)]

    def at(r):
        place = r if node.ndim else f"{r} + offs * 0"  # a 0-d result: a block of one
        return out[:axis] + [place] + out[axis:]

    n, host, extra = x.shape[axis], [], []
    if not isinstance(n, int):
        host, extra, n = [f"n_axis = {n}"], ["n_axis"], "n_axis"
    return {"host": host, "extra": extra, "body": [
        f"best = {read(x, at=at('0'))}",
        "arg = tl.zeros([BLOCK], tl.int64)",
        f"for r in range(1, {n}):",
        f"    v = {read(x, at=at('r'))}",
        "    better = (v > best) | ((v != v) & (best == best))",
        "    best = tl.where(better, v, best)",
        "    arg = tl.where(better, r, arg)",
        "result = arg"]}


def _argmax_scalarize(node, args, shape):
    (x,), axis = args, node.attr("axis")
    moved = np.moveaxis(x, axis, -1)
    out = np.empty(shape, dtype=object)
    for pos in np.ndindex(*shape):
        best, arg = moved[pos][0], sympy.S.Zero
        for j, v in enumerate(moved[pos][1:], start=1):
            arg = S.Where(S.Greater(v, best), j, arg)
            best = S.Maximum(v, best)
        out[pos] = arg
    return out


register(OpDef(
    "argmax", "shape", shape=_argmax_shape, dtype=_argmax_dtype, differentiable=False,
    numpy=lambda node, args: f"numpy.argmax({args[0]}, axis={node.attr('axis')})",
    triton=_argmax_triton, scalarize=_argmax_scalarize,
    flops=lambda node: numel(node.inputs[0].shape),  # one compare per element
    doc="the index of the first largest element along an axis (an integer tensor)"))


def argmax(x, axis=None, keepdims=False):
    """``torch.argmax``: the index of the first largest element along ``axis`` (of the
    flattened ``x`` when ``axis`` is None), an integer tensor with no gradient."""
    x = F.as_node(x)
    if axis is None:
        flat = make("argmax", (F.reshape(x, (-1,)),), axis=0)
        return F.reshape(flat, (1,) * x.ndim) if keepdims else flat
    if x.ndim == 0:
        F.axes_of(axis, x)
        return make("argmax", (F.reshape(x, (1,)),), axis=0)
    axis = F._axis(axis, x)
    out = make("argmax", (x,), axis=axis)
    if keepdims:
        out = F.reshape(out, x.shape[:axis] + (1,) + x.shape[axis + 1:])
    return out

