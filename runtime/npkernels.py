"""Small numpy helpers that generated modules call (``_rt.logsumexp`` and friends)."""
import numpy as np


def logsumexp(x, axis, keepdims):
    """``log(sum(exp(x)))`` over ``axis`` without overflow (rows of -inf give -inf)."""
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=axis)


def _log_softmax_rows(z):
    m = np.max(z, axis=1, keepdims=True)
    shifted = z - np.where(np.isfinite(m), m, 0)
    return shifted - np.log(np.sum(np.exp(shifted), axis=1, keepdims=True))


def _picked(values, labels):
    """``values[i, labels[i]]`` per row, 0 where a label is outside ``[0, C)`` (as one_hot)."""
    labels = np.asarray(labels)
    inside = (labels >= 0) & (labels < values.shape[1])
    rows = values[np.arange(values.shape[0]), np.where(inside, labels, 0)]
    return np.where(inside, rows, 0)


def softmax_cross_entropy(z, labels):
    """Mean over rows of ``logsumexp(z_i) - z_i[label_i]`` (a 0-d array)."""
    if z.shape[0] == 0:
        return np.zeros((), z.dtype)
    return -np.mean(_picked(_log_softmax_rows(z), labels)).astype(z.dtype)


def softmax_cross_entropy_grad(z, labels, g, log_p=None):
    """``(softmax(z) - onehot(labels)) * g / N``."""
    log_p = _log_softmax_rows(z) if log_p is None else log_p
    out = np.exp(log_p)
    out -= one_hot(labels, z.shape[1], z.dtype)
    out *= np.asarray(g / max(z.shape[0], 1), dtype=z.dtype)
    return out


def softmax_cross_entropy_with_grad(z, labels, g):
    """Both at once from one log-softmax: ``(loss, gradient)`` (the fused loss kernel)."""
    log_p = _log_softmax_rows(z)
    loss = -np.mean(_picked(log_p, labels)).astype(z.dtype) if z.shape[0] else np.zeros((), z.dtype)
    return loss, softmax_cross_entropy_grad(z, labels, g, log_p)


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

    Runs in float64 on random inputs; prints the relative error and returns it.
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
