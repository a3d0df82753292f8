"""Small layer helpers: ``nn.Dense`` and ``nn.Chain`` (alias ``nn.Sequential``).

Parameters get stable, readable names.  A layer given ``name=`` keeps it (layers
given the same name share their parameters); the unnamed layers of a chain
given ``name="enc"`` are ``enc.dense0``, ``enc.dense1``, ...; every other unnamed
layer is named when the ``Model`` is built, ``dense0``, ``dense1``, ... in the
order the model's graph uses them (``compiler.naming``).  So the weights of the
second layer of an MLP are ``dense1.W`` and ``dense1.b``, and the same model
built twice has the same names and the same initial values.

>>> from compiler import Input, Model, nn, ops as F
>>> net = nn.Chain(nn.Dense(1, 32, act=F.tanh), nn.Dense(32, 1))
>>> m = Model([x := Input("x", ("B", 1))], loss=F.sum(net(x)))
>>> [p.name for p in net.params()]
['dense0.W', 'dense0.b', 'dense1.W', 'dense1.b']
"""
import math

from compiler.graph import user_location
from compiler.naming import Unnamed
from compiler.ops import api as F, composite, conv, indexing, statistics
from compiler.ops.batchnorm import batch_norm
from compiler.ops.registry import OPS
from compiler.shapes import numel
from runtime.errors import GradcError

IDENTITY = ("identity", "linear")


def activations():
    """The names ``act=`` takes: ``identity``, ``linear``, ``gelu`` and every elementwise op
    of one tensor (``relu``, ``tanh``, a user's ``F.elementwise`` op, ...)."""
    return list(IDENTITY) + list(F.COMPOSED_ACTIVATIONS) + [
        name for name, op in OPS.items() if op.kind == "elementwise" and op.arity == 1
        and name not in F.COMPOSED_ACTIVATIONS]


def activation(act):
    """The function ``act`` names, or ``None`` for the identity; ``act`` may be a function."""
    if act is None or callable(act):
        return act
    if not isinstance(act, str) or act not in activations():
        known = ", ".join(repr(a) for a in activations())
        raise GradcError(f"unknown activation {act!r}; use one of {known}", where=user_location())
    return None if act in IDENTITY else getattr(F, act)


class Layer:
    """A layer with parameters: ``kind`` names it when unnamed (``dense0``, ``conv1``), and
    ``specs()`` lists its parameters as ``(field, shape, init)``."""

    kind = "layer"

    def _named(self, name):
        self._name = name
        self._unnamed = Unnamed(self.kind)

    @property
    def name(self):
        """The given name, the one the Model gave, or ``None`` before a Model is built."""
        return self._name or self._unnamed.value

    def specs(self):
        return []

    def buffer_specs(self):
        """The layer's buffers (state it updates while training) as ``(field, shape, init)``."""
        return []

    def buffers(self):
        """The layer's buffers (placeholders until the layer has a name)."""
        return self._leaves(self.buffer_specs(), F.Buffer, F.layer_buffer)

    def params(self):
        """The layer's parameters (placeholders until the layer has a name)."""
        return self._leaves(self.specs(), F.Param, F.layer_param)

    def _leaves(self, specs, named, placeholder):
        if self.name is not None:
            return [named(f"{self.name}.{field}", shape, init=init) for field, shape, init in specs]
        return [placeholder(self._unnamed, field, shape, init) for field, shape, init in specs]


def _positive(layer, *sizes):
    for n in sizes:
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise GradcError(f"{layer} needs positive integer sizes, got "
                             f"{', '.join(repr(s) for s in sizes)}", where=user_location())


def affine(x, weight, bias=None, act=None):
    """``act(x @ weight + bias)`` over the last axis of ``x``; an N-D ``x`` is one matrix of
    rows while the bias and activation are applied, so that they fuse into the matmul's
    kernel, and takes its shape back after."""
    lead = x.shape[:-1]
    rows = F.reshape(x, (numel(lead), x.shape[-1])) if x.ndim > 2 else x
    z = F.matmul(rows, weight)
    if bias is not None:
        z = z + bias
    if act is not None:
        z = act(z)
    return F.reshape(z, lead + (weight.shape[-1],)) if x.ndim > 2 else z


class Dense(Layer):
    """``act(x @ W + b)`` with ``W`` of shape ``(n_in, n_out)`` and ``b`` of shape ``(n_out,)``;
    on an N-D input it acts on the last axis."""

    kind = "dense"

    def __init__(self, n_in, n_out, act=None, init="xavier", bias=True, name=None):
        activation(act)  # a one-line error now for an unknown name
        for n in (n_in, n_out):
            if not isinstance(n, int) or n < 1:
                raise GradcError(f"Dense needs positive integer sizes, got {n_in} => {n_out}",
                                 where=user_location())
        self.n_in, self.n_out, self.act, self.init, self.bias = n_in, n_out, act, init, bias
        self._named(name)

    def specs(self):
        specs = [("W", (self.n_in, self.n_out), self.init)]
        if self.bias:
            specs.append(("b", (self.n_out,), "zeros"))
        return specs

    def __call__(self, x):
        params = self.params()
        x = F.as_node(x)
        if x.ndim < 1 or x.shape[-1] != self.n_in:
            raise GradcError(f"{self!r} expects inputs with last dimension {self.n_in}, "
                             f"got shape {x.shape}", where=user_location())
        return affine(x, params[0], params[1] if self.bias else None, activation(self.act))

    def __repr__(self):
        return f"Dense({self.n_in} => {self.n_out}, act={self.act!r})"


class Conv2d(Layer):
    """``torch.nn.Conv2d``: weight (out_channels, in_channels / groups, kH, kW) and bias
    (out_channels,), both initialised as PyTorch does (uniform in +-1/sqrt(fan_in),
    fan_in = in_channels / groups * kH * kW: ``kaiming_uniform``)."""

    kind = "conv"

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, init="kaiming_uniform", name=None):
        kh, kw = kernel_size if isinstance(kernel_size, (tuple, list)) else (kernel_size,) * 2
        _positive("Conv2d", in_channels, out_channels, kh, kw, groups)
        if in_channels % groups or out_channels % groups:
            raise GradcError(f"Conv2d: in_channels {in_channels} and out_channels {out_channels} "
                             f"must be divisible by groups {groups}", where=user_location())
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, (kh, kw)
        self.stride, self.padding, self.dilation, self.groups = stride, padding, dilation, groups
        self.bias, self.init = bias, init
        self._named(name)

    def specs(self):
        fan_in = self.in_channels // self.groups * self.kernel_size[0] * self.kernel_size[1]
        specs = [("W", (self.out_channels, self.in_channels // self.groups) + self.kernel_size,
                  self.init)]
        if self.bias:
            specs.append(("b", (self.out_channels,), f"uniform({fan_in ** -0.5!r})"))
        return specs

    def __call__(self, x):
        params = self.params()
        x = F.as_node(x)
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise GradcError(f"{self!r} expects inputs (N, {self.in_channels}, H, W), got shape "
                             f"{x.shape}", where=user_location())
        return conv.conv2d(x, params[0], params[1] if self.bias else None, self.stride,
                        self.padding, self.dilation, self.groups)

    def __repr__(self):
        return (f"Conv2d({self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding})")


class BatchNorm2d(Layer):
    """``torch.nn.BatchNorm2d`` over (N, C, H, W): ``weight`` (ones) and ``bias`` (zeros)
    per channel, and the buffers ``running_mean`` (zeros) and ``running_var`` (ones),
    which each training step updates (``F.batch_norm``); ``predict`` and ``evaluate``
    normalise with them."""

    kind = "bn"

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, name=None):
        _positive(type(self).__name__, num_features)
        self.num_features, self.eps, self.momentum, self.affine = num_features, eps, momentum, affine
        self._named(name)

    def specs(self):
        if not self.affine:
            return []
        return [("weight", (self.num_features,), "ones"), ("bias", (self.num_features,), "zeros")]

    def buffer_specs(self):
        return [("running_mean", (self.num_features,), "zeros"),
                ("running_var", (self.num_features,), "ones")]

    def __call__(self, x):
        x = F.as_node(x)
        if x.ndim not in self.shapes or x.shape[1] != self.num_features:
            raise GradcError(f"{self!r} expects inputs {' or '.join(self.shapes.values())} with "
                             f"C = {self.num_features}, got shape {x.shape}",
                             where=user_location())
        weight, bias = self.params() if self.affine else (None, None)
        mean, var = self.buffers()
        return batch_norm(x, mean, var, weight, bias, self.momentum, self.eps)

    @property
    def shapes(self):
        return {4: "(N, C, H, W)"}

    def __repr__(self):
        return f"{type(self).__name__}({self.num_features})"


class BatchNorm1d(BatchNorm2d):
    """``torch.nn.BatchNorm1d`` over (N, C) or (N, C, L); see ``BatchNorm2d``."""

    @property
    def shapes(self):
        return {2: "(N, C)", 3: "(N, C, L)"}


class Embedding(Layer):
    """``torch.nn.Embedding``: row ``i`` of ``weight`` (num_embeddings, embedding_dim),
    initialised from the standard normal, for each integer ``i`` of the input."""

    kind = "embedding"

    def __init__(self, num_embeddings, embedding_dim, init="normal(1)", name=None):
        _positive("Embedding", num_embeddings, embedding_dim)
        self.num_embeddings, self.embedding_dim, self.init = num_embeddings, embedding_dim, init
        self._named(name)

    def specs(self):
        return [("weight", (self.num_embeddings, self.embedding_dim), self.init)]

    def __call__(self, idx):
        idx = F.as_node(idx)
        if idx.dtype != "int":
            raise GradcError(f"{self!r} expects integer inputs, got {idx.dtype}",
                             where=user_location())
        return indexing.take(self.params()[0], idx, axis=0)

    def __repr__(self):
        return f"Embedding({self.num_embeddings}, {self.embedding_dim})"


class LayerNorm(Layer):
    """``torch.nn.LayerNorm``: the last axes (``normalized_shape``) normalised to mean 0
    and variance 1, then scaled by ``weight`` (ones) and shifted by ``bias`` (zeros)."""

    kind = "layernorm"

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True,
                 name=None):
        shape = (normalized_shape,) if isinstance(normalized_shape, int) else \
            tuple(normalized_shape)
        _positive("LayerNorm", *shape)
        self.normalized_shape, self.eps = shape, eps
        self.elementwise_affine, self.bias = elementwise_affine, bias
        self._named(name)

    def specs(self):
        if not self.elementwise_affine:
            return []
        specs = [("weight", self.normalized_shape, "ones")]
        return specs + [("bias", self.normalized_shape, "zeros")] if self.bias else specs

    def __call__(self, x):
        params = self.params() + [None, None]
        return statistics.layer_norm(x, self.normalized_shape, params[0], params[1], self.eps)

    def __repr__(self):
        return f"LayerNorm({self.normalized_shape}, eps={self.eps})"


def causal_mask(scores):
    """``scores`` (..., T, T) with every entry above the diagonal -inf (a position attends
    to itself and the positions before it): softmax then gives those entries weight 0."""
    t = scores.shape[-1]
    above = indexing.triu(F.broadcast_to(F.const(-math.inf), (t, t)), 1)
    return indexing.tril(scores) + above


class MultiHeadAttention(Layer):
    """Multi-head scaled dot-product self-attention over (B, T, dim): one fused projection
    weight for queries, keys and values (``in_proj_W`` (dim, 3 dim), ``in_proj_b``; each
    third multiplies the input in a matmul of its own, so no activation is sliced), ``heads`` heads
    of ``dim / heads``, ``softmax(q k^T / sqrt(dim / heads))`` (``causal``: each position
    sees only itself and earlier ones), dropout on the attention weights while training,
    and the output projection (``out_proj_W``, ``out_proj_b``).  Weights are Xavier-uniform
    and biases zero, as ``torch.nn.MultiheadAttention``'s in-projection."""

    kind = "attn"

    def __init__(self, dim, heads, causal=False, dropout=0.0, name=None):
        _positive("MultiHeadAttention", dim, heads)
        if dim % heads:
            raise GradcError(f"MultiHeadAttention: {heads} heads do not divide the width {dim}",
                             where=user_location())
        if not 0 <= dropout < 1:
            raise GradcError(f"MultiHeadAttention: dropout must be in [0, 1), got {dropout!r}",
                             where=user_location())
        self.dim, self.heads, self.causal, self.dropout = dim, heads, causal, dropout
        self._dropout_salt = Unnamed("salt")
        self._named(name)

    def specs(self):
        d = self.dim
        return [("in_proj_W", (d, 3 * d), "xavier"), ("in_proj_b", (3 * d,), "zeros"),
                ("out_proj_W", (d, d), "xavier"), ("out_proj_b", (d,), "zeros")]

    def weights(self, x):
        """The attention weights (B, heads, T, T) of input ``x`` (B, T, dim), and the values."""
        w_in, b_in = self.params()[:2]
        x = F.as_node(x)
        if x.ndim != 3 or x.shape[-1] != self.dim:
            raise GradcError(f"{self!r} expects inputs (B, T, {self.dim}), got shape {x.shape}",
                             where=user_location())
        b, t, d = x.shape
        head = d // self.heads

        def project(i):  # part i of the fused projection: (B, heads, T, dim / heads)
            part = affine(x, w_in[:, i * d:(i + 1) * d], b_in[i * d:(i + 1) * d])
            return F.transpose(F.reshape(part, (b, t, self.heads, head)), (0, 2, 1, 3))

        q, k, v = project(0), project(1), project(2)
        scores = F.matmul(q, F.swap_last(k)) * (1.0 / math.sqrt(head))
        if self.causal:
            scores = causal_mask(scores)
        return composite.softmax(scores, axis=-1), v

    def __call__(self, x):
        attention, v = self.weights(x)
        b, _, t, head = v.shape
        if self.dropout:
            attention = F.dropout(attention, self.dropout, salt=self._dropout_salt)
        mixed = F.reshape(F.transpose(F.matmul(attention, v), (0, 2, 1, 3)), (b, t, self.dim))
        return affine(mixed, *self.params()[2:])

    def __repr__(self):
        return f"MultiHeadAttention({self.dim}, heads={self.heads}, causal={self.causal})"


class TransformerBlock:
    """A pre-norm transformer block over (B, T, dim): ``x + attn(ln1(x))``, then
    ``x + mlp(ln2(x))`` with ``mlp`` = Dense(dim, mlp_ratio * dim, GELU), Dense back."""

    def __init__(self, dim, heads, mlp_ratio=4, causal=True, dropout=0.0):
        _positive("TransformerBlock", dim, heads, mlp_ratio)
        self.ln1, self.ln2 = LayerNorm(dim), LayerNorm(dim)
        self.attn = MultiHeadAttention(dim, heads, causal=causal, dropout=dropout)
        self.mlp = Chain(Dense(dim, mlp_ratio * dim, act=F.gelu), Dense(mlp_ratio * dim, dim))

    def params(self):
        return [p for layer in (self.ln1, self.attn, self.ln2, self.mlp) for p in layer.params()]

    def __call__(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))

    def __repr__(self):
        return f"TransformerBlock({self.attn.dim}, heads={self.attn.heads})"


class MaxPool2d:
    """``torch.nn.MaxPool2d``: the maximum of each window (stride defaults to the kernel)."""

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1):
        self.kernel_size, self.stride, self.padding, self.dilation = (kernel_size, stride,
                                                                      padding, dilation)

    def __call__(self, x):
        return conv.max_pool2d(x, self.kernel_size, self.stride, self.padding, self.dilation)

    def __repr__(self):
        return f"MaxPool2d({self.kernel_size})"


class AvgPool2d:
    """``torch.nn.AvgPool2d``: the mean of each window (stride defaults to the kernel)."""

    def __init__(self, kernel_size, stride=None, padding=0):
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def __call__(self, x):
        return conv.avg_pool2d(x, self.kernel_size, self.stride, self.padding)

    def __repr__(self):
        return f"AvgPool2d({self.kernel_size})"


class Flatten:
    """``torch.nn.Flatten``: axes ``start_dim`` (1) to ``end_dim`` (-1) as one."""

    def __init__(self, start_dim=1, end_dim=-1):
        self.start_dim, self.end_dim = start_dim, end_dim

    def __call__(self, x):
        return conv.flatten(x, self.start_dim, self.end_dim)

    def __repr__(self):
        return "Flatten()"


class Residual:
    """``x + block(x)``: a skip connection around ``block`` (a layer or a Chain)."""

    def __init__(self, block):
        if not callable(block):
            raise GradcError(f"Residual needs a callable block, got {block!r}",
                             where=user_location())
        self.block = block

    def params(self):
        return self.block.params() if hasattr(self.block, "params") else []

    def __call__(self, x):
        return x + self.block(x)

    def __repr__(self):
        return f"Residual({self.block!r})"


class Chain:
    """Layers applied in order; a named chain names its unnamed layers ``NAME.dense0``, ...,
    and the layers of an unnamed chain inside it ``NAME.chain1.dense0``, ...."""

    def __init__(self, *layers, name=None):
        self.layers = list(layers)
        self.name = name
        pending = [self] if name else []
        while pending:  # iterative: chains nest to any depth
            chain = pending.pop()
            for i, layer in enumerate(l for l in chain.layers if isinstance(l, (Layer, Chain))):
                if isinstance(layer, Layer) and layer.name is None:
                    layer._name = f"{chain.name}.{layer.kind}{i}"
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
