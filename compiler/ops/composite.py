"""Losses and normalisations composed from primitives (no derivative rules of their own).

Each is written so that it stays finite for inputs of any size: log-softmax
subtracts a logsumexp, binary cross-entropy works on logits through softplus.
"""

import numbers

from compiler.graph import user_location
from compiler.ops import api as F
from compiler.ops.loss import accuracy_node, cross_entropy_node
from compiler.shapes import fmt
from runtime.errors import GradcError


def log_softmax(x, axis=-1):
    """``x - logsumexp(x)`` along ``axis``, computed as ``(x - m) - logsumexp(x - m)``.

    ``m`` is the row maximum held constant (``stop_gradient``): log-softmax does
    not change when a constant is added to a row, so every derivative is the
    same, and ``x - m`` keeps full precision even for inputs of size 1e4 in float32.
    """
    x = F.as_node(x)
    if any(x.shape[a] == 0 for a in F.axes_of(axis, x)):  # no rows to normalise: empty
        return x
    shifted = x - F.stop_gradient(F.max(x, axis, keepdims=True))
    return shifted - F.logsumexp(shifted, axis, keepdims=True)


def softmax(x, axis=-1):
    """``exp(log_softmax(x))``: rows that sum to one, for any input size."""
    return F.exp(log_softmax(x, axis))


def _same_shape(name, a, b):
    if a.shape != b.shape:
        raise GradcError(f"{name} needs prediction and target of one shape, "
                         f"got {fmt(a.shape)} and {fmt(b.shape)}", where=user_location())


def mse(pred, target):
    """Mean squared error ``mean((pred - target)**2)`` over all elements (as Flux and PyTorch)."""
    pred, target = F.as_node(pred), F.as_node(target)
    _same_shape("mse", pred, target)
    return F.mean((pred - target) ** 2)


def bce_with_logits(logits, target):
    """Binary cross-entropy of ``sigmoid(logits)`` against 0/1 targets, mean over elements.

    Written as ``softplus(z) - y*z``, exact and finite for any logit.
    """
    logits, target = F.as_node(logits), F.as_node(target)
    _same_shape("bce_with_logits", logits, target)
    loss = F.mean(F.softplus(logits) - target * logits)
    loss.metrics = (("accuracy", lambda: binary_accuracy(logits, target)),)  # Model adds it
    return loss


def _classified(name, logits, targets):
    """``(logits, targets)`` as nodes, checked: ``(..., C)`` logits, integer targets ``(...)``."""
    logits, targets = F.as_node(logits), F.as_node(targets)
    if targets.dtype != "int":
        raise GradcError(f"{name} needs integer targets (class indices), got {targets.dtype} "
                         f"targets of shape {fmt(targets.shape)}", where=user_location())
    if logits.ndim == 0 or targets.shape != logits.shape[:-1]:
        raise GradcError(f"{name} needs (..., C) logits and integer targets of shape (...), "
                         f"got {fmt(logits.shape)} and {fmt(targets.shape)}", where=user_location())
    return logits, targets


def _ignore_index(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise GradcError(f"{name}: ignore_index must be an integer, got {value!r}",
                         where=user_location())
    return int(value)


def cross_entropy(logits, targets, ignore_index=-100, label_smoothing=0.0):
    """Softmax cross-entropy of ``(..., C)`` logits against integer targets of shape
    ``(...)``, as ``torch.nn.functional.cross_entropy`` (``reduction="mean"``): the mean
    over the targets that are not ``ignore_index``, with ``label_smoothing``.  The class
    axis is the last one (PyTorch's is dim 1)."""
    logits, targets = _classified("cross_entropy", logits, targets)
    ignore_index = _ignore_index("cross_entropy", ignore_index)
    if not isinstance(label_smoothing, numbers.Real) or not 0 <= label_smoothing <= 1:
        raise GradcError(f"cross_entropy: label_smoothing must be between 0.0 and 1.0, "
                         f"got {label_smoothing!r}", where=user_location())
    # one primitive whose forward and backward fuse into one row-wise kernel; its
    # meaning in other primitives is its definition (compiler/ops/loss.py)
    loss = cross_entropy_node(logits, targets, ignore_index, float(label_smoothing))
    loss.metrics = (("accuracy", lambda: accuracy(logits, targets, ignore_index)),)  # Model adds it
    return loss


def accuracy(logits, targets, ignore_index=-100):
    """Fraction of the targets that are not ``ignore_index`` whose largest logit (over the
    last axis) is at the target (ties count as right); one primitive, computed in the
    cross-entropy's kernel when the model has one."""
    logits, targets = _classified("accuracy", logits, targets)
    return accuracy_node(logits, targets, _ignore_index("accuracy", ignore_index))


def binary_accuracy(logits, targets):
    """Fraction of elements where ``logits > 0`` agrees with 0/1 ``targets``."""
    predicted = F.where(F.greater(logits, 0.0), 1.0, 0.0)
    return F.mean(1.0 - F.abs(predicted - targets))


def l1(*xs):
    """The L1 penalty ``sum(|x|)`` over all given tensors."""
    return _total(F.sum(F.abs(x)) for x in xs)


def l2(*xs):
    """The L2 penalty ``sum(x**2)`` over all given tensors (no 1/2 factor)."""
    return _total(F.sum(F.as_node(x) ** 2) for x in xs)


def _total(terms):
    total = None
    for t in terms:
        total = t if total is None else total + t
    if total is None:
        raise GradcError("penalty needs at least one tensor", where=user_location())
    return total
