"""Dropout: a random op whose mask comes from a counter-based hash, not a stateful RNG.

The mask of element ``i`` is a pure function of ``(seed, step, salt, i)``
(``runtime.npkernels.dropout_keep``), so every backend draws the same mask, the
backward pass redraws it instead of storing it, and evaluation (no ``rng``) is
the identity.
"""
from compiler.ops import api as F
from compiler.ops.registry import OpDef, register
from runtime.errors import GradcError


def _dtype(inputs, attrs):
    if inputs[0].dtype != "float":
        raise GradcError(f"wrong dtype: dropout needs float input, got {inputs[0].dtype}")
    return "float"


def _triton(node, read, index):
    """The mask drawn on the device from the same hash; no ``rng``: the identity."""
    x, rate = read(node.inputs[0]), node.attr("rate")
    return {"host": ["if rng is None:", f"    return _rt.into(out, {x})",
                     f"key = _rt.dropout_key(rng[0], rng[1], {node.attr('salt')})",
                     f"threshold = _rt.threshold({rate!r})"],
            "extra": ["key", "threshold"],
            "body": ["h = _mix32(offs.to(tl.int64) ^ key)",
                     "keep = tl.where(h >= threshold, 1.0, 0.0)",
                     f"result = {x} * keep / {1.0 - rate!r}"]}


register(OpDef(
    "dropout", "random", shape=lambda i, a: i[0].shape, dtype=_dtype,
    # linear in x with the same mask: the vjp is dropout of the gradient with the same salt
    vjp=lambda node, g: [F.dropout(g, node.attr("rate"), salt=node.attr("salt"))],
    jvp=lambda node, t: F.dropout(t[0], node.attr("rate"), salt=node.attr("salt")),
    numpy=lambda node, args:
        f"_rt.dropout({args[0]}, {node.attr('rate')!r}, {node.attr('salt')}, rng)",
    triton=_triton,
    scalarize=lambda node, args, shape: args[0],  # the naive baseline evaluates: no mask
    doc="zero each element with probability rate while training, scale the rest by 1/(1-rate)",
    flops=2))  # the mask multiply and the scale
