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


class Maximum(sympy.Function):
    """Elementwise maximum; at ties each argument gets half the gradient (as in PyTorch)."""

    nargs = 2

    def fdiff(self, argindex=1):
        a, b = self.args
        return sympy.Heaviside(a - b if argindex == 1 else b - a, sympy.S.Half)


class Minimum(sympy.Function):
    """Elementwise minimum; at ties each argument gets half the gradient."""

    nargs = 2

    def fdiff(self, argindex=1):
        a, b = self.args
        return sympy.Heaviside(b - a if argindex == 1 else a - b, sympy.S.Half)


class _Compare(sympy.Function):
    """A comparison giving a boolean; its derivative is zero."""

    nargs = 2

    def fdiff(self, argindex=1):
        return sympy.S.Zero


class Greater(_Compare):
    symbol = ">"


class GreaterEqual(_Compare):
    symbol = ">="


class Less(_Compare):
    symbol = "<"


class LessEqual(_Compare):
    symbol = "<="


class Equal(_Compare):
    symbol = "=="


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
