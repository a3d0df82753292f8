"""Names for unnamed layers and numbers for dropout masks, given when a ``Model`` is built.

An unnamed layer cannot name itself: two unnamed chains of equal shapes would
both call their first layer ``dense0`` and silently share its weights, and a
process-wide counter would give the same model other names (and other initial
values) when it is built twice.  So an unnamed layer's parameters and each
dropout call carry an ``Unnamed`` placeholder, unique to that layer or call,
and ``Model`` replaces the placeholders in the order its graph uses them:
``dense0``, ``dense1``, ... (skipping names the model already uses) and dropout
salts 1, 2, ....  The names depend only on the model's structure.

>>> from compiler import Input, Model, nn, ops as F
>>> x = Input("x", ("B", 4))
>>> enc, dec = nn.Chain(nn.Dense(4, 4)), nn.Chain(nn.Dense(4, 4))
>>> m = Model([x], loss=F.sum(dec(enc(x))))
>>> [p.name for p in m.params]
['dense0.W', 'dense0.b', 'dense1.W', 'dense1.b']
"""
from compiler.graph import located, make, toposort
from compiler.ops.leaf import is_buffer, is_param


class Unnamed:
    """A placeholder for a name (``kind`` ``dense``, ...) or a salt (``kind`` ``salt``).

    It is unique to the layer or call that made it: nodes holding different
    placeholders are different nodes.  ``value`` is set once a Model names it.
    """

    __slots__ = ("kind", "value", "__weakref__")

    def __init__(self, kind):
        self.kind, self.value = kind, None

    def __repr__(self):  # part of the hash-consing key: unique while a node holds it
        return f"<unnamed {self.kind} {id(self):#x}>"


def resolve(value):
    """``value``, or the name or number a Model gave the placeholder ``value``."""
    return value.value if isinstance(value, Unnamed) and value.value is not None else value


def _placeholder(node):
    for _, v in node.attrs:
        if isinstance(v, Unnamed):
            return v
    return None


def name_placeholders(roots):
    """Give every placeholder under ``roots`` its value; return ``roots`` rebuilt without them.

    Placeholders are numbered in the order the graph (toposorted from ``roots``)
    first uses them; layer names skip names the graph already holds.
    """
    nodes = toposort(roots)
    tokens = list(dict.fromkeys(t for t in map(_placeholder, nodes) if t is not None))
    named = [t.value for t in tokens if t.value is not None]
    taken = {n.name.split(".")[0] for n in nodes
             if (is_param(n) or is_buffer(n)) and n.attr("layer") is None}
    taken.update(v for v in named if isinstance(v, str))
    salts = {n.attr("salt") for n in nodes if isinstance(n.attr("salt"), int)}
    salts.update(v for v in named if isinstance(v, int))
    counters = {}
    for token in tokens:
        if token.value is not None:
            continue
        k = counters.get(token.kind, 0)
        if token.kind == "salt":
            while k + 1 in salts:
                k += 1
            token.value = counters[token.kind] = k + 1
            continue
        while f"{token.kind}{k}" in taken:
            k += 1
        token.value, counters[token.kind] = f"{token.kind}{k}", k + 1
    new = {}
    for n in nodes:
        inputs = tuple(new[i] for i in n.inputs)
        token = _placeholder(n)
        if token is None and all(a is b for a, b in zip(inputs, n.inputs)):
            new[n] = n
            continue
        attrs = {k: v for k, v in n.attrs}
        if token is not None:
            if is_param(n) or is_buffer(n):  # a layer's: "<layer>.W" once the layer has a name
                attrs["name"] = f"{token.value}.{attrs.pop('field')}"
                attrs.pop("layer")
            else:
                attrs = {k: resolve(v) for k, v in attrs.items()}
        with located(n.source_line):
            new[n] = make(n.op, inputs, **attrs)
        new[n].metrics = new[n].metrics or n.metrics
    return [new[r] for r in roots]
