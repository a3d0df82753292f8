"""Leaves of the graph: data inputs, trainable parameters, buffers, tangents and constants.

Code outside ``compiler/ops`` asks which leaf a node is with the predicates below.
"""
from compiler.ops.registry import OpDef, register
from compiler.shapes import as_shape, fmt


def _input_dtype(inputs, attrs):
    dtype = attrs["dtype"]
    return "float" if dtype.startswith("float") else ("bool" if dtype == "bool" else "int")


def _fed_text(node):
    return f"{node.op} {node.name} : {fmt(node.shape)} {node.attr('dtype', node.dtype)}"


register(OpDef("input", "leaf", shape=lambda i, a: as_shape(a["shape"]), dtype=_input_dtype,
               doc="a data input, fed by name at run time", flops=0, feed="batch",
               text=_fed_text))
register(OpDef("param", "leaf", shape=lambda i, a: as_shape(a["shape"]),
               dtype=lambda i, a: "float", doc="a trainable parameter", flops=0, feed="params",
               text=lambda n: f"param {n.name} : {fmt(n.shape)} init={n.attr('init')}"))
register(OpDef("buffer", "leaf", shape=lambda i, a: as_shape(a["shape"]),
               dtype=lambda i, a: "float",
               doc="state fed with the parameters but not trained (running statistics)",
               flops=0, feed="params",
               text=lambda n: f"buffer {n.name} : {fmt(n.shape)} init={n.attr('init')}"))
register(OpDef("tangent", "leaf", shape=lambda i, a: as_shape(a["shape"]),
               dtype=lambda i, a: "float",
               doc="a direction in parameter space, fed by parameter name (forward mode, hvp)",
               flops=0, feed="tangents", text=_fed_text))
register(OpDef("const", "leaf", shape=lambda i, a: (), dtype=lambda i, a: "float",
               doc="a scalar constant (a number or a formula in the shape symbols)", flops=0,
               text=lambda n: f"const {n.attr('value')} : {fmt(n.shape)}"))


def is_input(node):
    """Whether ``node`` is a data input."""
    return node.op == "input"


def is_param(node):
    """Whether ``node`` is a trainable parameter."""
    return node.op == "param"


def is_buffer(node):
    """Whether ``node`` is a buffer: state fed with the parameters but not trained, which
    a training step may update (batch norm's running statistics)."""
    return node.op == "buffer"


def is_tangent(node):
    """Whether ``node`` is a tangent (a direction fed to ``jvp`` and ``hvp``)."""
    return node.op == "tangent"


def is_const(node):
    """Whether ``node`` is a constant (inlined into the code that uses it)."""
    return node.op == "const"
