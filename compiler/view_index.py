"""Index arithmetic through chains of views: which element of a view's source an element
of the view is, as device code.

An index is one ``Axis`` per axis: its code (``rm // 64``) and its ``sides``, the loop
variables it depends on (a matmul tile's rows ``"m"`` and columns ``"k"``).  A reshape
regroups axes whose sizes multiply to the same number (flatten the group, then unravel
it), a transpose permutes them, a broadcast reads index 0 along a repeated axis.  Sizes a
division needs must be numbers: ``None`` when they are not, or when a group mixes sides.

>>> import sympy
>>> rows, cols = Axis("rm", frozenset("m")), Axis("ka", frozenset("k"))
>>> [a.code for a in reshape_index([rows, cols], (sympy.Symbol("B") * 4, 6), ("B", 2, 2, 2, 3))]
['rm // 4', '(rm // 2) % 2', 'rm % 2', 'ka // 3', 'ka % 3']
"""
from typing import NamedTuple

import sympy

from compiler.ops.registry import OPS


class Axis(NamedTuple):
    code: str
    sides: frozenset = frozenset()


ZERO = Axis("0")


def _paren(code):
    return code if code.isidentifier() else f"({code})"


def _number(size):
    size = sympy.sympify(size)
    return int(size) if size.is_Integer else None


def _groups(src, dst):
    """Pairs of axis lists (of ``src``, of ``dst``) whose sizes multiply to the same
    number, in order; axes of size 1 left out.  ``None`` when the shapes do not regroup."""
    s = [i for i, d in enumerate(src) if sympy.sympify(d) != 1]
    t = [i for i, d in enumerate(dst) if sympy.sympify(d) != 1]
    groups, i, j = [], 0, 0
    while i < len(s) and j < len(t):
        gs, gt = [s[i]], [t[j]]
        ps, pt = sympy.sympify(src[s[i]]), sympy.sympify(dst[t[j]])
        i, j = i + 1, j + 1
        while sympy.expand(ps - pt) != 0:
            _, den = sympy.fraction(sympy.cancel(pt / ps))
            if den == 1:  # the source's product is the smaller: take its next axis
                if i == len(s):
                    return None
                gs.append(s[i])
                ps *= sympy.sympify(src[s[i]])
                i += 1
            else:
                if j == len(t):
                    return None
                gt.append(t[j])
                pt *= sympy.sympify(dst[t[j]])
                j += 1
        groups.append((gs, gt))
    return groups if i == len(s) and j == len(t) else None


def reshape_index(index, src, dst):
    """The index into shape ``dst`` of the element that ``index`` names in shape ``src``
    (the same elements in row-major order)."""
    groups = _groups(src, dst)
    if groups is None:
        return None
    out = [ZERO] * len(dst)
    for gs, gt in groups:
        sides = frozenset().union(*(index[a].sides for a in gs))
        if len(sides) > 1:
            return None
        flat = index[gs[0]].code
        for a in gs[1:]:
            size = _number(src[a])
            if size is None:
                return None
            flat = f"{_paren(flat)} * {size} + {index[a].code}"
        if len(gs) == 1 and len(gt) == 1:
            out[gt[0]] = Axis(flat, sides)
            continue
        stride = 1
        for pos in reversed(range(len(gt))):
            code = flat if flat.isidentifier() else f"({flat})"
            if stride != 1:
                code = f"{code} // {stride}"
            if pos > 0:
                size = _number(dst[gt[pos]])
                if size is None:
                    return None
                code = f"({code}) % {size}" if stride != 1 else f"{code} % {size}"
                stride *= size
            out[gt[pos]] = Axis(code, sides)
    return out


def source_index(chain, index):
    """The index into the source of the views ``chain`` (outermost first, each the input
    of the one before) of the element ``index`` names in ``chain[0]``."""
    for v in chain:
        kind, src = OPS[v.op].view, v.inputs[0].shape
        if kind == "permute":
            moved = [ZERO] * len(src)
            for j, p in enumerate(v.attr("perm")):
                moved[p] = index[j]
            index = moved
        elif kind == "relabel":
            index = reshape_index(index, v.shape, src)
        else:  # broadcast: new leading axes dropped, repeated unit axes read at 0
            index = [ZERO if sympy.sympify(d) == 1 else a
                     for d, a in zip(src, index[len(index) - len(src):])]
        if index is None:
            return None
    return index


def tile(axis, layout):
    """Device code of ``axis`` broadcast over a 2-D tile; ``layout`` maps each side to
    its tile dimension (``{"m": 0, "k": 1}``)."""
    if not axis.sides:  # the batch's index, or a number (a tensor: its comparisons are too)
        return f"tl.full((1, 1), {axis.code}, tl.int32)" if axis.code.isdigit() else axis.code
    (side,) = axis.sides
    return f"({axis.code})" + ("[:, None]" if layout[side] == 0 else "[None, :]")


ONE_SIDE = frozenset("e")  # an index of elements: every axis on the same side


def operand_chain_of(node, inside):
    """The views (outermost first) that ``node`` is made of among ``inside`` (a kernel's
    members), and the node under them."""
    chain = []
    while any(node is m for m in inside) and OPS[node.op].view:
        chain.append(node)
        node = node.inputs[0]
    return chain, node


def operand_chain(mm, position, inside):
    """``operand_chain_of`` matmul ``mm``'s operand ``position`` (0: ``a``, 1: ``b``)."""
    return operand_chain_of(mm.inputs[position], inside)


def readable(chain):
    """Whether a gather can read an element of the views ``chain`` by index."""
    return source_index(chain, [Axis("i", ONE_SIDE)] * chain[0].ndim) is not None


TILE = ({"m": 0, "k": 1}, {"k": 0, "n": 1})  # each operand's sides, by tile dimension


def operand_index(mm, position, chain):
    """The index into the node under ``chain`` of the element of operand ``position`` that
    the matmul skeleton loads: rows ``rm`` and columns ``ka`` of ``a``, rows ``kb`` and
    columns ``rn`` of ``b``, the batch ``i_Z0``, ...; ``None`` where it cannot be written."""
    operand = mm.inputs[position]
    if operand.ndim != mm.ndim or mm.ndim < 2:
        return None
    names = (("rm", "m"), ("ka", "k")) if position == 0 else (("kb", "k"), ("rn", "n"))
    index = [Axis(f"i_Z{j}") for j in range(mm.ndim - 2)]
    index += [Axis(code, frozenset(side)) for code, side in names]
    return source_index(chain, index)
