"""Automatic differentiation, graph in, graph out: reverse mode and forward mode.

``grad(loss, wrt)`` walks the graph once from the loss back to the leaves,
applying each op's vjp rule; ``jvp(outputs, wrt, tangents)`` walks it forward,
applying each op's jvp rule.  Elementwise ops take both from the same sympy
derivative of their scalar expression (``compiler.symbolic``); structural ops
have hand-written rules side by side.  Broadcasting is undone once, here, not
in the rules.  Gradients flow only into nodes that depend on ``wrt`` (data
inputs get none), and never through ``stop_gradient``.

Every rule builds its result from primitives, so derivatives can be
differentiated again: ``hessian_vector_product`` is forward over reverse, and
``grad`` of a gradient is reverse over reverse.

>>> from compiler import Param, ops as F
>>> w = Param("w", ())
>>> (dw,) = grad(F.sin(w) * w, [w])
>>> dw.op
'add'
"""
from compiler.graph import Graph, located, toposort
from compiler.ops import api as F
from compiler.ops.registry import OPS
from compiler.symbolic import elementwise_jvp, elementwise_vjp
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
        raise GradcError(f"the loss must be a scalar, got shape {loss.shape}", where=loss.source_line)
    nodes = toposort([loss])
    live = depends_on(nodes, wrt)
    with located(loss.source_line):
        grads = {loss: F.const(1)}
    for node in reversed(nodes):
        g = grads.get(node)
        if g is None or OPS[node.op].kind == "leaf":
            continue
        with located(node.source_line):
            for inp, gi in zip(node.inputs, vjp_rule(node)(node, g)):
                if gi is None or inp not in live:
                    continue
                gi = F.unbroadcast(gi, inp.shape) if gi.shape != inp.shape else gi
                grads[inp] = gi if inp not in grads else F.add(grads[inp], gi)
    return [grads[w] if w in grads else F.broadcast_to(F.const(0), w.shape) for w in wrt]


def jvp_rule(node):
    rule = OPS[node.op].jvp
    return rule if rule is not None else elementwise_jvp


def jvp(outputs, wrt, tangents):
    """Tangent nodes of each node in ``outputs`` when each ``wrt[i]`` moves along ``tangents[i]``.

    An output that does not depend on ``wrt`` gets a zero tangent of its shape.
    """
    nodes = toposort(outputs)
    live = depends_on(nodes, wrt)
    tangent = dict(zip(wrt, tangents))
    for node in nodes:
        if node in tangent or node not in live or OPS[node.op].kind == "leaf":
            continue
        ins = [tangent.get(i) for i in node.inputs]
        if all(t is None for t in ins):
            continue
        with located(node.source_line):
            t = jvp_rule(node)(node, ins)
            if t is not None and t.shape != node.shape:
                t = F.broadcast_to(t, node.shape)
        if t is not None:
            tangent[node] = t
    return [tangent[o] if o in tangent else F.broadcast_to(F.const(0), o.shape) for o in outputs]


def tangent_leaves(params):
    """One ``tangent`` leaf per parameter, shaped like it."""
    return [F.tangent(p.name, p.shape) for p in params]


def hessian_vector_product(loss, params, vectors):
    """``H v`` for the Hessian of ``loss`` in ``params``: forward mode over reverse mode."""
    return jvp(grad(loss, params), params, vectors)


def gradient_graph(loss, params, extra_outputs=None):
    """A Graph with outputs ``loss``, ``grad:<param name>`` for each parameter, and extras."""
    outputs = {"loss": loss}
    for p, g in zip(params, grad(loss, params)):
        outputs[f"grad:{p.name}"] = g
    outputs.update(extra_outputs or {})
    return Graph(outputs)
