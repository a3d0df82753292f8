"""Matrix product and transpose, with hand-written vjp rules."""
import numpy as np

from compiler.ops import api as F
from compiler.ops.registry import OpDef, paren, register
from compiler.shapes import broadcast_shapes, fmt, numel
from runtime.errors import GradcError


def _float_only(opname):
    def rule(inputs, attrs):
        for i in inputs:
            if i.dtype != "float":
                raise GradcError(f"wrong dtype: {opname} needs float inputs, got {i.dtype}")
        return "float"

    return rule


def _matmul_shape(inputs, attrs):
    """``(..., M, K) @ (..., K, N) -> (..., M, N)``, the batch dimensions broadcast."""
    a, b = inputs
    if a.ndim < 2 or b.ndim < 2:
        raise GradcError(f"matmul needs operands of at least 2 dimensions here, got "
                         f"{fmt(a.shape)} @ {fmt(b.shape)}")
    if a.shape[-1] != b.shape[-2]:
        raise ValueError(f"{fmt(a.shape)} @ {fmt(b.shape)}: inner dimensions differ")
    try:
        batch = broadcast_shapes(a.shape[:-2], b.shape[:-2])
    except ValueError:
        raise ValueError(f"{fmt(a.shape)} @ {fmt(b.shape)}: batch dimensions "
                         f"{fmt(a.shape[:-2])} and {fmt(b.shape[:-2])} do not broadcast") from None
    return batch + (a.shape[-2], b.shape[-1])


def _matmul_vjp(node, g):
    a, b = node.inputs
    return [F.unbroadcast(F.matmul(g, F.swap_last(b)), a.shape),
            F.unbroadcast(F.matmul(F.swap_last(a), g), b.shape)]


def _matmul_jvp(node, tangents):
    (a, b), (ta, tb) = node.inputs, tangents
    terms = [F.matmul(ta, b) if ta is not None else None, F.matmul(a, tb) if tb is not None else None]
    present = [t for t in terms if t is not None]
    return F.add(*present) if len(present) == 2 else present[0]


def _matmul_flops(node):
    """``2*batch*M*N*K``: a multiply and an add per term (as PyTorch's FlopCounterMode)."""
    k = node.inputs[0].shape[-1]
    return 2 * numel(node.shape) * k


def _outer(node):
    """``(M, 1) @ (1, N)``: numpy's broadcast product beats a BLAS call."""
    return node.inputs[0].shape[-1] == 1 and node.ndim == 2


def _matmul_numpy(node, args):
    a, b = paren(args[0]), paren(args[1])
    return f"{a} * {b}" if _outer(node) else f"{a} @ {b}"


def _matmul_numpy_out(node, args, out):
    return f"numpy.{'multiply' if _outer(node) else 'matmul'}({args[0]}, {args[1]}, out={out})"


register(OpDef("matmul", "contraction", shape=_matmul_shape, dtype=_float_only("matmul"),
               vjp=_matmul_vjp, jvp=_matmul_jvp, numpy=_matmul_numpy,
               numpy_out=_matmul_numpy_out,
               scalarize=lambda node, args, shape: np.matmul(*args),
               doc="(..., M, K) @ (..., K, N) -> (..., M, N), batch dimensions broadcast",
               flops=_matmul_flops))


def _transpose_shape(inputs, attrs):
    (x,) = inputs
    perm = attrs["perm"]
    if sorted(perm) != list(range(x.ndim)):
        raise GradcError(f"transpose axes {perm} do not fit shape {fmt(x.shape)}")
    return tuple(x.shape[p] for p in perm)


def _transpose_vjp(node, g):
    perm = node.attr("perm")
    inverse = tuple(sorted(range(len(perm)), key=lambda i: perm[i]))
    return [F.transpose(g, inverse)]


def _transpose_numpy(node, args):
    perm = node.attr("perm")
    if perm == (1, 0):
        return f"{paren(args[0])}.T"
    return f"numpy.transpose({args[0]}, {perm})"


register(OpDef("transpose", "shape", shape=_transpose_shape, dtype=lambda i, a: i[0].dtype,
               vjp=_transpose_vjp, jvp=lambda node, t: F.transpose(t[0], node.attr("perm")),
               numpy=_transpose_numpy, view="permute",
               scalarize=lambda node, args, shape: np.transpose(args[0], node.attr("perm")),
               doc="permute axes (a view)", flops=0))
