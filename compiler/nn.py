"""Small layer helpers: ``nn.Dense`` and ``nn.Chain`` (alias ``nn.Sequential``).

Parameters get stable, readable names.  A layer given ``name=`` keeps it (layers
given the same name share their parameters); the unnamed layers of a chain
given ``name="enc"`` are ``enc.dense0``, ``enc.dense1``, ...; every other unnamed
layer is named when the ``Model`` is built, ``dense0``, ``dense1``, ... in the
order the model's graph uses them (``compiler.naming``).  So the weights of the
second layer of an MLP are ``dense1.W`` and ``dense1.b``, and the same model
built twice has the same names and the same initial values.

>>> from compiler import Input, Model, nn, ops as F
>>> net = nn.Chain(nn.Dense(1, 32, act="tanh"), nn.Dense(32, 1))
>>> m = Model([x := Input("x", ("B", 1))], loss=F.sum(net(x)))
>>> [p.name for p in net.params()]
['dense0.W', 'dense0.b', 'dense1.W', 'dense1.b']
"""
from compiler.graph import user_location
from compiler.naming import Unnamed
from compiler.ops import api as F
from compiler.ops.registry import OPS
from runtime.errors import GradcError

IDENTITY = ("identity", "linear")


def activations():
    """The names ``act=`` takes: ``identity``, ``linear`` and every elementwise op of one
    tensor (``relu``, ``tanh``, a user's ``F.elementwise`` op, ...)."""
    return list(IDENTITY) + [name for name, op in OPS.items()
                             if op.kind == "elementwise" and op.arity == 1]


def activation(act):
    """The function ``act`` names, or ``None`` for the identity; ``act`` may be a function."""
    if act is None or callable(act):
        return act
    if not isinstance(act, str) or act not in activations():
        known = ", ".join(repr(a) for a in activations())
        raise GradcError(f"unknown activation {act!r}; use one of {known}", where=user_location())
    return None if act in IDENTITY else getattr(F, act)


class Dense:
    """``act(x @ W + b)`` with ``W`` of shape ``(n_in, n_out)`` and ``b`` of shape ``(n_out,)``."""

    def __init__(self, n_in, n_out, act=None, init="xavier", bias=True, name=None):
        activation(act)  # a one-line error now for an unknown name
        for n in (n_in, n_out):
            if not isinstance(n, int) or n < 1:
                raise GradcError(f"Dense needs positive integer sizes, got {n_in} => {n_out}",
                                 where=user_location())
        self.n_in, self.n_out, self.act, self.init, self.bias = n_in, n_out, act, init, bias
        self._name = name
        self._unnamed = Unnamed("dense")

    @property
    def name(self):
        """The given name, the one the Model gave, or ``None`` before a Model is built."""
        return self._name or self._unnamed.value

    def params(self):
        """The layer's parameters ``W`` and ``b`` (placeholders until the layer has a name)."""
        specs = [("W", (self.n_in, self.n_out), self.init)]
        if self.bias:
            specs.append(("b", (self.n_out,), "zeros"))
        if self.name is not None:
            return [F.Param(f"{self.name}.{field}", shape, init=init)
                    for field, shape, init in specs]
        return [F.layer_param(self._unnamed, field, shape, init) for field, shape, init in specs]

    def __call__(self, x):
        params = self.params()
        x = F.as_node(x)
        if x.ndim < 1 or x.shape[-1] != self.n_in:
            raise GradcError(f"{self!r} expects inputs with last dimension {self.n_in}, "
                             f"got shape {x.shape}", where=user_location())
        z = F.matmul(x, params[0])
        if self.bias:
            z = z + params[1]
        act = activation(self.act)
        return act(z) if act is not None else z

    def __repr__(self):
        return f"Dense({self.n_in} => {self.n_out}, act={self.act!r})"


class Chain:
    """Layers applied in order; a named chain names its unnamed layers ``NAME.dense0``, ...,
    and the layers of an unnamed chain inside it ``NAME.chain1.dense0``, ...."""

    def __init__(self, *layers, name=None):
        self.layers = list(layers)
        self.name = name
        pending = [self] if name else []
        while pending:  # iterative: chains nest to any depth
            chain = pending.pop()
            for i, layer in enumerate(l for l in chain.layers if isinstance(l, (Dense, Chain))):
                if isinstance(layer, Dense) and layer.name is None:
                    layer._name = f"{chain.name}.dense{i}"
                elif isinstance(layer, Chain) and layer.name is None:
                    layer.name = f"{chain.name}.chain{i}"
                    pending.append(layer)
        for layer in self.layers:
            if not callable(layer):
                raise GradcError(f"Chain layers must be callable, got {layer!r}",
                                 where=user_location())

    def params(self):
        out = []
        for layer in self.layers:
            if hasattr(layer, "params"):
                out.extend(layer.params())
        return out

    def __call__(self, x):
        for layer in self.layers:
            x = layer(x)
        return x

    def __repr__(self):
        return "Chain(" + ", ".join(repr(l) for l in self.layers) + ")"


Sequential = Chain
