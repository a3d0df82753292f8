"""The sympy printer for numpy kernel bodies.

>>> import sympy
>>> from compiler.ops.scalar import Sigmoid
>>> x = sympy.Symbol("x")
>>> NumpyPrinter().doprint(Sigmoid(x) * (1 - sympy.tanh(x) ** 2))
'(1 - numpy.tanh(x)**2)*numpy.exp(-numpy.logaddexp(0, -x))'
>>> NumpyPrinter().doprint(sympy.sqrt(2) * sympy.exp(x))   # float32 x stays float32
'1.4142135623730951*numpy.exp(x)'
"""
import sympy
from sympy.printing.numpy import NumPyPrinter
from sympy.printing.precedence import PRECEDENCE

from compiler.ops.registry import functions
from compiler.ops.scalar import Compare
from compiler.shapes import broadcast_shapes
from runtime.errors import GradcError


def print_function(printer, expr, field):
    """``expr`` printed by its op's ``numpy_code`` or ``triton_code`` (``field``); None when
    ``expr`` is not a function call; an error for a function no elementwise op introduces."""
    if not isinstance(expr, sympy.Function):
        return None
    op = functions().get(expr.func)
    code = getattr(op, field) if op is not None else None
    if code is None:  # sympy could print atan, but no gradc op has it: not on every backend
        backend = "numpy" if field == "numpy_code" else "Triton"
        raise GradcError(f"no {backend} code for the sympy function {expr.func.__name__}")
    if callable(code):
        return code(printer, *expr.args)
    return code.format(*(printer._print(a) for a in expr.args))


class NumpyPrinter(NumPyPrinter):
    """numpy printer that knows gradc's scalar functions (from the op registry) and prints
    floats exactly."""

    def __init__(self, arrays=()):
        super().__init__({"fully_qualified_modules": True, "inline": True,
                          "allow_unknown_functions": False})
        # the array names, with their shapes when known (None: unknown)
        self.arrays = dict(arrays) if isinstance(arrays, dict) else dict.fromkeys(arrays)

    def _print_Mul(self, expr):
        """The factors smaller than the product (scalars, arrays that are broadcast) first,
        multiplied together before they meet the others: ``(2/B)*x`` is one pass over
        ``x`` where ``2*x/B`` is two, and ``(g/n)*mask`` for a per-window ``g`` and ``n``
        one pass over the windows where ``g*mask/n`` is two."""
        if expr.could_extract_minus_sign() and any(self._boolean(f) for f in expr.args):
            return f"-({self._print(-expr)})"  # -(a == b)*b would negate a boolean array
        if self.arrays:
            shapes = [self._shape_of(f) for f in expr.args]
            known = [s for s in shapes if s is not None]
            full = broadcast_shapes(*known) if len(known) == len(shapes) else None
            small = [f for f, s in zip(expr.args, shapes) if s == () or (full and s != full)]
            rest = [f for f in expr.args if f not in small]
            if rest and len(small) >= 2:
                first, rest = sympy.Mul(*small), sympy.Mul(*rest)
                return f"({self._print(first)})*{self.parenthesize(rest, PRECEDENCE['Mul'])}"
        return super()._print_Mul(expr)

    def _boolean(self, e):
        """Whether numpy computes ``e`` as a boolean array: a comparison, or a function its
        op prints as one (``heaviside(x, 0)`` is ``(x > 0)``)."""
        if isinstance(e, Compare):
            return True
        if not isinstance(e, sympy.Function) or e.func not in functions():
            return False
        code = self._print(e)
        return code.startswith("(") and code.endswith(")") and any(
            f" {c} " in code for c in (">", ">=", "<", "<=", "==", "!="))

    def _shape_of(self, e):
        """The broadcast shape of the arrays in ``e`` (``()``: none; None: not known)."""
        shapes = [self.arrays[s.name] for s in e.free_symbols if s.name in self.arrays]
        if any(s is None for s in shapes):
            return None
        return broadcast_shapes(*shapes)

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

    def _print(self, expr, **kwargs):
        if isinstance(expr, sympy.Expr) and expr.is_number and not expr.is_Rational \
                and expr.is_real and expr.is_finite:  # sqrt(2): a Python float, not
            return repr(float(expr.evalf(17)))  # numpy.sqrt(2), whose float64 would promote
        code = print_function(self, expr, "numpy_code") or super()._print(expr, **kwargs)
        if self._scalar_call(expr):  # numpy.sqrt(bc2) is a numpy float64, which would make
            return f"float({code})"  # float32 arrays float64; a Python float does not
        return code

    def _scalar_call(self, expr):
        """Whether ``expr`` is a function (or a fractional power) of scalars only, when the
        arrays are known: numpy returns its value as a numpy float64."""
        if not self.arrays or not isinstance(expr, (sympy.Function, sympy.Pow)):
            return False
        if isinstance(expr, sympy.Pow) and expr.exp.is_Integer:
            return False
        return bool(expr.free_symbols) and not any(s.name in self.arrays for s in expr.free_symbols)


_printer = NumpyPrinter()


def prints_boolean(expr):
    """Whether the numpy code of ``expr`` computes a boolean array (a comparison)."""
    return _printer._boolean(sympy.sympify(expr))


def print_numpy(expr, arrays=()):
    """The numpy source of a sympy expression; ``arrays`` names the symbols that are arrays
    (scalar factors are then multiplied together first)."""
    printer = NumpyPrinter(arrays) if arrays else _printer
    return printer.doprint(sympy.sympify(expr))
