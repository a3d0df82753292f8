"""Softmax cross-entropy as one primitive, so that its forward and backward fuse.

``softmax_cross_entropy(z, k)`` is the mean over rows of ``logsumexp(z_i) - z_i[k_i]``
for ``(N, C)`` logits and ``(N,)`` integer labels; its gradient is the primitive
``softmax_cross_entropy_grad(z, k, g) = (softmax(z) - onehot(k)) * g / N``.  A row whose
label is not a class (outside ``[0, C)``) adds 0 and gets a zero gradient, as the
composite ``-mean(sum(one_hot(k) * log_softmax(z)))`` does.  Kept
whole, the two read the logits once and become one row-wise kernel (``fusion``).

The training accuracy, ``softmax_cross_entropy_accuracy(z, k)``, is a primitive too (not
differentiable), so that it comes from the same read of the logits.

Each op's meaning in the other primitives is ``definition(node)``: the cost model
counts its flops, the naive baseline scalarizes it, and the tests compare against it.
Derivatives of any order are rules in those primitives (softmax's Jacobian is
``diag(s) - s s^T``), so grad-of-grad, jvp and Hessian-vector products keep working.
"""
import sympy

from compiler.graph import make
from compiler.ops import api as F
from compiler.ops.registry import OpDef, register
from runtime.errors import GradcError


def _check(inputs, attrs):
    z, k = inputs[0], inputs[1]
    if z.dtype != "float" or k.dtype != "int" or z.ndim != 2 or k.shape != z.shape[:1]:
        raise GradcError("softmax cross-entropy needs (N, C) float logits and (N,) integer labels")
    return "float"


def cross_entropy_node(z, k):
    return make("softmax_cross_entropy", (z, k))


def accuracy_node(z, k):
    return make("softmax_cross_entropy_accuracy", (z, k))


def cross_entropy_grad_node(z, k, g):
    return make("softmax_cross_entropy_grad", (z, k, F.as_node(g)))


def _rows(z):
    return F.const(1 / sympy.sympify(z.shape[0]))


def _softmax(z):
    shifted = z - F.stop_gradient(F.max(z, 1, keepdims=True))
    return F.exp(shifted - F.logsumexp(shifted, 1, keepdims=True))


def _softmax_jvp(z, t):
    """The softmax Jacobian (symmetric) times ``t``, row by row: ``s*t - s*sum(s*t)``."""
    s = _softmax(z)
    st = s * t
    return st - s * F.sum(st, 1, keepdims=True)


def _loss_definition(node):
    z, k = node.inputs
    shifted = z - F.stop_gradient(F.max(z, 1, keepdims=True))
    log_p = shifted - F.logsumexp(shifted, 1, keepdims=True)
    return -F.mean(F.sum(F.one_hot(k, z.shape[1]) * log_p, axis=1))


def _labelled(z, k):
    """1 for a row whose label is a class, 0 for one outside ``[0, C)`` (one_hot gives such
    a row no class: it adds nothing to the loss and gets no gradient)."""
    return F.sum(F.one_hot(k, z.shape[1]), 1, keepdims=True)


def _grad_definition(node):
    z, k, g = node.inputs
    return (_softmax(z) * _labelled(z, k) - F.one_hot(k, z.shape[1])) * (g * _rows(z))


def _loss_vjp(node, g):
    z, k = node.inputs
    return [cross_entropy_grad_node(z, k, g), None]


def _loss_jvp(node, t):
    z, k = node.inputs
    return F.sum(cross_entropy_grad_node(z, k, 1.0) * t[0])


def _grad_vjp(node, v):
    z, k, g = node.inputs
    return [_softmax_jvp(z, v * _labelled(z, k) * (g * _rows(z))), None,
            F.sum(cross_entropy_grad_node(z, k, 1.0) * v)]


def _grad_jvp(node, t):
    z, k, g = node.inputs
    terms = []
    if t[0] is not None:
        terms.append(_softmax_jvp(z, t[0]) * _labelled(z, k) * (g * _rows(z)))
    if t[2] is not None:
        terms.append(cross_entropy_grad_node(z, k, t[2]))
    return terms[0] if len(terms) == 1 else terms[0] + terms[1]


register(OpDef(
    "softmax_cross_entropy", "loss", shape=lambda i, a: (), dtype=_check,
    vjp=_loss_vjp, jvp=_loss_jvp, definition=_loss_definition, result="loss", label="cross_entropy",
    numpy=lambda node, args: f"_rt.softmax_cross_entropy({args[0]}, {args[1]})",
    doc="mean over rows of logsumexp(z) - z[label]"))


def _accuracy_definition(node):
    z, k = node.inputs
    picked = F.sum(F.one_hot(k, z.shape[1]) * z, axis=1)
    return F.mean(F.where(F.greater_equal(picked, F.max(z, axis=1)), 1.0, 0.0))


register(OpDef(
    "softmax_cross_entropy_accuracy", "loss", shape=lambda i, a: (), dtype=_check,
    definition=_accuracy_definition, differentiable=False, result="accuracy", label="accuracy",
    numpy=lambda node, args: f"_rt.classification_accuracy({args[0]}, {args[1]})",
    doc="fraction of rows whose largest logit is at the label (ties count as right)"))
register(OpDef(
    "softmax_cross_entropy_grad", "loss", shape=lambda i, a: i[0].shape, dtype=_check,
    vjp=_grad_vjp, jvp=_grad_jvp, definition=_grad_definition, result="grad", label="grad",
    numpy=lambda node, args: f"_rt.softmax_cross_entropy_grad({args[0]}, {args[1]}, {args[2]})",
    doc="(softmax(z) - onehot(label)) * g / N, the gradient of softmax_cross_entropy"))
