"""Between sympy and the graph: elementwise derivatives, and sympy expressions as nodes.

``partials(op, ...)`` differentiates an elementwise op's scalar expression with
``sympy.diff`` once (cached) and rewrites it in terms of the op's output ``y``
where it can (``tanh' = 1 - y**2``).  ``to_graph(expr, env)`` turns a sympy
expression into graph nodes built from primitives only, so derivatives are
themselves differentiable.

>>> from compiler import Input, ops
>>> _, y, (d,) = partials(ops.tanh(Input("x", (3,))).op, 1, (), ())
>>> d
1 - y**2
"""
import functools

import sympy

from compiler.ops import api as F
from compiler.ops import scalar as S
from compiler.graph import make
from compiler.ops.counting import split_mul
from compiler.ops.leaf import is_const
from compiler.ops.registry import OPS, functions

Y = sympy.Symbol("y", real=True)
G = sympy.Symbol("g", real=True)
ARGS = tuple(sympy.Symbol(f"a{i}", real=True) for i in range(4))



@functools.lru_cache(maxsize=None)
def partials(op, nargs, attrs, consts):
    """``(symbols, y, [d expr / d arg_i])`` for an elementwise op of ``nargs`` inputs.

    ``attrs`` is the node's attribute tuple; ``consts`` holds ``(index, value)``
    for inputs that are constants (substituted before differentiating, so that
    ``x**2`` differentiates to ``2*x``).  A ``None`` partial means zero.
    """
    opdef = OPS[op]
    fixed = dict(consts)
    syms = ARGS[:nargs]
    args = [fixed.get(i, s) for i, s in enumerate(syms)]
    expr = opdef.scalar(*args, **dict(attrs))
    out = []
    for i, s in enumerate(syms):
        if i in fixed:
            out.append(None)
            continue
        d = S.drop_dirac(sympy.diff(expr, s))
        if d == 0:
            out.append(None)
            continue
        if not (expr.is_Symbol or expr.is_Number):
            d = d.subs(expr, Y)
        out.append(d)
    return syms, Y, out


def const_inputs(node):
    """``(index, value)`` of the inputs of ``node`` substituted into its body before
    differentiating: its finite constants.

    NaN and infinite constants stay symbols: sympy folds ``x*nan`` to ``nan`` and would
    drop the derivative (PyTorch's d(x*nan)/dx is NaN, not 0).
    """
    values = ((i, x.attr("value")) for i, x in enumerate(node.inputs) if is_const(x))
    return tuple((i, v) for i, v in values if not (v.is_number and not v.is_finite))


def selected(e):
    """``e`` with each product by a selection written as a selection of products:
    ``g * Where(c, 1, 0)`` is ``Where(c, g, 0)`` and ``g * Heaviside(y, 0)`` is
    ``Where(y > 0, g, 0)``.  An infinite or NaN ``g`` where the selection is 0 then gives
    0, as PyTorch's gradients of relu, where, maximum and clip do (``inf * 0`` is NaN).

    >>> x, g = sympy.symbols("x g", real=True)
    >>> selected(g * sympy.Heaviside(x, 0))
    Where(Greater(x, 0), g, 0)
    """
    def step(h):
        cut = h.args[1] if len(h.args) > 1 else sympy.S.Half
        below = sympy.S.Zero if cut == 0 else S.Where(S.Less(h.args[0], 0), 0, cut)
        return S.Where(S.Greater(h.args[0], 0), 1, below)

    def distribute(product):
        w = next(a for a in product.args if isinstance(a, S.Where))
        rest = sympy.Mul(*[a for a in product.args if a is not w])
        return S.Where(w.args[0], rest * w.args[1], rest * w.args[2])

    e = e.replace(lambda a: isinstance(a, sympy.Heaviside), step)
    while True:  # a branch may hold another selection (maximum's ties): until none is left
        new = e.replace(lambda a: a.is_Mul and any(isinstance(f, S.Where) for f in a.args),
                        distribute)
        if new == e:
            return e
        e = new


def elementwise_vjp(node, g):
    """Input gradients of an elementwise node: ``g * d node / d input`` for each input."""
    syms, y, ds = partials(node.op, len(node.inputs), node.attrs, const_inputs(node))
    env = {s: x for s, x in zip(syms, node.inputs)}
    env[y] = node
    env[G] = g
    out = []
    for d in ds:
        gi = None if d is None else to_graph(selected(G * d), env)
        if gi is not None and len(gi.shape) < len(node.shape):  # G*nan folds to nan: a scalar
            gi = F.broadcast_to(gi, node.shape)
        out.append(gi)
    return out


TANGENTS = tuple(sympy.Symbol(f"t{i}", real=True) for i in range(4))


def elementwise_jvp(node, tangents):
    """Output tangent of an elementwise node: ``sum_i d node / d input_i * tangent_i``."""
    syms, y, ds = partials(node.op, len(node.inputs), node.attrs, const_inputs(node))
    expr = sum((selected(d * T) for d, T, t in zip(ds, TANGENTS, tangents)
                if d is not None and t is not None), sympy.S.Zero)
    if expr == 0:
        return None
    env = {s: x for s, x in zip(syms, node.inputs)}
    env[y] = node
    env.update((T, t) for T, t in zip(TANGENTS, tangents) if t is not None)
    return to_graph(expr, env)


def _split_add(e):
    plus, minus = [], []
    for t in e.args:
        coeff, _ = t.as_coeff_mul()
        (minus if coeff.is_negative else plus).append(-t if coeff.is_negative else t)
    return plus, minus


def _children(e, env):
    if e.is_Add:
        plus, minus = _split_add(e)
        return plus + minus
    if e.is_Mul:
        _, num, den = split_mul(e)
        return num + den
    if e.is_Pow:
        if e.exp.is_number and e.exp.is_negative:
            return [e.base if e.exp == -1 else e.base ** (-e.exp)]
        return [e.base] if e.exp.is_number else [e.base, e.exp]
    if isinstance(e, sympy.Heaviside):
        return [e.args[0]]
    return list(e.args)


def _is_constant(e, env):
    return not any(s in env for s in e.free_symbols)


def constant(e):
    """A const node for sympy number or shape formula ``e`` (irrationals evaluated to 17 digits)."""
    if e.free_symbols or e.is_Rational:
        return F.const(e)
    return F.const(sympy.Float(e.evalf(17), 17))


def _product(nodes):
    out = None
    for n in nodes:
        out = n if out is None else F.mul(out, n)
    return out


def _build(e, memo):
    if e.is_Add:
        plus, minus = _split_add(e)
        acc = None
        for t in plus:
            acc = memo[t] if acc is None else F.add(acc, memo[t])
        for t in minus:
            acc = F.neg(memo[t]) if acc is None else F.sub(acc, memo[t])
        return acc
    if e.is_Mul:
        coeff, num, den = split_mul(e)
        factors = [memo[f] for f in num]
        if abs(coeff) != 1 or not factors:
            factors.insert(0, constant(abs(coeff)))
        out = _product(factors)
        if den:
            out = F.div(out, _product([memo[f] for f in den]))
        return F.neg(out) if coeff.is_negative else out
    if e.is_Pow:
        base, ex = e.base, e.exp
        if ex.is_number and ex.is_negative:
            return F.div(1, memo[base if ex == -1 else base ** (-ex)])
        if ex == sympy.S.Half:
            return F.sqrt(memo[base])
        return F.pow(memo[base], constant(ex) if ex.is_number else memo[ex])
    if isinstance(e, sympy.Heaviside):
        return F.heaviside(memo[e.args[0]], e.args[1])
    op = functions().get(e.func)
    if op is None:
        raise TypeError(f"gradc has no graph op for the sympy function {e.func}")
    return make(op.name, [memo[a] for a in e.args])


def to_graph(expr, env):
    """Graph nodes computing sympy ``expr``, with ``env`` mapping symbols to nodes.

    Iterative (an explicit stack), so deep expressions cannot overflow.
    """
    memo = {}
    stack = [(expr, False)]
    while stack:
        e, ready = stack.pop()
        if e in memo:
            continue
        if e in env:
            memo[e] = env[e]
        elif _is_constant(e, env):
            memo[e] = constant(e)
        elif not ready:
            stack.append((e, True))
            stack.extend((c, False) for c in _children(e, env) if c not in memo)
        else:
            memo[e] = _build(e, memo)
    return memo[expr]
