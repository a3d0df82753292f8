"""Softmax cross-entropy as one primitive, so that its forward and backward fuse.

``softmax_cross_entropy(z, k)`` is PyTorch's ``cross_entropy`` of ``(..., C)`` logits and
integer labels of shape ``(...)``, the classes on the last axis (a row is one position of
the leading axes): the mean over the rows whose label is not ``ignore_index`` of
``logsumexp(z_i) - sum_c q_ic z_ic``, where the target ``q_i`` is ``one_hot(k_i)`` mixed
with the uniform distribution by ``label_smoothing`` (``(1 - e) one_hot + e / C``).  All
rows ignored gives NaN (0/0), as PyTorch.  Its gradient is the primitive
``softmax_cross_entropy_grad(z, k, g) = (softmax(z) - q) * g / count``, zero on ignored
rows.  A row whose label is neither a class (outside ``[0, C)``) nor ignored counts in
the mean but adds 0 and gets no gradient, as one_hot gives it no class (PyTorch raises
an error for it).  Kept whole, the two read the logits once and become one row-wise
kernel (``fusion``).

The training accuracy, ``softmax_cross_entropy_accuracy(z, k)``, is a primitive too (not
differentiable), so that it comes from the same read of the logits; it skips the same
rows.  The options are the nodes' attributes ``ignore_index`` and ``label_smoothing``
(the accuracy has only the first).

Each op's meaning in the other primitives is ``definition(node)``: the cost model
counts its flops, the naive baseline scalarizes it, and the tests compare against it.
Derivatives of any order are rules in those primitives (softmax's Jacobian is
``diag(s) - s s^T``), so grad-of-grad, jvp and Hessian-vector products keep working.
"""
from compiler.graph import make
from compiler.ops import api as F
from compiler.ops.registry import OpDef, register
from runtime.errors import GradcError


def _check(inputs, attrs):
    z, k = inputs[0], inputs[1]
    if z.dtype != "float" or k.dtype != "int" or z.ndim == 0 or k.shape != z.shape[:-1]:
        raise GradcError("softmax cross-entropy needs (..., C) float logits and (...) integer labels")
    return "float"


def cross_entropy_node(z, k, ignore_index=-100, label_smoothing=0.0):
    return make("softmax_cross_entropy", (z, k), ignore_index=ignore_index,
                label_smoothing=label_smoothing)


def accuracy_node(z, k, ignore_index=-100):
    return make("softmax_cross_entropy_accuracy", (z, k), ignore_index=ignore_index)


def cross_entropy_grad_node(z, k, g, ignore_index=-100, label_smoothing=0.0):
    return make("softmax_cross_entropy_grad", (z, k, F.as_node(g)), ignore_index=ignore_index,
                label_smoothing=label_smoothing)


def _grad_of(node, g):
    """The gradient primitive with ``node``'s options and upstream gradient ``g``."""
    z, k = node.inputs[:2]
    return cross_entropy_grad_node(z, k, g, **dict(node.attrs))


def _counted(k, ignore_index):
    """``(..., 1)``: 1 for a row whose label is not ``ignore_index`` (it counts in the mean)."""
    return F.reshape(F.where(F.not_equal(k, ignore_index), 1.0, 0.0), k.shape + (1,))


def _hot(z, k, ignore_index):
    """``one_hot(k)`` with ignored rows zeroed (a negative ``ignore_index`` is no class anyway)."""
    hot = F.one_hot(k, z.shape[-1])
    return hot if not 0 <= ignore_index < z.shape[-1] else hot * _counted(k, ignore_index)


def _target(z, k, node):
    """``(q, labelled)``: the target distribution of each row (0 on rows without a class
    that counts) and ``labelled``, ``(..., 1)``, 1 for the rows with one."""
    smoothing = node.attr("label_smoothing")
    hot = _hot(z, k, node.attr("ignore_index"))
    labelled = F.sum(hot, -1, keepdims=True)
    if smoothing == 0:
        return hot, labelled
    return hot * (1 - smoothing) + labelled * (smoothing / z.shape[-1]), labelled


def _scale(k, node, g):
    """``g / count`` (``g`` when no row counts: every row's gradient is 0 then, as PyTorch's)."""
    return g / F.maximum(F.sum(_counted(k, node.attr("ignore_index"))), 1.0)


def _softmax(z):
    shifted = z - F.stop_gradient(F.max(z, -1, keepdims=True))
    return F.exp(shifted - F.logsumexp(shifted, -1, keepdims=True))


def _softmax_jvp(z, t):
    """The softmax Jacobian (symmetric) times ``t``, row by row: ``s*t - s*sum(s*t)``."""
    s = _softmax(z)
    st = s * t
    return st - s * F.sum(st, -1, keepdims=True)


def _loss_definition(node):
    z, k = node.inputs
    shifted = z - F.stop_gradient(F.max(z, -1, keepdims=True))
    log_p = shifted - F.logsumexp(shifted, -1, keepdims=True)
    q, _ = _target(z, k, node)
    return -F.sum(q * log_p) / F.sum(_counted(k, node.attr("ignore_index")))


def _grad_definition(node):
    z, k, g = node.inputs
    q, labelled = _target(z, k, node)
    return (_softmax(z) * labelled - q) * _scale(k, node, g)


def _loss_vjp(node, g):
    return [_grad_of(node, g), None]


def _loss_jvp(node, t):
    return F.sum(_grad_of(node, 1.0) * t[0])


def _grad_vjp(node, v):
    z, k, g = node.inputs
    _, labelled = _target(z, k, node)
    return [_softmax_jvp(z, v * labelled * _scale(k, node, g)), None,
            F.sum(_grad_of(node, 1.0) * v)]


def _grad_jvp(node, t):
    z, k, g = node.inputs
    terms = []
    if t[0] is not None:
        _, labelled = _target(z, k, node)
        terms.append(_softmax_jvp(z, t[0]) * labelled * _scale(k, node, g))
    if t[2] is not None:
        terms.append(_grad_of(node, t[2]))
    return terms[0] if len(terms) == 1 else terms[0] + terms[1]


def _classes(node):
    z, k = node.inputs[:2]
    return k, z.shape[-1], node.attr("ignore_index")


def _call(function, node, args):
    """``_rt.<function>(args, options)``: the numpy call of one op of the family alone."""
    options = "".join(f", {key}={value!r}" for key, value in node.attrs)
    return f"_rt.{function}({', '.join(args)}{options})"


register(OpDef(
    "softmax_cross_entropy", "loss", shape=lambda i, a: (), dtype=_check,
    vjp=_loss_vjp, jvp=_loss_jvp, definition=_loss_definition, result="loss", label="cross_entropy",
    classes=_classes,
    numpy=lambda node, args: _call("softmax_cross_entropy", node, args),
    doc="mean over counted rows of logsumexp(z) - sum(q * z), q the (smoothed) one-hot label"))


def _accuracy_definition(node):
    z, k = node.inputs
    counted = _counted(k, node.attr("ignore_index"))
    picked = F.sum(_hot(z, k, node.attr("ignore_index")) * z, axis=-1, keepdims=True)
    right = F.where(F.greater_equal(picked, F.max(z, axis=-1, keepdims=True)), 1.0, 0.0)
    return F.sum(right * counted) / F.sum(counted)


register(OpDef(
    "softmax_cross_entropy_accuracy", "loss", shape=lambda i, a: (), dtype=_check,
    definition=_accuracy_definition, differentiable=False, result="accuracy", label="accuracy",
    classes=_classes,
    numpy=lambda node, args: _call("classification_accuracy", node, args),
    doc="fraction of counted rows whose largest logit is at the label (ties count as right)"))
register(OpDef(
    "softmax_cross_entropy_grad", "loss", shape=lambda i, a: i[0].shape, dtype=_check,
    vjp=_grad_vjp, jvp=_grad_jvp, definition=_grad_definition, result="grad", label="grad",
    classes=_classes,
    numpy=lambda node, args: _call("softmax_cross_entropy_grad", node, args),
    doc="(softmax(z) - q) * g / count, the gradient of softmax_cross_entropy"))
