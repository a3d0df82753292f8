"""Leaves of the graph: data inputs, trainable parameters and constants."""
from compiler.ops.registry import OpDef, register
from compiler.shapes import as_shape


def _input_dtype(inputs, attrs):
    dtype = attrs["dtype"]
    return "float" if dtype.startswith("float") else ("bool" if dtype == "bool" else "int")


register(OpDef("input", "leaf", shape=lambda i, a: as_shape(a["shape"]), dtype=_input_dtype,
               doc="a data input, fed by name at run time", flops=0))
register(OpDef("param", "leaf", shape=lambda i, a: as_shape(a["shape"]),
               dtype=lambda i, a: "float", doc="a trainable parameter", flops=0))
register(OpDef("tangent", "leaf", shape=lambda i, a: as_shape(a["shape"]),
               dtype=lambda i, a: "float",
               doc="a direction in parameter space, fed by parameter name (forward mode, hvp)",
               flops=0))
register(OpDef("const", "leaf", shape=lambda i, a: (), dtype=lambda i, a: "float",
               doc="a scalar constant (a number or a formula in the shape symbols)", flops=0))
