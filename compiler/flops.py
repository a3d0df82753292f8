"""What one training step costs, five ways: ``gradc flops``.

Every row is the cost of producing the loss and all parameter gradients, so the
rows compare directly:

- ``forward``: the loss alone (the forward pass);
- ``naive``: sympy-differentiate the scalarized loss once per parameter, each
  derivative counted as a tree (no sharing);
- ``naive_cse``: the same expressions counted together after ``sympy.cse``;
- ``forward_mode``: one jvp (forward pass plus tangent) per scalar parameter;
- ``reverse_mode``: the gradient graph gradc generates (forward and backward,
  after the passes).

Formulas are in the shape symbols (``B``).  The naive rows are measured at
concrete batch sizes and fitted with a line in ``B`` (checked at a third size);
with several size symbols they all take the same value.  They run in a child
process under a time budget (``NAIVE_SECONDS`` for all of them together); past
it, or past the other limits of ``naive_counts``, they hold the reason instead.
"""
import sympy

from compiler.autodiff import grad, jvp, tangent_leaves
from compiler.cost import graph_cost
from compiler.graph import Graph, toposort
from compiler.naive import BudgetExceeded, call_with_timeout, naive_counts
from compiler.passes import optimize
from compiler.shapes import numel, symbol
from runtime.errors import GradcError

ROWS = ("forward", "naive", "naive_cse", "forward_mode", "reverse_mode")
LABELS = {"forward": "forward", "naive": "naive", "naive_cse": "naive + CSE",
          "forward_mode": "forward mode", "reverse_mode": "reverse mode"}
NAIVE_SECONDS = 20.0  # wall-clock budget of the two naive rows together


def _symbols(model):
    names = []
    for x in model.inputs:
        for d in x.shape:
            if isinstance(d, sympy.Symbol) and d.name not in names:
                names.append(d.name)
    return names


def reverse_mode_graph(model, wrt_inputs=False):
    """The generated loss-and-gradients graph (after the passes); with ``wrt_inputs`` the
    gradients of the data inputs too (a trace shows the adjoints of every variable)."""
    wrt = list(model.params) + (list(model.inputs) if wrt_inputs else [])
    outputs = {"loss": model.loss}
    outputs.update((f"grad:{w.name}", g) for w, g in zip(wrt, grad(model.loss, wrt)))
    return optimize(Graph(outputs))


def forward_mode_graph(model):
    (tangent,) = jvp([model.loss], model.params, tangent_leaves(model.params))
    return optimize(Graph({"loss": model.loss, "jvp": tangent}))


def _naive_rows(model, batch, budget):
    """Formulas in the batch size where the counts are linear in it; otherwise the count
    at ``batch`` (a number), or None without a batch."""
    names = _symbols(model)
    if not names:
        return {k: sympy.Integer(v) for k, v in naive_counts(model, {}, **budget).items()}
    # Fit a line in the batch size through sizes 3 and 4 and check it at 5.  (Sizes 1
    # and 2 are special: sympy cancels the mean's 1/B against a factor 2 there.)
    out = {"naive": None, "naive_cse": None}
    try:
        at = {b: naive_counts(model, {n: b for n in names}, **budget) for b in (3, 4, 5)}
    except BudgetExceeded:
        if batch is None:
            raise
    else:
        B = symbol(names[0])
        for key in out:
            line = sympy.expand(at[3][key] + (at[4][key] - at[3][key]) * (B - 3))
            out[key] = line if line.subs(B, 5) == at[5][key] else None
    if batch is not None and None in out.values():
        counts = naive_counts(model, {n: batch for n in names}, **budget)
        out = {k: v if v is not None else sympy.Integer(counts[k]) for k, v in out.items()}
    return out


def compare(model, batch=None, budget=None, naive=True):
    """``{row: {"flops": formula or None, "reason": ...}}`` for the five rows.

    ``budget`` holds the naive baseline's limits (``max_seconds``: all naive work
    together, default ``NAIVE_SECONDS``; ``max_params``, ``max_terms``: see
    ``naive_counts``); ``naive=False`` skips it.
    """
    if batch is not None and batch < 1:
        raise GradcError(f"the batch size must be a positive integer, got {batch!r}")
    budget = {"max_seconds": NAIVE_SECONDS, **(budget or {})}
    forward = graph_cost(toposort([model.loss])).flops
    n_params = sum(numel(p.shape) for p in model.params)
    rows = {
        "forward": {"flops": forward},
        "forward_mode": {"flops": sympy.expand(n_params * graph_cost(forward_mode_graph(model).nodes).flops)},
        "reverse_mode": {"flops": graph_cost(reverse_mode_graph(model).nodes).flops},
    }
    if not naive:
        for key in ("naive", "naive_cse"):
            rows[key] = {"flops": None, "reason": "skipped (--no-naive)"}
        return {k: rows[k] for k in ROWS}
    try:
        naive = call_with_timeout(_naive_rows, (model, batch, budget), budget["max_seconds"])
        for key in ("naive", "naive_cse"):
            rows[key] = ({"flops": naive[key]} if naive[key] is not None else
                         {"flops": None, "reason": "not linear in the batch size; use --batch"})
    except (BudgetExceeded, GradcError) as e:
        for key in ("naive", "naive_cse"):
            rows[key] = {"flops": None, "reason": f"skipped: {e}"}
    return {k: rows[k] for k in ROWS}


def evaluate(rows, batch=None, names=("B",)):
    """The rows with numbers (at ``batch``) and ratios to the forward row."""
    subs = {symbol(n): batch for n in names} if batch is not None else {}
    forward = sympy.sympify(rows["forward"]["flops"]).subs(subs)
    out = {}
    for key, row in rows.items():
        entry = dict(row)
        if row["flops"] is None:
            entry["ratio"] = None
        else:
            value = sympy.sympify(row["flops"]).subs(subs)
            entry["flops"] = int(value) if value.is_Integer else value
            ratio = sympy.simplify(value / forward)
            entry["ratio"] = float(ratio) if ratio.is_number else ratio
        out[key] = entry
    return out
