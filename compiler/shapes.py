"""Shapes: tuples of ints and sympy symbols, with numpy broadcasting.

A string dimension such as ``"B"`` becomes the positive integer symbol ``B``.

>>> as_shape(("B", 3))
(B, 3)
>>> broadcast_shapes((3, 1), as_shape(("B", 1, 4)))
(B, 3, 4)
"""
import sympy

from runtime.errors import GradcError


def symbol(name):
    """The shape symbol called ``name`` (the same object for the same name)."""
    return sympy.Symbol(name, integer=True, positive=True)


def as_dim(d):
    if isinstance(d, str):
        if not d.isidentifier():
            raise GradcError(f"shape dimension {d!r} is not a valid symbol name")
        return symbol(d)
    if isinstance(d, sympy.Basic):
        if d.is_Integer:
            return int(d)
        return d
    try:
        value = int(d)
    except (TypeError, ValueError):
        raise GradcError(f"shape dimension {d!r} is neither an int nor a symbol name") from None
    if value != d or value < 0:
        raise GradcError(f"shape dimension {d!r} must be a non-negative integer")
    return value


def as_shape(shape):
    """Normalise a user shape (int, tuple of ints and strings) to a tuple of dims."""
    if isinstance(shape, (int, str, sympy.Basic)):
        shape = (shape,)
    try:
        return tuple(as_dim(d) for d in shape)
    except TypeError:
        raise GradcError(f"shape {shape!r} is not a tuple of ints and symbol names") from None


def fmt(shape):
    """A shape as the user would write it: ``(B, 32)``."""
    inner = ", ".join(str(d) for d in shape)
    return f"({inner},)" if len(shape) == 1 else f"({inner})"


def broadcast_shapes(*shapes):
    """numpy broadcasting of symbolic shapes; raises ``ValueError`` when impossible."""
    ndim = max((len(s) for s in shapes), default=0)
    out = []
    for axis in range(ndim):
        dims = [s[axis - ndim + len(s)] for s in shapes if axis - ndim + len(s) >= 0]
        result = 1
        for d in dims:
            if d == 1 or d == result:
                continue
            if result == 1:
                result = d
            else:
                raise ValueError(" and ".join(fmt(s) for s in shapes))
        out.append(result)
    return tuple(out)


def numel(shape):
    """The number of elements as a sympy expression (or int)."""
    n = sympy.Integer(1)
    for d in shape:
        n = n * d
    return int(n) if n.is_Integer else n


def free_symbols(shape):
    """Names of the symbols in a shape, in order of first appearance."""
    names = []
    for d in shape:
        if isinstance(d, sympy.Basic):
            for s in sorted(d.free_symbols, key=lambda s: s.name):
                if s.name not in names:
                    names.append(s.name)
    return names
