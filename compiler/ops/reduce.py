"""Reductions over axes: sum, max, and the numerically stable logsumexp."""
import functools

import numpy as np
import sympy

from compiler.ops import api as F
from compiler.ops import scalar as S
from compiler.ops.registry import OpDef, paren, register
from compiler.shapes import fmt, numel
from runtime.errors import GradcError


def _reduce_shape(inputs, attrs):
    (x,) = inputs
    axes = attrs["axes"]
    for a in axes:
        if not 0 <= a < x.ndim:
            raise GradcError(f"reduction over axis {a} of a {x.ndim}-D shape {fmt(x.shape)}")
    if attrs["keepdims"]:
        return tuple(1 if i in axes else d for i, d in enumerate(x.shape))
    return tuple(d for i, d in enumerate(x.shape) if i not in axes)


def _float(inputs, attrs):
    if inputs[0].dtype != "float":
        raise GradcError(f"wrong dtype: reductions need float input, got {inputs[0].dtype}")
    return "float"


def kept(node):
    """A reduction's result reshaped to keep the reduced axes as 1s, for broadcasting back."""
    x = node.inputs[0]
    axes = node.attr("axes")
    shape = tuple(1 if i in axes else d for i, d in enumerate(x.shape))
    return F.reshape(node, shape)


def _sum_vjp(node, g):
    gk = g if g.ndim == 0 else F.reshape(g, kept(node).shape)
    return [F.broadcast_to(gk, node.inputs[0].shape)]


def _max_vjp(node, g):
    x = node.inputs[0]
    hit = F.where(F.equal(x, kept(node)), 1.0, 0.0)
    count = F.sum(hit, node.attr("axes"), keepdims=True)
    return [F.reshape(g, kept(node).shape) * hit / count]


def _logsumexp_vjp(node, g):
    x = node.inputs[0]
    return [F.reshape(g, kept(node).shape) * F.exp(x - kept(node))]


def _reduce_like(node, x):
    return F.sum(x, node.attr("axes"), keepdims=node.attr("keepdims"))


def _sum_jvp(node, t):
    return _reduce_like(node, t[0])


def _max_jvp(node, t):
    hit = F.where(F.equal(node.inputs[0], kept(node)), 1.0, 0.0)
    return _reduce_like(node, t[0] * hit) / _reduce_like(node, hit)


def _logsumexp_jvp(node, t):
    return _reduce_like(node, t[0] * F.exp(node.inputs[0] - kept(node)))


FOLD_LIMIT = 16  # a reduction over trailing axes of at most this many elements: folded


def _numpy_reduce(fn, fold=None, rows=None):
    """``x.sum(axis=...)``; over the last axes of at most ``FOLD_LIMIT`` elements (a pooling
    window, a short row), one elementwise ``fold`` per element of them (``_rt.fold_last``);
    over other last axes of a known size (a layer norm's rows), ``rows``, a function of the
    array, the number of axes and keepdims (``_rt.row_sums``)."""
    def emit(node, args):
        axes, keepdims = node.attr("axes"), node.attr("keepdims")
        x = node.inputs[0]
        window = [x.shape[a] for a in axes]
        trailing = axes == tuple(range(x.ndim - len(axes), x.ndim)) and axes and \
            all(isinstance(d, int) for d in window)
        if fold and trailing and 1 <= numel(window) <= FOLD_LIMIT:
            return f"_rt.fold_last({fold}, {args[0]}, {len(axes)}, {keepdims})"
        if rows and trailing and len(axes) < x.ndim:
            return f"{rows}({args[0]}, {len(axes)}, {keepdims})"
        if fn.startswith("."):  # the ndarray method skips numpy's Python-level wrapper
            return f"{paren(args[0])}{fn}(axis={axes}, keepdims={keepdims})"
        return f"{fn}({args[0]}, axis={axes}, keepdims={keepdims})"

    return emit


def _numpy_reduce_out(method):
    """The ndarray method writing into ``out`` (kept axes would need ``out`` shaped so)."""
    def emit(node, args, out):
        if node.attr("keepdims"):
            return None
        return f"{paren(args[0])}{method}(axis={node.attr('axes')}, out={out})"

    return emit


def _scalarize(combine):
    """The reduction of an object array of sympy expressions, ``combine`` folding each group."""
    def scalarize(node, args, shape):
        (x,), axes = args, node.attr("axes")
        moved = np.moveaxis(x, axes, tuple(range(x.ndim - len(axes), x.ndim)))
        lead = moved.shape[:x.ndim - len(axes)]
        flat = moved.reshape(lead + (-1,))
        out = np.empty(lead, dtype=object)
        for idx in np.ndindex(*lead):
            out[idx] = combine(list(flat[idx]))
        return out.reshape(shape)

    return scalarize


# The Triton reduction skeleton's passes (see ``registry``): the sum, the max, and for
# logsumexp the max first, then the sum of exp(x - max).
INF = 'float("inf")'
_SUM = {"init": "0.0", "combine": "acc + tl.where(rmask, v, 0.0)",
        "result": "total = tl.sum(acc, 0)"}
_MAX = {"init": f"-{INF}", "combine": f"_max_nan(acc, tl.where(rmask, v, -{INF}))",
        "result": "total = _nanmax(acc, 0)"}  # (NaN in, NaN out: tl.max would drop it)
_LOGSUMEXP = (  # (a NaN makes the sum NaN: its max may drop it)
    {**_MAX, "result": f"m = tl.max(acc, 0)\n    m = tl.where(m == -{INF}, 0.0, m)"},
    {"init": "0.0", "combine": "acc + tl.where(rmask, tl.exp(v - m), 0.0)",
     "result": "total = tl.log(tl.sum(acc, 0)) + m"})


def _row(combine, init):
    """``triton_row`` of a reduction that folds the masked row with ``combine`` (tl.sum)."""
    def lines(v, out):
        return [f"{out} = {combine}(tl.where(mask, {v}, {init}), axis=1, keep_dims=True)"]

    return lines


def _row_logsumexp(v, out):
    return [f"{out}_max = tl.max(tl.where(mask, {v}, -{INF}), axis=1, keep_dims=True)",
            f"{out}_max = tl.where({out}_max == -{INF}, 0.0, {out}_max)",
            f"{out} = tl.log(tl.sum(tl.where(mask, tl.exp({v} - {out}_max), 0.0), axis=1, "
            f"keep_dims=True)) + {out}_max"]


def _folded(node):
    """One add (or compare) per element folded away: ``numel(in) - numel(out)``."""
    n_in = numel(node.inputs[0].shape)
    return n_in - numel(node.shape) if n_in != 0 else 0


def _logsumexp_flops(node):
    """Subtract the max, exponentiate, sum, log, add the max back."""
    n_in, out = numel(node.inputs[0].shape), numel(node.shape)
    return 2 * _folded(node) + 2 * n_in + 2 * out


register(OpDef("sum", "reduce", shape=_reduce_shape, dtype=_float, vjp=_sum_vjp, jvp=_sum_jvp,
               numpy=_numpy_reduce(".sum", "numpy.add", "_rt.row_sums"),
               numpy_out=_numpy_reduce_out(".sum"),
               scalarize=_scalarize(lambda xs: sympy.Add(*xs)), triton_passes=(_SUM,),
               triton_row=_row("tl.sum", "0.0"), doc="sum over axes", flops=_folded))
register(OpDef("max", "reduce", shape=_reduce_shape, dtype=_float, vjp=_max_vjp, jvp=_max_jvp,
               numpy=_numpy_reduce(".max", "numpy.maximum"), numpy_out=_numpy_reduce_out(".max"),
               scalarize=_scalarize(lambda xs: functools.reduce(S.Maximum, xs)),
               triton_passes=(_MAX,), triton_row=_row("_nanmax", f"-{INF}"),
               doc="max over axes; ties share the gradient",
               flops=_folded))
register(OpDef("logsumexp", "reduce", shape=_reduce_shape, dtype=_float, vjp=_logsumexp_vjp,
               jvp=_logsumexp_jvp, numpy=_numpy_reduce("_rt.logsumexp"),
               scalarize=_scalarize(lambda xs: sympy.log(sympy.Add(*[sympy.exp(x) for x in xs]))),
               triton_passes=_LOGSUMEXP, triton_row=_row_logsumexp,
               doc="log(sum(exp(x))) over axes, stable",
               flops=_logsumexp_flops))


def is_column_sum(node):
    """Whether ``node`` sums a matrix over its rows (``sum(x, 0)``, a bias gradient): fusion
    merges it into the matmul kernel that reads ``x``, which sums the columns as it loads."""
    return node.op == "sum" and node.attr("axes") == (0,) and node.inputs[0].ndim == 2


def leading_sum(node):
    """Whether ``node`` sums its input over its leading axes only (``sum(x, (0, 1))`` of a
    (B, T, D) ``x``: a layer norm's weight gradient), each of the others kept."""
    axes = tuple(node.attr("axes")) if node.op == "sum" else ()
    return bool(axes) and axes == tuple(range(len(axes))) and len(axes) < node.inputs[0].ndim
