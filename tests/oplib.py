"""The op table: one row per op, checked by one helper against three oracles.

Each row builds the op on gradc nodes, on numpy arrays and on torch tensors.
``check_row`` compiles ``loss = sum(op(inputs) * r)`` in float64 and asserts

- the value equals numpy's (relative 1e-12),
- every input gradient equals PyTorch autograd's (relative 1e-9),
- every input gradient equals central finite differences (relative 1e-6).

A new op is one new row in ``ROWS``.
"""
from dataclasses import dataclass, field

import math

import numpy as np
import torch

from compiler import Input, Model, Param, compile, ops as F
from compiler.ops.loss import cross_entropy_grad_node

torch.set_default_dtype(torch.float64)


@dataclass
class Row:
    name: str
    gradc: callable
    numpy: callable
    torch: callable
    shapes: list                      # list of tuples of input shapes
    domain: str = "any"               # "any" | "positive" | "unit" (values in (0.1, 0.9))
    ops: tuple = ()                   # registry ops this row exercises (default: name)
    int_inputs: dict = field(default_factory=dict)   # index -> number of classes
    fd: bool = True                   # False where finite differences see a different function


_np_erf = np.vectorize(math.erf)


def _np_softplus(x):
    return np.logaddexp(0, x)


def _np_lse(x, axis=None, keepdims=False):
    m = np.max(x, axis=axis, keepdims=True)
    out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=axis)


def _np_log_softmax(x):
    return x - _np_lse(x, -1, True)


def _np_conv2d(x, w, b=None, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1):
    """Direct convolution: a sum over kernel offsets of shifted, strided image slices."""
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    x = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    n, c, h, wd = x.shape
    c_out, cg, kh, kw = w.shape
    ho, wo = (h - dh * (kh - 1) - 1) // sh + 1, (wd - dw * (kw - 1) - 1) // sw + 1
    out = np.zeros((n, c_out, ho, wo))
    per = c_out // groups
    for g in range(groups):
        xs, ws = x[:, g * cg:(g + 1) * cg], w[g * per:(g + 1) * per]
        for i in range(kh):
            for j in range(kw):
                window = xs[:, :, i * dh:i * dh + sh * (ho - 1) + 1:sh, j * dw:j * dw + sw * (wo - 1) + 1:sw]
                out[:, g * per:(g + 1) * per] += np.einsum("nchw,oc->nohw", window, ws[:, :, i, j])
    return out if b is None else out + b[:, None, None]


def _np_pool(x, k, s, p, reduce, fill):
    x = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)), constant_values=fill)
    ho, wo = (x.shape[2] - k) // s + 1, (x.shape[3] - k) // s + 1
    windows = [x[:, :, i:i + s * (ho - 1) + 1:s, j:j + s * (wo - 1) + 1:s]
               for i in range(k) for j in range(k)]
    return reduce(np.stack(windows), axis=0)


CONV_OPS = ("patches", "patches_adjoint", "matmul", "reshape", "transpose")


BINARY_SHAPES = [((3, 4), (3, 4)), ((3, 4), (4,)), ((2, 1, 4), (3, 1)), ((), (3,))]
UNARY_SHAPES = [((5,),), ((3, 4),)]

ROWS = [
    Row("add", lambda a, b: a + b, np.add, torch.add, BINARY_SHAPES),
    Row("sub", lambda a, b: a - b, np.subtract, torch.sub, BINARY_SHAPES),
    Row("mul", lambda a, b: a * b, np.multiply, torch.mul, BINARY_SHAPES),
    Row("div", lambda a, b: a / b, np.divide, torch.div, BINARY_SHAPES, domain="positive"),
    Row("neg", lambda a: -a, np.negative, torch.neg, UNARY_SHAPES),
    Row("pow", lambda a, b: a ** b, np.power, torch.pow, BINARY_SHAPES[:2], domain="positive"),
    Row("pow_const", lambda a: a ** 3, lambda a: a ** 3, lambda a: a ** 3, UNARY_SHAPES,
        ops=("pow",)),
    Row("rpow_const", lambda a: 2.0 ** a, lambda a: 2.0 ** a, lambda a: 2.0 ** a, UNARY_SHAPES,
        ops=("pow",)),
    Row("exp", F.exp, np.exp, torch.exp, UNARY_SHAPES),
    Row("log", F.log, np.log, torch.log, UNARY_SHAPES, domain="positive"),
    Row("sqrt", F.sqrt, np.sqrt, torch.sqrt, UNARY_SHAPES, domain="positive"),
    Row("sin", F.sin, np.sin, torch.sin, UNARY_SHAPES),
    Row("cos", F.cos, np.cos, torch.cos, UNARY_SHAPES),
    Row("tanh", F.tanh, np.tanh, torch.tanh, UNARY_SHAPES),
    Row("erf", F.erf, _np_erf, torch.erf, UNARY_SHAPES),
    Row("expm1", F.expm1, np.expm1, torch.expm1, UNARY_SHAPES),
    Row("log1p", F.log1p, np.log1p, torch.log1p, UNARY_SHAPES, domain="positive"),
    Row("gelu", F.gelu, lambda a: a / 2 * (1 + _np_erf(a / np.sqrt(2))),
        torch.nn.functional.gelu, UNARY_SHAPES, ops=("mul", "ndtr")),
    Row("ndtr", F.ndtr, lambda a: (1 + _np_erf(a / np.sqrt(2))) / 2, torch.special.ndtr,
        UNARY_SHAPES),
    Row("softsign", F.softsign, lambda a: a / (1 + np.abs(a)), torch.nn.functional.softsign,
        UNARY_SHAPES),
    Row("sigmoid", F.sigmoid, lambda a: 1 / (1 + np.exp(-a)), torch.sigmoid, UNARY_SHAPES),
    Row("softplus", F.softplus, _np_softplus, torch.nn.functional.softplus, UNARY_SHAPES),
    Row("relu", F.relu, lambda a: np.maximum(a, 0), torch.relu, UNARY_SHAPES),
    Row("abs", F.abs, np.abs, torch.abs, UNARY_SHAPES),
    Row("sign", lambda a: F.sign(a) * a, lambda a: np.sign(a) * a, lambda a: torch.sign(a) * a,
        UNARY_SHAPES, ops=("sign", "mul")),
    Row("heaviside", lambda a: F.heaviside(a, 0.5) * a, lambda a: np.heaviside(a, 0.5) * a,
        lambda a: torch.heaviside(a.detach(), torch.tensor(0.5)) * a, UNARY_SHAPES,
        ops=("heaviside", "mul")),
    Row("maximum", F.maximum, np.maximum, torch.maximum, BINARY_SHAPES),
    Row("minimum", F.minimum, np.minimum, torch.minimum, BINARY_SHAPES),
    Row("where", lambda c, a, b: F.where(c > 0, a, b), lambda c, a, b: np.where(c > 0, a, b),
        lambda c, a, b: torch.where(c > 0, a, b), [((3, 4), (3, 4), (4,))],
        ops=("where", "greater")),
    Row("compare", lambda a, b: F.where(a >= b, a, 0.0) + F.where(a <= b, 0.0, b)
        + F.where(F.less(a, b), 1.0, 2.0) * F.where(F.equal(a, a), a, b)
        + a * (a != b) - b * (a == b),
        lambda a, b: np.where(a >= b, a, 0.0) + np.where(a <= b, 0.0, b)
        + np.where(a < b, 1.0, 2.0) * a + a * (a != b) - b * (a == b),
        lambda a, b: torch.where(a >= b, a, 0.0) + torch.where(a <= b, 0.0, b)
        + torch.where(a < b, 1.0, 2.0) * a + a * (a != b) - b * (a == b),
        [((3, 4), (4,))], ops=("greater_equal", "less_equal", "less", "equal", "not_equal")),
    Row("stop_gradient", lambda a: F.stop_gradient(a) * a, lambda a: a * a,
        lambda a: a.detach() * a, UNARY_SHAPES, fd=False),
    # evaluation mode (no rng): the identity; training mode is tested in test_training.py
    Row("dropout", lambda a: F.dropout(a, 0.3), lambda a: a, lambda a: a * 1.0, UNARY_SHAPES),
    Row("matmul", F.matmul, np.matmul, torch.matmul, [((3, 4), (4, 2)), ((1, 5), (5, 1))]),
    Row("matmul_vec", F.matmul, np.matmul, torch.matmul,
        [((3, 4), (4,)), ((4,), (4, 2)), ((3,), (3,)), ((1,), (1,))],
        ops=("matmul", "reshape")),
    # batch dimensions broadcast both ways; a batch folded into rows; 1-D with a batch
    Row("matmul_batched", F.matmul, np.matmul, torch.matmul,
        [((2, 1, 3, 4), (3, 4, 2)), ((2, 3, 4, 5), (2, 3, 5, 2)), ((2, 3, 4), (4, 5)),
         ((4,), (2, 4, 3)), ((2, 3, 4), (4,)), ((3, 4), (2, 4, 1))], ops=("matmul", "reshape")),
    Row("conv2d", F.conv2d, _np_conv2d, torch.nn.functional.conv2d,
        [((2, 3, 7, 5), (4, 3, 3, 3), (4,)), ((1, 1, 4, 4), (2, 1, 1, 1), (2,))],
        ops=CONV_OPS + ("add",)),
    Row("conv2d_strided_padded", lambda x, w: F.conv2d(x, w, stride=2, padding=1),
        lambda x, w: _np_conv2d(x, w, stride=(2, 2), padding=(1, 1)),
        lambda x, w: torch.nn.functional.conv2d(x, w, stride=2, padding=1),
        [((2, 3, 7, 5), (4, 3, 3, 2))], ops=CONV_OPS),
    Row("conv2d_dilated_grouped",
        lambda x, w: F.conv2d(x, w, stride=(1, 2), padding=(2, 1), dilation=2, groups=2),
        lambda x, w: _np_conv2d(x, w, stride=(1, 2), padding=(2, 1), dilation=(2, 2), groups=2),
        lambda x, w: torch.nn.functional.conv2d(x, w, stride=(1, 2), padding=(2, 1), dilation=2,
                                                groups=2),
        [((1, 4, 7, 6), (6, 2, 3, 3))], ops=CONV_OPS),
    Row("conv1d", lambda x, w, b: F.conv1d(x, w, b, stride=2, padding=1),
        lambda x, w, b: _np_conv2d(x[:, :, None], w[:, :, None], b, stride=(1, 2),
                                   padding=(0, 1))[:, :, 0],
        lambda x, w, b: torch.nn.functional.conv1d(x, w, b, stride=2, padding=1),
        [((2, 3, 9), (4, 3, 3), (4,))], ops=CONV_OPS + ("add",)),
    Row("max_pool2d", lambda x: F.max_pool2d(x, 3, stride=2, padding=1),
        lambda x: _np_pool(x, 3, 2, 1, np.max, -np.inf),
        lambda x: torch.nn.functional.max_pool2d(x, 3, stride=2, padding=1),
        [((2, 3, 7, 5),)], ops=("patches", "patches_adjoint", "max", "transpose")),
    Row("avg_pool2d", lambda x: F.avg_pool2d(x, 2), lambda x: _np_pool(x, 2, 2, 0, np.mean, 0.0),
        lambda x: torch.nn.functional.avg_pool2d(x, 2),
        [((2, 3, 7, 5),)], ops=("patches", "patches_adjoint", "sum", "transpose")),
    Row("pad", lambda x: F.pad(x, (1, 2, 0, 3), value=0.5),
        lambda x: np.pad(x, ((0, 0), (0, 3), (1, 2)), constant_values=0.5),
        lambda x: torch.nn.functional.pad(x, (1, 2, 0, 3), value=0.5),
        [((2, 3, 4),)], ops=("patches", "patches_adjoint", "reshape")),
    Row("pad_last_axis", lambda x: F.pad(x, (2, 1)), lambda x: np.pad(x, ((0, 0), (2, 1))),
        lambda x: torch.nn.functional.pad(x, (2, 1)), [((3, 5),)], ops=("patches",)),
    Row("flatten", F.flatten, lambda x: x.reshape(x.shape[0], -1), lambda x: torch.flatten(x, 1),
        [((2, 3, 4, 5),)], ops=("reshape",)),
    Row("transpose", lambda a: F.transpose(a), np.transpose, lambda a: a.permute(*reversed(range(a.ndim))),
        [((3, 4),), ((2, 3, 4),)]),
    Row("transpose_axes", lambda a: F.transpose(a, (1, 2, 0)), lambda a: np.transpose(a, (1, 2, 0)),
        lambda a: a.permute(1, 2, 0), [((2, 3, 4),)], ops=("transpose",)),
    Row("reshape", lambda a: F.reshape(a, (2, -1)), lambda a: a.reshape(2, -1),
        lambda a: a.reshape(2, -1), [((3, 4),), ((2, 3, 2),)]),
    Row("broadcast_to", lambda a: F.broadcast_to(a, (3, 2, 4)), lambda a: np.broadcast_to(a, (3, 2, 4)),
        lambda a: a.expand(3, 2, 4), [((4,),), ((2, 1),), ((),)]),
    Row("sum", lambda a: F.sum(a, axis=0), lambda a: a.sum(axis=0), lambda a: a.sum(0),
        [((3, 4),), ((2, 3, 4),)]),
    Row("sum_keepdims", lambda a: F.sum(a, axis=(0, 2), keepdims=True),
        lambda a: a.sum(axis=(0, 2), keepdims=True), lambda a: a.sum((0, 2), keepdim=True),
        [((2, 3, 4),)], ops=("sum",)),
    Row("sum_all", F.sum, np.sum, torch.sum, [((3, 4),)], ops=("sum",)),
    Row("mean", lambda a: F.mean(a, axis=-1), lambda a: a.mean(axis=-1), lambda a: a.mean(-1),
        [((3, 4),), ((5,),)], ops=("sum", "mul")),
    Row("max", lambda a: F.max(a, axis=1), lambda a: a.max(axis=1), lambda a: torch.amax(a, 1),
        [((3, 4),), ((2, 5, 3),)]),
    Row("logsumexp", lambda a: F.logsumexp(a, axis=-1), lambda a: _np_lse(a, -1),
        lambda a: torch.logsumexp(a, -1), [((3, 4),), ((6,),)]),
    Row("softmax", F.softmax, lambda a: np.exp(_np_log_softmax(a)),
        lambda a: torch.softmax(a, -1), [((3, 4),)], ops=("logsumexp", "exp", "sub")),
    Row("log_softmax", F.log_softmax, _np_log_softmax, lambda a: torch.log_softmax(a, -1),
        [((3, 4),), ((5,),)], ops=("logsumexp", "sub")),
    Row("mse", F.mse, lambda a, b: np.mean((a - b) ** 2), torch.nn.functional.mse_loss,
        [((3, 4), (3, 4))]),
    Row("bce_with_logits", F.bce_with_logits,
        lambda z, y: np.mean(_np_softplus(z) - y * z),
        torch.nn.functional.binary_cross_entropy_with_logits, [((6, 1), (6, 1))],
        ops=("softplus",)),
    Row("cross_entropy", F.cross_entropy,
        lambda z, k: -np.mean(_np_log_softmax(z)[np.arange(len(k)), k]),
        torch.nn.functional.cross_entropy, [((5, 3), (5,)), ((2, 7), (2,))], int_inputs={1: 3},
        ops=("softmax_cross_entropy",)),
    Row("accuracy", lambda z, k: F.accuracy(z, k) * F.sum(z),
        lambda z, k: np.mean(z[np.arange(len(k)), k] >= z.max(axis=1)) * z.sum(),
        lambda z, k: (z.gather(1, k[:, None])[:, 0] >= z.amax(1)).double().mean() * z.sum(),
        [((5, 3), (5,)), ((4, 7), (4,))], int_inputs={1: 3},
        ops=("softmax_cross_entropy_accuracy",)),
    Row("one_hot", lambda z, k: F.sum(F.one_hot(k, 3) * z, axis=1),
        lambda z, k: z[np.arange(len(k)), k],
        lambda z, k: z.gather(1, k[:, None])[:, 0], [((5, 3), (5,))], int_inputs={1: 3}),
    Row("cross_entropy_grad", cross_entropy_grad_node,
        lambda z, k, g: (np.exp(_np_log_softmax(z)) - np.eye(z.shape[1])[k]) * g / len(k),
        lambda z, k, g: (torch.softmax(z, -1) - torch.nn.functional.one_hot(k, z.shape[1])) * g / len(k),
        [((5, 3), (5,), ()), ((2, 7), (2,), ())], int_inputs={1: 3},
        ops=("softmax_cross_entropy_grad",)),
    Row("l1", F.l1, lambda a: np.sum(np.abs(a)), lambda a: a.abs().sum(), UNARY_SHAPES,
        ops=("abs", "sum")),
    Row("l2", F.l2, lambda a: np.sum(a ** 2), lambda a: (a ** 2).sum(), UNARY_SHAPES,
        ops=("pow", "sum")),
]


def _torch_index(*keys):
    """``t[key0][key1]...`` for torch with numpy's meaning (torch has no negative steps):
    the same elements picked by their flat positions, whose backward adds into place."""
    def pick(t):
        flat = np.arange(t.numel()).reshape(tuple(t.shape))
        for key in keys:
            flat = flat[key]
        return t.reshape(-1)[torch.as_tensor(flat.copy())]
    return pick


def _torch_split_reversed(a, parts, axis):
    return torch.cat(list(reversed(torch.split(a, parts, axis))), axis)


def _np_split_reversed(a, parts, axis):
    return _torch_split_reversed(torch.as_tensor(a), parts, axis).numpy()


# Indexing: negative and stepped slices, new axes, 0-d and size-1 axes; gathers whose
# indices repeat (more indices than places), so their adjoint's sums are exercised.
INDEXING = ("slice", "unslice", "reshape")
ROWS += [
    Row("getitem", lambda a: a[1:, ::-2, None, -1], lambda a: a[1:, ::-2, None, -1],
        _torch_index((slice(1, None), slice(None, None, -2), None, -1)), [((4, 5, 3),)],
        ops=INDEXING),
    Row("getitem_steps", lambda a: a[..., 5:0:-2][::2], lambda a: a[..., 5:0:-2][::2],
        _torch_index((Ellipsis, slice(5, 0, -2)), slice(None, None, 2)), [((6,),)], ops=INDEXING),
    Row("getitem_matrix_steps", lambda a: a[-2::-3, 1:-1:2], lambda a: a[-2::-3, 1:-1:2],
        _torch_index((slice(-2, None, -3), slice(1, -1, 2))), [((7, 6),), ((1, 4),)],
        ops=INDEXING),
    Row("getitem_new_axes", lambda a: a[None, ..., None], lambda a: a[None, ..., None],
        lambda a: a[None, ..., None], [((),), ((1, 3),)], ops=("reshape",)),
    Row("getitem_integers", lambda a: a[0, -1:], lambda a: a[0, -1:],
        lambda a: a[0, -1:], [((1, 3),), ((3, 1, 2),)], ops=INDEXING),
    Row("take", lambda x, k: F.take(x, k, axis=1), lambda x, k: np.take(x, k, axis=1),
        lambda x, k: x[:, k], [((3, 4, 2), (2, 5)), ((2, 4), ())], int_inputs={1: 4},
        ops=("take_along_axis", "scatter_add", "reshape", "broadcast_to")),
    Row("take_rows", lambda w, k: F.take(w, k, axis=0), lambda w, k: w[k],
        lambda w, k: torch.nn.functional.embedding(k, w), [((4, 3), (2, 5)), ((4, 1), (6,))],
        int_inputs={1: 4}, ops=("take_along_axis", "scatter_add")),
    Row("take_along_axis", lambda x, k: F.take_along_axis(x, k, axis=1),
        lambda x, k: np.take_along_axis(x, k, axis=1),
        lambda x, k: torch.take_along_dim(x, k, dim=1), [((3, 4), (3, 6)), ((2, 4, 3), (1, 5, 3))],
        int_inputs={1: 4}, ops=("take_along_axis", "scatter_add")),
    Row("concat", lambda a, b: F.concat([a, b, a], axis=1),
        lambda a, b: np.concatenate([a, b, a], axis=1), lambda a, b: torch.cat([a, b, a], 1),
        [((2, 3), (2, 1)), ((1, 2, 2), (1, 3, 2))], ops=("concat", "slice", "unslice")),
    Row("stack", lambda a, b: F.stack([a, b], axis=-1), lambda a, b: np.stack([a, b], -1),
        lambda a, b: torch.stack([a, b], -1), [((2, 3), (2, 3)), ((), ())],
        ops=("concat", "reshape")),
    Row("split", lambda a: F.concat(list(reversed(F.split(a, 2, axis=1))), axis=1),
        lambda a: _np_split_reversed(a, 2, 1), lambda a: _torch_split_reversed(a, 2, 1),
        [((3, 5),)], ops=("slice", "unslice", "concat")),
    Row("split_sizes", lambda a: F.split(a, [1, 3], axis=0)[1],
        lambda a: a[1:], lambda a: torch.split(a, [1, 3], 0)[1], [((4, 2),)], ops=INDEXING),
    Row("tril", lambda a: F.tril(a, -1), lambda a: np.tril(a, -1), lambda a: torch.tril(a, -1),
        [((4, 3),), ((2, 3, 5),)]),
    Row("triu", lambda a: F.triu(a, 1), lambda a: np.triu(a, 1), lambda a: torch.triu(a, 1),
        [((3, 4),), ((2, 1, 1),)]),
]


def _np_gelu_tanh(a):
    return a / 2 * (1 + np.tanh(np.sqrt(2 / np.pi) * (a + 0.044715 * a ** 3)))


def _np_layer_norm(x, w, b, axes):
    centred = x - x.mean(axis=axes, keepdims=True)
    return centred / np.sqrt((centred ** 2).mean(axis=axes, keepdims=True) + 1e-5) * w + b


ROWS += [
    Row("var", lambda a: F.var(a, axis=1), lambda a: np.var(a, axis=1, ddof=1),
        lambda a: torch.var(a, 1), [((3, 4),), ((2, 5, 3),)], ops=("sum", "sub", "mul")),
    Row("var_population", lambda a: F.var(a, (0, 2), correction=0, keepdims=True),
        lambda a: np.var(a, axis=(0, 2), keepdims=True),
        lambda a: torch.var(a, (0, 2), correction=0, keepdim=True), [((2, 3, 4),)],
        ops=("sum", "sub", "mul")),
    Row("std", F.std, lambda a: np.std(a, ddof=1), torch.std, [((3, 4),), ((5,),)],
        ops=("sum", "sub", "mul", "pow")),
    Row("min", lambda a: F.min(a, axis=1), lambda a: a.min(axis=1), lambda a: torch.amin(a, 1),
        [((3, 4),), ((2, 5, 3),)], ops=("max", "neg")),
    Row("min_ties", lambda a: F.min(F.concat([a, a], axis=-1), axis=-1),
        lambda a: a.min(axis=-1), lambda a: torch.amin(torch.cat([a, a], -1), -1),
        [((3, 4),)], ops=("max", "neg", "concat")),
    Row("argmax", lambda a: F.take_along_axis(a, F.argmax(a, axis=1, keepdims=True), axis=1),
        lambda a: np.take_along_axis(a, np.argmax(a, axis=1, keepdims=True), axis=1),
        lambda a: torch.take_along_dim(a, torch.argmax(a, 1, keepdim=True), 1),
        [((3, 4),), ((2, 5, 3),)], ops=("argmax", "take_along_axis")),
    Row("argmax_flat", lambda a: F.take(a, F.argmax(a)), lambda a: np.take(a, np.argmax(a)),
        lambda a: a.reshape(-1)[torch.argmax(a)], [((5,),), ((3, 4),)], ops=("argmax",)),
    Row("clip", lambda a: F.clip(a, -0.5, 0.7), lambda a: np.clip(a, -0.5, 0.7),
        lambda a: torch.clamp(a, -0.5, 0.7), UNARY_SHAPES, ops=("where", "less", "greater")),
    # x on a bound everywhere: its gradient flows to x (bounds included), none to the bounds
    Row("clip_at_bounds", lambda a, b: F.clip(a, F.minimum(a, b), F.maximum(a, b)),
        lambda a, b: a, lambda a, b: torch.clamp(a, torch.minimum(a, b), torch.maximum(a, b)),
        [((3, 4), (3, 4))], ops=("where", "less", "greater")),
    Row("gelu_tanh", lambda a: F.gelu(a, approximate="tanh"), _np_gelu_tanh,
        lambda a: torch.nn.functional.gelu(a, approximate="tanh"), UNARY_SHAPES),
    Row("softmax_axis0", lambda a: F.softmax(a, axis=0), lambda a: np.exp(a - _np_lse(a, 0, True)),
        lambda a: torch.softmax(a, 0), [((3, 4),), ((2, 3, 4),)],
        ops=("logsumexp", "exp", "sub")),
    Row("log_softmax_axis1", lambda a: F.log_softmax(a, axis=1), lambda a: a - _np_lse(a, 1, True),
        lambda a: torch.log_softmax(a, 1), [((2, 3, 4),)], ops=("logsumexp", "sub")),
    Row("layer_norm", lambda x, w, b: F.layer_norm(x, (4,), w, b),
        lambda x, w, b: _np_layer_norm(x, w, b, (-1,)),
        lambda x, w, b: torch.nn.functional.layer_norm(x, (4,), w, b),
        [((3, 4), (4,), (4,)), ((2, 3, 4), (4,), (4,))], ops=("sum", "sub", "mul", "div")),
    Row("layer_norm_2d", lambda x, w, b: F.layer_norm(x, (2, 3), w, b),
        lambda x, w, b: _np_layer_norm(x, w, b, (-2, -1)),
        lambda x, w, b: torch.nn.functional.layer_norm(x, (2, 3), w, b),
        [((4, 2, 3), (2, 3), (2, 3))], ops=("sum", "sub", "mul", "div")),
]


def _np_cross_entropy(z, k, ignore_index=-100, label_smoothing=0.0):
    """PyTorch's mean cross-entropy with the class axis last: over the targets that are
    not ignored, ``-(1 - e) log p[k] - e * mean(log p)``."""
    log_p = _np_log_softmax(z.reshape(-1, z.shape[-1]))
    k = k.reshape(-1)
    kept = k != ignore_index
    picked = log_p[kept, k[kept]]
    return -np.sum((1 - label_smoothing) * picked + label_smoothing * log_p[kept].mean(axis=1)) / kept.sum()


def _torch_cross_entropy(**options):
    """torch's cross_entropy with the class axis moved last, as gradc's."""
    return lambda z, k: torch.nn.functional.cross_entropy(z.reshape(-1, z.shape[-1]), k.reshape(-1),
                                                          **options)


def _np_cross_entropy_grad(z, k, g, ignore_index, label_smoothing):
    c = z.shape[1]
    kept = (k != ignore_index)[:, None]
    target = (1 - label_smoothing) * np.eye(c)[k] + label_smoothing / c
    return (np.exp(_np_log_softmax(z)) - target) * kept * g / kept.sum()


# The first shape of each row is what tests/test_triton.py runs: 21 rows are two blocks of
# the loss kernel and two chunks of its label count.
ROWS += [
    Row("cross_entropy_btc", F.cross_entropy, _np_cross_entropy, _torch_cross_entropy(),
        [((3, 7, 6), (3, 7)), ((2, 1, 3), (2, 1)), ((4,), ())], int_inputs={1: 3},
        ops=("softmax_cross_entropy",)),
    # targets 0..4 of 4 classes: the 4s are ignored (as PyTorch's default -100 would be)
    Row("cross_entropy_ignore_index", lambda z, k: F.cross_entropy(z, k, ignore_index=4),
        lambda z, k: _np_cross_entropy(z, k, 4), _torch_cross_entropy(ignore_index=4),
        [((3, 7, 4), (3, 7)), ((6, 4), (6,))], int_inputs={1: 5}, ops=("softmax_cross_entropy",)),
    Row("cross_entropy_label_smoothing", lambda z, k: F.cross_entropy(z, k, label_smoothing=0.3),
        lambda z, k: _np_cross_entropy(z, k, label_smoothing=0.3),
        _torch_cross_entropy(label_smoothing=0.3), [((3, 7, 6), (3, 7)), ((5, 6), (5,))],
        int_inputs={1: 6}, ops=("softmax_cross_entropy",)),
    # class 1 ignored (a padding token) and smoothing together
    Row("cross_entropy_ignore_and_smoothing",
        lambda z, k: F.cross_entropy(z, k, ignore_index=1, label_smoothing=0.2),
        lambda z, k: _np_cross_entropy(z, k, 1, 0.2),
        _torch_cross_entropy(ignore_index=1, label_smoothing=0.2),
        [((3, 7, 5), (3, 7)), ((2, 4, 5), (2, 4))], int_inputs={1: 5}, ops=("softmax_cross_entropy",)),
    Row("accuracy_ignore_index", lambda z, k: F.accuracy(z, k, ignore_index=0) * F.sum(z),
        lambda z, k: np.mean((np.take_along_axis(z, k[..., None], -1)[..., 0] >= z.max(-1))[k != 0])
        * z.sum(),
        lambda z, k: (z.gather(-1, k[..., None])[..., 0] >= z.amax(-1))[k != 0].double().mean()
        * z.sum(),
        [((3, 7, 3), (3, 7)), ((6, 3), (6,))], int_inputs={1: 3},
        ops=("softmax_cross_entropy_accuracy",)),
    Row("cross_entropy_grad_options", lambda z, k, g: cross_entropy_grad_node(z, k, g, 0, 0.25),
        lambda z, k, g: _np_cross_entropy_grad(z, k, g, 0, 0.25),
        lambda z, k, g: (torch.softmax(z, -1) - ((1 - 0.25) * torch.nn.functional.one_hot(k, 4) + 0.25 / 4))
        * (k != 0)[:, None] * g / (k != 0).sum(),
        [((21, 4), (21,), ()), ((5, 4), (5,), ())], int_inputs={1: 4},
        ops=("softmax_cross_entropy_grad",)),
]


def sample(shape, domain, rng):
    if domain == "positive":
        return rng.uniform(0.5, 2.0, size=shape)
    if domain == "unit":
        return rng.uniform(0.1, 0.9, size=shape)
    return rng.normal(size=shape)


def build(row, shapes, seed=0):
    """``(program, params, batch, data arrays)`` for one row at one set of shapes."""
    rng = np.random.default_rng(seed)
    nodes, arrays, params = [], [], {}
    for i, shape in enumerate(shapes):
        if i in row.int_inputs:
            nodes.append(Input(f"k{i}", shape, dtype="int64"))
            arrays.append(rng.integers(0, row.int_inputs[i], size=shape))
        else:
            nodes.append(Param(f"a{i}", shape))
            arrays.append(sample(shape, row.domain, rng))
            params[f"a{i}"] = arrays[-1]
    out = row.gradc(*nodes)
    r = Input("r", out.shape, dtype="float64")
    inputs = [n for n in nodes if n.op == "input"] + [r]
    model = Model(inputs=inputs, outputs={"out": out}, loss=F.sum(out * r))
    prog = compile(model, dtype="float64")
    batch = {n.name: a for n, a in zip(nodes, arrays) if n.op == "input"}
    batch["r"] = rng.normal(size=tuple(out.shape))
    return prog, params, batch, arrays


def finite_differences(prog, params, batch, h=1e-6):
    grads = {}
    for name, value in params.items():
        g = np.zeros(np.shape(value))
        flat, gflat = np.asarray(value, dtype=float).reshape(-1), g.reshape(-1)
        for j in range(flat.size):
            up, down = flat.copy(), flat.copy()
            up[j] += h
            down[j] -= h
            lu = prog.loss({**params, name: up.reshape(np.shape(value))}, batch)
            ld = prog.loss({**params, name: down.reshape(np.shape(value))}, batch)
            gflat[j] = (lu - ld) / (2 * h)
        grads[name] = g
    return grads


def torch_grads(row, arrays, r, int_inputs):
    ts = []
    for i, a in enumerate(arrays):
        if i in int_inputs:
            ts.append(torch.tensor(a))
        else:
            ts.append(torch.tensor(a, dtype=torch.float64, requires_grad=True))
    out = row.torch(*ts)
    (out * torch.tensor(r)).sum().backward()
    return {f"a{i}": t.grad.numpy() if t.grad is not None else np.zeros(t.shape)
            for i, t in enumerate(ts) if i not in int_inputs}


def rel_err(a, b):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    scale = max(np.max(np.abs(a), initial=0.0), np.max(np.abs(b), initial=0.0), 1e-300)
    return float(np.max(np.abs(a - b), initial=0.0) / scale)


def check_row(row, shapes):
    """Assert value, PyTorch gradient and finite-difference gradient for one row and shapes."""
    prog, params, batch, arrays = build(row, shapes)
    value = prog.predict(params, batch)["out"]
    expected = row.numpy(*arrays)
    assert np.shape(value) == np.shape(expected), (row.name, np.shape(value), np.shape(expected))
    assert rel_err(value, expected) <= 1e-12, (row.name, "value", rel_err(value, expected))
    _, grads = prog.loss_and_grad(params, batch)
    reference = torch_grads(row, arrays, batch["r"], row.int_inputs)
    numeric = finite_differences(prog, params, batch) if row.fd else reference
    for name in params:
        assert grads[name].shape == np.shape(params[name])
        assert rel_err(grads[name], reference[name]) <= 1e-9, (row.name, name, "torch",
                                                               rel_err(grads[name], reference[name]))
        assert rel_err(grads[name], numeric[name]) <= 1e-6, (row.name, name, "finite differences",
                                                             rel_err(grads[name], numeric[name]))


def _torch_loss(row, arrays, r):
    """``f(*float inputs) = sum(op(inputs) * r)`` for torch.autograd.functional."""
    float_idx = [i for i in range(len(arrays)) if i not in row.int_inputs]

    def f(*floats):
        ts = [torch.tensor(a) for a in arrays]
        for i, t in zip(float_idx, floats):
            ts[i] = t
        return (row.torch(*ts) * torch.tensor(r)).sum()

    return f, [torch.tensor(arrays[i]) for i in float_idx]


def check_row_higher_order(row, shapes, h=1e-6):
    """Assert the jvp (vs PyTorch and finite differences) and the Hessian-vector product
    (vs ``torch.autograd.functional.hvp``, relative 1e-8) for one row and shapes."""
    prog, params, batch, arrays = build(row, shapes)
    rng = np.random.default_rng(1)
    vector = {k: rng.normal(size=np.shape(v)) for k, v in params.items()}
    loss, directional = prog.jvp(params, batch, vector)
    f, floats = _torch_loss(row, arrays, batch["r"])
    vs = [torch.tensor(vector[f"a{i}"]) for i in range(len(arrays)) if i not in row.int_inputs]
    _, ref_jvp = torch.autograd.functional.jvp(f, tuple(floats), tuple(vs))
    assert rel_err(directional, ref_jvp.item()) <= 1e-9, (row.name, "jvp vs torch")
    if row.fd:
        up = prog.loss({k: v + h * vector[k] for k, v in params.items()}, batch)
        down = prog.loss({k: v - h * vector[k] for k, v in params.items()}, batch)
        fd = (up - down) / (2 * h)
        assert abs(directional - fd) <= 1e-6 * max(1.0, abs(fd)), (row.name, "jvp vs fd")
    hv = prog.hvp(params, batch, vector)
    _, ref_hv = torch.autograd.functional.hvp(f, tuple(floats), tuple(vs))
    float_names = [f"a{i}" for i in range(len(arrays)) if i not in row.int_inputs]
    for name, ref in zip(float_names, ref_hv):
        assert rel_err(hv[name], ref.numpy()) <= 1e-8, (row.name, name, "hvp", rel_err(hv[name], ref.numpy()))
