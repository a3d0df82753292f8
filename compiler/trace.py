"""Forward primal and reverse adjoint traces of a scalar model, as in seed 003.

For ``y = ln(x1) + x1*x2 - sin(x2)`` at ``x1 = 2, x2 = 5``::

    v_-1 = x1                         = 2.000
    v_0  = x2                         = 5.000
    v_1  = log(v_-1)                  = 0.693
    ...
    bar v_-1 = bar v_-1 + bar v_1 * (1/v_-1) = 5.500

Every partial derivative is the one autodiff uses (``compiler.symbolic.partials``).
"""
from dataclasses import dataclass

import numpy as np
import sympy

from compiler.codegen.printer import NumpyPrinter
from compiler.graph import toposort
from compiler.ops.leaf import is_const, is_input, is_param
from compiler.ops.registry import OPS
from compiler.symbolic import ARGS, const_inputs, partials
from runtime import npkernels
from runtime.errors import GradcError


@dataclass
class Trace:
    primal: list      # (name, formula, value)
    adjoint: list     # (target, formula, value)
    outputs: dict     # leaf name -> adjoint value
    value: float


def _formula(node, names):
    args = [names.get(i, str(i.attr("value"))) for i in node.inputs]
    expr = OPS[node.op].scalar(*[sympy.Symbol(a) for a in args], **dict(node.attrs))
    return str(expr).replace("**", "^")


def evaluate(expr, env):
    """``expr`` at ``env`` (sympy symbol -> number) in float64, as the numpy backend computes it.

    The expression is printed by the numpy kernels' printer and run with the names a
    generated module has (``numpy``, ``DTYPE``, ``_rt``), so every elementwise op (relu,
    where, ...) has a value, and ``log(0)`` is ``-inf`` and ``log(-1)`` is ``nan`` as in
    numpy and PyTorch.
    """
    symbols = list(env)
    names = {"DTYPE": np.float64, "_rt": npkernels}
    fn = sympy.lambdify(symbols, expr, modules=[names, "numpy"], printer=NumpyPrinter())
    with np.errstate(all="ignore"):
        return np.float64(fn(*[np.float64(env[s]) for s in symbols]))


def _describe(node):
    return f"{node.op} {node.name!r}" if node.name else node.op


def _check_model(nodes, at):
    """Scalars and elementwise ops first, then values for every leaf (one-line errors)."""
    for n in nodes:
        if n.shape != ():
            raise GradcError(f"trace needs a model of scalars; {_describe(n)} has shape "
                             f"({', '.join(map(str, n.shape))})", where=n.source_line)
        if OPS[n.op].kind not in ("leaf", "elementwise"):
            raise GradcError(f"trace handles elementwise ops only, not {n.op}", where=n.source_line)
    leaves = [n for n in nodes if is_input(n) or is_param(n)]
    missing = [n.name for n in leaves if n.name not in at]
    if missing:
        example = ",".join(f"{name}=V" for name in missing)
        raise GradcError(f"--at gives no value for {', '.join(missing)} (pass --at {example})")
    unknown = sorted(set(at) - {n.name for n in leaves})
    if unknown:
        raise GradcError(f"the loss does not use {', '.join(unknown)}")
    return sorted(leaves, key=lambda n: list(at).index(n.name))


@np.errstate(all="ignore")
def trace(model, at):
    """The primal and adjoint traces of ``model.loss`` at ``at`` (leaf name -> number).

    Values are float64, computed as the numpy backend computes them (``nan`` and
    ``inf`` where numpy and PyTorch give them).
    """
    nodes = toposort([model.loss])
    order = _check_model(nodes, at)
    names, values, primal = {}, {}, []
    for i, leaf in enumerate(order):
        names[leaf] = f"v_{i + 1 - len(order)}"
        values[leaf] = np.float64(at[leaf.name])
        primal.append((names[leaf], leaf.name, float(values[leaf])))
    consts = {n: sympy.sympify(n.attr("value")) for n in nodes if is_const(n)}
    count = 0
    for n in nodes:
        if n in names or n in consts:
            continue
        count += 1
        names[n] = f"v_{count}"
        args = [consts.get(x, s) for x, s in zip(n.inputs, ARGS)]
        expr = OPS[n.op].scalar(*args, **dict(n.attrs))
        env = {s: values[x] for x, s in zip(n.inputs, ARGS) if x in values}
        values[n] = evaluate(expr, env)
        primal.append((names[n], _formula(n, names), float(values[n])))

    adjoint_values = {model.loss: np.float64(1)}
    adjoint = [(f"bar {names[model.loss]}", "bar y", 1.0)]
    for n in reversed(nodes):
        if n not in adjoint_values or OPS[n.op].kind == "leaf":
            continue
        syms, y, ds = partials(n.op, len(n.inputs), n.attrs, const_inputs(n))
        env = {s: sympy.Symbol(names[x]) if x in names else consts[x]
               for s, x in zip(syms, n.inputs)}  # a NaN or infinite constant stays a symbol
        env[y] = sympy.Symbol(names[n])
        numeric = {s: values[x] if x in values else np.float64(float(consts[x]))
                   for s, x in zip(syms, n.inputs)}
        numeric[y] = values[n]
        for x, d in zip(n.inputs, ds):
            if d is None or is_const(x):
                continue
            contribution = adjoint_values[n] * evaluate(d, numeric)
            target = f"bar {names[x]}"
            partial = str(d.subs(env)).replace("**", "^")
            if x in adjoint_values:
                adjoint_values[x] = adjoint_values[x] + contribution
                formula = f"{target} + bar {names[n]} * ({partial})"
            else:
                adjoint_values[x] = contribution
                formula = f"bar {names[n]} * ({partial})"
            adjoint.append((target, formula, float(adjoint_values[x])))
    outputs = {leaf.name: float(adjoint_values.get(leaf, 0.0)) for leaf in order}
    return Trace(primal, adjoint, outputs, float(values[model.loss]))


def format_trace(t, forward_flops=None, reverse_flops=None):
    """The two tables as text."""
    width = max(len(f"{a} = {b}") for a, b, _ in t.primal + t.adjoint) + 2
    lines = ["Forward primal trace"]
    lines += [f"  {f'{a} = {b}':<{width}} = {v:.3f}" for a, b, v in t.primal]
    lines.append(f"  {'y = ' + t.primal[-1][0]:<{width}} = {t.value:.3f}")
    lines.append("")
    lines.append("Reverse adjoint (derivative) trace")
    lines += [f"  {f'{a} = {b}':<{width}} = {v:.3f}" for a, b, v in t.adjoint]
    for name, value in t.outputs.items():
        lines.append(f"  {'bar ' + name:<{width}} = {value:.3f}")
    if forward_flops is not None:
        lines.append("")
        lines.append(f"flops: forward {forward_flops}, forward + reverse {reverse_flops} "
                     "(reverse mode as generated)")
    return "\n".join(lines)


def parse_at(text):
    """``"x1=2,x2=5"`` -> ``{"x1": 2.0, "x2": 5.0}`` (insertion order kept)."""
    out = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, eq, value = part.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise GradcError(f"--at expects NAME=NUMBER pairs, got {part!r}") from None
        if not eq:
            raise GradcError(f"--at expects NAME=NUMBER pairs, got {part!r}")
    return out
