"""The sympy printer for Triton kernel bodies (``tl.*`` calls on loaded blocks).

Each function of an elementwise op prints as its registry entry's ``triton_code``
says.  Functions Triton lacks outside libdevice (which its CPU interpreter cannot run)
are small ``@triton.jit`` helpers in the generated module: ``_tanh``, ``_sigmoid``,
``_softplus``, ``_log1p``, ``_expm1`` and ``_pow``, each written to stay accurate and
finite everywhere.

>>> import sympy
>>> x = sympy.Symbol("x")
>>> TritonPrinter().doprint(sympy.exp(-x) * x**2 + sympy.tanh(x))
'(x*x)*tl.exp(-x) + _tanh(x)'
>>> TritonPrinter().doprint(1 / x**2 / (x + 1))
'1.0/((x*x)*(x + 1.0))'
"""
import sympy
from sympy.printing.precedence import PRECEDENCE
from sympy.printing.pycode import PythonCodePrinter

from compiler.codegen.printer import print_function
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
        if expr.is_number and expr.is_finite and number_value(expr) is not None:
            return self._print_Float(sympy.Float(number_value(expr)))  # sqrt(2): a literal, not an
            # op on a float32 one
        b = self.parenthesize(base, PRECEDENCE["Mul"])
        if ex == 1:
            return b
        if ex.is_Integer and 1 < ex <= 4:  # in parentheses: a power binds tighter than a divide
            return f"({'*'.join([b] * int(ex))})"
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
        if base.is_number and self.exact_type and number_value(base) is not None:
            base_code = f"tl.full([], {number_value(base)!r}, {self.exact_type})"  # (a literal:
            # float32, so log(2) would round; a function of literals is exact already)
        return f"_pow({base_code}, {self._print(ex)})"

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

    def _print(self, expr, **kwargs):
        if self.exact_type and isinstance(expr, sympy.Function) and expr.is_number:
            # a function of literals computes in float32 (tanh(1.0)): in float64, fulls
            expr = expr.xreplace({a: sympy.Symbol(f"tl.full([], {float(a)!r}, {self.exact_type})")
                                  for a in expr.args if a.is_Number and a.is_finite})
        return print_function(self, expr, "triton_code") or super()._print(expr, **kwargs)


def number_value(number):
    """A sympy number as a float, or None when sympy cannot evaluate it (a gradc function
    such as ``Sigmoid(0)`` has no numeric evaluation)."""
    try:
        return float(number)
    except TypeError:
        return None


_printers = {None: TritonPrinter(), "float64": TritonPrinter("tl.float64")}


def print_triton(expr, dtype=None):
    """The Triton source of a sympy expression (float64: constants kept exact)."""
    return _printers["float64" if dtype == "float64" else None].doprint(sympy.sympify(expr))
