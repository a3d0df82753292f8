"""gradc: a symbolic-to-code differentiation compiler for neural-network training.

>>> from compiler import Input, Param, Model, nn, ops as F, compile
"""
from compiler import ops  # noqa: F401  (registers every op)
from compiler import nn  # noqa: F401
from compiler.config import VERSION as __version__  # noqa: F401
from compiler.graph import Graph, Node  # noqa: F401
from compiler.model import Model  # noqa: F401
from compiler.ops.api import Input, Param  # noqa: F401
from compiler.pipeline import compile  # noqa: F401,A004
