"""One compiled model's module, written the same way for both backends.

``ModuleWriter`` holds what the backends share: the names (``names.py``), each kernel's
header and its row of the ``KERNELS`` table, the entry points (``entries.py``) and the
module's skeleton (``templates/module.py.jinja``, which ``templates/<backend>/module.py.jinja``
extends).  A backend is an emitter whose methods return values and change nothing:

- ``kernels(writer) -> KernelCode``: every kernel's source, in order, with the arguments
  each kernel's call passes, the backend's columns of its ``KERNELS`` row and what else
  the backend's module template says;
- ``update(rule) -> dict``: the in-place update kernel of one optimizer rule;
- ``constant(value) -> str``: a constant result, as an entry point returns it.

The numpy emitter is ``numpy_backend.NumpyEmitter``, the Triton one
``triton_backend.TritonEmitter``.
"""
from dataclasses import dataclass, field

import sympy

from compiler import cost
from compiler.codegen import entries
from compiler.codegen.names import location, module_names
from compiler.codegen.templates import render
from compiler.config import VERSION
from compiler.graph import contains, toposort
from compiler.ops.leaf import is_input
from compiler.ops.registry import OPS
from compiler.optim import RULES
from compiler.shapes import fmt


@dataclass(frozen=True)
class KernelCode:
    """What a backend wrote for the kernels: ``sources`` (module text, in order),
    ``args`` (kernel -> the arguments its call passes: buffers, sizes, ``rng``),
    ``table`` (kernel -> the backend's extra columns of its ``KERNELS`` row) and
    ``settings`` (what only the backend's module template uses)."""

    sources: list
    args: dict
    table: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)


def class_inputs(graph):
    """Each input read as class indices (``OpDef.classes``) -> ``(number of classes, the
    index that stands for none or None)``; the runtime checks data against it.  An input
    read with several class counts keeps the smallest."""
    out = {}
    for n in graph.nodes:
        rule = OPS[n.op].classes
        if rule is None:
            continue
        indices, count, none = rule(n)
        if is_input(indices) and isinstance(count, int):
            known = out.get(indices.name)
            out[indices.name] = (count, none) if known is None or count < known[0] else known
    return out


def _under_views(node):
    """The node under ``node``'s views (reshapes, broadcasts): what holds its values."""
    while OPS[node.op].view:
        node = node.inputs[0]
    return node


def index_inputs(graph):
    """Each input read (through views) as indices into an axis of known size
    (``OpDef.indexes``) -> the smallest such size; the runtime checks data against it."""
    out = {}
    for n in graph.nodes:
        rule = OPS[n.op].indexes
        if rule is None:
            continue
        indices, size = rule(n)
        indices = _under_views(indices)
        if is_input(indices) and isinstance(size, (int, sympy.Integer)):
            out[indices.name] = min(int(size), out.get(indices.name, int(size)))
    return out


def counted_by(model):
    """The loss or metric whose mean is over counted class targets (an op reading class
    indices with an index that stands for none, ``OpDef.classes``) -> ``(input, none)``:
    ``Program.evaluate`` weighs its chunks by such counts, not by their rows."""
    out = {}
    for name, root in {"loss": model.loss, **model.metrics}.items():
        for n in toposort([root]):
            rule = OPS[n.op].classes
            if rule is None:
                continue
            indices, _, none = rule(n)
            indices = _under_views(indices)
            if none is not None and is_input(indices):
                out[name] = (indices.name, none)
                break
    return out


def shape_symbols(model):
    """Each shape symbol of the inputs -> ``(input name, axis)`` where it is first read."""
    symbols = {}
    for x in model.inputs:
        for axis, d in enumerate(x.shape):
            if isinstance(d, sympy.Symbol) and d.name not in symbols:
                symbols[d.name] = (x.name, axis)
    return symbols


class ModuleWriter:
    """The module of one compiled model (``kind`` "training" or "derivatives") for the
    backend ``emitter``."""

    def __init__(self, model, graph, kernels, dtype, source_name, emitter, kind="training"):
        self.model, self.graph, self.kernels, self.kind = model, graph, kernels, kind
        self.dtype, self.source_name, self.emitter = dtype, source_name, emitter
        self.index = {n: i for i, n in enumerate(graph.nodes)}
        self.symbols = shape_symbols(model)
        self.names = module_names(model, graph, kernels, self.symbols)
        self.owner = {m: k for k in kernels for m in k.members}
        self.costs = {k: cost.kernel_cost(k, dtype) for k in kernels}
        # a kernel whose result is a parameter gradient can write it into a caller's buffer
        self.grad_of = {}
        if kind == "training":
            for p in model.params:
                node = graph.outputs[f"grad:{p.name}"]
                if (node in self.owner and contains(self.owner[node].outputs, node)
                        and node not in self.grad_of):
                    self.grad_of[node] = p

    def header(self, k):
        """What every kernel's header says: name, phase, the ops, the boundary rule and
        merge reason, flops and bytes, and one provenance line per fused node
        (``%index op shape file:line``); ``detail`` is the backend's word on the skeleton."""
        width = max(14, *(len(m.op) for m in k.members))
        return dict(name=k.name, phase=k.phase, boundary=k.boundary, merged=k.merged, detail="",
                    summary=" -> ".join(dict.fromkeys(m.op for m in k.members)),
                    flops=cost.formula_text(self.costs[k].flops),
                    bytes=cost.formula_text(self.costs[k].bytes),
                    provenance=[f"%{self.index[m]:<5} {m.op:<{width}} {fmt(m.shape):<14} "
                                f"{location(m.source_line)}" for m in k.members])

    def table_row(self, k):
        """The kernel's row in the module's ``KERNELS`` table (the backend adds columns)."""
        return {"name": k.name, "phase": k.phase, "boundary": k.boundary, "merged": k.merged,
                "nodes": [f"%{self.index[m]} {m.op} {location(m.source_line)}" for m in k.members],
                "flops": cost.formula_text(self.costs[k].flops),
                "bytes": cost.formula_text(self.costs[k].bytes)}

    def source(self):
        """The module's text."""
        code = self.emitter.kernels(self)
        if self.kind == "training":
            functions, entry_inputs = entries.training(self, code.args)
            updates = [self.emitter.update(rule) for rule in RULES.values()]
        else:
            functions, entry_inputs = entries.derivatives(self, code.args)
            updates = []
        model = self.model
        inputs = {x.name: (tuple(str(d) for d in x.shape), x.attr("dtype")) for x in model.inputs}
        params = {p.name: (p.shape, p.attr("init")) for p in model.params + model.buffers}
        table = [repr({**self.table_row(k), **code.table.get(k, {})}) for k in self.kernels]
        return render(f"{self.emitter.backend}/module.py.jinja", backend=self.emitter.backend,
                      version=VERSION,
                      source=self.source_name, dtype=self.dtype, n_kernels=len(self.kernels),
                      n_nodes=len(self.graph.nodes), title=model.name or self.source_name,
                      kind=self.kind, entry_names=list(entry_inputs), inputs=repr(inputs),
                      params=repr(params), outputs=repr(tuple(model.outputs)),
                      buffers=repr(tuple(b.name for b in model.buffers)) if model.buffers else "",
                      metrics=repr(tuple(model.metrics)), entry_inputs=repr(entry_inputs),
                      symbols=repr(self.symbols), classes=repr(class_inputs(self.graph)),
                      indices=repr(index_inputs(self.graph)), counted=repr(counted_by(model)),
                      optimizers=repr(tuple(u["function"][7:] for u in updates)),
                      kernel_table=table, kernels=code.sources, entries=functions,
                      updates=updates, **code.settings)
