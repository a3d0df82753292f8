"""``gradc report MODEL.py``: the whole compilation of a model as one self-contained web page.

The page (``templates/report/page.html.jinja``, with its CSS and script inlined) links
its panes both ways: the model file, the graph of the training step (one box per
node, coloured by its kernel), the kernel list (phase, boundary rule, merges, flops
and bytes as formulas and at the batch size) and each kernel's numpy and Triton
source with its provenance comments.  Clicking a source line, a node, a kernel or a
provenance comment highlights the others.  Below them: the flop counts of
``gradc flops``, the memory traffic of ``gradc inspect``, for a model of scalars the
traces of ``gradc trace``, and with a history the loss curves.

Everything is computed from the same pipeline as the generated modules, so node
numbers (``%5``) and kernel names are the ones in the modules' comments.  The page
holds no time, no random id and no absolute path: the same model gives the same bytes.
"""
import functools
from pathlib import Path

import jinja2
from markupsafe import Markup

from compiler import cost
from compiler.codegen.names import location
from compiler.codegen.module import shape_symbols
from compiler.config import VERSION, templates_dir
from compiler.flops import LABELS, compare, evaluate, reverse_mode_graph
from compiler.graph import toposort
from compiler.inspection import H100, inspect_model
from compiler.pipeline import kernels_of, module_path, training_graph
from compiler.report_charts import bar_chart, line_chart
from compiler.report_code import highlight, kernel_sources, module_table, provenance_node
from compiler.report_graph import colour, graph_pane, model_line
from compiler.report_history import read as read_history
from compiler.shapes import fmt
from runtime import optim
from runtime.errors import GradcError

BACKENDS = ("numpy", "triton")
PHASES = ("forward", "loss", "metric", "backward", "update")


@functools.lru_cache(maxsize=None)
def _environment():
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(templates_dir() / "report")),
                              undefined=jinja2.StrictUndefined, autoescape=True,
                              trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)


def render(context):
    """The page's HTML for ``context`` (what ``build`` returns)."""
    folder = templates_dir() / "report"
    assets = {"css": Markup((folder / "report.css").read_text()),
              "script": Markup((folder / "report.js").read_text())}
    try:
        return _environment().get_template("page.html.jinja").render(**context, **assets)
    except jinja2.TemplateError as e:
        line = getattr(e, "lineno", None)
        raise RuntimeError(f"template report/page.html.jinja{':' + str(line) if line else ''}: "
                           f"{e}") from e


def number(value):
    """A count with thousands separators, a float to 3 digits, a formula as it is."""
    if isinstance(value, bool) or value is None:
        return "-"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def _batch(batch, namespace, default):
    """The batch size the formulas are evaluated at, and where it comes from."""
    if batch is not None:
        return batch, "--batch"
    settings = namespace.get("training") or {}
    size = settings.get("batch_size") if isinstance(settings, dict) else None
    if isinstance(size, int) and not isinstance(size, bool) and size >= 1:
        return size, "the model file's batch size"
    return default, "gradc train's default batch size"


def _update_rule(namespace):
    settings = namespace.get("training") or {}
    chosen = settings.get("optimizer") if isinstance(settings, dict) else None
    return optim.make(chosen or "sgd").rule


def _code(text):
    """Lines of code for the page: highlighted pieces and the node a provenance line names."""
    raw = text.split("\n")
    return [{"pieces": pieces, "node": provenance_node(line)}
            for line, pieces in zip(raw, highlight(text))]


def _kernels(model, graph, kernels, batch, gpu, backends, model_file, share):
    """The kernel list: one dict per kernel (the graph's, then the update kernels), and the
    memory traffic of a step."""
    report = inspect_model(model, backend=backends[0])  # the rows: the first backend's
    at = functools.lru_cache(maxsize=None)(lambda formula: cost.at_batch(formula, batch))
    texts = {b: module_path(model, "training", b, "float32").read_text() for b in backends}
    sources = {b: _sources_by_root(texts[b], report["kernels"], share) for b in backends}
    index = {n: i for i, n in enumerate(graph.nodes)}
    ours = {k.name: k for k in kernels}
    rows = []
    for entry in report["kernels"]:
        k = ours.get(entry["name"])
        if k is None and entry["phase"] != "update":
            raise RuntimeError(f"kernel {entry['name']} of the module is not in the partition")
        members = k.members if k else []
        lines = dict.fromkeys(model_line(m.source_line, model_file) for m in members)
        flops, moved = at(str(entry["flops"])), at(str(entry["bytes"]))
        roofline = ""
        if gpu:  # the roofline model of ``gradc inspect --gpu``
            seconds = max(flops / H100["flops_per_s"], moved / H100["bytes_per_s"])
            roofline = f"{seconds * 1e6:.3g}"
        rows.append({
            "name": entry["name"], "phase": entry["phase"], "boundary": entry["boundary"],
            "merged": entry["merged"], "colour": colour(k.index) if k else "#ffffff",
            "flops": number(entry["flops"]), "flops_at": number(flops),
            "bytes": number(entry["bytes"]), "bytes_at": number(moved), "roofline": roofline,
            "nodes": [{"id": index[m], "op": m.op, "shape": fmt(m.shape),
                       "located": location(m.source_line)} for m in members],
            "lines": " ".join(x for x in lines if x),
            "code": {b: _code(sources[b].get(entry["name"], "")) for b in backends}})
    fused, unfused = at(str(report["bytes_fused"])), at(str(report["bytes_unfused"]))
    traffic = {"bytes_fused": {"formula": number(report["bytes_fused"]), "at": number(fused)},
               "bytes_unfused": {"formula": number(report["bytes_unfused"]), "at": number(unfused)},
               "kernel_count": report["kernel_count"], "op_count": report["op_count"]}
    if isinstance(fused, int) and unfused:
        traffic["ratio"] = f"{fused / unfused:.2f}"
    return rows, traffic


def _sources_by_root(text, rows, share):
    """``{row name: source}``: each row's kernel in the module ``text``, the kernel there
    with the same root node (the last of its nodes).  The backends' partitions differ where
    Triton recomputes what numpy stores (a convolution's windows, an elementwise value such
    as GELU's ``ndtr(x)``): such a row's source here is a comment naming the kernels that
    compute its result."""
    table = [k for k in module_table(text, "KERNELS") if k["nodes"]]
    roots = {k["nodes"][-1].split()[0]: k["name"] for k in table}
    inside = {}  # node id -> the kernels here that compute it
    for k in table:
        for node in k["nodes"]:
            inside.setdefault(node.split()[0], []).append(k["name"])
    theirs = {r["name"]: roots.get(r["nodes"][-1].split()[0]) if r["nodes"] else r["name"]
              for r in rows}  # (an update kernel has no nodes, and the same name)
    sources = kernel_sources(text, [n for n in theirs.values() if n], share)
    out = {mine: sources.get(name, "") for mine, name in theirs.items() if name}
    for r in rows:
        if r["nodes"] and r["name"] not in out:
            names = inside.get(r["nodes"][-1].split()[0], [])
            out[r["name"]] = (f"# no kernel of its own: {', '.join(names)} compute(s) its result "
                              "where they read it" if names else "")
    return out


def _source(model_file, graph, kernels):
    """The model file's lines, each with the nodes built there and their kernels."""
    computed_in = {}  # a node's kernels: more than one when it is recomputed (views, windows)
    for k in kernels:
        for m in k.members:
            computed_in.setdefault(m, []).append(k)
    index = {n: i for i, n in enumerate(graph.nodes)}
    at_line = {}
    for n in graph.nodes:
        line = model_line(n.source_line, model_file)
        if line and n in index:
            at_line.setdefault(line, []).append(n)
    text = Path(model_file).read_text()
    out = []
    for i, pieces in enumerate(highlight(text), start=1):
        nodes = at_line.get(str(i), [])
        names = dict.fromkeys(k.name for n in nodes for k in computed_in.get(n, ()))
        out.append({"n": i, "pieces": pieces, "nodes": " ".join(str(index[n]) for n in nodes),
                    "kernels": " ".join(names), "count": len(names)})
    return out


def _flops(model, batch, symbols):
    """The five rows of ``gradc flops`` at ``batch``, and their chart when every row counts."""
    rows = compare(model, batch=batch if symbols else None)
    numbers = evaluate(rows, batch, names=symbols or ("B",))
    table = []
    for key, row in rows.items():
        entry = {"label": LABELS[key], "formula": "-", "at": "", "ratio": "",
                 "reason": row.get("reason", "")}
        if row["flops"] is not None:
            ratio = numbers[key]["ratio"]
            entry.update(formula=number(row["flops"]), at=number(numbers[key]["flops"]),
                         ratio=f"{ratio:.2f}" if isinstance(ratio, float) else "")
        table.append(entry)
    values = [(LABELS[k], numbers[k]["flops"]) for k in rows]
    if not all(isinstance(v, int) and v > 0 for _, v in values):
        return table, None
    at = f" at {', '.join(symbols)} = {batch}" if symbols else ""
    return table, bar_chart(values, f"flops{at} (logarithmic)")


def _trace_rows(entries):
    return [{"name": a, "formula": b, "value": f"{v:.3f}"} for a, b, v in entries]


def _trace(model, at):
    """The primal and adjoint traces for a model of scalars (None for any other model), at
    ``at`` (``X1=V,X2=V``) or at the initial parameters."""
    from compiler.cost import graph_cost
    from compiler.pipeline import compile
    from compiler.trace import parse_at, trace

    nodes = toposort([model.loss])
    if at is None and any(n.shape != () for n in nodes):
        return None
    if at is not None:
        point = parse_at(at)
        where = "at " + ", ".join(f"{k} = {v:g}" for k, v in point.items())
    elif model.inputs:
        names = ",".join(f"{x.name}=V" for x in [*model.inputs, *model.params])
        return {"note": f"pass --at {names} to see the traces", "point": ""}
    else:
        params = compile(model, dtype="float64").init_params(seed=0)
        point = {name: float(v) for name, v in params.items()}
        where = "at the initial parameters (seed 0)"
    try:
        t = trace(model, point)
    except GradcError as e:
        if at is not None:
            raise
        return {"note": str(e), "point": ""}
    forward = graph_cost(nodes).flops
    reverse = graph_cost(reverse_mode_graph(model, wrt_inputs=True).nodes).flops
    return {"note": "", "point": where,
            "primal": _trace_rows(t.primal + [("y", t.primal[-1][0], t.value)]),
            "adjoint": _trace_rows(t.adjoint + [(f"bar {k}", "", v) for k, v in t.outputs.items()]),
            "flops": f"forward {forward}, forward + reverse {reverse} (reverse mode as generated)"}


def _history(path, model_file, text):
    """Loss and metric charts of the history at ``path`` (checked against the model)."""
    # what a checkpoint records of its model (runtime.train.signature, less the optimizer)
    signature = {key: {k: list(shape) for k, (shape, _) in module_table(text, table).items()}
                 for key, table in (("params", "PARAMS"), ("inputs", "INPUTS"))}
    h = read_history(path, Path(model_file).name, signature)
    epochs = len(h["epoch_losses"])
    if not epochs:
        return {"note": "the history holds no epoch yet", "charts": []}
    per_epoch = max(len(h["step_losses"]) // epochs, 1)
    series = []
    if len(h["step_losses"]) > epochs:
        series.append(("minibatch loss", "steps", h["step_losses"], 1 / per_epoch))
    series.append(("epoch loss (train)", "train", h["epoch_losses"], 1))
    if h["val_losses"]:
        series.append(("validation loss", "val", h["val_losses"], 1))
    charts = [line_chart(series, "epoch", "loss", xmax=epochs,
                         focus=h["epoch_losses"] + h["val_losses"])]
    if h["metrics"]:
        charts.append(line_chart([(k, f"m{i}", v, 1) for i, (k, v) in enumerate(h["metrics"].items())],
                                 "epoch", "metric", logarithmic=False, xmax=epochs))
    last = [f"epoch {epochs}: loss {h['epoch_losses'][-1]:.6g}"]
    if h["initial_loss"] is not None:
        last.insert(0, f"initial loss {h['initial_loss']:.6g}")
    last += [f"val_loss {h['val_losses'][-1]:.6g}"] if h["val_losses"] else []
    last += [f"{k} {v[-1]:.4f}" for k, v in h["metrics"].items()]
    if h["best_epoch"]:
        last.append(f"best epoch {h['best_epoch']}")
    return {"note": "", "summary": "; ".join(last), "name": Path(path).name,
            "charts": [c for c in charts if c is not None]}


def build(model_file, namespace, batch=None, backends=BACKENDS, gpu=None, history=None, at=None,
          *, default_batch):
    """Everything the page shows, as a dict for ``render``; the costs are evaluated at
    ``batch``, else at the model file's batch size, else at ``default_batch``."""
    model = namespace["model"]
    symbols = list(shape_symbols(model))
    batch, batch_from = _batch(batch, namespace, default_batch)
    if history:  # a history that does not fit is an error before any other work
        text = module_path(model, "training", "numpy", "float32").read_text()
        hist = _history(history, model_file, text)
    else:
        hist = None
    graph = training_graph(model)
    kernels = kernels_of(model, graph, backends[0])  # the partition ``inspect_model`` lists
    update = f"update_{_update_rule(namespace)}"
    pane = graph_pane(graph, kernels, update, model_file)
    rows, traffic = _kernels(model, graph, kernels, batch, gpu, backends, model_file,
                             share=pane.collapsed)
    flops, flops_chart = _flops(model, batch, symbols)
    phases = {p: sum(r["phase"] == p for r in rows) for p in PHASES}
    return {
        "version": VERSION, "title": model.name, "file": Path(model_file).name,
        "batch": batch, "batch_from": batch_from, "symbols": ", ".join(symbols),
        "n_nodes": len(graph.nodes), "n_kernels": len(kernels), "phases": phases,
        "update": update, "backends": list(backends), "gpu": gpu,
        "source": _source(model_file, graph, kernels),
        "graph": pane,
        "kernels": rows, "traffic": traffic, "flops": flops, "flops_chart": flops_chart,
        "trace": _trace(model, at), "history": hist,
    }
