"""The sympy printer for Triton kernel bodies (``tl.*`` calls on loaded blocks).

Functions Triton lacks outside libdevice (which its CPU interpreter cannot run) are
small ``@triton.jit`` helpers in the generated module: ``_tanh``, ``_sigmoid``,
``_softplus`` and ``_log1p``, each written to stay accurate and finite everywhere.

>>> import sympy
>>> x = sympy.Symbol("x")
>>> TritonPrinter().doprint(sympy.exp(-x) * x**2 + sympy.tanh(x))
'x*x*tl.exp(-x) + _tanh(x)'
"""
import sympy
from sympy.printing.precedence import PRECEDENCE
from sympy.printing.pycode import PythonCodePrinter

from compiler.ops.scalar import Compare


class TritonPrinter(PythonCodePrinter):
    """Prints elementwise bodies as Triton expressions."""

    def __init__(self, exact_type=None):
        super().__init__({"fully_qualified_modules": False, "inline": True,
                          "allow_unknown_functions": False})
        self.exact_type = exact_type

    def _print_Float(self, expr):
        value = float(expr)
        if self.exact_type and value != float(__import__("numpy").float32(value)):
            # Triton reads a float literal as float32; a float64 kernel needs it exactly
            return f"tl.full([], {value!r}, {self.exact_type})"
        return repr(value)

    def _print_Rational(self, expr):
        return self._print_Float(sympy.Float(expr, 17))

    def _print_Integer(self, expr):  # a float literal: tl.log(2) would be an int32 op
        return f"{int(expr)}.0"

    def _print_Pow(self, expr, rational=False):
        base, ex = expr.args
        b = self.parenthesize(base, PRECEDENCE["Mul"])
        if ex.is_Integer and 0 < ex <= 4:
            return "*".join([b] * int(ex))
        if ex.is_Integer and -4 <= ex < 0:
            return f"1.0/({'*'.join([b] * int(-ex))})"
        if ex == sympy.S.Half:
            return f"tl.sqrt({self._print(base)})"
        if ex == -sympy.S.Half:
            return f"1.0/tl.sqrt({self._print(base)})"
        if base.is_number and base.is_positive:  # b**x = exp(x*log(b)), log(b) in double
            log_b = self._print_Float(sympy.log(base).evalf(17))
            return f"tl.exp({self.parenthesize(ex, PRECEDENCE['Mul'])}*{log_b})"
        base_code = self._print(base)
        if base.is_number and self.exact_type:  # a literal is float32: log(2) would round
            base_code = f"tl.full([], {float(base)!r}, {self.exact_type})"
        return f"_pow({base_code}, {self._print(ex)})"

    def _print_Power(self, expr):
        return self._print_Pow(sympy.Pow(*expr.args, evaluate=False))

    def _print_Infinity(self, expr):
        return 'float("inf")'

    def _print_NegativeInfinity(self, expr):
        return '-float("inf")'

    def _print_NaN(self, expr):
        return 'float("nan")'

    def _print_Mul(self, expr):
        if expr.could_extract_minus_sign() and any(isinstance(f, Compare) for f in expr.args):
            return f"-({self._print(-expr)})"  # -(a == b)*b would negate a boolean block
        return super()._print_Mul(expr)

    def _call(self, name, expr):
        return f"{name}({', '.join(self._print(a) for a in expr.args)})"

    def _print_exp(self, expr):
        return self._call("tl.exp", expr)

    def _print_log(self, expr):
        return self._call("tl.log", expr)

    def _print_sin(self, expr):
        return self._call("tl.sin", expr)

    def _print_cos(self, expr):
        return self._call("tl.cos", expr)

    def _print_tanh(self, expr):
        return self._call("_tanh", expr)

    def _print_Abs(self, expr):
        return self._call("tl.abs", expr)

    def _print_sign(self, expr):
        x = self._print(expr.args[0])
        return f"tl.where({x} > 0, 1.0, tl.where({x} < 0, -1.0, 0.0))"

    def _print_Heaviside(self, expr):
        x, at0 = (self._print(a) for a in expr.args)
        return f"tl.where({x} > 0, 1.0, tl.where({x} == 0, {at0}, 0.0))"

    def _print_Sigmoid(self, expr):
        return self._call("_sigmoid", expr)

    def _print_Softplus(self, expr):
        return self._call("_softplus", expr)

    def _print_Relu(self, expr):
        return f"tl.maximum({self._print(expr.args[0])}, 0.0)"

    def _print_Maximum(self, expr):
        return self._call("tl.maximum", expr)

    def _print_Minimum(self, expr):
        return self._call("tl.minimum", expr)

    def _compare(self, expr):
        a, b = (self.parenthesize(x, PRECEDENCE["Relational"]) for x in expr.args)
        return f"({a} {expr.symbol} {b})"

    _print_Greater = _print_GreaterEqual = _print_Less = _print_LessEqual = _print_Equal = \
        _print_NotEqual = _compare

    def _print_Where(self, expr):
        return self._call("tl.where", expr)

    def _print_StopGradient(self, expr):
        return self._print(expr.args[0])


_printers = {None: TritonPrinter(), "float64": TritonPrinter("tl.float64")}


def print_triton(expr, dtype=None):
    """The Triton source of a sympy expression (float64: constants kept exact)."""
    return _printers["float64" if dtype == "float64" else None].doprint(sympy.sympify(expr))
