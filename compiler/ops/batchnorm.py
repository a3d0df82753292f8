"""Batch normalization (``torch.nn.functional.batch_norm``): the batch's statistics while
training, the running statistics while evaluating.

While training, each channel is normalised by the mean and (biased) variance of the
batch over every axis but the channel axis (1), and the running statistics move
towards the batch's by ``momentum`` (the variance's unbiased, as PyTorch):
``running = (1 - momentum) * running + momentum * batch``.  While evaluating, the
running statistics normalise.  Both are composed of primitives; the mode is a
``train_eval`` node that ``Model`` resolves.

>>> from compiler import Input, ops as F
>>> from compiler.ops.api import Buffer
>>> x = Input("x", ("B", 3, 4, 4))
>>> F.batch_norm(x, Buffer("m", (3,)), Buffer("v", (3,), "ones")).shape
(B, 3, 4, 4)
"""
from compiler.graph import user_location
from compiler.ops import api as F
from compiler.ops.mode import train_eval
from compiler.shapes import fmt, numel
from runtime.errors import GradcError


def batch_norm(input, running_mean, running_var, weight=None, bias=None, momentum=0.1,  # noqa: A002
               eps=1e-5):
    """``(x - mean) / sqrt(var + eps) * weight + bias`` per channel (axis 1) of ``input``
    (N, C, ...): the batch's mean and variance while training (updating the running
    buffers), the running ones while evaluating."""
    x = F.as_node(input)
    if x.ndim < 2:
        raise GradcError(f"batch_norm needs an input (N, C, ...), got shape {fmt(x.shape)}",
                         where=user_location())
    channels = x.shape[1]
    for name, v in (("running_mean", running_mean), ("running_var", running_var),
                    ("weight", weight), ("bias", bias)):
        if v is not None and F.as_node(v).shape != (channels,):
            raise GradcError(f"batch_norm: {name} must have shape ({channels},) for input "
                             f"{fmt(x.shape)}, got {fmt(F.as_node(v).shape)}",
                             where=user_location())
    if not isinstance(momentum, (int, float)) or not 0 <= momentum <= 1:
        raise GradcError(f"batch_norm: momentum must be a number in [0, 1], got {momentum!r}",
                         where=user_location())
    axes = (0,) + tuple(range(2, x.ndim))
    per_channel = (channels,) + (1,) * (x.ndim - 2)

    def normalise(mean, var):
        out = (x - F.reshape(mean, per_channel)) / F.sqrt(F.reshape(var, per_channel) + eps)
        if weight is not None:
            out = out * F.reshape(weight, per_channel)
        if bias is not None:
            out = out + F.reshape(bias, per_channel)
        return out

    mean = F.mean(x, axis=axes)
    var = F.mean((x - F.reshape(mean, per_channel)) ** 2, axis=axes)
    n = numel([x.shape[a] for a in axes])  # the values each channel's statistics average
    unbiased = var * (n / (n - 1) if isinstance(n, int) else F.const(n / (n - 1)))
    updates = [(running_mean, (1 - momentum) * running_mean + momentum * mean),
               (running_var, (1 - momentum) * running_var + momentum * unbiased)]
    return train_eval(normalise(mean, var), normalise(running_mean, running_var), updates)
