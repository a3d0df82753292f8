"""``Model``: the inputs, named outputs and scalar loss of something to train.

>>> from compiler import Input, Model, nn, ops as F
>>> x, y = Input("x", ("B", 1)), Input("y", ("B", 1))
>>> net = nn.Chain(nn.Dense(1, 8, act=F.tanh), nn.Dense(8, 1))
>>> m = Model(inputs=[x, y], outputs={"y_hat": net(x)}, loss=F.mse(net(x), y))
>>> [p.name for p in m.params]
['dense0.W', 'dense0.b', 'dense1.W', 'dense1.b']
"""
from compiler.graph import Graph, Node, toposort, user_location
from compiler.naming import name_placeholders
from compiler.ops import api as F
from compiler.ops import mode
from compiler.ops.leaf import is_buffer, is_input, is_param
from compiler.shapes import fmt
from runtime.errors import GradcError


class Model:
    """Inputs (data fed by name), named outputs (for ``predict``), a scalar loss and metrics.

    ``metrics`` maps names to scalar nodes evaluated after each epoch; by default a
    loss built with ``F.cross_entropy`` or ``F.bce_with_logits`` adds ``accuracy``.
    ``loss``, ``outputs`` and ``metrics`` are the training mode's; where a layer differs
    in evaluation mode (batch norm), ``evaluation`` holds the evaluation mode's, and
    ``updates`` each buffer's new value after a training step.
    """

    def __init__(self, inputs, outputs=None, loss=None, name=None, metrics=None):
        where = user_location()
        self.where = where
        self.name = name
        self.inputs = list(inputs)
        for x in self.inputs:
            if not isinstance(x, Node) or not is_input(x):
                raise GradcError(f"Model inputs must be Input nodes, got {x!r}", where=where)
        names = [x.name for x in self.inputs]
        for n in names:
            if names.count(n) > 1:
                raise GradcError(f"input name {n!r} is used by two different inputs", where=where)
        if isinstance(outputs, Node):
            outputs = {"output": outputs}
        self.outputs = {k: F.as_node(v) for k, v in (outputs or {}).items()}
        if loss is None:
            raise GradcError("Model needs a loss (a scalar node)", where=where)
        self.loss = F.as_node(loss)
        if self.loss.shape != () or self.loss.dtype != "float":
            raise GradcError(f"the loss must be a float scalar, got shape {fmt(self.loss.shape)}",
                             where=self.loss.source_line or where)
        if metrics is None:  # a classifier's loss brings its accuracy along
            metrics = {name: build() for n in toposort([self.loss]) if n.metrics
                       for name, build in n.metrics}
        self.metrics = {k: F.as_node(v) for k, v in metrics.items()}
        roots = [self.loss, *self.outputs.values(), *self.metrics.values()]
        roots = name_placeholders(roots)  # unnamed layers and dropout masks, in graph order
        evaluated, _ = mode.resolve(roots, training=False)
        roots, updates = mode.resolve(roots, training=True)
        self.loss, rest = roots[0], iter(roots[1:])
        self.outputs = {k: next(rest) for k in self.outputs}
        self.metrics = {k: next(rest) for k in self.metrics}
        # What changes after each training step besides the parameters (running statistics)
        self.updates = updates
        # The loss, outputs and metrics in evaluation mode, when any differs from training's
        # (batch norm: running statistics instead of the batch's); else empty
        self.evaluation = {}
        if any(a is not b for a, b in zip(evaluated, roots)):
            names = ["loss", *self.outputs, *(f"metric:{k}" for k in self.metrics)]
            self.evaluation = dict(zip(names, evaluated))
        for metric, m in self.metrics.items():
            if m.shape != () or m.dtype != "float":
                raise GradcError(f"metric {metric!r} must be a float scalar, "
                                 f"got shape {fmt(m.shape)}", where=m.source_line or where)
        nodes = toposort([self.loss, *self.outputs.values(), *self.metrics.values()])
        for n in nodes:
            if is_input(n) and all(n is not x for x in self.inputs):
                raise GradcError(f"input {n.name!r} is used but not listed in Model(inputs=...)",
                                 where=n.source_line or where)
        self.params = [n for n in nodes if is_param(n)]
        everything = toposort([*nodes, *updates.values(), *self.evaluation.values()])
        self.buffers = [n for n in everything if is_buffer(n)]
        seen = {}
        for p in self.params + self.buffers:
            if p.name in seen:
                raise GradcError(f"parameter name {p.name!r} is used twice "
                                 f"(shapes {fmt(seen[p.name].shape)} and {fmt(p.shape)}); "
                                 "give the layers distinct names", where=p.source_line or where)
            seen[p.name] = p

    def graph(self):
        """The forward graph: the loss, the named outputs and the metrics."""
        return Graph({"loss": self.loss, **self.outputs, **{f"metric:{k}": v for k, v in self.metrics.items()}})

    def __repr__(self):
        return (f"Model(inputs={[x.name for x in self.inputs]}, outputs={list(self.outputs)}, "
                f"params={[p.name for p in self.params]})")
