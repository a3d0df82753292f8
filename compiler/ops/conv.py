"""Convolution and pooling: sliding windows (``patches``) and their adjoint, two primitives.

``patches`` turns images (N, C, H, W) into their windows (N, H_out, W_out, C, kH, kW);
a convolution is those windows, reshaped into one row per output pixel, times the
weights (one matmul, im2col), and pooling is a max or a mean over each window.  The
adjoint of ``patches`` adds each window back where it came from (col2im); each is
the other's vjp, and both are linear, so every derivative order is these two ops and
matmuls.  Heights and widths are numbers (the batch may be a symbol).

>>> from compiler import Input, ops as F
>>> x, w = Input("x", ("B", 3, 8, 8)), Input("w", (4, 3, 3, 3))
>>> F.conv2d(x, w, padding=1).shape
(B, 4, 8, 8)
>>> F.max_pool2d(F.conv2d(x, w), 2).shape
(B, 4, 3, 3)
"""
import math

import numpy as np
import sympy

from compiler.graph import make, user_location
from compiler.ops import api as F
from compiler.ops.registry import OpDef, register
from compiler.shapes import fmt, numel
from runtime.errors import GradcError


def _pairs(value, what):
    """``value`` as a pair of non-negative ints (PyTorch's ``int or tuple`` arguments)."""
    pair = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(pair) != 2 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                                 for v in pair):
        raise GradcError(f"{what} must be an int or a pair of ints, got {value!r}",
                         where=user_location())
    return tuple(int(v) for v in pair)


def _windows(attrs, h, w):
    """``(H_out, W_out)`` of the windows ``attrs`` describes over an H x W image."""
    (kh, kw), (sh, sw), (dh, dw) = attrs["kernel"], attrs["stride"], attrs["dilation"]
    top, bottom, left, right = attrs["padding"]
    return ((h + top + bottom - dh * (kh - 1) - 1) // sh + 1,
            (w + left + right - dw * (kw - 1) - 1) // sw + 1)


def _patches_shape(inputs, attrs):
    (x,) = inputs
    if x.ndim != 4:
        raise GradcError(f"sliding windows need images (N, C, H, W), got shape {fmt(x.shape)}")
    n, c, h, w = x.shape
    if not all(isinstance(d, int) for d in (h, w)):
        raise GradcError(f"image height and width must be numbers, got {fmt(x.shape)}")
    (kh, kw), (dh, dw) = attrs["kernel"], attrs["dilation"]
    top, bottom, left, right = attrs["padding"]
    if dh * (kh - 1) + 1 > h + top + bottom or dw * (kw - 1) + 1 > w + left + right:
        raise GradcError(f"kernel {kh}x{kw} (dilation {dh}x{dw}) is larger than the padded "
                         f"input {h + top + bottom}x{w + left + right}")
    return (n,) + _windows(attrs, h, w) + (c, kh, kw)


def _adjoint_shape(inputs, attrs):
    (g,) = inputs
    n, _, _, c, _, _ = g.shape
    return (n, c) + tuple(attrs["image"])


def _float(inputs, attrs):
    if inputs[0].dtype != "float":
        raise GradcError(f"wrong dtype: sliding windows need float input, got {inputs[0].dtype}")
    return "float"


def _geometry(node):
    return {k: node.attr(k) for k in ("kernel", "stride", "dilation", "padding")}


def patches(x, kernel, stride, dilation, padding, fill=0.0):
    """The windows of ``x`` (N, C, H, W): (N, H_out, W_out, C, kH, kW), padded with
    ``fill`` (``padding``: top, bottom, left, right)."""
    return make("patches", (F.as_node(x),), kernel=tuple(kernel), stride=tuple(stride),
                dilation=tuple(dilation), padding=tuple(padding), fill=float(fill))


def patches_adjoint(g, image, kernel, stride, dilation, padding):
    """Windows ``g`` added back into (N, C, H, W) images of size ``image`` (H, W)."""
    return make("patches_adjoint", (g,), image=tuple(image), kernel=tuple(kernel),
                stride=tuple(stride), dilation=tuple(dilation), padding=tuple(padding))


def _number(value):
    return {math.inf: "numpy.inf", -math.inf: "-numpy.inf"}.get(value, repr(value))


def _patches_numpy(node, args):
    g = _geometry(node)
    return (f"_rt.patches({args[0]}, {g['kernel']}, {g['stride']}, {g['dilation']}, "
            f"{g['padding']}, {_number(node.attr('fill'))})")


def _adjoint_numpy(node, args):
    g = _geometry(node)
    return (f"_rt.patches_adjoint({args[0]}, {node.attr('image')}, {g['kernel']}, "
            f"{g['stride']}, {g['dilation']}, {g['padding']})")


def _indices(attrs, ho, wo):
    """Row and column indices into the padded image of every window element, shaped
    (H_out, W_out, kH, kW) so that ``padded[:, :, rows, cols]`` are the windows."""
    (kh, kw), (sh, sw), (dh, dw) = attrs["kernel"], attrs["stride"], attrs["dilation"]
    rows = np.arange(ho)[:, None, None, None] * sh + np.arange(kh)[None, None, :, None] * dh
    cols = np.arange(wo)[None, :, None, None] * sw + np.arange(kw)[None, None, None, :] * dw
    return np.broadcast_arrays(rows, cols)


def _patches_scalarize(node, args, shape):
    top, bottom, left, right = node.attr("padding")
    fill = sympy.Float(node.attr("fill")) if math.isfinite(node.attr("fill")) else \
        sympy.oo * sympy.sign(node.attr("fill"))
    x = np.pad(args[0], ((0, 0), (0, 0), (top, bottom), (left, right)), constant_values=fill)
    rows, cols = _indices(dict(node.attrs), shape[1], shape[2])
    return x[:, :, rows, cols].transpose(0, 2, 3, 1, 4, 5)


def _adjoint_scalarize(node, args, shape):
    g = args[0]
    h, w = node.attr("image")
    top, bottom, left, right = node.attr("padding")
    out = np.full((shape[0], shape[1], h + top + bottom, w + left + right), sympy.Integer(0),
                  dtype=object)
    rows, cols = _indices(dict(node.attrs), g.shape[1], g.shape[2])
    np.add.at(out, (slice(None), slice(None), rows, cols), g.transpose(0, 3, 1, 2, 4, 5))
    return out[:, :, top:top + h, left:left + w]


def _patches_triton(node, read, index):
    """Each window element loaded from its pixel of the unpadded image (``fill`` outside)."""
    (sh, sw), (dh, dw) = node.attr("stride"), node.attr("dilation")
    top, _, left, _ = node.attr("padding")
    _, _, h, w = node.inputs[0].shape
    fill = {math.inf: 'float("inf")', -math.inf: 'float("-inf")'}.get(node.attr("fill"),
                                                                      repr(node.attr("fill")))
    load = read(node.inputs[0], at=["i0", "i3", "h", "w"],
                valid=f"(h >= 0) & (h < {h}) & (w >= 0) & (w < {w})", fill=fill)
    return {"body": [f"h = i1 * {sh} + i4 * {dh} - {top}  # the pixel's row and column",
                     f"w = i2 * {sw} + i5 * {dw} - {left}", f"result = {load}"]}


def _adjoint_triton(node, read, index):
    """Each pixel sums the window elements that read it: for each kernel offset, the
    window whose element it is, when the strides land on it (a gather: no atomics)."""
    g = node.inputs[0]
    _, ho, wo, _, kh, kw = g.shape
    (sh, sw), (dh, dw) = node.attr("stride"), node.attr("dilation")
    top, _, left, _ = node.attr("padding")
    body, terms = [], []
    for axis, (size, step, dil, pad, n, out) in enumerate(
            ((kh, sh, dh, top, ho, "oh"), (kw, sw, dw, left, wo, "ow"))):
        for i in range(size):
            body.append(f"{out}{i} = i{axis + 2} + {pad - i * dil}")
    for i in range(kh):
        for j in range(kw):
            valid = " & ".join(_lands(f"{out}{k}", step, n)
                               for out, k, step, n in (("oh", i, sh, ho), ("ow", j, sw, wo)))
            at = ["i0", f"oh{i} // {sh}" if sh > 1 else f"oh{i}",
                  f"ow{j} // {sw}" if sw > 1 else f"ow{j}", "i1", str(i), str(j)]
            terms.append(read(g, at=at, valid=valid))
    body.append(f"result = {terms[0]}")
    body += [f"result += {t}" for t in terms[1:]]
    return {"body": body}


def _lands(offset, step, n):
    """Device code: whether a padded-image offset is the start of window ``offset // step``."""
    if step == 1:
        return f"({offset} >= 0) & ({offset} < {n})"
    return f"({offset} >= 0) & ({offset} % {step} == 0) & ({offset} // {step} < {n})"


register(OpDef(
    "patches", "shape", shape=_patches_shape, dtype=_float,
    vjp=lambda node, g: [patches_adjoint(g, node.inputs[0].shape[2:], **_geometry(node))],
    jvp=lambda node, t: patches(t[0], fill=0.0, **_geometry(node)),  # the fill is a constant
    numpy=_patches_numpy, triton=_patches_triton, scalarize=_patches_scalarize, by_index=True,
    numpy_windows=True,
    doc="sliding windows (N, C, H, W) -> (N, H_out, W_out, C, kH, kW), padded with fill",
    flops=0))
register(OpDef(
    "patches_adjoint", "shape", shape=_adjoint_shape, dtype=_float,
    vjp=lambda node, g: [patches(g, **_geometry(node))],
    jvp=lambda node, t: patches_adjoint(t[0], node.attr("image"), **_geometry(node)),
    numpy=_adjoint_numpy, triton=_adjoint_triton, scalarize=_adjoint_scalarize, by_index=True,
    doc="windows added back into images (col2im): the adjoint of patches",
    flops=lambda node: numel(node.inputs[0].shape)))  # one add per window element


# -- the functions users call (torch.nn.functional's names, arguments and defaults) ------


def _padding(padding, kernel, dilation, stride):
    """PyTorch's ``padding``: an int, a pair, ``"valid"`` or ``"same"``; as (top, bottom,
    left, right)."""
    if padding == "valid":
        return (0, 0, 0, 0)
    if padding == "same":
        if stride != (1, 1):
            raise GradcError("padding='same' needs stride 1 (as in PyTorch)", where=user_location())
        total = [d * (k - 1) for k, d in zip(kernel, dilation)]
        return (total[0] // 2, total[0] - total[0] // 2, total[1] // 2, total[1] - total[1] // 2)
    ph, pw = _pairs(padding, "padding")
    return (ph, ph, pw, pw)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):  # noqa: A002
    """2-D convolution (cross-correlation) as ``torch.nn.functional.conv2d``: ``input``
    (N, C_in, H, W), ``weight`` (C_out, C_in / groups, kH, kW), ``bias`` (C_out,).
    Computed as im2col: one row of windows per output pixel times the weights."""
    x, w = F.as_node(input), F.as_node(weight)
    if x.ndim != 4 or w.ndim != 4:
        raise GradcError(f"conv2d needs a 4-D input (N, C, H, W) and a 4-D weight, got "
                         f"{fmt(x.shape)} and {fmt(w.shape)}", where=user_location())
    if not isinstance(groups, int) or groups < 1:
        raise GradcError(f"groups must be a positive int, got {groups!r}", where=user_location())
    c_out, c_group, kh, kw = w.shape
    if x.shape[1] != c_group * groups or c_out % groups:
        raise GradcError(f"conv2d with groups={groups}: input channels {x.shape[1]} and output "
                         f"channels {c_out} must both be divisible by groups, and the weight "
                         f"{fmt(w.shape)} must take {x.shape[1]} // {groups} input channels",
                         where=user_location())
    stride, dilation = _pairs(stride, "stride"), _pairs(dilation, "dilation")
    if min(stride + dilation) < 1:
        raise GradcError(f"stride and dilation must be positive, got {stride} and {dilation}",
                         where=user_location())
    windows = patches(x, (kh, kw), stride, dilation, _padding(padding, (kh, kw), dilation, stride))
    n, ho, wo = windows.shape[:3]
    k = c_group * kh * kw
    if groups == 1:
        out = F.matmul(F.reshape(windows, (n * ho * wo, k)),
                       F.transpose(F.reshape(w, (c_out, k))))
    else:  # a batch of groups: (G, rows, K) @ (G, K, C_out / G)
        rows = F.transpose(F.reshape(windows, (n * ho * wo, groups, k)), (1, 0, 2))
        out = F.matmul(rows, F.swap_last(F.reshape(w, (groups, c_out // groups, k))))
        out = F.reshape(F.transpose(out, (1, 0, 2)), (n * ho * wo, c_out))
    if bias is not None:
        out = out + bias
    return F.transpose(F.reshape(out, (n, ho, wo, c_out)), (0, 3, 1, 2))


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):  # noqa: A002
    """1-D convolution as ``torch.nn.functional.conv1d``: ``input`` (N, C_in, L), ``weight``
    (C_out, C_in / groups, k); a conv2d over images of height 1."""
    x, w = F.as_node(input), F.as_node(weight)
    if x.ndim != 3 or w.ndim != 3:
        raise GradcError(f"conv1d needs a 3-D input (N, C, L) and a 3-D weight, got "
                         f"{fmt(x.shape)} and {fmt(w.shape)}", where=user_location())
    out = conv2d(F.reshape(x, x.shape[:2] + (1, x.shape[2])),
                 F.reshape(w, w.shape[:2] + (1, w.shape[2])), bias, (1, _single(stride)),
                 padding if isinstance(padding, str) else (0, _single(padding)),
                 (1, _single(dilation)), groups)
    return F.reshape(out, out.shape[:2] + out.shape[3:])


def _single(value):
    return value[0] if isinstance(value, (tuple, list)) and len(value) == 1 else value


def _pool_windows(x, kernel_size, stride, padding, dilation, fill, name):
    x = F.as_node(x)
    if x.ndim not in (3, 4):
        raise GradcError(f"{name} needs a 3-D (C, H, W) or 4-D (N, C, H, W) input, got "
                         f"{fmt(x.shape)}", where=user_location())
    kernel = _pairs(kernel_size, "kernel_size")
    stride = kernel if stride is None or stride == () else _pairs(stride, "stride")
    (ph, pw), dilation = _pairs(padding, "padding"), _pairs(dilation, "dilation")
    if ph > kernel[0] // 2 or pw > kernel[1] // 2:
        raise GradcError(f"{name}: padding {padding} must be at most half the kernel size "
                         f"{kernel} (as in PyTorch)", where=user_location())
    images = x if x.ndim == 4 else F.reshape(x, (1,) + x.shape)
    return x, patches(images, kernel, stride, dilation, (ph, ph, pw, pw), fill)


def _from_windows(x, value):
    """(N, H_out, W_out, C) back to (N, C, H_out, W_out), or (C, ...) for a 3-D input."""
    out = F.transpose(value, (0, 3, 1, 2))
    return out if x.ndim == 4 else F.reshape(out, out.shape[1:])


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1):  # noqa: A002
    """The maximum of each window, as ``torch.nn.functional.max_pool2d`` (stride defaults
    to the kernel size; padding is -inf).  A window with tied maxima shares the gradient
    equally among them (PyTorch gives all of it to the first)."""
    x, windows = _pool_windows(input, kernel_size, stride, padding, dilation, -math.inf,
                               "max_pool2d")
    return _from_windows(x, F.max(windows, axis=(4, 5)))


def avg_pool2d(input, kernel_size, stride=None, padding=0):  # noqa: A002
    """The mean of each window, as ``torch.nn.functional.avg_pool2d`` with its defaults
    (zero padding counted in the mean)."""
    x, windows = _pool_windows(input, kernel_size, stride, padding, 1, 0.0, "avg_pool2d")
    return _from_windows(x, F.mean(windows, axis=(4, 5)))


def pad(input, pad, mode="constant", value=0.0):  # noqa: A002
    """Constant padding of the last one or two axes, as ``torch.nn.functional.pad``:
    ``pad`` is (left, right) or (left, right, top, bottom)."""
    x = F.as_node(input)
    if mode != "constant":
        raise GradcError(f"pad supports mode='constant', got {mode!r}", where=user_location())
    if not isinstance(pad, (tuple, list)) or len(pad) not in (2, 4) or not all(
            isinstance(p, int) and p >= 0 for p in pad):
        raise GradcError(f"pad must be (left, right) or (left, right, top, bottom) of "
                         f"non-negative ints, got {pad!r}", where=user_location())
    axes = len(pad) // 2
    if x.ndim < axes:
        raise GradcError(f"pad {pad} needs at least {axes} axes, got shape {fmt(x.shape)}",
                         where=user_location())
    left, right, top, bottom = tuple(pad) + (0, 0) * (axes == 1)
    lead = x.shape[:x.ndim - axes]
    h, w = (x.shape[-2:] if axes == 2 else (1, x.shape[-1]))
    images = F.reshape(x, (numel(lead), 1, h, w))
    out = patches(images, (1, 1), (1, 1), (1, 1), (top, bottom, left, right), value)
    size = (h + top + bottom, w + left + right) if axes == 2 else (w + left + right,)
    return F.reshape(out, lead + size)


def flatten(input, start_dim=1, end_dim=-1):  # noqa: A002
    """Axes ``start_dim`` to ``end_dim`` as one, as ``torch.flatten`` but from axis 1 by
    default (as ``torch.nn.Flatten``: the batch axis stays)."""
    x = F.as_node(input)
    if x.ndim == 0:
        return F.reshape(x, (1,))
    start, end = F.axes_of(start_dim, x)[0], F.axes_of(end_dim, x)[0]
    if start > end:
        raise GradcError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim}",
                         where=user_location())
    return F.reshape(x, x.shape[:start] + (numel(x.shape[start:end + 1]),) + x.shape[end + 1:])
