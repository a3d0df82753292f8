"""Small numpy helpers that generated modules call (``_rt.logsumexp`` and friends)."""
import math
import sys

import numpy as np


def logsumexp(x, axis, keepdims):
    """``log(sum(exp(x)))`` over ``axis`` without overflow (rows of -inf give -inf).

    Over a short last axis (attention's rows of T keys, at most 32) the rows are first made
    columns, in one copy: numpy reduces a short contiguous axis row by row (the maximum
    over (32, 4, 16, 16) takes 4x as long as the copy), columns in a few vector passes."""
    x = np.asarray(x)
    axes = (axis,) if isinstance(axis, int) else tuple(axis or ())
    if len(axes) == 1 and axes[0] % max(x.ndim, 1) == x.ndim - 1 and 1 < x.shape[-1] <= 32:
        columns = np.ascontiguousarray(np.moveaxis(x, -1, 0))
        out = np.moveaxis(_logsumexp(columns, 0), 0, -1)
    else:
        out = _logsumexp(x, axis)
    return out if keepdims else np.squeeze(out, axis=axis)


def fold_last(ufunc, x, n, keepdims):
    """``x`` reduced over its last ``n`` axes (a few elements: a pooling window, a short row)
    by ``ufunc`` (``numpy.add``, ``numpy.maximum``), one axis at a time, one elementwise call
    per element of that axis: numpy's reductions over small trailing axes of a strided view
    are slow (a 2x2 max pool of (128, 16, 8, 8) took 2,657 µs as ``.max(axis=(4, 5))``, 76
    µs folded element by element and 51 axis by axis: benchmarks/NOTES.md)."""
    x = np.asarray(x)
    lead, out = x.ndim - n, x
    for _ in range(n):
        parts = [out[(slice(None),) * lead + (i,)] for i in range(out.shape[lead])]
        if len(parts) == 1:
            out = parts[0]
            continue
        acc = np.asarray(ufunc(parts[0], parts[1]))  # (0-d for a 1-D x: an array, not a scalar)
        for part in parts[2:]:
            ufunc(acc, part, out=acc)
        out = acc
    if out is x or out.base is not None:  # every axis of size 1: still a view of x
        out = np.array(out)
    return out.reshape(x.shape[:lead] + (1,) * n) if keepdims else out


def _logsumexp(x, axis):
    m = x.max(axis=axis, keepdims=True)
    if not np.isfinite(m).all():
        m = np.where(np.isfinite(m), m, 0)
    out = np.log(np.exp(x - m).sum(axis=axis, keepdims=True))
    out += m
    return out


try:  # numpy has no erf: scipy's when installed (vectorized), else the C library's per element
    from scipy.special import erf as _erf_vector
except ImportError:
    _erf_vector = None
_erf_each = np.frompyfunc(math.erf, 1, 1)


def erf(x):
    """The error function elementwise: float64 (and other non-float32 input) to the last
    bit or two of float64; float32 arrays by ``erf_float32``, within 4 float32 ulps."""
    x = np.asarray(x)
    dtype = x.dtype if x.dtype.kind == "f" else np.float64
    if dtype == np.float32 and x.ndim:
        return erf_float32(x)
    if _erf_vector is not None:
        return np.asarray(_erf_vector(x), dtype=dtype)
    return np.asarray(_erf_each(x), dtype=dtype)  # 0-d: frompyfunc gives a Python float


# atanh(erf(x)) / x as a polynomial in x**2 on |x| <= 4 (highest power first): my own
# least-squares fit at 6,000 Chebyshev nodes of [0, 4], the constant term fixed at 2/sqrt(pi),
# each node weighted by how much a relative change of atanh(erf(x)) moves erf(x) (by
# 1 - erf(x)**2: little where erf is near 1), then reweighted toward the largest error.
# erf = tanh(x * P(x**2)) keeps the relative error near 0 and saturates to exactly 1 past
# x = 4 (erf rounds to 1 in float32 from 3.92 on); largest error 7.7e-8 relative (of erf).
_ATANH_ERF = (6.200216020099606e-09, 7.303040932984854e-09, -4.5989976412165e-06,
              8.371154595933796e-05, -0.0006128787605716765, -0.0001973013687757592,
              0.10277067411936865, 1.1283791670955126)


def _polynomial(u, coefficients):
    """``coefficients`` (highest power first) at ``u``, by Horner's rule in place."""
    out = u * coefficients[0]
    out += coefficients[1]
    for c in coefficients[2:]:
        out *= u
        out += c
    return out


def erf_float32(x):
    """erf of a float32 array in float32 arithmetic, within 4 ulps of the exact value (3.6
    the largest of 44 million points in [-6, 6]): ``tanh(x * P(x**2))``, x clipped to
    [-4, 4], about 20 numpy passes over ``x`` and no branch; 2x faster than the two-branch
    polynomial before it, 7x faster than scipy's erf (benchmarks/NOTES.md, "W5").

    >>> import math
    >>> x = np.linspace(-5, 5, 20001, dtype=np.float32)
    >>> exact = np.array([math.erf(v) for v in x.tolist()])
    >>> ulp = np.spacing(np.abs(exact).astype(np.float32)).astype(np.float64)
    >>> bool(np.all(np.abs(erf_float32(x) - exact) <= 4 * ulp))
    True
    >>> erf_float32(np.array([0, -0.0, np.inf, -np.inf, np.nan], np.float32)).tolist()
    [0.0, -0.0, 1.0, -1.0, nan]
    >>> t = x[:20000].reshape(100, 200).T  # not contiguous: the same values
    >>> bool(np.array_equal(erf_float32(t), erf_float32(np.ascontiguousarray(t))))
    True
    """
    x = np.clip(x, np.float32(-4), np.float32(4))
    out = _polynomial(x * x, _ATANH_ERF)
    out *= x
    return np.tanh(out, out=out)


def _softmax_parts(z, m=None):
    """``(m, exp(z - m), its row sums)``, ``m`` the row maximum (given, or found here; 0
    for a row of -inf).  A row holding +inf gives NaN, as PyTorch's cross_entropy does."""
    m = row_max(z) if m is None else m
    if (m == -np.inf).any():
        m = np.where(m == -np.inf, 0, m)
    e = np.exp(z - m)
    return m, e, row_sums(e, 1, True)


SHORT_ROW = 32  # rows of at most this many elements: reduced as columns (see row_max)


def row_max(z):
    """The maximum of each row of a 2-D ``z``, kept as a column.  Short rows (a loss's
    classes) are made columns first, in one copy: numpy reduces a short row at a time
    (512 rows of 11: 24 µs), columns in a few vector passes (4 µs)."""
    if 1 < z.shape[1] <= SHORT_ROW and z.shape[0] > 1:
        return np.ascontiguousarray(z.T).max(axis=0)[:, None]
    return z.max(axis=1, keepdims=True)


def _ones(length, dtype):
    """A vector of ``length`` ones, made once per length and dtype."""
    key = (length, np.dtype(dtype))
    ones = _ONES.get(key)
    if ones is None:
        ones = _ONES[key] = np.ones(length, dtype)
    return ones


BLAS_ROW = 4096  # longer rows are summed by numpy: its pairwise sum is more accurate


def row_sums(x, n, keepdims):
    """``x`` summed over its last ``n`` axes as one BLAS matrix-vector product with a vector
    of ones (numpy reduces one short row at a time: 512 rows of 64 floats take 15 µs as
    ``x.sum(axis=-1)``, 4 µs as ``x @ ones``); numpy's own sum where BLAS does not apply
    (no floats, not contiguous, empty) and for rows longer than ``BLAS_ROW``.

    >>> x = np.arange(24.0).reshape(2, 3, 4)
    >>> row_sums(x, 1, True).tolist() == x.sum(axis=2, keepdims=True).tolist()
    True
    >>> row_sums(x, 2, False).tolist()
    [66.0, 210.0]
    """
    x = np.asarray(x)
    axes = tuple(range(x.ndim - n, x.ndim))
    lead, length = x.shape[:x.ndim - n], math.prod(x.shape[x.ndim - n:])
    if x.dtype.kind != "f" or not x.flags.c_contiguous or not x.size or not n or \
            length > BLAS_ROW:
        return x.sum(axis=axes, keepdims=keepdims)
    out = x.reshape(-1, length) @ _ones(length, x.dtype)
    return out.reshape(lead + (1,) * n if keepdims else lead)


def relu(x):
    """``max(x, 0)`` elementwise (NaN stays NaN) as numpy's maximum against an array of
    zeros: numpy's maximum with a number is not vectorized (49 µs against 23 on (8192, 16)
    float32)."""
    x = np.asarray(x)
    if x.dtype.kind != "f" or not x.ndim:
        return np.maximum(x, 0)
    out = np.empty_like(x)
    out.fill(0)
    return np.maximum(x, out, out=out)


def select(c, x, keep=True):
    """``x`` where ``c`` holds (``keep=False``: where it does not), else 0: ``numpy.where(c,
    x, 0)`` with ``x``'s bits kept, NaN and inf too, computed as ``x``'s bits and a mask of
    0s and 1s (numpy.where takes 10x as long: 472 µs against 45 on 131,072 float32).
    A gradient through relu or where is this selection (PyTorch's ``inf`` there stays out).

    >>> select(np.array([True, False, True]), np.array([np.inf, np.inf, -2.0])).tolist()
    [inf, 0.0, -2.0]
    >>> select(np.array([[1.0], [0.0]]), np.array([np.nan, 3.0]), keep=False).tolist()
    [[0.0, 0.0], [nan, 3.0]]
    """
    x = np.asarray(x)
    c = np.asarray(c)
    if c.dtype != bool:
        c = c != 0
    if x.dtype.kind != "f" or x.dtype.itemsize not in (4, 8):
        return np.where(c if keep else ~c, x, 0)
    ints = np.dtype(f"i{x.dtype.itemsize}")
    shape = np.broadcast_shapes(c.shape, x.shape)
    like = x if x.shape == shape else c if c.shape == shape else None  # its memory order:
    mask = np.empty(shape, ints) if like is None else np.empty_like(like, ints)  # no strided pass
    if keep:
        np.subtract(0, c, out=mask, dtype=ints)  # -1 (every bit) where c, else 0
    else:
        np.subtract(c, 1, out=mask, dtype=ints)
    np.bitwise_and(mask, x.view(ints), out=mask)
    return mask.view(x.dtype)


def _rows_and_labels(z, labels, ignore_index):
    """``(counted, rows, labels)``: which rows count in the mean (label not ``ignore_index``)
    and the row indices and labels of those whose label is a class in ``[0, C)`` (one_hot's
    meaning: another label picks nothing, so its row adds no loss and gets no gradient)."""
    labels = np.asarray(labels)
    counted = labels != ignore_index
    inside = counted & (labels >= 0) & (labels < z.shape[1])
    if inside.all():
        return counted, np.arange(z.shape[0]), labels
    return counted, np.flatnonzero(inside), labels[inside]


def softmax_cross_entropy(z, labels, ignore_index=-100, label_smoothing=0.0):
    """Mean over counted rows of ``logsumexp(z_i) - sum(q_i * z_i)`` (a 0-d array)."""
    return softmax_cross_entropy_fused(z, labels, None, ("loss",), ignore_index, label_smoothing)[0]


def softmax_cross_entropy_grad(z, labels, g, ignore_index=-100, label_smoothing=0.0):
    """``(softmax(z) - q) * g / count`` (0 on rows without a counted class)."""
    return softmax_cross_entropy_fused(z, labels, g, ("grad",), ignore_index, label_smoothing)[0]


def classification_accuracy(z, labels, ignore_index=-100):
    """Fraction of counted rows whose label's logit is the largest (ties count as right; a
    row without a class compares 0 with its maximum, as ``sum(one_hot * z)`` does)."""
    return softmax_cross_entropy_fused(z, labels, None, ("accuracy",), ignore_index)[0]


def _mean(total, count, dtype):
    """``total / count`` as a 0-d array; NaN when nothing counts (0/0, as PyTorch)."""
    return np.asarray(total / count if count else np.nan, dtype=dtype)


def softmax_cross_entropy_fused(z, labels, g, wanted, ignore_index=-100, label_smoothing=0.0):
    """The fused loss kernel: the results named in ``wanted`` ("loss", "grad",
    "accuracy"), in that order, from one pass of exponentials over the logits ``(..., C)``
    (a row is one position of the leading axes, labels of that shape).  The means are over
    the rows whose label is not ``ignore_index``; the target of a row is its one-hot label
    mixed with the uniform distribution by ``label_smoothing``."""
    shape = np.shape(z)
    z, labels = z.reshape(-1, shape[-1]), np.reshape(labels, -1)
    n, c = z.shape
    counted, rows, picked = _rows_and_labels(z, labels, ignore_index)
    count, eps = np.count_nonzero(counted), label_smoothing
    results = {}
    top = row_max(z) if n and c else z.max(axis=1, initial=-np.inf, keepdims=True)
    if "accuracy" in wanted:
        chosen = np.zeros(n, z.dtype)
        chosen[rows] = z[rows, picked]
        hits = np.count_nonzero(counted & (chosen >= top[:, 0]))
        results["accuracy"] = _mean(hits, count, z.dtype)
    if "loss" in wanted or "grad" in wanted:
        if n == 0:
            results.update(loss=_mean(0, 0, z.dtype), grad=np.zeros(shape, z.dtype))
        else:
            m, e, s = _softmax_parts(z, top)
            # per labelled row log(s) + m - z[label], as log(s) + (m - z[label]): the shift
            # cancels exactly, so logits of 1e4 keep full precision; other rows add 0
            per_row = np.log(s[rows, 0]) + (1 - eps) * (m[rows, 0] - z[rows, picked])
            if eps:  # the uniform part of the target: eps * mean over classes of m - z
                per_row += eps * (m[rows] - z[rows]).mean(axis=1)
            results["loss"] = _mean(per_row.sum(), count, z.dtype)
            if "grad" in wanted:
                scale = np.asarray(g / max(count, 1), dtype=z.dtype)
                e *= scale / s     # softmax * g / count, in place
                if len(rows) < n:  # rows without a counted class get no gradient
                    unlabelled = np.ones(n, bool)
                    unlabelled[rows] = False
                    e[unlabelled] = 0
                e[rows, picked] -= scale * (1 - eps)
                if eps:
                    e[rows] -= scale * (eps / c)
                results["grad"] = e.reshape(shape)
    return tuple(results[w] for w in wanted)


_ONES = {}


def column_sums(a, out=None):
    """The sums over axis 0 of a 2-D array as one BLAS matrix-vector product (a bias
    gradient); the vector of ones is made once per length."""
    key = (a.shape[0], a.dtype)
    ones = _ONES.get(key)
    if ones is None:
        ones = _ONES[key] = np.ones(a.shape[0], a.dtype)
    return np.matmul(ones, a, out=out)


def one_hot(labels, n, dtype):
    """Rows of 0/1 with a 1 at each label."""
    return (np.asarray(labels)[..., None] == np.arange(n)).astype(dtype)


def materialize(x, dtype):
    """``x`` as a writable array of ``dtype`` that owns its memory (copies views only)."""
    x = np.asarray(x)
    if x.dtype == dtype and x.flags.writeable and x.flags.owndata:
        return x
    return np.array(x, dtype=dtype)


def into(out, value):
    """``value`` written into ``out`` (or ``value`` itself when ``out`` is None)."""
    if out is None:
        return value
    out[...] = value
    return out


def self_check(namespace, batch_size=3, seed=0, h=1e-6):
    """Compare a directional derivative from ``loss_and_grad`` with central differences.

    Runs in float64 on random inputs; prints the relative error and returns it.  When
    either side is not finite (random inputs outside the model's domain, such as log1p of
    a number below -1) it says the check is inconclusive and exits with status 1.
    """
    rng = np.random.default_rng(seed)
    sizes = {}
    batch = {}
    for name, (shape, dtype) in namespace["INPUTS"].items():
        dims = tuple(int(d) if d.isdigit() else sizes.setdefault(d, batch_size) for d in shape)
        if dtype.startswith("int"):
            batch[name] = rng.integers(0, 2, size=dims)
        elif dtype == "bool":
            batch[name] = rng.random(dims) < 0.5
        else:
            batch[name] = rng.normal(size=dims)
    params = {name: rng.normal(size=shape) * 0.5 for name, (shape, _) in namespace["PARAMS"].items()}
    direction = {name: rng.normal(size=np.shape(v)) for name, v in params.items()}
    _, grads = namespace["loss_and_grad"](params, batch)
    analytic = sum(float(np.sum(grads[k] * direction[k])) for k in params)

    def loss_at(t):
        return namespace["loss"]({k: v + t * direction[k] for k, v in params.items()}, batch)

    numeric = (loss_at(h) - loss_at(-h)) / (2 * h)
    if not (np.isfinite(analytic) and np.isfinite(numeric)):
        print(f"self-check inconclusive: the directional derivative is {analytic:.10g} and "
              f"the finite differences {numeric:.10g} at random inputs (outside the model's "
              "domain?)", file=sys.stderr)
        raise SystemExit(1)
    err = abs(analytic - numeric) / max(abs(analytic), abs(numeric), 1e-12)
    print(f"self-check: directional derivative {analytic:.10g} vs finite differences "
          f"{numeric:.10g}, relative error {err:.2e}")
    return err


def _mix32(x):
    """A 32-bit integer hash (lowbias32): good avalanche, cheap on every backend."""
    x = x ^ (x >> np.uint32(16))
    x = x * np.uint32(0x7FEB352D)
    x = x ^ (x >> np.uint32(15))
    x = x * np.uint32(0x846CA68B)
    return x ^ (x >> np.uint32(16))


def dropout_keep(shape, rate, salt, seed, step):
    """The keep-mask of a dropout call: element i is kept when hash(seed, step, salt, i) >= rate."""
    with np.errstate(over="ignore"):
        key = _mix32(np.array([seed & 0xFFFFFFFF], dtype=np.uint32)
                     ^ _mix32(np.array([(step * 0x9E3779B1 + salt) & 0xFFFFFFFF], dtype=np.uint32)))
        index = np.arange(int(np.prod(shape)), dtype=np.uint32).reshape(shape)
        bits = _mix32(index ^ key[0])
    threshold = np.uint32(min(int(rate * 2**32), 2**32 - 1))
    return bits >= threshold


def dropout(x, rate, salt, rng):
    """Training-time dropout with ``rng = (seed, step)``; the identity when ``rng`` is None."""
    if rng is None:
        return x
    keep = dropout_keep(np.shape(x), rate, salt, *rng)
    return x * keep / (1.0 - rate)


def _pad_images(x, top, bottom, left, right, fill):
    """Images ``x`` (N, C, H, W) padded with ``fill``, in the memory order of ``x`` (a
    channels-last view stays channels-last): 6x faster than ``numpy.pad``, which writes a
    C-ordered copy (benchmarks/NOTES.md)."""
    n, c, h, w = x.shape
    out = np.empty_like(x, shape=(n, c, h + top + bottom, w + left + right), order="K")
    out.fill(fill)
    out[:, :, top:top + h, left:left + w] = x
    return out


def patches(x, kernel, stride, dilation, padding, fill=0.0):
    """The sliding windows of images ``x`` (N, C, H, W), padded with ``fill``
    (``padding``: top, bottom, left, right), as a read-only strided view of shape
    (N, H_out, W_out, C, kH, kW): no copy (a reshape of it for a matmul is im2col's copy)."""
    top, bottom, left, right = padding
    if any(padding):
        x = _pad_images(x, top, bottom, left, right, fill)
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
    ho, wo = (h - dh * (kh - 1) - 1) // sh + 1, (w - dw * (kw - 1) - 1) // sw + 1
    s0, s1, s2, s3 = x.strides
    return np.lib.stride_tricks.as_strided(x, (n, ho, wo, c, kh, kw),
                                           (s0, s2 * sh, s3 * sw, s1, s2 * dh, s3 * dw),
                                           writeable=False)


def windows_reshape(windows, shape):
    """``windows.reshape(shape)`` for sliding windows (a strided view, ``patches``): the copy
    goes one kernel offset (i, j) at a time, whole images' worth per slice, 2.5x faster
    than numpy's element-by-element order over the small (kH, kW) axes (benchmarks/NOTES.md);
    the same values, a contiguous result."""
    if windows.flags.c_contiguous:
        return windows.reshape(shape)
    out = np.empty(windows.shape, windows.dtype)
    for i in range(windows.shape[-2]):
        for j in range(windows.shape[-1]):
            out[..., i, j] = windows[..., i, j]
    return out.reshape(shape)


def patches_adjoint(g, image, kernel, stride, dilation, padding):
    """The adjoint of ``patches`` (col2im): each window's values of ``g`` (N, H_out, W_out,
    C, kH, kW) added back where they came from in an (N, C, H, W) image of size ``image``;
    one strided slice per kernel offset, no loop over pixels.  The result is a view of a
    channels-last array (the order the windows of a channels-last image come in, so the
    elementwise kernels after it and the transpose back to channels-last read it in order)."""
    n, ho, wo, c, kh, kw = g.shape
    (h, w), (sh, sw), (dh, dw) = image, stride, dilation
    top, bottom, left, right = padding
    if (sh, sw) == (kh, kw) and (dh, dw) == (1, 1):
        # windows side by side (pooling): no pixel is in two windows, so g is only
        # reordered (no copy at all when g already has the image's order)
        blocks = np.ascontiguousarray(g.transpose(0, 1, 4, 2, 5, 3))
        out = blocks.reshape(n, ho * kh, wo * kw, c)
        if out.shape[1:3] != (h + top + bottom, w + left + right):
            out = np.zeros((n, h + top + bottom, w + left + right, c), dtype=g.dtype)
            out[:, :ho * kh, :wo * kw] = blocks.reshape(n, ho * kh, wo * kw, c)
    else:
        # added up channels-last, where g's windows keep their order (3.5x faster than
        # adding into (N, C, H, W) for 16 channels: benchmarks/NOTES.md)
        out = np.zeros((n, h + top + bottom, w + left + right, c), dtype=g.dtype)
        for i in range(kh):
            for j in range(kw):
                out[:, i * dh:i * dh + sh * (ho - 1) + 1:sh,
                    j * dw:j * dw + sw * (wo - 1) + 1:sw] += g[:, :, :, :, i, j]
    return out[:, top:top + h, left:left + w].transpose(0, 3, 1, 2)


def unslice(g, shape, key):
    """Zeros of ``shape`` with ``g`` at ``[key]`` (the adjoint of a slice)."""
    out = np.zeros(shape, dtype=g.dtype)
    out[key] = g
    return out


def _along_axis_only(idx, axis):
    """The indices of ``idx`` along ``axis`` (1-D) when they are the same all along the
    other axes, as in a broadcast view (an embedding's lookup and its gradient); else None."""
    if idx.size and all(s == 0 for d, s in enumerate(idx.strides) if d != axis):
        return idx[tuple(slice(None) if d == axis else 0 for d in range(idx.ndim))]
    return None


def take_along_axis(x, idx, axis):
    """``numpy.take_along_axis``; when ``idx`` is the same all along the other axes, one
    ``numpy.take`` of whole slices (an embedding's lookup), much faster than gathering
    element by element."""
    idx = np.asarray(idx)
    lines = _along_axis_only(idx, axis)
    if lines is None:
        return np.take_along_axis(x, idx, axis=axis)
    return np.take(x, lines, axis=axis)


def scatter_add(g, idx, axis, n):
    """Zeros with axis ``axis`` of length ``n``, each element of ``g`` added at the place
    ``idx`` (of ``g``'s shape) names along that axis: repeated indices sum."""
    g, idx = np.asarray(g), np.asarray(idx)
    out = np.zeros(g.shape[:axis] + (n,) + g.shape[axis + 1:], dtype=g.dtype)
    lines = _along_axis_only(idx, axis)
    if lines is not None:  # whole slices of g added, one sum per distinct index
        if axis:
            _add_slices(np.moveaxis(out, axis, 0), lines, np.moveaxis(g, axis, 0), n)
        else:
            _add_slices(out, lines, g, n)
        return out
    places = list(np.indices(g.shape, sparse=True))
    places[axis] = np.asarray(idx)
    np.add.at(out, tuple(places), g)
    return out


def _add_slices(out, lines, g, n):
    """``out[lines[i]] += g[i]`` for each i: the slices sorted by line, each run of one
    line summed by ``np.add.reduceat`` (pairwise, so the last bits may differ from
    ``np.add.at``'s sums in order) and added to ``out``.  Negative lines count from the
    end; others outside raise ``IndexError`` as numpy does."""
    places = np.where(lines < 0, lines + n, lines)
    outside = (places < 0) | (places >= n)
    if outside.any():
        raise IndexError(f"index {lines[outside][0]} is out of bounds for axis 0 with size {n}")
    order = np.argsort(places, kind="stable")
    ordered = places[order]
    starts = np.flatnonzero(np.concatenate(([True], ordered[1:] != ordered[:-1])))
    out[ordered[starts]] += np.add.reduceat(g[order], starts, axis=0)
