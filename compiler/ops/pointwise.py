"""Elementwise ops: each is a sympy expression of its scalar inputs.

Their derivatives are never written by hand: ``compiler.autodiff`` takes
``sympy.diff`` of ``scalar`` and rewrites it with values already computed.
Shapes broadcast as in numpy.  An op whose body introduces a sympy function names
it (``function``) with its cost and how each backend prints it; an op whose body is
built from other functions (``gelu``, ``softsign``) needs nothing more: adding one
is one line here (see ``compiler/ops/README.md``).
"""
import functools
import inspect

import sympy
from sympy.codegen.cfunctions import expm1, log1p
from sympy.printing.precedence import PRECEDENCE

from compiler.ops import scalar as S
from compiler.graph import user_location
from compiler.ops.api import elementwise_function
from compiler.ops.registry import OPS, OpDef, functions, register
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


def _elementwise(name, scalar, dtype=None, doc="", differentiable=True, flops=None,
                 function=None, function_flops=1, numpy_code=None, triton_code=None, arity=1):
    register(OpDef(name=name, kind="elementwise", shape=_broadcast,
                   dtype=dtype or _float_dtype(name), scalar=scalar, arity=arity,
                   differentiable=differentiable, doc=doc, flops=flops, function=function,
                   function_flops=function_flops, numpy_code=numpy_code,
                   triton_code=triton_code))


# How the printers write a function: a format string over the printed arguments, or a
# function of the printer and the arguments (sympy expressions).
def _power(p, a, b):
    return p._print_Pow(sympy.Pow(a, b, evaluate=False))


def _numpy_sigmoid(p, x):
    return f"numpy.exp(-numpy.logaddexp(0, -{p.parenthesize(x, PRECEDENCE['Mul'])}))"


def _numpy_heaviside(p, x, at0):
    if at0 == 0:  # a comparison is ~50x faster than numpy.heaviside
        return f"({p.parenthesize(x, PRECEDENCE['Relational'])} > 0)"
    if at0 == 1:
        return f"({p.parenthesize(x, PRECEDENCE['Relational'])} >= 0)"
    return f"numpy.heaviside({p._print(x)}, {p._print(at0)})"


def _numpy_where(p, c, a, b):
    if a == 1 and b == 0 and isinstance(c, S.Compare):  # a boolean as 1s and 0s: 20x faster
        # than numpy.where (another condition, a float, means "not 0": numpy.where then)
        return f"numpy.asarray({p._print(c)}, dtype=DTYPE)"
    if a.is_Number and b.is_Number:  # keep the kernel's dtype when both branches are numbers
        return f"numpy.where({p._print(c)}, DTYPE({p._print(a)}), DTYPE({p._print(b)}))"
    if b == 0 or a == 0:  # a selection (a gradient through relu or where): 10x numpy.where
        return f"_rt.select({p._print(c)}, {p._print(a if b == 0 else b)}{'' if b == 0 else ', False'})"
    return f"numpy.where({p._print(c)}, {p._print(a)}, {p._print(b)})"


def _triton_sign(p, x):
    x = p._print(x)
    return f"tl.where({x} > 0, 1.0, tl.where({x} < 0, -1.0, 0.0))"


def _compare(symbol, numpy):
    precedence = 1000 if numpy else PRECEDENCE["Relational"]  # numpy: always parenthesized
    return lambda p, a, b: f"({p.parenthesize(a, precedence)} {symbol} {p.parenthesize(b, precedence)})"


# Arithmetic: one flop per element whatever the constants (0.5 / x is one division);
# a power's body is counted (x**2: one multiply, x**0.5: one sqrt)
_elementwise("add", lambda a, b: a + b, doc="a + b", flops=1, arity=2)
_elementwise("sub", lambda a, b: a - b, doc="a - b", flops=1, arity=2)
_elementwise("mul", lambda a, b: a * b, doc="a * b", flops=1, arity=2)
_elementwise("div", lambda a, b: a / b, doc="a / b", flops=1, arity=2)
_elementwise("neg", lambda a: -a, doc="-a", flops=1)
_elementwise("pow", S.Power, doc="a ** b (derivatives at a == 0 as PyTorch)",
             function=S.Power, numpy_code=_power, triton_code=_power, arity=2)
# Transcendentals (sqrt is the power 1/2)
_elementwise("exp", sympy.exp, function=sympy.exp, numpy_code="numpy.exp({0})",
             triton_code="tl.exp({0})")
_elementwise("log", sympy.log, function=sympy.log, numpy_code="numpy.log({0})",
             triton_code="tl.log({0})")
_elementwise("sqrt", sympy.sqrt)
_elementwise("sin", sympy.sin, function=sympy.sin, numpy_code="numpy.sin({0})",
             triton_code="tl.sin({0})")
_elementwise("cos", sympy.cos, function=sympy.cos, numpy_code="numpy.cos({0})",
             triton_code="tl.cos({0})")
_elementwise("tanh", sympy.tanh, function=sympy.tanh, numpy_code="numpy.tanh({0})",
             triton_code="_tanh({0})")
_elementwise("erf", sympy.erf, doc="the error function", function=sympy.erf,
             numpy_code="_rt.erf({0})", triton_code="tl.erf({0})")
_elementwise("expm1", expm1, doc="exp(a) - 1, accurate near 0", function=expm1,
             numpy_code="numpy.expm1({0})", triton_code="_expm1({0})")
_elementwise("log1p", log1p, doc="log(1 + a), accurate near 0", function=log1p,
             numpy_code="numpy.log1p({0})", triton_code="_log1p({0})")
# Activations and friends.  Triton's maximum and minimum drop a NaN unless told not to;
# numpy's and PyTorch's give NaN (a diverging model must not look fine on one backend)
_NAN = "propagate_nan=tl.PropagateNan.ALL"
_elementwise("sigmoid", S.Sigmoid, doc="1 / (1 + exp(-a)), overflow-free", function=S.Sigmoid,
             function_flops=4, numpy_code=_numpy_sigmoid, triton_code="_sigmoid({0})")
_elementwise("softplus", S.Softplus, doc="log(1 + exp(a)), overflow-free", function=S.Softplus,
             function_flops=3, numpy_code="numpy.logaddexp(0, {0})", triton_code="_softplus({0})")
_elementwise("relu", S.Relu, doc="max(a, 0); derivative 0 at 0", function=S.Relu,
             numpy_code="_rt.relu({0})", triton_code=f"tl.maximum({{0}}, 0.0, {_NAN})")
_elementwise("ndtr", lambda a: (1 + sympy.erf(a / sympy.sqrt(2))) / 2,
             doc="Phi(a), the standard normal distribution function (torch.special.ndtr)")
_elementwise("gelu_tanh", lambda a: a / 2 * (1 + sympy.tanh(
    sympy.Float("0.79788456080286535588", 17) * (a + sympy.Float("0.044715", 17) * a**3))),
    doc="a/2 * (1 + tanh(sqrt(2/pi) * (a + 0.044715 a^3))), gelu's tanh approximation")
_elementwise("softsign", lambda a: a / (1 + sympy.Abs(a)), doc="a / (1 + |a|)")
_elementwise("abs", sympy.Abs, doc="|a|; derivative sign(a), 0 at 0", function=sympy.Abs,
             numpy_code="numpy.abs({0})", triton_code="tl.abs({0})")
_elementwise("sign", sympy.sign, doc="-1, 0 or 1; derivative 0", function=sympy.sign,
             numpy_code="numpy.sign({0})", triton_code=_triton_sign)
_elementwise("heaviside", lambda a, at0: sympy.Heaviside(a, at0),
             doc="1 where a > 0, at0 where a == 0, else 0; derivative 0",
             function=sympy.Heaviside, numpy_code=_numpy_heaviside,
             triton_code="tl.where({0} > 0, 1.0, tl.where({0} == 0, {1}, 0.0))")
_elementwise("maximum", S.Maximum, doc="elementwise max; ties split the gradient",
             function=S.Maximum, numpy_code="numpy.maximum({0}, {1})",
             triton_code=f"tl.maximum({{0}}, {{1}}, {_NAN})", arity=2)
_elementwise("minimum", S.Minimum, doc="elementwise min; ties split the gradient",
             function=S.Minimum, numpy_code="numpy.minimum({0}, {1})",
             triton_code=f"tl.minimum({{0}}, {{1}}, {_NAN})", arity=2)
_elementwise("stop_gradient", S.StopGradient, doc="identity with zero derivative",
             differentiable=False, flops=0, function=S.StopGradient, function_flops=0,
             numpy_code="({0})", triton_code="({0})")  # in parentheses: 0.5*(a + b)
# Comparisons give booleans and have no derivative.
for _name, _fn in (("greater", S.Greater), ("greater_equal", S.GreaterEqual),
                   ("less", S.Less), ("less_equal", S.LessEqual), ("equal", S.Equal),
                   ("not_equal", S.NotEqual)):
    _elementwise(_name, _fn, dtype=_compare_dtype, differentiable=False, function=_fn,
                 numpy_code=_compare(_fn.symbol, numpy=True),
                 triton_code=_compare(_fn.symbol, numpy=False), arity=2)
_elementwise("where", S.Where, dtype=_where_dtype, doc="a where c else b", function=S.Where,
             numpy_code=_numpy_where, triton_code="tl.where({0}, {1}, {2})", arity=3)


# User-defined elementwise ops: a body of the functions above, nothing else to write.
_SYMBOLS = tuple(sympy.Symbol(f"a{i}", real=True) for i in range(4))
_STRUCTURE = (sympy.Add, sympy.Mul, sympy.Pow, sympy.Symbol, sympy.Number)


def define(name, fn, doc=""):
    """A new elementwise op from ``fn``, a function of sympy symbols returning a sympy
    expression; returns the function that applies it (like ``F.tanh``).

    Its derivatives of every order come from ``sympy.diff``; it fuses into kernels,
    prints on both backends, and counts its flops from its body.  The body may use
    ``+ - * / **``, numbers and the functions of gradc's elementwise ops (``sympy.exp``,
    ``sympy.Abs``, ``sympy.erf``, ...).  Defining the same op again (same name, same
    body) returns it again.

    >>> import sympy
    >>> from compiler import Input, ops as F
    >>> softsign2 = F.elementwise("softsign2", lambda a: a / (1 + sympy.Abs(a)))
    >>> softsign2(Input("x", ("B", 3))).op
    'softsign2'
    """
    where = user_location()

    def fail(problem):
        return GradcError(f"elementwise op {name!r}: {problem}", where=where)

    if not isinstance(name, str) or not name.isidentifier() or name.startswith("_"):
        raise GradcError(f"an elementwise op needs a name that is a Python identifier, "
                         f"got {name!r}", where=where)
    try:
        nargs = len(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        raise fail("its body must be a function of sympy symbols") from None
    if not 1 <= nargs <= len(_SYMBOLS):
        raise fail(f"its body takes {nargs} arguments; an op takes 1 to {len(_SYMBOLS)}")
    syms = _SYMBOLS[:nargs]
    try:
        body = sympy.sympify(fn(*syms))
    except Exception as e:  # the user's function failed on symbols: say how, in one line
        raise fail(f"its body failed on sympy symbols: {type(e).__name__}: {e}") from None
    body = _checked_body(body, syms, fail)
    existing = OPS.get(name)
    if existing is not None:
        if existing.user_defined and existing.scalar(*syms) == body:
            return elementwise_function(name)
        raise fail("that name is already an op" + (" with another body" if existing.user_defined
                                                    else " of gradc's own"))
    register(OpDef(name=name, kind="elementwise", shape=_broadcast, dtype=_float_dtype(name),
                   scalar=_substitute(body, syms), doc=doc or f"{name}: {body}",
                   user_defined=True, arity=nargs))
    return elementwise_function(name)


def _substitute(body, syms):
    return lambda *args: body.xreplace(dict(zip(syms, args)))


def _checked_body(body, syms, fail):
    """``body`` with named constants as numbers, after checking that both backends can
    print it and every derivative of first order."""
    if not isinstance(body, sympy.Expr) or body.is_Matrix or body.is_Boolean:
        raise fail(f"its body must be a scalar sympy expression, got {type(body).__name__}")
    extra = body.free_symbols - set(syms)
    if extra:
        raise fail(f"its body uses {', '.join(sorted(map(str, extra)))}, which is not an argument")
    body = body.xreplace({c: sympy.Float(c.evalf(17), 17) for c in body.atoms(sympy.NumberSymbol)})
    for sympy_fn, ours in ((sympy.Max, S.Maximum), (sympy.Min, S.Minimum)):  # as PyTorch's
        body = body.replace(lambda e: isinstance(e, sympy_fn),      # maximum: ties split
                            lambda e, ours=ours: functools.reduce(ours, e.args))
    table = functions()
    exprs = [body] + [S.drop_dirac(sympy.diff(body, s)) for s in syms]
    for expr in exprs:
        if expr.has(sympy.zoo, sympy.nan, sympy.oo, -sympy.oo, sympy.I):
            raise fail(f"its body or a derivative ({expr}) is not finite or not real")
        for e in sympy.preorder_traversal(expr):
            if isinstance(e, _STRUCTURE) or e.func in table:
                continue
            raise fail(f"its body uses {e.func.__name__}, which neither backend can print "
                       f"(use {', '.join(_spellings(table))})")
    return body


def _spellings(table):
    """How a model file writes each function gradc can print: ``sympy.exp``, ...,
    ``compiler.ops.scalar.Sigmoid``."""
    names = {"sympy.Max", "sympy.Min"}
    for fn in table:
        module = fn.__module__
        if module.startswith("sympy.codegen"):
            names.add(f"sympy.codegen.cfunctions.{fn.__name__}")
        elif module.startswith("sympy"):
            names.add(f"sympy.{fn.__name__}")
        else:
            names.add(f"compiler.ops.scalar.{fn.__name__}")
    return sorted(names, key=lambda n: (n.count("."), n.lower()))
