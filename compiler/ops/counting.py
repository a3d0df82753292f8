"""Flops of scalar sympy expressions read as trees, by gradc's cost conventions.

``a + b`` and ``a - b``: 1; ``a*b`` and ``a/b``: 1 per factor joined (a sign is
free, a coefficient other than 1 costs one multiply); ``x**n`` for an integer ``n``:
``|n| - 1`` multiplications, plus one division when ``n < 0``; any other power 1
(``x**0.5`` is one sqrt); a function call what its op's ``function_flops`` says
(``exp``: 1, ``sigmoid``: 4).  Elementwise ops without a ``flops`` of their own cost
their body counted this way, and so does the naive baseline's expression.

>>> import sympy
>>> x = sympy.Symbol("x")
>>> tree_flops([sympy.exp(-x) * x**2 + 3])
4
"""
import sympy

from compiler.ops.registry import functions
from runtime.errors import GradcError


def split_mul(e):
    """``(coefficient, numerator factors, denominator factors)`` of a product."""
    coeff, factors = e.as_coeff_mul()
    num, den = [], []
    for f in factors:
        if f.is_Pow and f.exp.is_number and f.exp.is_negative:
            den.append(f.base if f.exp == -1 else f.base ** (-f.exp))
        else:
            num.append(f)
    return coeff, num, den


def own_flops(e, table=None):
    """Flops of the top operation of ``e``, and the subexpressions it applies to."""
    if e.is_Atom or e.is_number:  # a constant (sqrt(2)/2) is evaluated once, when printed
        return 0, []
    if e.is_Add:
        return len(e.args) - 1, list(e.args)
    if e.is_Mul:
        coeff, num, den = split_mul(e)
        scale = sympy.Mul(coeff, *(f for f in num if f.is_number)) / sympy.Mul(
            *(f for f in den if f.is_number))
        num = [f for f in num if not f.is_number]
        den = [f for f in den if not f.is_number]
        count = max(len(num) - 1, 0) + len(den) + (1 if abs(scale) != 1 else 0)
        return count, num + den
    if e.is_Pow:
        base, ex = e.args
        if ex.is_Integer:
            n = abs(int(ex))
            return max(n - 1, 0) + (1 if ex < 0 else 0), [base]
        return 1, [base] + ([] if ex.is_number else [ex])
    op = (table if table is not None else functions()).get(e.func)
    if op is None:
        raise GradcError(f"no flop count for the sympy function {e.func.__name__}")
    return op.function_flops, list(e.args)


def tree_flops(exprs, memo=None):
    """Flops of ``exprs`` read as trees: a subexpression used twice is computed twice.

    ``memo`` (a dict) is filled with every distinct subexpression seen.
    """
    memo = {} if memo is None else memo
    table = functions()
    total = 0
    for expr in exprs:
        stack = [(expr, False)]
        while stack:
            e, ready = stack.pop()
            if e in memo:
                continue
            own, children = own_flops(e, table)
            if not ready:
                stack.append((e, True))
                stack.extend((c, False) for c in children if c not in memo)
            else:
                memo[e] = own + sum(memo[c] for c in children)
        total += memo[expr]
    return total
