"""Graph passes run after autodiff.

Common-subexpression elimination is free (nodes are hash-consed) and dead code
never appears (a ``Graph`` holds only what its outputs reach).  What is left
to do explicitly:

- constant folding: elementwise ops whose inputs are all constants become one
  constant, evaluated exactly by sympy;
- implicit broadcasting: an explicit ``broadcast_to`` feeding an elementwise op
  is dropped when the op's own broadcasting gives the same shape;
- elementwise ops of one array move under reshapes and transposes (``relu(x.T)`` is
  ``relu(x).T``), so that they fuse with what computes the array.
"""
from compiler.graph import Graph, located, make, users_of
from compiler.shapes import broadcast_shapes
from compiler.symbolic import constant
from compiler.ops.leaf import is_const
from compiler.ops.registry import OPS


def simplify(graph):
    """A Graph equal to ``graph`` with constants folded and redundant broadcasts dropped."""
    new, users = {}, users_of(graph.nodes)
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
            moved = _under_views(n, inputs, users)
            if moved is not None:
                new[n] = moved
                continue
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


def _under_views(n, inputs, users):
    """``f(view(x))`` as ``view(f(x))`` for an elementwise ``f`` of one array (its other
    inputs scalar constants) and a chain of reshapes and transposes: ``f`` then joins
    the kernel that computes ``x`` (a convolution's activation, in its matmul's epilogue),
    and the view is read in place.  ``None`` when ``n`` is not such a node, or when
    something else reads the view too (it stays, and ``f`` with it)."""
    arrays = [j for j, i in enumerate(inputs) if not (is_const(i) and i.shape == ())]
    if len(arrays) != 1 or len(users[n.inputs[arrays[0]]]) != 1:
        return None
    (j,), chain, x = arrays, [], inputs[arrays[0]]
    while OPS[x.op].view in ("permute", "relabel"):
        chain.append(x)
        x = x.inputs[0]
    if not chain:
        return None
    with located(n.source_line):
        out = make(n.op, inputs[:j] + [x] + inputs[j + 1:], **dict(n.attrs))
        for v in reversed(chain):
            out = make(v.op, (out,), **dict(v.attrs))
    return out


def optimize(graph):
    """All passes, in order."""
    return simplify(graph)
