"""The Python names of a generated module, one scheme for both backends.

A shape symbol keeps its own name (printed bodies use it: ``u0/B``); an input or a
parameter is its name with ``.`` written ``_`` (``dense0.W`` -> ``dense0_W``); a tangent
is ``d_<parameter>``.  A kernel's result is named after the graph output it is
(``y_hat``, ``grad_dense0_W``, ``loss_value``), any other result after its kernel
(``t3``; ``t3_1`` for a kernel's second result).  A name the module uses for something
else (entry points, their arguments and locals, kernels' temporaries and outputs, the
host-side locals of Triton wrappers, Python's builtins) is never given to a buffer: a
clash gets a trailing ``_``, as does a second buffer wanting a name already given.

>>> names = Names()
>>> names.add("a", "dense0.W"), names.add("b", "out"), names.add("c", "dense0.W")
('dense0_W', 'out_', 'dense0_W_')
>>> [names.add(k, result_name(k)) for k in ("grad:dense0.W", "loss", "metric:accuracy")]
['grad_dense0_W', 'loss_value', 'accuracy']
"""
import builtins
import keyword
import os
import re

from compiler.ops.leaf import is_tangent
from compiler.optim import RULES

ENTRIES = ("loss", "loss_and_grad", "predict", "evaluate", "train_epoch", "jvp", "hvp")
MODULE = ("numpy", "torch", "triton", "tl", "_rt", "DTYPE", "INPUTS", "PARAMS", "OUTPUTS",
          "METRICS", "ENTRY_INPUTS", "SHAPE_SYMBOLS", "PARAM_NAMES", "OPTIMIZERS", "KERNELS", "BUFFERS",
          "INPUT_PRECISION", "BLOCK", "CE_BLOCK_C")
LOCALS = ("params", "batch", "tangents", "rng", "grads", "state", "name", "data", "batch_size",
          "step_update", "seed", "step", "losses", "start",                 # entry points
          "shape", "out_shape", "numel", "grid", "a", "b", "M", "N", "K", "R",  # Triton hosts
          "row_loss", "row_right", "_total", "plan", "plan_key")
# kernels' temporaries (u0), operands (v0, e0), outputs (out, out1) and device kernels
PATTERN = re.compile(r"out\d*|[uve]\d+|\w+_kernel")
RESERVED = frozenset((*ENTRIES, *MODULE, *LOCALS, *(f"update_{r}" for r in RULES),
                      *(n for n in dir(builtins) if not n.startswith("_"))))


def result_name(output):
    """The name wanted for the graph output called ``output`` (``grad:dense0.W``)."""
    kind, _, what = output.partition(":")
    if not what:
        return f"{output}_value" if output in ENTRIES else output
    if kind == "metric":
        return what
    return f"new_{what}" if kind == "update" else f"{kind}_{what}"  # a buffer's next value


def location(where):
    """``file.py:line`` of a node's ``where`` (``?`` when unknown)."""
    if not where:
        return "?"
    path, _, line = where.rpartition(":")
    return f"{os.path.basename(path)}:{line}"


def out_name(j):
    """The keyword through which a kernel's ``j``-th result can be written in place."""
    return "out" if j == 0 else f"out{j}"


class Names:
    """Unique Python names, each given to one key (a node, or ``("sym", name)``)."""

    def __init__(self, taken=()):
        self.taken = set(RESERVED) | set(taken)
        self.of = {}

    def add(self, key, wanted, exact=False):
        """Give ``key`` the name ``wanted`` made a free identifier (``exact``: as it is)."""
        name = wanted if exact else re.sub(r"\W", "_", wanted)
        if not exact:
            name = name if name.isidentifier() else f"_{name}"
            while name in self.taken or keyword.iskeyword(name) or PATTERN.fullmatch(name):
                name += "_"
        self.taken.add(name)
        self.of[key] = name
        return name


def module_names(model, graph, kernels, symbols):
    """The names of one module: its shape ``symbols``, the model's inputs and parameters,
    tangents, and every kernel's results."""
    names = Names(k.name for k in kernels)
    for s in symbols:
        names.add(("sym", s), s, exact=True)
    for x in model.inputs:
        names.add(x, x.name)
    for p in model.params + model.buffers:
        names.add(p, p.name)
    for leaf in graph.nodes:
        if is_tangent(leaf):
            names.add(leaf, "d_" + leaf.name)
    called = {}  # the first graph output each node is
    for output, node in graph.outputs.items():
        called.setdefault(node, output)
    for k in kernels:
        for j, result in enumerate(k.outputs):
            wanted = result_name(called[result]) if result in called else f"t{k.index}"
            names.add(result, wanted if result in called or not j else f"{wanted}_{j}")
    return names
