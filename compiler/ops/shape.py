"""Ops that move or repeat data without arithmetic: reshape, broadcast_to, one_hot."""
import sympy

from compiler.ops import api as F
from compiler.ops.registry import OpDef, paren, register
from compiler.shapes import as_shape, broadcast_shapes, fmt, numel
from runtime.errors import GradcError


def shape_code(shape):
    """A shape as Python source, with symbols as the names bound in generated code."""
    inner = ", ".join(str(d) for d in shape)
    return f"({inner},)" if len(shape) == 1 else f"({inner})"


def _reshape_shape(inputs, attrs):
    (x,) = inputs
    new = as_shape(attrs["shape"])
    if sympy.expand(sympy.sympify(numel(x.shape)) - numel(new)) != 0:
        raise ValueError(f"cannot reshape {fmt(x.shape)} to {fmt(new)}")
    return new


register(OpDef("reshape", "shape", shape=_reshape_shape, dtype=lambda i, a: i[0].dtype,
               vjp=lambda node, g: [F.reshape(g, node.inputs[0].shape)],
               jvp=lambda node, t: F.reshape(t[0], node.shape),
               numpy=lambda args, attrs: f"{paren(args[0])}.reshape({shape_code(attrs['shape'])})",
               doc="same elements, new shape", flops=0))


def _broadcast_to_shape(inputs, attrs):
    (x,) = inputs
    target = as_shape(attrs["shape"])
    try:
        fits = broadcast_shapes(x.shape, target) == target
    except ValueError:
        fits = False
    if not fits:
        raise ValueError(f"cannot broadcast {fmt(x.shape)} to {fmt(target)}")
    return target


register(OpDef("broadcast_to", "shape", shape=_broadcast_to_shape, dtype=lambda i, a: i[0].dtype,
               vjp=lambda node, g: [F.unbroadcast(g, node.inputs[0].shape)],
               jvp=lambda node, t: F.broadcast_to(t[0], node.shape),
               numpy=lambda args, attrs: f"numpy.broadcast_to({args[0]}, {shape_code(attrs['shape'])})",
               doc="repeat along new or unit axes (a view)", flops=0))


def _one_hot_dtype(inputs, attrs):
    if inputs[0].dtype != "int":
        raise GradcError(f"wrong dtype: one_hot needs integer labels, got {inputs[0].dtype}")
    return "float"


register(OpDef("one_hot", "shape", shape=lambda i, a: i[0].shape + (a["n"],), dtype=_one_hot_dtype,
               numpy=lambda args, attrs: f"_rt.one_hot({args[0]}, {attrs['n']}, DTYPE)",
               differentiable=False, doc="integer labels -> rows of 0/1",
               flops=1))  # one compare per output element
