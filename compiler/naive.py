"""The naive baseline: whole-network symbolic differentiation with sympy.

``scalarize`` turns a model into one sympy expression per scalar (every tensor
element its own expression, the batch size fixed), so the loss becomes a single
formula in the scalar parameters.  ``naive_counts`` differentiates it with
``sympy.diff`` once per scalar parameter and counts

- ``naive``: every derivative (and the loss) as a tree, with no sharing at all;
- ``naive_cse``: the loss and all derivatives together after ``sympy.cse``.

This is what "just differentiate the formula" costs; it exists only for the flop
comparison and runs under a budget (scalar parameters, expression size, seconds).
One ``sympy.diff`` can run for minutes and cannot be interrupted from inside, so
``call_with_timeout`` runs the baseline in a child process that is killed when its
seconds are up.
"""
import math
import multiprocessing
import signal
import time
import traceback

import numpy as np
import sympy

from compiler.graph import toposort
from compiler.ops import scalar as S
from compiler.ops.counting import tree_flops
from compiler.ops.leaf import is_const, is_input, is_param
from compiler.ops.registry import OPS
from runtime.errors import GradcError



class BudgetExceeded(Exception):
    """The model is too large for the naive baseline (the message says which limit)."""


def _elements(op, arrays, attrs):
    fn = np.frompyfunc(lambda *a: OPS[op].scalar(*a, **attrs), len(arrays), 1)
    return np.asarray(fn(*arrays), dtype=object)


def scalarize(model, sizes):
    """``(loss expression, [scalar parameter symbols])`` with shape symbols set to ``sizes``.

    Integer inputs (class labels) are all 0: which class a row picks does not change its
    formula's size, and equal rows keep the counts linear in the batch size.
    """
    subs = {sympy.Symbol(k, integer=True, positive=True): v for k, v in sizes.items()}
    values, symbols = {}, []

    def concrete(shape):
        return tuple(int(sympy.sympify(d).subs(subs)) for d in shape)

    for n in toposort([model.loss]):
        shape = concrete(n.shape)
        if is_input(n) or is_param(n):
            if n.dtype == "int":
                values[n] = np.zeros(shape, dtype=int)
                continue
            grid = np.empty(shape, dtype=object)
            for idx in np.ndindex(*shape):
                sym = sympy.Symbol(n.name + "".join(f"_{i}" for i in idx), real=True)
                grid[idx] = sym
                if is_param(n):
                    symbols.append(sym)
            values[n] = grid
        else:
            values[n] = _values(n, values, subs, concrete)
    return sympy.sympify(values[model.loss].item()), symbols


def _values(n, values, subs, concrete):
    """The object array of scalar expressions of node ``n`` (its inputs in ``values``): an
    elementwise op's body, a structural op's ``scalarize``, a fused primitive's definition."""
    attrs = dict(n.attrs)
    ins = [values[i] for i in n.inputs]
    if is_const(n):
        return np.asarray(sympy.sympify(attrs["value"]).subs(subs), dtype=object)
    if OPS[n.op].kind == "elementwise":
        return _elements(n.op, ins, attrs)
    if OPS[n.op].scalarize is not None:
        return OPS[n.op].scalarize(n, ins, concrete(n.shape))
    if OPS[n.op].definition is not None:  # a fused primitive: scalarize its definition
        definition = OPS[n.op].definition(n)
        local = {i: values[i] for i in n.inputs}
        for m in toposort([definition], stop=n.inputs):
            if m not in local:
                local[m] = _values(m, local, subs, concrete)
        return local[definition]
    raise GradcError(f"the naive baseline cannot scalarize op {n.op!r}")


def naive_counts(model, sizes, max_params=400, max_seconds=20.0, max_terms=200_000):
    """``{"naive": flops, "naive_cse": flops}`` at ``sizes``; ``BudgetExceeded`` when too big."""
    start = time.perf_counter()
    n_params = sum(int(np.prod(p.shape)) for p in model.params)
    if n_params > max_params:
        raise BudgetExceeded(f"{n_params} scalar parameters (the naive baseline stops at "
                             f"{max_params})")
    loss, symbols = scalarize(model, sizes)
    derivatives = []
    for sym in symbols:
        derivatives.append(S.drop_dirac(sympy.diff(loss, sym)))
        if time.perf_counter() - start > max_seconds:
            raise BudgetExceeded(f"differentiating took over {max_seconds:g} s")
    exprs = [loss] + derivatives
    distinct = {}
    naive = tree_flops(exprs, distinct)
    if len(distinct) > max_terms:
        raise BudgetExceeded(f"{len(distinct)} distinct subexpressions are too many for sympy.cse "
                             f"(limit {max_terms})")
    replacements, reduced = sympy.cse(exprs)
    cse = tree_flops([e for _, e in replacements] + list(reduced))
    return {"naive": naive, "naive_cse": cse}


def _child(send, fn, args, seconds):
    """Run ``fn(*args)`` and send back ``(kind, value)``; the process then exits.

    An alarm ends the process one second after its budget even if the parent is gone.
    """
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    signal.alarm(math.ceil(seconds) + 1)
    try:
        result = ("ok", fn(*args))
    except BudgetExceeded as e:
        result = ("budget", str(e))
    except GradcError as e:
        result = ("error", str(e))
    except BaseException:  # a bug: pass the traceback up rather than die silently
        result = ("crash", traceback.format_exc())
    send.send(result)
    send.close()


def call_with_timeout(fn, args, seconds):
    """``fn(*args)`` run in a forked child process that is killed after ``seconds``.

    Raises ``BudgetExceeded`` when time is up (or ``fn`` raised it), ``GradcError`` when
    ``fn`` raised one.  Where processes cannot be forked, ``fn`` runs here, unbounded.
    """
    if "fork" not in multiprocessing.get_all_start_methods():
        return fn(*args)
    ctx = multiprocessing.get_context("fork")
    receive, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_child, args=(send, fn, args, seconds), daemon=True)
    child.start()
    send.close()
    try:
        if not receive.poll(seconds):
            raise BudgetExceeded(f"sympy took over {seconds:g} s (the time budget)")
        kind, value = receive.recv()
    except EOFError:
        child.join(1)
        raise BudgetExceeded(f"its process ended without a result (exit code {child.exitcode})"
                             ) from None
    finally:
        receive.close()
        if child.is_alive():
            child.kill()
        child.join()
    if kind == "budget":
        raise BudgetExceeded(value)
    if kind == "error":
        raise GradcError(value)
    if kind == "crash":
        raise RuntimeError(f"the naive baseline failed in its process:\n{value}")
    return value
