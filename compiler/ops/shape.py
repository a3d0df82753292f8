"""Ops that move or repeat data without arithmetic: reshape, broadcast_to, one_hot."""
import numpy as np
import sympy

from compiler.ops import api as F
from compiler.ops.registry import OPS, OpDef, paren, register
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


def _reshape_numpy(node, args):
    if OPS[node.inputs[0].op].numpy_windows:  # a strided view whose copy is slow
        return f"_rt.windows_reshape({args[0]}, {shape_code(node.attr('shape'))})"
    return f"{paren(args[0])}.reshape({shape_code(node.attr('shape'))})"


register(OpDef("reshape", "shape", shape=_reshape_shape, dtype=lambda i, a: i[0].dtype,
               vjp=lambda node, g: [F.reshape(g, node.inputs[0].shape)],
               jvp=lambda node, t: F.reshape(t[0], node.shape),
               numpy=_reshape_numpy, view="relabel",
               scalarize=lambda node, args, shape: np.reshape(args[0], shape),
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
               numpy=lambda node, args:
                   f"numpy.broadcast_to({args[0]}, {shape_code(node.attr('shape'))})",
               view="broadcast",
               scalarize=lambda node, args, shape: np.broadcast_to(args[0], shape),
               doc="repeat along new or unit axes (a view)", flops=0))


def _one_hot_dtype(inputs, attrs):
    if inputs[0].dtype != "int":
        raise GradcError(f"wrong dtype: one_hot needs integer labels, got {inputs[0].dtype}")
    return "float"


def _one_hot_triton(node, read, index):
    """Each label, read with a unit last axis, compared with the class index."""
    labels = read(node.inputs[0], ".unsqueeze(-1)")
    return {"body": [f"result = tl.where({labels} == {index}, 1.0, 0.0)"]}


def _one_hot_scalarize(node, args, shape):
    return (args[0][..., None] == np.arange(node.attr("n"))).astype(int).astype(object)


register(OpDef("one_hot", "shape", shape=lambda i, a: i[0].shape + (a["n"],), dtype=_one_hot_dtype,
               numpy=lambda node, args: f"_rt.one_hot({args[0]}, {node.attr('n')}, DTYPE)",
               triton=_one_hot_triton, scalarize=_one_hot_scalarize,
               differentiable=False, doc="integer labels -> rows of 0/1",
               classes=lambda node: (node.inputs[0], node.attr("n"), None),
               flops=1))  # one compare per output element
