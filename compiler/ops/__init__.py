"""gradc's ops, used as ``from compiler import ops as F``.

Primitives (with derivative rules) live in one file per family and register
themselves in ``registry.OPS``; composites are built from them.  Each elementwise op
is ``F.<name>`` (``F.exp``, ``F.gelu``) from its registry entry alone.
"""
from compiler.ops import conv, leaf, linalg, loss, mode, pointwise, random, reduce, shape  # noqa: F401,E501  (register)
from compiler.ops.batchnorm import batch_norm  # noqa: F401
from compiler.ops.conv import avg_pool2d, conv1d, conv2d, flatten, max_pool2d, pad  # noqa: F401
from compiler.ops.indexing import (  # noqa: F401
    concat, getitem, split, stack, take, take_along_axis, tril, triu,
)
from compiler.ops.statistics import argmax, layer_norm, min, std, var  # noqa: F401
from compiler.ops.api import clip, gelu  # noqa: F401
from compiler.ops.api import (  # noqa: F401
    Buffer, Input, Param, add, as_node, broadcast_to, const, div, dropout, elementwise_function, equal,
    greater, greater_equal, heaviside, less, less_equal, logsumexp, matmul, max, mean, mul,
    not_equal, one_hot, reshape, sub, sum, transpose, unbroadcast, where,
)
from compiler.ops.composite import (  # noqa: F401
    accuracy, bce_with_logits, binary_accuracy, cross_entropy, l1, l2, log_softmax, mse, softmax,
)
from compiler.ops.pointwise import define as elementwise  # noqa: F401
from compiler.ops.registry import OPS  # noqa: F401


def __getattr__(name):
    """Every elementwise op in the registry is a function here: ``F.exp``, ``F.erf``, ..."""
    if name.startswith("__"):
        raise AttributeError(name)
    return elementwise_function(name)
