"""Graph passes run after autodiff.

Common-subexpression elimination is free (nodes are hash-consed) and dead code
never appears (a ``Graph`` holds only what its outputs reach).  What is left
to do explicitly:

- constant folding: elementwise ops whose inputs are all constants become one
  constant, evaluated exactly by sympy;
- implicit broadcasting: an explicit ``broadcast_to`` feeding an elementwise op
  is dropped when the op's own broadcasting gives the same shape.
"""
from compiler.graph import Graph, located, make
from compiler.shapes import broadcast_shapes
from compiler.symbolic import constant
from compiler.ops.leaf import is_const
from compiler.ops.registry import OPS


def simplify(graph):
    """A Graph equal to ``graph`` with constants folded and redundant broadcasts dropped."""
    new = {}
    for n in graph.nodes:
        inputs = [new[i] for i in n.inputs]
        opdef = OPS[n.op]
        if opdef.kind == "elementwise" and inputs and n.dtype == "float" \
                and all(is_const(i) for i in inputs):
            value = opdef.scalar(*[i.attr("value") for i in inputs], **dict(n.attrs))
            with located(n.source_line):
                new[n] = constant(value)
            continue
        if opdef.kind == "elementwise":
            inputs = _implicit_broadcasts(inputs, n.shape)
        if all(a is b for a, b in zip(inputs, n.inputs)):
            new[n] = n
        else:
            with located(n.source_line):
                new[n] = make(n.op, inputs, **dict(n.attrs))
    return Graph({k: new[v] for k, v in graph.outputs.items()})


def _implicit_broadcasts(inputs, shape):
    out = list(inputs)
    for j, x in enumerate(inputs):
        if OPS[x.op].view == "broadcast":
            trial = out[:j] + [x.inputs[0]] + out[j + 1:]
            if broadcast_shapes(*(t.shape for t in trial)) == shape:
                out = trial
    return out


def optimize(graph):
    """All passes, in order."""
    return simplify(graph)
