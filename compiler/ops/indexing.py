"""Indexing: ``x[...]``, gathers along an axis, joining and splitting, triangles.

Six primitives, each linear in its float input, so each one's vjp and jvp are
primitives of this file (their own adjoints):

- ``slice``: the elements at ``start + step * i`` along each axis (a step of either
  sign); its adjoint ``unslice`` puts a tensor at those places of a tensor of zeros;
- ``take_along_axis``: ``x`` read at integer indices along one axis; its adjoint
  ``scatter_add`` adds each element at the place its index names (repeated indices sum);
- ``concat``: tensors joined along an axis (its adjoint: a slice per input);
- ``tril`` and ``triu``: the lower or upper triangle of the last two axes, zeros elsewhere.

``x[...]`` (numpy's basic indexing), ``take``, ``stack`` and ``split`` are built from
them with reshapes and broadcasts.  On Triton each is an op with code of its own, in
the elementwise skeleton over its result: it reads its inputs where it computes
(``read(node, at=...)``), the iteration space's axes being ``i0, i1, ...``.  A size the
device code needs that is a symbol (``B``) is computed on the host and passed in.

>>> from compiler import Input
>>> x = Input("x", ("B", 5))
>>> x[:, ::-2].shape, x[1:, 0].shape, x[None, ..., -1].shape
((B, 3), (B - 1,), (1, B))
"""
import builtins
import numbers

import numpy as np
import sympy

from compiler.graph import make, user_location
from compiler.ops import api as F
from compiler.ops import scalar as S
from compiler.ops.registry import OpDef, paren, register
from compiler.ops.shape import shape_code
from compiler.shapes import as_shape, broadcast_shapes, fmt, numel
from runtime.errors import GradcError


def _same_dtype(inputs, attrs):
    return inputs[0].dtype


def _index(d):
    """The name of the iteration space's axis ``d`` in the elementwise skeleton."""
    return f"i{d}"


def _fill(node):
    return "0.0" if node.dtype == "float" else "0"


class _Sizes:
    """Device code for sizes: an int as itself, a formula in the shape symbols as a
    kernel argument computed on the host (``host`` lines, ``extra`` names)."""

    def __init__(self, prefix):
        self.prefix, self.host, self.extra = prefix, [], []

    def code(self, value):
        value = sympy.sympify(value)
        if value.is_Integer:
            return str(int(value))
        name = f"{self.prefix}{len(self.extra)}"
        self.host.append(f"{name} = {value}")
        self.extra.append(name)
        return name

    def done(self, body):
        return {"body": body, "host": self.host, "extra": self.extra}


# -- slice and unslice ---------------------------------------------------------------

def _slices(starts, steps, sizes):
    """Python slices taking ``sizes[k]`` elements from ``starts[k]`` by ``steps[k]``."""
    out = []
    for s, st, n in zip(starts, steps, sizes):
        stop = s + st * n
        if st < 0 and sympy.sympify(stop).is_negative:
            stop = None
        out.append(slice(s, stop, st))
    return tuple(out)


def _slice_text(starts, steps, sizes, shape):
    """``[1:, ::-1]``: the slices as source, bounds at the ends of an axis left out."""
    parts = []
    for sl, d in zip(_slices(starts, steps, sizes), shape):
        first = d - 1 if sl.step < 0 else 0
        start = "" if sympy.sympify(sl.start - first) == 0 else str(sl.start)
        stop = "" if sl.stop is None or (sl.step > 0 and sympy.sympify(sl.stop - d) == 0) \
            else str(sl.stop)
        parts.append(f"{start}:{stop}" + (f":{sl.step}" if sl.step != 1 else ""))
    while len(parts) > 1 and parts[-1] == ":":
        parts.pop()
    return "[" + ", ".join(parts) + "]"


def _check_slice(shape, starts, steps, sizes):
    if not len(shape) == len(starts) == len(steps) == len(sizes):
        raise GradcError(f"a slice of {fmt(shape)} needs one start, step and size per axis")
    for d, s, st, n in zip(shape, starts, steps, sizes):
        last = s + st * (n - 1)
        for i in (s, last):
            if sympy.sympify(n).is_positive and (sympy.sympify(i).is_negative
                                                 or sympy.sympify(i - d).is_nonnegative):
                raise GradcError(f"slice {_slice_text(starts, steps, sizes, shape)} reaches "
                                 f"outside {fmt(shape)}")


def _slice_shape(inputs, attrs):
    _check_slice(inputs[0].shape, attrs["starts"], attrs["steps"], attrs["sizes"])
    return attrs["sizes"]


def _unslice_shape(inputs, attrs):
    if inputs[0].shape != as_shape(attrs["sizes"]):
        raise ValueError(f"unslice of {fmt(inputs[0].shape)} into sizes {fmt(attrs['sizes'])}")
    _check_slice(attrs["shape"], attrs["starts"], attrs["steps"], attrs["sizes"])
    return attrs["shape"]


def slice_node(x, starts, steps, sizes):
    """``x`` at ``starts[k] + steps[k] * i`` along each axis ``k`` (``sizes[k]`` elements)."""
    starts, steps, sizes = tuple(starts), tuple(int(s) for s in steps), as_shape(sizes)
    if all(s == 0 and st == 1 for s, st in zip(starts, steps)) and sizes == x.shape:
        return x
    return make("slice", (x,), starts=starts, steps=steps, sizes=sizes)


def unslice_node(g, shape, starts, steps):
    """Zeros of ``shape`` with ``g`` at the places ``slice_node(., starts, steps)`` reads."""
    shape = as_shape(shape)
    if all(s == 0 and st == 1 for s, st in zip(starts, steps)) and g.shape == shape:
        return g
    return make("unslice", (g,), shape=shape, starts=tuple(starts), steps=tuple(steps),
                sizes=g.shape)


def _positions(node):
    return node.attr("starts"), node.attr("steps"), node.attr("sizes")


def _slice_triton(node, read, index):
    sizes = _Sizes("start")
    at = []
    for d, (s, st) in enumerate(zip(node.attr("starts"), node.attr("steps"))):
        at.append(str(sympy.sympify(sizes.code(s)) + st * sympy.Symbol(_index(d))))
    return sizes.done([f"result = {read(node.inputs[0], at=at, fill=_fill(node))}"])


def _unslice_triton(node, read, index):
    """Each place of the result: on the slice's lattice, the element of ``g`` there, else 0."""
    sizes, at, inside = _Sizes("offset"), [], []
    for d, (s, st, n) in enumerate(zip(*_positions(node))):
        step = builtins.abs(st)
        r = f"{_index(d)} - {sizes.code(s)}" if st > 0 else f"{sizes.code(s)} - {_index(d)}"
        if s == 0 and st == 1:
            r = _index(d)
        if step == 1:
            at.append(r)
            inside.append(f"({r} >= 0) & ({r} < {sizes.code(n)})")
        else:
            at.append(f"({r}) // {step}")
            inside.append(f"({r} >= 0) & (({r}) % {step} == 0) & ({r} < {sizes.code(step * n)})")
    g = read(node.inputs[0], at=at, valid=" & ".join(inside), fill=_fill(node))
    return sizes.done([f"result = {g}"])


def _concrete(values, symbolic_shape, concrete_shape):
    """``values`` with the shape symbols set as in ``concrete_shape`` (the naive baseline)."""
    subs = {d: c for d, c in zip(symbolic_shape, concrete_shape) if isinstance(d, sympy.Basic)}
    return tuple(int(sympy.sympify(v).subs(subs)) for v in values)


def _slice_scalarize(node, args, shape):
    x = node.inputs[0]
    starts = _concrete(node.attr("starts"), x.shape, args[0].shape)
    return args[0][_slices(starts, node.attr("steps"), shape)]


def _unslice_scalarize(node, args, shape):
    out = np.full(shape, sympy.S.Zero, dtype=object)
    starts = _concrete(node.attr("starts"), node.shape, shape)
    out[_slices(starts, node.attr("steps"), args[0].shape)] = args[0]
    return out


register(OpDef(
    "slice", "shape", shape=_slice_shape, dtype=_same_dtype,
    vjp=lambda node, g: [unslice_node(g, node.inputs[0].shape, *_positions(node)[:2])],
    jvp=lambda node, t: slice_node(t[0], *_positions(node)),
    numpy=lambda node, args: paren(args[0]) + _slice_text(*_positions(node), node.inputs[0].shape),
    triton=_slice_triton, scalarize=_slice_scalarize, flops=0,
    doc="the elements at start + step * i along each axis (x[...] with slices and integers)"))
register(OpDef(
    "unslice", "shape", shape=_unslice_shape, dtype=_same_dtype,
    vjp=lambda node, g: [slice_node(g, *_positions(node))],
    jvp=lambda node, t: unslice_node(t[0], node.shape, *_positions(node)[:2]),
    numpy=lambda node, args: f"_rt.unslice({args[0]}, {shape_code(node.shape)}, numpy.s_"
                             f"{_slice_text(*_positions(node), node.shape)})",
    triton=_unslice_triton, scalarize=_unslice_scalarize, flops=0,
    doc="zeros with g at the places a slice reads (the slice's adjoint)"))


def _axis_range(dim, key, where):
    """``(start, step, size)`` of slice ``key`` over an axis of size ``dim`` (numpy's rules;
    over a symbol, steps of 1 or -1 with bounds taken to lie inside)."""
    for v in (key.start, key.stop, key.step):
        if v is not None and not isinstance(v, (numbers.Integral,)) or isinstance(v, bool):
            raise GradcError(f"slice bounds must be integers, got {key}", where=where)
    if key.step == 0:
        raise GradcError("slice step cannot be zero", where=where)
    if isinstance(dim, int):
        start, stop, step = key.indices(dim)
        size = len(range(start, stop, step))
        return (start, step, size) if size else (0, 1, 0)
    step = 1 if key.step is None else int(key.step)
    if step not in (1, -1):
        raise GradcError(f"a slice with step {step} of the axis of size {dim} needs a known "
                         "size", where=where)

    def place(v):
        return int(v) if v >= 0 else dim + int(v)

    if step == 1:
        start = 0 if key.start is None else place(key.start)
        stop = dim if key.stop is None else place(key.stop)
    else:
        start = dim - 1 if key.start is None else place(key.start)
        stop = -1 if key.stop is None else place(key.stop)
    size = sympy.sympify((stop - start) * step)
    if not size.is_nonnegative:
        raise GradcError(f"slice {key.start}:{key.stop}:{key.step} of the axis of size {dim} "
                         "has a size that depends on it", where=where)
    return start, step, (int(size) if size.is_Integer else size)


def getitem(x, key):
    """``x[key]`` with numpy's basic indexing: integers, slices (any step), ``None`` and
    ``...``.  An integer outside a known axis is an error at the user's line."""
    where = user_location()
    x = F.as_node(x)
    key = key if isinstance(key, tuple) else (key,)
    for k in key:
        if not (k is None or k is Ellipsis or isinstance(k, slice)
                or (isinstance(k, numbers.Integral) and not isinstance(k, bool))):
            raise GradcError(f"x[...] takes integers, slices, None and ...; got "
                             f"{type(k).__name__} (use F.take for an index tensor)", where=where)
    if builtins.sum(k is Ellipsis for k in key) > 1:
        raise GradcError("x[...] takes at most one ...", where=where)
    used = builtins.sum(k is not None and k is not Ellipsis for k in key)
    if used > x.ndim:
        raise GradcError(f"too many indices for shape {fmt(x.shape)}: {used}", where=where)
    if Ellipsis not in key:
        key = key + (Ellipsis,)
    at = key.index(Ellipsis)
    key = key[:at] + (slice(None),) * (x.ndim - used) + key[at + 1:]
    starts, steps, sizes, shape, axis = [], [], [], [], 0
    for k in key:
        if k is None:
            shape.append(1)
            continue
        dim = x.shape[axis]
        if isinstance(k, slice):
            start, step, size = _axis_range(dim, k, where)
            shape.append(size)
        else:
            k = int(k)
            if isinstance(dim, int) and not -dim <= k < dim:
                raise GradcError(f"index {k} is out of range for axis {axis} of size {dim} "
                                 f"(shape {fmt(x.shape)})", where=where)
            start, step, size = (k if k >= 0 else dim + k), 1, 1
        starts.append(start)
        steps.append(step)
        sizes.append(size)
        axis += 1
    return F.reshape(slice_node(x, starts, steps, sizes), tuple(shape))


# -- take_along_axis and scatter_add ---------------------------------------------------

def _int_index(idx, opname):
    if idx.dtype != "int":
        raise GradcError(f"wrong dtype: {opname} needs integer indices, got {idx.dtype}")


def _take_shape(inputs, attrs):
    x, idx = inputs
    _int_index(idx, "take_along_axis")
    axis = attrs["axis"]
    if idx.ndim != x.ndim or not 0 <= axis < x.ndim or any(
            a != b for d, (a, b) in enumerate(zip(x.shape, idx.shape)) if d != axis):
        raise ValueError(f"indices {fmt(idx.shape)} along axis {axis} of {fmt(x.shape)}")
    return idx.shape


def _scatter_shape(inputs, attrs):
    g, idx = inputs
    _int_index(idx, "scatter_add")
    if idx.shape != g.shape:
        raise ValueError(f"scatter_add of {fmt(g.shape)} at indices {fmt(idx.shape)}")
    axis = attrs["axis"]
    return g.shape[:axis] + (attrs["n"],) + g.shape[axis + 1:]


def take_along_axis_node(x, idx, axis):
    return make("take_along_axis", (x, idx), axis=axis)


def scatter_add_node(g, idx, axis, n):
    return make("scatter_add", (g, idx), axis=axis, n=n)


def _take_triton(node, read, index):
    """The index read where the result is; then ``x`` read there along the axis."""
    (x, idx), axis, sizes = node.inputs, node.attr("axis"), _Sizes("length")
    n = sizes.code(x.shape[axis])
    at = [_index(d) if d != axis else "pick" for d in range(node.ndim)]
    inside = f"(pick >= 0) & (pick < {n})"
    body = [f"pick = {read(idx)}", f"pick = tl.where(pick < 0, pick + {n}, pick)  # as numpy",
            f"result = {read(x, at=at, valid=inside, fill=_fill(node))}"]
    return sizes.done(body)


def _scatter_triton(node, read, index):
    """Each place of the result sums ``g`` over the indices along the axis that name it."""
    (g, idx), axis, sizes = node.inputs, node.attr("axis"), _Sizes("length")
    pos = "pos" if node.ndim > 1 else "pos + i0 * 0"  # a block, not one address
    at = [_index(d) if d != axis else pos for d in range(node.ndim)]
    n = sizes.code(node.attr("n"))
    hit = f"pick == {_index(axis)}"
    return sizes.done([
        "acc = tl.zeros([BLOCK], out_ptr.dtype.element_ty)",
        f"for pos in range(0, {sizes.code(g.shape[axis])}):",
        f"    pick = {read(idx, at=at, fill='0')}",
        f"    pick = tl.where(pick < 0, pick + {n}, pick)  # as numpy",
        f"    acc += {read(g, at=at, valid=hit, fill='0.0')}",
        "result = acc"])


def _along(axis, pos, j):
    return pos[:axis] + (j,) + pos[axis + 1:]


def _take_scalarize(node, args, shape):
    (x, idx), axis = args, node.attr("axis")
    out = np.empty(shape, dtype=object)
    for pos in np.ndindex(*shape):
        out[pos] = sympy.Add(*[S.Where(S.Equal(idx[pos], j), x[_along(axis, pos, j)], 0)
                               for j in range(x.shape[axis])])
    return out


def _scatter_scalarize(node, args, shape):
    (g, idx), axis = args, node.attr("axis")
    out = np.empty(shape, dtype=object)
    for pos in np.ndindex(*shape):
        out[pos] = sympy.Add(*[S.Where(S.Equal(idx[_along(axis, pos, m)], pos[axis]),
                                       g[_along(axis, pos, m)], 0)
                               for m in range(g.shape[axis])])
    return out


register(OpDef(
    "take_along_axis", "shape", shape=_take_shape, dtype=_same_dtype,
    vjp=lambda node, g: [scatter_add_node(g, node.inputs[1], node.attr("axis"),
                                          node.inputs[0].shape[node.attr("axis")]), None],
    jvp=lambda node, t: take_along_axis_node(t[0], node.inputs[1], node.attr("axis")),
    numpy=lambda node, args: f"_rt.take_along_axis({args[0]}, {args[1]}, {node.attr('axis')})",
    triton=_take_triton, scalarize=_take_scalarize, flops=0,
    indexes=lambda node: (node.inputs[1], node.inputs[0].shape[node.attr("axis")]),
    doc="x at integer indices along an axis (indices of x's shape but along the axis)"))
register(OpDef(
    "scatter_add", "shape", shape=_scatter_shape, dtype=lambda i, a: "float",
    vjp=lambda node, g: [take_along_axis_node(g, node.inputs[1], node.attr("axis")), None],
    jvp=lambda node, t: scatter_add_node(t[0], node.inputs[1], node.attr("axis"),
                                         node.attr("n")),
    numpy=lambda node, args: f"_rt.scatter_add({args[0]}, {args[1]}, {node.attr('axis')}, "
                             f"{node.attr('n')})",
    triton=_scatter_triton, scalarize=_scatter_scalarize,
    flops=lambda node: numel(node.inputs[0].shape),  # one add per element of g
    indexes=lambda node: (node.inputs[1], node.attr("n")),
    doc="zeros with each g added at the place its index names (take_along_axis's adjoint)"))


def _check_int(idx, name):
    if idx.dtype != "int":
        raise GradcError(f"{name} needs an integer index tensor, got {idx.dtype}",
                         where=user_location())


def take_along_axis(x, idx, axis):
    """``x`` at integer indices ``idx`` along ``axis`` (``numpy.take_along_axis``,
    ``torch.take_along_dim``): ``idx`` has ``x``'s number of axes, the others broadcast;
    ``axis=None`` reads the flattened ``x`` at 1-D ``idx``.  Repeated indices add their
    gradients."""
    x, idx = F.as_node(x), F.as_node(idx)
    _check_int(idx, "take_along_axis")
    if axis is None:
        x, idx, axis = F.reshape(x, (-1,)), F.reshape(idx, (-1,)), 0
    if idx.ndim != x.ndim:
        raise GradcError(f"take_along_axis needs indices with the {x.ndim} axes of "
                         f"{fmt(x.shape)}, got {fmt(idx.shape)}", where=user_location())
    axis = F._axis(axis, x)
    try:
        common = list(broadcast_shapes(x.shape[:axis] + (1,) + x.shape[axis + 1:],
                                       idx.shape[:axis] + (1,) + idx.shape[axis + 1:]))
    except ValueError:
        raise GradcError(f"take_along_axis: indices {fmt(idx.shape)} do not broadcast with "
                         f"{fmt(x.shape)} outside axis {axis}", where=user_location()) from None
    x = F.broadcast_to(x, tuple(common[:axis] + [x.shape[axis]] + common[axis + 1:]))
    idx = F.broadcast_to(idx, tuple(common[:axis] + [idx.shape[axis]] + common[axis + 1:]))
    return take_along_axis_node(x, idx, axis)


def take(x, idx, axis=None):
    """``numpy.take``: the slices of ``x`` at integer indices ``idx`` (any shape) along
    ``axis``; the result's shape is ``x``'s with that axis replaced by ``idx``'s shape
    (``axis=None``: elements of the flattened ``x``).  Repeated indices add their gradients."""
    x, idx = F.as_node(x), F.as_node(idx)
    _check_int(idx, "take")
    if axis is None:
        x, axis = F.reshape(x, (-1,)), 0
    axis = F._axis(axis, x)
    lead, tail, m = x.shape[:axis], x.shape[axis + 1:], numel(idx.shape)
    flat = F.reshape(idx, (1,) * len(lead) + (m,) + (1,) * len(tail))
    picked = take_along_axis_node(x, F.broadcast_to(flat, lead + (m,) + tail), axis)
    return F.reshape(picked, lead + idx.shape + tail)


# -- concat, stack, split --------------------------------------------------------------

def _concat_shape(inputs, attrs):
    axis, first = attrs["axis"], inputs[0]
    for x in inputs:
        if x.ndim != first.ndim or not 0 <= axis < x.ndim or any(
                a != b for d, (a, b) in enumerate(zip(x.shape, first.shape)) if d != axis):
            raise ValueError(" and ".join(fmt(i.shape) for i in inputs) + f" along axis {axis}")
    total = sympy.Add(*[x.shape[axis] for x in inputs])
    return first.shape[:axis] + (total,) + first.shape[axis + 1:]


def _concat_dtype(inputs, attrs):
    if len({x.dtype for x in inputs}) > 1:
        raise GradcError("wrong dtype: concat needs inputs of one dtype, got "
                         + " and ".join(x.dtype for x in inputs))
    return inputs[0].dtype


def _offsets(node):
    axis, out = node.attr("axis"), [0]
    for x in node.inputs:
        out.append(out[-1] + x.shape[axis])
    return out


def _axis_slice(x, axis, start, size):
    starts = tuple(start if d == axis else 0 for d in range(x.ndim))
    sizes = tuple(size if d == axis else n for d, n in enumerate(x.shape))
    return slice_node(x, starts, (1,) * x.ndim, sizes)


def _concat_vjp(node, g):
    axis, offsets = node.attr("axis"), _offsets(node)
    return [_axis_slice(g, axis, offsets[j], x.shape[axis]) for j, x in enumerate(node.inputs)]


def _concat_jvp(node, t):
    return concat([ti if ti is not None else F.broadcast_to(F.const(0), x.shape)
                     for x, ti in zip(node.inputs, t)], node.attr("axis"))


def _concat_triton(node, read, index):
    """Each place reads the input whose part of the axis it lies in."""
    axis, sizes = node.attr("axis"), _Sizes("offset")
    i = _index(axis)
    offsets = [sizes.code(o) for o in _offsets(node)]
    result = None
    for j in reversed(range(len(node.inputs))):
        at = [_index(d) if d != axis else (f"{i} - {offsets[j]}" if j else i)
              for d in range(node.ndim)]
        valid = f"({i} >= {offsets[j]}) & ({i} < {offsets[j + 1]})"
        load = read(node.inputs[j], at=at, valid=valid, fill=_fill(node))
        result = load if result is None else f"tl.where({i} < {offsets[j + 1]}, {load}, {result})"
    return sizes.done([f"result = {result}"])


register(OpDef(
    "concat", "shape", shape=_concat_shape, dtype=_concat_dtype, vjp=_concat_vjp,
    jvp=_concat_jvp,
    numpy=lambda node, args: f"numpy.concatenate(({', '.join(args)}), axis={node.attr('axis')})",
    triton=_concat_triton,
    scalarize=lambda node, args, shape: np.concatenate(args, axis=node.attr("axis")), flops=0,
    doc="tensors joined along an axis"))


def concat(xs, axis=0):
    """``torch.cat``: tensors of one shape but along ``axis``, joined along it."""
    xs = [F.as_node(x) for x in xs]
    if not xs:
        raise GradcError("concat needs at least one tensor", where=user_location())
    if len(xs) == 1:
        return xs[0]
    return make("concat", xs, axis=F._axis(axis, xs[0]))


def stack(xs, axis=0):
    """``torch.stack``: tensors of one shape joined along a new axis."""
    xs = [F.as_node(x) for x in xs]
    if not xs:
        raise GradcError("stack needs at least one tensor", where=user_location())
    if any(x.shape != xs[0].shape for x in xs):
        raise GradcError("stack needs tensors of one shape, got "
                         + " and ".join(fmt(x.shape) for x in xs), where=user_location())
    ndim = xs[0].ndim + 1
    if not isinstance(axis, numbers.Integral) or not -ndim <= axis < ndim:
        raise GradcError(f"axis {axis!r} is out of range for stacking {fmt(xs[0].shape)}",
                         where=user_location())
    axis = int(axis) % ndim
    shape = xs[0].shape[:axis] + (1,) + xs[0].shape[axis:]
    return concat([F.reshape(x, shape) for x in xs], axis)


def split(x, split_size_or_sections, axis=0):
    """``torch.split``: a tuple of consecutive parts along ``axis``, of ``split_size`` each
    (the last one smaller) or of the given sizes."""
    x = F.as_node(x)
    axis = F._axis(axis, x)
    dim, sizes = x.shape[axis], split_size_or_sections
    if isinstance(sizes, numbers.Integral):
        if not isinstance(dim, int) or sizes < 1:
            raise GradcError(f"split into parts of {sizes} needs a positive part size and a "
                             f"known axis, got axis {axis} of {fmt(x.shape)}",
                             where=user_location())
        sizes = [builtins.min(int(sizes), dim - s) for s in range(0, dim, int(sizes))] or [0]
    sizes = list(sizes)
    if sympy.sympify(sympy.Add(*sizes) - dim) != 0:
        raise GradcError(f"split sizes {sizes} do not add up to axis {axis} of {fmt(x.shape)}",
                         where=user_location())
    parts, start = [], 0
    for size in sizes:
        parts.append(_axis_slice(x, axis, start, size))
        start = start + size
    return tuple(parts)


# -- tril and triu -----------------------------------------------------------------------

def _matrix_shape(opname):
    def rule(inputs, attrs):
        if inputs[0].ndim < 2:
            raise GradcError(f"{opname} needs at least 2 axes, got {fmt(inputs[0].shape)}")
        return inputs[0].shape

    return rule


def _triangle(opname, compare):
    def triton(node, read, index):
        n = node.ndim
        keep = f"{_index(n - 1)} - {_index(n - 2)} {compare} {node.attr('diagonal')}"
        return {"body": [f"result = tl.where({keep}, {read(node.inputs[0])}, {_fill(node)})"]}

    def scalarize(node, args, shape):
        rows, cols = np.indices(shape[-2:])
        keep = (cols - rows <= node.attr("diagonal")) if compare == "<=" else \
            (cols - rows >= node.attr("diagonal"))
        return np.where(keep, args[0], sympy.S.Zero)

    register(OpDef(
        opname, "shape", shape=_matrix_shape(opname), dtype=_same_dtype,
        vjp=lambda node, g: [make(opname, (g,), diagonal=node.attr("diagonal"))],
        jvp=lambda node, t: make(opname, (t[0],), diagonal=node.attr("diagonal")),
        numpy=lambda node, args: f"numpy.{opname}({args[0]}, {node.attr('diagonal')})",
        triton=triton, positional=True, scalarize=scalarize, flops=0,
        doc=f"the {'lower' if compare == '<=' else 'upper'} triangle of the last two axes "
            "(column - row " + compare + " diagonal), zeros elsewhere"))


_triangle("tril", "<=")
_triangle("triu", ">=")


def tril(x, diagonal=0):
    """``torch.tril``: the elements on and below the ``diagonal``-th diagonal of the last
    two axes; the others 0."""
    return make("tril", (F.as_node(x),), diagonal=int(diagonal))


def triu(x, diagonal=0):
    """``torch.triu``: the elements on and above the ``diagonal``-th diagonal of the last
    two axes; the others 0."""
    return make("triu", (F.as_node(x),), diagonal=int(diagonal))
