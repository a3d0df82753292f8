"""Elementwise ops: each is a sympy expression of its scalar inputs.

Their derivatives are never written by hand: ``compiler.autodiff`` takes
``sympy.diff`` of ``scalar`` and rewrites it with values already computed.
Shapes broadcast as in numpy.
"""
import sympy

from compiler.ops import scalar as S
from compiler.ops.registry import OpDef, register
from compiler.shapes import broadcast_shapes
from runtime.errors import GradcError


def _broadcast(inputs, attrs):
    return broadcast_shapes(*(i.shape for i in inputs))


def _describe(node):
    return f"{node.op} {node.name!r}" if node.name else node.op


def _float_dtype(opname):
    def rule(inputs, attrs):
        for i in inputs:
            if i.dtype == "int":
                raise GradcError(f"wrong dtype: {opname} needs float inputs, "
                                 f"got {i.attr('dtype', 'int')} {_describe(i)}")
        return "float"

    return rule


def _compare_dtype(inputs, attrs):
    for i in inputs:
        if i.dtype == "bool":
            raise GradcError("wrong dtype: cannot order booleans")
    return "bool"


def _where_dtype(inputs, attrs):
    c, a, b = inputs
    if c.dtype != "bool":
        raise GradcError(f"wrong dtype: where needs a boolean condition, got {c.dtype}")
    _float_dtype("where")(inputs[1:], attrs)
    return "float"


def _elementwise(name, scalar, dtype=None, doc="", differentiable=True):
    register(OpDef(name=name, kind="elementwise", shape=_broadcast,
                   dtype=dtype or _float_dtype(name), scalar=scalar,
                   differentiable=differentiable, doc=doc))


# Arithmetic
_elementwise("add", lambda a, b: a + b, doc="a + b")
_elementwise("sub", lambda a, b: a - b, doc="a - b")
_elementwise("mul", lambda a, b: a * b, doc="a * b")
_elementwise("div", lambda a, b: a / b, doc="a / b")
_elementwise("neg", lambda a: -a, doc="-a")
_elementwise("pow", S.Power, doc="a ** b (derivatives at a == 0 as PyTorch)")
# Transcendentals
_elementwise("exp", sympy.exp)
_elementwise("log", sympy.log)
_elementwise("sqrt", sympy.sqrt)
_elementwise("sin", sympy.sin)
_elementwise("cos", sympy.cos)
_elementwise("tanh", sympy.tanh)
# Activations and friends
_elementwise("sigmoid", S.Sigmoid, doc="1 / (1 + exp(-a)), overflow-free")
_elementwise("softplus", S.Softplus, doc="log(1 + exp(a)), overflow-free")
_elementwise("relu", S.Relu, doc="max(a, 0); derivative 0 at 0")
_elementwise("abs", sympy.Abs, doc="|a|; derivative sign(a), 0 at 0")
_elementwise("sign", sympy.sign, doc="-1, 0 or 1; derivative 0")
_elementwise("heaviside", lambda a, at0: sympy.Heaviside(a, at0),
             doc="1 where a > 0, at0 where a == 0, else 0; derivative 0")
_elementwise("maximum", S.Maximum, doc="elementwise max; ties split the gradient")
_elementwise("minimum", S.Minimum, doc="elementwise min; ties split the gradient")
_elementwise("stop_gradient", S.StopGradient, doc="identity with zero derivative",
             differentiable=False)
# Comparisons give booleans and have no derivative.
for _name, _fn in (("greater", S.Greater), ("greater_equal", S.GreaterEqual),
                   ("less", S.Less), ("less_equal", S.LessEqual), ("equal", S.Equal),
                   ("not_equal", S.NotEqual)):
    _elementwise(_name, _fn, dtype=_compare_dtype, differentiable=False)
_elementwise("where", S.Where, dtype=_where_dtype, doc="a where c else b")
