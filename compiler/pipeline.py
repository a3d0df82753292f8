"""``compile(model)``: the whole pipeline from a Model to a loaded ``runtime.Program``.

model -> gradient graph (autodiff) -> passes -> kernels (fusion) -> module
source (``codegen.module.ModuleWriter`` with the backend's kernel emitter: templates
+ sympy printers) -> cache file -> Program.

>>> from compiler import Input, Param, Model, ops as F, compile
>>> w = Param("w", (3,)); x = Input("x", ("B", 3))
>>> prog = compile(Model([x], loss=F.sum((x * w) ** 2)), dtype="float64")
>>> loss, grads = prog.loss_and_grad({"w": [1.0, 2.0, 3.0]}, {"x": [[1.0, 1.0, 1.0]]})
>>> loss, grads["w"].tolist()
(14.0, [2.0, 4.0, 6.0])
"""
import sys

from compiler import config
from compiler.autodiff import gradient_graph, hessian_vector_product, jvp, tangent_leaves
from compiler.cache import cache_key, cached_module
from compiler.codegen.module import ModuleWriter
from compiler.codegen.numpy_backend import NumpyEmitter
from compiler.codegen.triton_backend import TritonEmitter
from compiler.fusion import partition
from compiler.graph import Graph, toposort
from compiler.passes import optimize
from runtime.errors import GradcError
from runtime.program import Program

BACKENDS = ("numpy", "triton")
DTYPES = ("float32", "float64")
PRECISIONS = ("ieee", "tf32", "tf32x3")


def training_graph(model):
    """The optimised graph: ``loss``, ``grad:<param>``, the outputs and ``metric:<name>``;
    ``update:<name>``, each buffer's value after a training step; ``eval:<name>``, the
    loss, outputs and metrics in evaluation mode where they differ (batch norm)."""
    extra = {**model.outputs, **{f"metric:{k}": v for k, v in model.metrics.items()}}
    extra.update((f"update:{b.name}", v) for b, v in model.updates.items())
    extra.update((f"eval:{k}", v) for k, v in model.evaluation.items())
    return optimize(gradient_graph(model.loss, model.params, extra))


def derivative_graph(model):
    """The optimised graph: ``loss``, ``jvp`` (its tangent) and ``hvp:<param>`` (H v)."""
    tangents = tangent_leaves(model.params)
    (loss_tangent,) = jvp([model.loss], model.params, tangents)
    hv = hessian_vector_product(model.loss, model.params, tangents)
    outputs = {"loss": model.loss, "jvp": loss_tangent}
    outputs.update((f"hvp:{p.name}", h) for p, h in zip(model.params, hv))
    return optimize(Graph(outputs))


def forward_nodes(model):
    return set(toposort([model.loss, *model.outputs.values(), *model.metrics.values(),
                         *model.updates.values(), *model.evaluation.values()]))


def predict_nodes(model):
    """What computes the outputs, in either mode, and the buffers' updates (labelled forward)."""
    outputs = [model.evaluation.get(k, v) for k, v in model.outputs.items()]
    return set(toposort([*outputs, *model.outputs.values(), *model.updates.values()]))


def kernels_of(model, graph, backend="triton"):
    """The partition of ``graph`` for ``backend``, each kernel labelled forward, loss,
    metric or backward: by what the graph's own outputs need (``optimize`` may have
    rewritten the model's nodes, and ``predict`` runs the forward kernels alone).  The
    backends differ in what is recomputed: on Triton a convolution's windows are computed
    by the matmuls that read them and an elementwise value by the kernels that read it;
    on numpy both are stored once (``fusion.partition``'s ``gpu``)."""
    outs = graph.outputs

    def needs(keys):
        return set(toposort([outs[key] for key in keys if key in outs]))

    names = list(model.outputs)
    state = [key for key in outs if key.startswith("update:")]
    forward = needs(["loss", *names, *state,
                     *(key for key in outs if key.startswith(("metric:", "eval:")))])
    predict = needs([*names, *(f"eval:{name}" for name in names), *state])
    return partition(graph, forward, predict, needs(["loss"]), gpu=backend == "triton")


def emitter(backend, dtype, input_precision="ieee"):
    """The kernel emitter of ``backend`` (see ``compiler.codegen.module``)."""
    return TritonEmitter(dtype, input_precision) if backend == "triton" else NumpyEmitter()


def generate(model, backend="numpy", dtype="float32", source_name=None):
    """``(graph, kernels, source text)`` for ``model`` without writing anything."""
    graph = training_graph(model)
    kernels = kernels_of(model, graph, backend)
    writer = ModuleWriter(model, graph, kernels, dtype, source_name or _source_name(model),
                          emitter(backend, dtype))
    return graph, kernels, writer.source()


def _source_name(model):
    if model.where:
        path = model.where.rpartition(":")[0]
        return path.replace("\\", "/").rsplit("/", 1)[-1]
    return "<model>"


def module_path(model, kind, backend, dtype, input_precision="ieee"):
    """Generate (or find in the cache) the ``kind`` module of ``model``; its path."""
    graph = training_graph(model) if kind == "training" else derivative_graph(model)
    options = {"backend": backend, "dtype": dtype, "kind": kind, "source": _source_name(model),
               "name": model.name}
    if backend == "triton":
        options["input_precision"] = input_precision
    key = cache_key(graph.format(), options)
    if config.debug_level() >= 1:
        print(f"gradc: {kind} graph of {len(graph.nodes)} nodes, key {key[:12]}", file=sys.stderr)
    if config.debug_level() >= 5:
        print(graph.format(), file=sys.stderr)

    def build():
        writer = ModuleWriter(model, graph, kernels_of(model, graph, backend), dtype,
                              _source_name(model),
                              emitter(backend, dtype, input_precision), kind)
        source = writer.source()
        if config.debug_level() >= 4:
            print(source, file=sys.stderr)
        return source

    return cached_module(key, f"{backend}_{kind}", build)


def check_triton():
    """A one-line error unless Triton can run here: triton and torch installed, and a GPU
    or Triton's CPU interpreter (TRITON_INTERPRET=1)."""
    import importlib.util
    import os

    missing = [m for m in ("triton", "torch") if importlib.util.find_spec(m) is None]
    if missing:
        raise GradcError(f"the triton backend needs {' and '.join(missing)}: "
                         "pip install 'gradc[gpu]'")
    if os.environ.get("TRITON_INTERPRET") != "1":
        import torch

        if not torch.cuda.is_available():
            raise GradcError("the triton backend needs a CUDA GPU, or TRITON_INTERPRET=1 to run "
                             "its kernels on the CPU")


def compile(model, backend="numpy", dtype="float32", input_precision="ieee"):  # noqa: A001
    """Compile ``model`` and return a ``runtime.Program`` loaded from the generated file.

    The forward-mode and Hessian-vector-product module is generated the first
    time ``Program.jvp`` or ``Program.hvp`` is called.  ``input_precision`` is how
    the Triton backend's float32 matmuls multiply: "ieee" (as numpy, the default),
    "tf32" (Triton's default on a GPU: faster, 10-bit mantissas) or "tf32x3".
    """
    if backend == "triton":
        check_triton()
    if backend not in BACKENDS:
        raise GradcError(f"unknown backend {backend!r}; available: {', '.join(BACKENDS)}")
    if dtype not in DTYPES:
        raise GradcError(f"unknown dtype {dtype!r}; use float32 or float64")
    if input_precision not in PRECISIONS:
        raise GradcError(f"unknown input_precision {input_precision!r}; "
                         f"available: {', '.join(PRECISIONS)}")
    path = module_path(model, "training", backend, dtype, input_precision)
    return Program.load(path, derive=lambda: module_path(model, "derivatives", backend, dtype,
                                                         input_precision))
