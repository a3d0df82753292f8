"""gradc's ops, used as ``from compiler import ops as F``.

Primitives (with derivative rules) live in one file per family and register
themselves in ``registry.OPS``; composites are built from them.
"""
from compiler.ops import elementwise, leaf, linalg, loss, random, reduce, shape  # noqa: F401  (register)
from compiler.ops.api import (  # noqa: F401
    Input, Param, abs, add, as_node, broadcast_to, const, cos, div, dropout, equal, exp, greater,
    greater_equal, heaviside, less, less_equal, log, logsumexp, matmul, max, maximum, mean,
    minimum, mul, neg, not_equal, one_hot, pow, relu, reshape, sigmoid, sign, sin, softplus, sqrt,
    stop_gradient, sub, sum, tanh, transpose, unbroadcast, where,
)
from compiler.ops.composite import (  # noqa: F401
    accuracy, bce_with_logits, binary_accuracy, cross_entropy, l1, l2, log_softmax, mse, softmax,
)
from compiler.ops.registry import OPS  # noqa: F401
