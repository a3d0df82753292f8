"""Losses and normalisations composed from primitives (no derivative rules of their own).

Each is written so that it stays finite for inputs of any size: log-softmax
subtracts a logsumexp, binary cross-entropy works on logits through softplus.
"""

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


def cross_entropy(logits, labels):
    """Softmax cross-entropy of ``(N, C)`` logits against ``(N,)`` integer labels, mean over N."""
    logits, labels = F.as_node(logits), F.as_node(labels)
    if logits.ndim != 2 or labels.shape != logits.shape[:1]:
        raise GradcError(f"cross_entropy needs (N, C) logits and (N,) integer labels, "
                         f"got {fmt(logits.shape)} and {fmt(labels.shape)}", where=user_location())
    # one primitive whose forward and backward fuse into one row-wise kernel; its
    # meaning is -mean(sum(one_hot(labels) * log_softmax(logits), axis=1))
    loss = cross_entropy_node(logits, labels)
    loss.metrics = (("accuracy", lambda: accuracy(logits, labels)),)  # Model adds it
    return loss


def accuracy(logits, labels):
    """Fraction of rows whose largest logit is at the label (ties count as right); one
    primitive, computed in the cross-entropy's kernel when the model has one."""
    logits, labels = F.as_node(logits), F.as_node(labels)
    if logits.ndim != 2 or labels.shape != logits.shape[:1]:
        raise GradcError(f"accuracy needs (N, C) logits and (N,) integer labels, "
                         f"got {fmt(logits.shape)} and {fmt(labels.shape)}", where=user_location())
    return accuracy_node(logits, labels)


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
