"""The scalar vocabulary of elementwise ops: sympy functions sympy does not have.

Each function knows its own derivative (``fdiff``), so ``sympy.diff`` of any
elementwise body works; printers map each class to the backend's call.

>>> import sympy
>>> x = sympy.Symbol("x", real=True)
>>> sympy.diff(Sigmoid(x), x)
(1 - Sigmoid(x))*Sigmoid(x)
>>> sympy.diff(Softplus(x), x)
Sigmoid(x)
"""
import sympy


class Sigmoid(sympy.Function):
    """``1 / (1 + exp(-x))``, printed in a form that cannot overflow."""

    def fdiff(self, argindex=1):
        s = Sigmoid(self.args[0])
        return s * (1 - s)


class Softplus(sympy.Function):
    """``log(1 + exp(x))``, printed as ``logaddexp(0, x)``."""

    def fdiff(self, argindex=1):
        return Sigmoid(self.args[0])


class Relu(sympy.Function):
    """``max(x, 0)``; its derivative at 0 is 0 (as in PyTorch).

    The derivative is written as ``step(relu(x))`` (equal to ``step(x)`` with step(0) = 0)
    so that the backward pass reads the output and the pre-activation need not be kept.
    """

    def fdiff(self, argindex=1):
        return sympy.Heaviside(Relu(self.args[0]), 0)


def _tie_split(first, second):
    """1 where ``first > second``, 0 where ``first < second``, 1/2 at ties (even at +-inf,
    where ``first - second`` would be NaN)."""
    return Where(Greater(first, second), 1, Where(Less(first, second), 0, sympy.S.Half))


class Maximum(sympy.Function):
    """Elementwise maximum; at ties each argument gets half the gradient (as in PyTorch)."""

    nargs = 2

    def fdiff(self, argindex=1):
        a, b = self.args
        return _tie_split(a, b) if argindex == 1 else _tie_split(b, a)


class Minimum(sympy.Function):
    """Elementwise minimum; at ties each argument gets half the gradient."""

    nargs = 2

    def fdiff(self, argindex=1):
        a, b = self.args
        return _tie_split(b, a) if argindex == 1 else _tie_split(a, b)


class Power(sympy.Function):
    """``a ** b`` where the exponent varies, with PyTorch's derivatives where the formula
    ``b * a**(b - 1)``, ``a**b * log(a)`` has none: d/da is 0 where b == 0, d/db is 0
    where a == 0 and b >= 0, and d/db is NaN for a constant base below 0.  A fixed
    exponent, or a fixed base above 0, is sympy's own power (``x**2`` -> ``2*x``).
    """

    nargs = 2

    @classmethod
    def eval(cls, a, b):
        if b.is_number or (a.is_number and a.is_positive):
            return a**b
        return None

    def fdiff(self, argindex=1):
        a, b = self.args
        if argindex == 1:
            return Where(Equal(b, 0), 0, b * Power(a, b - 1))
        if a.is_number and a.is_zero:  # 0**b: 1 at b == 0, 0 above, inf below
            return Where(GreaterEqual(b, 0), 0, sympy.S.NegativeInfinity)
        if a.is_number:  # a negative base: log(a) is NaN, as in PyTorch
            return sympy.S.NaN
        moved = self * sympy.log(a)
        return Where(Equal(a, 0), Where(GreaterEqual(b, 0), 0, moved), moved)


class Compare(sympy.Function):
    """A comparison giving a boolean; its derivative is zero."""

    nargs = 2

    def fdiff(self, argindex=1):
        return sympy.S.Zero


class Greater(Compare):
    symbol = ">"


class GreaterEqual(Compare):
    symbol = ">="


class Less(Compare):
    symbol = "<"


class LessEqual(Compare):
    symbol = "<="


class Equal(Compare):
    symbol = "=="


class NotEqual(Compare):
    symbol = "!="


class Where(sympy.Function):
    """``a`` where the boolean ``c`` holds, else ``b``."""

    nargs = 3

    def fdiff(self, argindex=1):
        c, a, b = self.args
        if argindex == 1:
            return sympy.S.Zero
        return Where(c, 1, 0) if argindex == 2 else Where(c, 0, 1)


class StopGradient(sympy.Function):
    """The identity whose derivative is zero."""

    def fdiff(self, argindex=1):
        return sympy.S.Zero


def drop_dirac(expr):
    """Replace Dirac deltas (derivatives of steps) with 0: derivatives almost everywhere."""
    return expr.replace(lambda e: isinstance(e, sympy.DiracDelta), lambda e: sympy.S.Zero)
