"""Reverse-mode automatic differentiation: Graph in, Graph out.

``grad(loss, wrt)`` walks the graph once from the loss back to the leaves,
applying each op's vjp rule: elementwise ops differentiate their sympy scalar
expression (``compiler.symbolic``), structural ops use their hand-written
rule.  Broadcasting is undone once, here, not in the rules.  Gradients flow
only into nodes that depend on ``wrt`` (data inputs get none).

>>> from compiler import Param, ops as F
>>> w = Param("w", ())
>>> (dw,) = grad(F.sin(w) * w, [w])
>>> dw.op
'add'
"""
from compiler.graph import Graph, located, toposort
from compiler.ops import api as F
from compiler.ops.registry import OPS
from compiler.symbolic import elementwise_vjp
from runtime.errors import GradcError


def depends_on(nodes, wrt):
    """The nodes (of toposorted ``nodes``) through which a gradient can reach ``wrt``."""
    live = set(wrt)
    for n in nodes:
        if n not in live and OPS[n.op].differentiable and any(i in live for i in n.inputs):
            live.add(n)
    return live


def vjp_rule(node):
    rule = OPS[node.op].vjp
    return rule if rule is not None else elementwise_vjp


def grad(loss, wrt):
    """Gradient nodes of the scalar ``loss`` with respect to each node in ``wrt``.

    A node the loss does not depend on gets a zero gradient of its shape.
    """
    if loss.shape != ():
        raise GradcError(f"the loss must be a scalar, got shape {loss.shape}", where=loss.where)
    nodes = toposort([loss])
    live = depends_on(nodes, wrt)
    with located(loss.where):
        grads = {loss: F.const(1)}
    for node in reversed(nodes):
        g = grads.get(node)
        if g is None or OPS[node.op].kind == "leaf":
            continue
        with located(node.where):
            for inp, gi in zip(node.inputs, vjp_rule(node)(node, g)):
                if gi is None or inp not in live:
                    continue
                gi = F.unbroadcast(gi, inp.shape) if gi.shape != inp.shape else gi
                grads[inp] = gi if inp not in grads else F.add(grads[inp], gi)
    return [grads[w] if w in grads else F.broadcast_to(F.const(0), w.shape) for w in wrt]


def gradient_graph(loss, params, extra_outputs=None):
    """A Graph with outputs ``loss``, ``grad:<param name>`` for each parameter, and extras."""
    outputs = {"loss": loss}
    for p, g in zip(params, grad(loss, params)):
        outputs[f"grad:{p.name}"] = g
    outputs.update(extra_outputs or {})
    return Graph(outputs)
