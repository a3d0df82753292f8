"""Training and evaluation mode: a value that differs between them, and state that is
not trained.

``train_eval(train, eval, updates)`` is ``train`` in training mode and ``eval`` in
evaluation mode (PyTorch's ``model.train()`` / ``model.eval()``); ``updates`` pairs
buffers with their new values after a training step (batch norm's running
statistics).  A ``Model`` resolves every such node twice, once per mode
(``resolve``), so the graphs gradc differentiates and compiles never hold one: the
training graph (loss, gradients, buffer updates) and the evaluation graph (what
``predict`` and ``evaluate`` compute) share every node before the first difference.

>>> from compiler import Input, ops as F
>>> x = Input("x", ("B", 3))
>>> y = train_eval(x * 2.0, x)
>>> [r.op for r in resolve([y], training=True)[0]], resolve([y], training=False)[0][0] is x
(['mul'], True)
"""
from compiler.graph import located, make, toposort, user_location
from compiler.ops.leaf import is_buffer
from compiler.ops.registry import OPS, OpDef, register
from compiler.shapes import fmt
from runtime.errors import GradcError


def _shape(inputs, attrs):
    train, evaluation, *pairs = inputs
    if train.shape != evaluation.shape or train.dtype != evaluation.dtype:
        raise GradcError(f"training and evaluation values differ in shape: {fmt(train.shape)} "
                         f"and {fmt(evaluation.shape)}")
    for buffer, new in zip(pairs[::2], pairs[1::2]):
        if not is_buffer(buffer) or new.shape != buffer.shape:
            raise GradcError(f"an update must give a buffer a value of its shape, got "
                             f"{fmt(new.shape)} for {buffer!r}")
    return train.shape


register(OpDef("train_eval", "mode", shape=_shape, dtype=lambda i, a: i[0].dtype,
               differentiable=False, flops=0,
               doc="one value in training mode, another in evaluation mode (resolved by Model)"))


def train_eval(train, evaluation, updates=()):
    """``train`` while training, ``evaluation`` otherwise; ``updates``: ``(buffer, new
    value)`` pairs applied after each training step."""
    flat = [node for pair in updates for node in pair]
    return make("train_eval", (train, evaluation, *flat))


def resolve(roots, training):
    """``(roots, updates)``: ``roots`` rebuilt with every ``train_eval`` node replaced by
    its value in the mode, and (training) each buffer's new value."""
    new, updates = {}, {}
    for n in toposort(roots):
        if OPS[n.op].kind == "mode":
            new[n] = new[n.inputs[0 if training else 1]]
            pairs = n.inputs[2:]
            if training:
                for buffer, value in zip(pairs[::2], pairs[1::2]):
                    if buffer in updates:
                        raise GradcError(f"buffer {buffer.name!r} is updated twice (a layer "
                                         "with running statistics used twice)",
                                         where=n.source_line or user_location())
                    updates[buffer] = new[value]
            continue
        inputs = tuple(new[i] for i in n.inputs)
        if all(a is b for a, b in zip(inputs, n.inputs)):
            new[n] = n
            continue
        with located(n.source_line):
            new[n] = make(n.op, inputs, **dict(n.attrs))
        new[n].metrics = new[n].metrics or n.metrics
    return [new[r] for r in roots], updates
