"""Small layer helpers: ``nn.Dense`` and ``nn.Chain`` (alias ``nn.Sequential``).

Parameters get stable, readable names: layers of a chain are ``dense0``,
``dense1``, ... in order (``name.dense0`` for a named chain), so the weights
of the second layer are ``dense1.W`` and ``dense1.b``.

>>> from compiler import Input, nn
>>> net = nn.Chain(nn.Dense(1, 32, act="tanh"), nn.Dense(32, 1))
>>> y = net(Input("x", ("B", 1)))
>>> [p.name for p in net.params()]
['dense0.W', 'dense0.b', 'dense1.W', 'dense1.b']
"""
import itertools

from compiler.graph import user_location
from compiler.ops import api as F
from runtime.errors import GradcError

ACTIVATIONS = {
    None: None,
    "identity": None,
    "linear": None,
    "relu": F.relu,
    "tanh": F.tanh,
    "sigmoid": F.sigmoid,
    "softplus": F.softplus,
    "exp": F.exp,
    "sin": F.sin,
    "cos": F.cos,
    "abs": F.abs,
}

_unnamed = itertools.count()


class Dense:
    """``act(x @ W + b)`` with ``W`` of shape ``(n_in, n_out)`` and ``b`` of shape ``(n_out,)``."""

    def __init__(self, n_in, n_out, act=None, init="xavier", bias=True, name=None):
        if act not in ACTIVATIONS and not callable(act):
            known = ", ".join(repr(a) for a in ACTIVATIONS if a)
            raise GradcError(f"unknown activation {act!r}; use one of {known}",
                             where=user_location())
        for n in (n_in, n_out):
            if not isinstance(n, int) or n < 1:
                raise GradcError(f"Dense needs positive integer sizes, got {n_in} => {n_out}",
                                 where=user_location())
        self.n_in, self.n_out, self.act, self.init, self.bias = n_in, n_out, act, init, bias
        self.name = name
        self._params = None

    def params(self):
        """The layer's parameters (created, and named, on first use)."""
        if self._params is None:
            if self.name is None:
                self.name = f"dense{next(_unnamed)}"
            self._params = [F.Param(f"{self.name}.W", (self.n_in, self.n_out), init=self.init)]
            if self.bias:
                self._params.append(F.Param(f"{self.name}.b", (self.n_out,), init="zeros"))
        return self._params

    def __call__(self, x):
        params = self.params()
        x = F.as_node(x)
        if x.ndim < 1 or x.shape[-1] != self.n_in:
            raise GradcError(f"{self.name} expects inputs with last dimension {self.n_in}, "
                             f"got shape {x.shape}", where=user_location())
        z = F.matmul(x, params[0])
        if self.bias:
            z = z + params[1]
        act = ACTIVATIONS[self.act] if not callable(self.act) else self.act
        return act(z) if act is not None else z

    def __repr__(self):
        return f"Dense({self.n_in} => {self.n_out}, act={self.act!r})"


class Chain:
    """Layers applied in order; unnamed Dense layers are named ``dense0``, ``dense1``, ..."""

    def __init__(self, *layers, name=None):
        self.layers = list(layers)
        prefix = f"{name}." if name else ""
        for i, layer in enumerate(l for l in self.layers if isinstance(l, (Dense, Chain))):
            if isinstance(layer, Dense) and layer.name is None and layer._params is None:
                layer.name = f"{prefix}dense{i}"
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
