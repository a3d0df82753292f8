"""The sympy printer for numpy kernel bodies.

>>> import sympy
>>> from compiler.ops.scalar import Sigmoid
>>> x = sympy.Symbol("x")
>>> NumpyPrinter().doprint(Sigmoid(x) * (1 - sympy.tanh(x) ** 2))
'(1 - numpy.tanh(x)**2)*numpy.exp(-numpy.logaddexp(0, -x))'
"""
import sympy
from sympy.printing.numpy import NumPyPrinter
from sympy.printing.precedence import PRECEDENCE

from compiler.ops.scalar import Compare


class NumpyPrinter(NumPyPrinter):
    """numpy printer that knows gradc's scalar functions and prints floats exactly."""

    def __init__(self, arrays=()):
        super().__init__({"fully_qualified_modules": True, "inline": True,
                          "allow_unknown_functions": False})
        self.arrays = frozenset(arrays)

    def _print_Mul(self, expr):
        """Scalars first, multiplied together before they meet an array: ``(2/B)*x``
        is one pass over ``x`` where ``2*x/B`` is two."""
        if expr.could_extract_minus_sign() and any(isinstance(f, Compare) for f in expr.args):
            return f"-({self._print(-expr)})"  # -(a == b)*b would negate a boolean array
        if self.arrays:
            arrays = [f for f in expr.args if f.free_symbols & self._array_symbols(f)]
            scalars = [f for f in expr.args if f not in arrays]
            if arrays and len(scalars) >= 2:
                scalar, rest = sympy.Mul(*scalars), sympy.Mul(*arrays)
                return f"({self._print(scalar)})*{self.parenthesize(rest, PRECEDENCE['Mul'])}"
        return super()._print_Mul(expr)

    def _array_symbols(self, e):
        return {s for s in e.free_symbols if s.name in self.arrays}

    def _print_Float(self, expr):
        return repr(float(expr))

    def _print_Rational(self, expr):
        return f"{expr.p}/{expr.q}"

    def _print_Half(self, expr):
        return "0.5"

    def _print_Pow(self, expr, rational=False):
        base, ex = expr.args
        if ex.is_Integer and ex < 0:
            den = base if ex == -1 else base ** (-ex)
            return f"1/{self.parenthesize(den, PRECEDENCE['Pow'])}"
        return super()._print_Pow(expr, rational)

    def _print_Power(self, expr):
        return self._print_Pow(sympy.Pow(*expr.args, evaluate=False))

    def _print_Sigmoid(self, expr):
        arg = self.parenthesize(expr.args[0], PRECEDENCE["Mul"])
        return f"numpy.exp(-numpy.logaddexp(0, -{arg}))"

    def _print_Softplus(self, expr):
        return f"numpy.logaddexp(0, {self._print(expr.args[0])})"

    def _print_Relu(self, expr):
        return f"numpy.maximum({self._print(expr.args[0])}, 0)"

    def _print_Maximum(self, expr):
        return f"numpy.maximum({self._print(expr.args[0])}, {self._print(expr.args[1])})"

    def _print_Minimum(self, expr):
        return f"numpy.minimum({self._print(expr.args[0])}, {self._print(expr.args[1])})"

    def _print_Heaviside(self, expr):
        x, at0 = expr.args
        if at0 == 0:  # a comparison is ~50x faster than numpy.heaviside
            return f"({self.parenthesize(x, PRECEDENCE['Relational'])} > 0)"
        if at0 == 1:
            return f"({self.parenthesize(x, PRECEDENCE['Relational'])} >= 0)"
        return f"numpy.heaviside({self._print(x)}, {self._print(at0)})"

    def _print_sign(self, expr):
        return f"numpy.sign({self._print(expr.args[0])})"

    def _print_Abs(self, expr):
        return f"numpy.abs({self._print(expr.args[0])})"

    def _compare(self, expr):
        a, b = (self.parenthesize(x, 1000) for x in expr.args)
        return f"({a} {expr.symbol} {b})"

    _print_Greater = _print_GreaterEqual = _print_Less = _print_LessEqual = _print_Equal = \
        _print_NotEqual = _compare

    def _print_Where(self, expr):
        c, a, b = expr.args
        if a.is_Number and b.is_Number:  # keep the kernel's dtype when both branches are numbers
            return f"numpy.where({self._print(c)}, DTYPE({self._print(a)}), DTYPE({self._print(b)}))"
        return f"numpy.where({self._print(c)}, {self._print(a)}, {self._print(b)})"

    def _print_StopGradient(self, expr):
        return self._print(expr.args[0])


_printer = NumpyPrinter()


def print_numpy(expr, arrays=()):
    """The numpy source of a sympy expression; ``arrays`` names the symbols that are arrays
    (scalar factors are then multiplied together first)."""
    printer = NumpyPrinter(arrays) if arrays else _printer
    return printer.doprint(sympy.sympify(expr))
