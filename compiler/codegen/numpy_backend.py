"""The numpy backend: kernels -> one readable Python module (numpy only).

Each kernel becomes a function whose body is printed from sympy by
``NumpyPrinter``; entry points (``loss``, ``loss_and_grad``, ``predict``) call
the kernels they need in order; optimizer rules become in-place update kernels.
"""
import keyword
import os
import re

import sympy

from compiler import cost
from compiler.codegen.printer import print_numpy
from compiler.codegen.templates import render
from compiler.graph import contains, make
from compiler.config import VERSION
from compiler.ops.leaf import is_const, is_tangent
from compiler.ops.reduce import is_column_sum
from compiler.ops.registry import OPS
from compiler.ops.shape import shape_code
from compiler.optim import RULES
from compiler.shapes import broadcast_shapes, fmt, free_symbols
from runtime.errors import GradcError

RESERVED = {"numpy", "DTYPE", "INPUTS", "PARAMS", "OUTPUTS", "METRICS", "KERNELS", "params",
            "batch", "grads", "state", "name", "rng", "tangents", "_rt"}


def _location(where):
    if not where:
        return "?"
    path, _, line = where.rpartition(":")
    return f"{os.path.basename(path)}:{line}"


class Names:
    """Unique Python names for buffers and shape symbols."""

    def __init__(self):
        self.taken = set(RESERVED)
        self.of = {}

    def add(self, key, wanted):
        name = re.sub(r"\W", "_", wanted)
        while name in self.taken or keyword.iskeyword(name):
            name += "_"
        self.taken.add(name)
        self.of[key] = name
        return name


class NumpyModule:
    """Everything needed to print the module of one compiled model."""

    def __init__(self, model, graph, kernels, dtype, source_name, kind="training"):
        self.model, self.graph, self.kernels, self.kind = model, graph, kernels, kind
        self.dtype, self.source_name = dtype, source_name
        self.index = {n: i for i, n in enumerate(graph.nodes)}
        self.names = Names()
        self.symbols = {}
        for x in model.inputs:
            for axis, d in enumerate(x.shape):
                if isinstance(d, sympy.Symbol) and d.name not in self.symbols:
                    self.symbols[d.name] = (x.name, axis)
        for s in self.symbols:
            self.names.add(("sym", s), s)
        for x in model.inputs:
            self.names.add(x, x.name)
        for prm in model.params:
            self.names.add(prm, prm.name.replace(".", "_"))
        for leaf in graph.nodes:
            if is_tangent(leaf):
                self.names.add(leaf, "d_" + leaf.name.replace(".", "_"))
        self.owner = {}
        for k in kernels:
            for j, result in enumerate(k.outputs):
                self.names.add(result, f"t{k.index}" + (f"_{j}" if j else ""))
            for m in k.members:
                self.owner[m] = k
        self.kernel_args = {}
        self.costs = {k: cost.kernel_cost(k, dtype) for k in kernels}
        self.entry_inputs = {}
        # kernels whose result is a parameter gradient can write it into a caller's buffer
        self.grad_of = {}
        if kind == "training":
            for p in model.params:
                node = graph.outputs[f"grad:{p.name}"]
                if (node in self.owner and contains(self.owner[node].outputs, node)
                        and node not in self.grad_of):
                    self.grad_of[node] = p

    # -- kernels -------------------------------------------------------------
    def ref(self, node, exprs):
        """The sympy expression standing for ``node`` inside a kernel."""
        if node in exprs:
            return exprs[node]
        if is_const(node):
            return node.attr("value")
        return sympy.Symbol(self.names.of[node])

    @staticmethod
    def array_code(expr, shapes, shape, symbols_used):
        """Source for ``expr`` as an array argument of ``shape``.

        sympy may simplify an elementwise expression to something smaller than its
        node (``x - x`` is 0): then it is broadcast back, so that structural ops see
        the shape the graph promised."""
        code = print_numpy(expr, shapes)
        present = [shapes[s.name] for s in sympy.sympify(expr).free_symbols if s.name in shapes]
        if not present:
            code = f"numpy.asarray({code}, dtype=DTYPE)"
        if broadcast_shapes(*present) != shape:
            symbols_used.update(free_symbols(shape))
            return f"numpy.broadcast_to({code}, {shape_code(shape)})"
        return code

    def kernel_source(self, k):
        exprs, statements, shapes = {}, [], {}
        symbols_used = set()
        for leaf in k.inputs:
            shapes[self.names.of[leaf]] = leaf.shape
        if len(k.members) > 1 and all(OPS[m.op].kind == "loss" for m in k.members):
            results = [self.fused_loss_call(k, exprs, shapes, symbols_used)]
        else:
            results = [self.group_result(k, group, j, exprs, statements, shapes, symbols_used)
                       for j, group in enumerate(k.groups)]
        args = [self.names.of[i] for i in k.inputs]
        args += [self.names.of[("sym", s)] for s in sorted(symbols_used)]
        if any(OPS[m.op].kind == "random" for m in k.members):
            args.append("rng")
        self.kernel_args[k] = args
        args = args + [f"{out_name(j)}=None" for j, r in enumerate(k.outputs) if r in self.grad_of]
        return render("numpy/kernel.py.jinja", args=args, statements=statements,
                      result=", ".join(results), **self.header(k))

    def fused_loss_call(self, k, exprs, shapes, symbols_used):
        """The merged loss kernel: one helper call returning its results in order."""
        z, labels = k.root.inputs
        grad = next((m for m in k.members if OPS[m.op].result == "grad"), None)
        g = grad.inputs[2] if grad is not None else None
        args = [self.array_code(self.ref(i, exprs), shapes, i.shape, symbols_used)
                for i in (z, labels) + ((g,) if g is not None else ())]
        if g is None:
            args.append("None")
        wanted = tuple(OPS[m.op].result for m in k.members)
        return f"_rt.softmax_cross_entropy_fused({', '.join(args)}, {wanted!r})"

    def header(self, k):
        """What every kernel's header says: name, phase, the ops, the boundary rule and
        merge reason, flops and bytes, and one provenance line per fused node
        (``%index op shape file:line``)."""
        width = max(14, *(len(m.op) for m in k.members))
        return dict(name=k.name, phase=k.phase, boundary=k.boundary, merged=k.merged,
                    summary=" -> ".join(_dedupe(m.op for m in k.members)),
                    flops=cost.fmt(self.costs[k].flops), bytes=cost.fmt(self.costs[k].bytes),
                    provenance=[f"%{self.index[m]:<5} {m.op:<{width}} {fmt(m.shape):<14} "
                                f"{_location(m.where)}" for m in k.members])

    def table_entry(self, k):
        """The kernel's row in the module's ``KERNELS`` table."""
        return {"name": k.name, "phase": k.phase, "boundary": k.boundary, "merged": k.merged,
                "nodes": [f"%{self.index[m]} {m.op} {_location(m.where)}" for m in k.members],
                "flops": cost.fmt(self.costs[k].flops), "bytes": cost.fmt(self.costs[k].bytes)}

    def group_result(self, k, members, j, exprs, statements, shapes, symbols_used):
        """Code for the result of one group of ``k`` (temporaries go to ``statements``)."""
        root, out = members[-1], out_name(j)
        if j > 0 and is_column_sum(members[0]) and len(root.shape) == 1:  # a merged bias gradient
            source = self.names.of[members[0].inputs[0]]
            return f"_rt.column_sums({source}{f', out={out}' if root in self.grad_of else ''})"
        temp, arg_codes = len(statements), {}
        for m in members:
            opdef = OPS[m.op]
            args = [self.ref(i, exprs) for i in m.inputs]
            for i in m.inputs:
                if is_const(i):
                    symbols_used.update(s.name for s in i.attr("value").free_symbols)
            for _, v in m.attrs:
                if isinstance(v, tuple):
                    symbols_used.update(free_symbols(v))
            if opdef.kind == "elementwise":
                exprs[m] = opdef.scalar(*args, **dict(m.attrs))
                continue
            arg_codes[m] = [self.array_code(a, shapes, i.shape, symbols_used)
                            for a, i in zip(args, m.inputs)]
            code = opdef.numpy(m, arg_codes[m])
            if m is root:
                if root in self.grad_of:
                    return self.into_out(members, m, arg_codes, statements, code, out)
                return code
            tname = f"u{temp}"
            temp += 1
            statements.append(f"{tname} = {code}")
            shapes[tname] = m.shape
            exprs[m] = sympy.Symbol(tname)
        expr = exprs[root]
        result = print_numpy(expr, shapes)
        arrays = [shapes[s.name] for s in expr.free_symbols if s.name in shapes]
        if not arrays:
            result = f"numpy.full({shape_code(root.shape)}, {result}, dtype=DTYPE)"
            symbols_used.update(free_symbols(root.shape))
        elif broadcast_shapes(*arrays) != root.shape:
            result = f"numpy.broadcast_to({result}, {shape_code(root.shape)})"
            symbols_used.update(free_symbols(root.shape))
        if root in self.grad_of:
            result = f"_rt.into({out}, {result})"
        return result

    @staticmethod
    def into_out(members, root, arg_codes, statements, result, out="out"):
        """The root statement writing into ``out`` (None: a new array) without a copy:
        the op's ``numpy_out``; for a reshape dropping the kept axes of a reduction just
        computed (its statement the last one), that reduction without them."""
        opdef = OPS[root.op]
        code = opdef.numpy_out(root, arg_codes[root], out) if opdef.numpy_out else None
        if code is not None:
            return code
        inner = root.inputs[0]
        if (opdef.view == "relabel" and contains(members, inner) and OPS[inner.op].kind == "reduce"
                and OPS[inner.op].numpy_out is not None and inner.attr("keepdims")):
            dropped = make(inner.op, inner.inputs, **dict(inner.attrs, keepdims=False))
            code = OPS[inner.op].numpy_out(dropped, arg_codes[inner], out)
            if code is not None and dropped.shape == root.shape:
                statements.pop()  # "uN = X.sum(axis=..., keepdims=True)"
                return code
        return f"_rt.into({out}, {result})"

    # -- entry points --------------------------------------------------------
    def needed_kernels(self, outputs):
        need, stack = set(), [self.owner[n] for n in outputs if n in self.owner]
        while stack:
            k = stack.pop()
            if k in need:
                continue
            need.add(k)
            stack.extend(self.owner[i] for i in k.inputs if i in self.owner)
        return sorted(need, key=lambda k: k.index)

    def results(self, k):
        """The names a kernel call assigns: ``t3`` or ``t3, t3_1``."""
        return ", ".join(self.names.of[r] for r in k.outputs)

    def value_of(self, node):
        if is_const(node):
            return f"numpy.asarray({print_numpy(node.attr('value'))}, dtype=DTYPE)"
        return self.names.of[node]

    def entry_source(self, name, doc, outputs, result_fn, with_params=True):
        kernels = self.needed_kernels(outputs.values())
        used_leaves, used_syms = {}, set()  # a dict: ordered, and nodes compare by identity
        for k in kernels:
            for i in k.inputs:
                if OPS[i.op].feed:
                    used_leaves[i] = None
            used_syms.update(a for a in self.kernel_args[k] if ("sym", a) in self.names.of)
        for n in outputs.values():
            if OPS[n.op].feed:
                used_leaves[n] = None
        self.entry_inputs[name] = tuple(x.name for x in self.model.inputs if x in used_leaves)
        prologue = []
        for leaf in used_leaves:
            prologue.append(f"{self.names.of[leaf]} = {OPS[leaf.op].feed}[{leaf.name!r}]")
        for s in sorted(used_syms):
            input_name, axis = self.symbols[s]
            holder = next(x for x in self.model.inputs if x.name == input_name)
            if holder not in used_leaves:
                raise GradcError(f"{name} needs the size {s} but none of its inputs has it")
            prologue.append(f"{s} = {self.names.of[holder]}.shape[{axis}]")
        calls = [f"{self.results(k)} = {k.name}({', '.join(self.kernel_args[k])})" for k in kernels]
        signature = "params, batch, tangents, rng=None" if self.kind == "derivatives" \
            else "params, batch, rng=None"
        return render("numpy/entry.py.jinja", name=name, signature=signature, doc=doc,
                      prologue=prologue, calls=calls, result=result_fn(self.value_of))

    @staticmethod
    def update_source(rule):
        zero_names = [h for h in rule.hyper if h in ZERO_BY_DEFAULT]
        zeros = {sympy.Symbol(h, real=True): 0 for h in zero_names}
        arrays = {"p", "g", *rule.state}
        fast = [_in_place(t, e.subs(zeros), arrays) for t, e in rule.assignments]
        general = [_in_place(t, e, arrays) for t, e in rule.assignments]
        return {"function": f"update_{rule.name}", "hyper": list(rule.hyper),
                "source": render("numpy/update.py.jinja", function=f"update_{rule.name}",
                                 hyper=list(rule.hyper), optimizer=rule.name,
                                 rule=list(rule.doc), state_names=list(rule.state),
                                 zero_names=zero_names, fast=fast, general=general)}

    def training_entries(self):
        """loss, loss_and_grad, predict and evaluate, and one update kernel per optimizer rule."""
        outs = self.graph.outputs
        loss = {"loss": outs["loss"]}
        grads = {k: v for k, v in outs.items() if k.startswith("grad:")}
        predicted = {k: v for k, v in outs.items() if k in self.model.outputs}
        metrics = {k: v for k, v in outs.items() if k.startswith("metric:")}

        def scalar(v):
            return f"float({v(loss['loss'])})"

        def grad_dict(v):
            return f"{scalar(v)}, {_array_dict(grads, v, 5)}"

        def metric_dict(v):
            items = "".join(f", {k[7:]!r}: float({v(n)})" for k, n in metrics.items())
            return f"{{'loss': {scalar(v)}{items}}}"

        entries = [
            self.entry_source("loss", "The loss (a float) for one batch.", loss, scalar),
            self.entry_source("loss_and_grad", "The loss and the gradient of every parameter.",
                              {**loss, **grads}, grad_dict),
            self.entry_source("predict", "The model's named outputs for one batch.",
                              predicted, lambda v: _array_dict(predicted, v, 0)),
            self.entry_source("evaluate", "The loss and every metric (floats) for one batch.",
                              {**loss, **metrics}, metric_dict),
        ]
        entries.append(self.train_epoch_source())
        return entries, [self.update_source(rule) for rule in RULES.values()]

    def train_epoch_source(self):
        """The minibatch loop: forward, backward and update without leaving the module."""
        outs = self.graph.outputs
        grads = [outs[f"grad:{p.name}"] for p in self.model.params]
        metrics = {k[7:]: v for k, v in outs.items() if k.startswith("metric:")}
        wanted = [outs["loss"], *grads, *metrics.values()]
        kernels = self.needed_kernels(wanted)
        read = {i: None for k in kernels for i in k.inputs}
        read.update((x, None) for x in wanted)
        used = [x for x in self.model.inputs if x in read]
        used_params = [p for p in self.model.params if p in read]
        symbols = sorted({a for k in kernels for a in self.kernel_args[k] if ("sym", a) in self.names.of})
        prologue = [f"{self.names.of[x]}_all = data[{x.name!r}]" for x in used]
        prologue += [f"{self.names.of[p]} = params[{p.name!r}]" for p in used_params]
        slices = [f"{self.names.of[x]} = {self.names.of[x]}_all[start:start + batch_size]" for x in used]
        for s in symbols:
            holder = next(x for x in self.model.inputs if x.name == self.symbols[s][0])
            slices.append(f"{s} = {self.names.of[holder]}.shape[{self.symbols[s][1]}]")
        if any(a == "rng" for k in kernels for a in self.kernel_args[k]):
            slices.append("rng = None if seed is None else (seed, step)")
        prologue += [f"g_{self.names.of[p]} = grads[{p.name!r}]" for p in self.model.params]
        read = {a for k in kernels for a in self.kernel_args[k]}
        read.update(self.value_of(n) for n in [outs["loss"], *metrics.values()])
        calls = []
        for k in kernels:
            args = list(self.kernel_args[k])
            for j, result in enumerate(k.outputs):
                if result in self.grad_of:
                    args.append(f"{out_name(j)}=g_{self.names.of[self.grad_of[result]]}")
            call = f"{k.name}({', '.join(args)})"
            if any(self.names.of[r] in read for r in k.outputs) or not all(
                    r in self.grad_of for r in k.outputs):
                call = f"{self.results(k)} = {call}"
            calls.append(call)  # a call that only writes gradients in place assigns nothing
        copies = [f"g_{self.names.of[p]}[...] = {self.value_of(g)}"
                  for p, g in zip(self.model.params, grads) if self.grad_of.get(g) is not p]
        length = f"{self.names.of[used[0]]}_all.shape[0]" if used else "1"
        return render("numpy/train_epoch.py.jinja", prologue=prologue, slices=slices, calls=calls,
                      loss=self.value_of(outs["loss"]), copies=copies, length=length,
                      metrics=[{"name": k, "var": f"sum_{k}", "value": self.value_of(v)}
                               for k, v in metrics.items()])

    def derivative_entries(self):
        """jvp (forward mode) and hvp (forward over reverse), both fed ``tangents``."""
        outs = self.graph.outputs
        hvps = {k: v for k, v in outs.items() if k.startswith("hvp:")}
        return [
            self.entry_source("jvp", "The loss and its derivative along ``tangents`` (forward mode).",
                              {"loss": outs["loss"], "jvp": outs["jvp"]},
                              lambda v: f"float({v(outs['loss'])}), float({v(outs['jvp'])})"),
            self.entry_source("hvp", "The Hessian of the loss times ``tangents``, per parameter.",
                              hvps, lambda v: _array_dict(hvps, v, 4)),
        ], []

    def source(self):
        kernel_sources = [self.kernel_source(k) for k in self.kernels]
        entries, updates = (self.training_entries() if self.kind == "training"
                            else self.derivative_entries())
        inputs = {x.name: (tuple(str(d) for d in x.shape), x.attr("dtype")) for x in self.model.inputs}
        params = {p.name: (p.shape, p.attr("init")) for p in self.model.params}
        table = [repr(self.table_entry(k)) for k in self.kernels]
        return render("numpy/module.py.jinja", version=VERSION, source=self.source_name,
                      dtype=self.dtype, kernels=kernel_sources, n_nodes=len(self.graph.nodes),
                      title=self.model.name or self.source_name, kind=self.kind,
                      entry_names=list(self.entry_inputs),
                      inputs=repr(inputs), params=repr(params), outputs=repr(tuple(self.model.outputs)),
                      metrics=repr(tuple(self.model.metrics)),
                      entry_inputs=repr(self.entry_inputs),
                      symbols=repr(self.symbols), optimizers=repr(tuple(u["function"][7:] for u in updates)),
                      kernel_table=table, entries=entries, updates=updates)


ZERO_BY_DEFAULT = ("wd", "dwd")  # weight decays: usually 0, so the update skips them then


def _in_place(target, expr, arrays):
    """``target -= ...`` / ``target += ...`` when ``expr`` is target plus something, else
    ``target[...] = expr``: an update that writes into the array it changes."""
    t = sympy.Symbol(target, real=True)
    if expr.is_Add and t in expr.args:
        rest = sympy.Add(*[a for a in expr.args if a != t])
        if rest.could_extract_minus_sign():
            return f"{target} -= {print_numpy(-rest, arrays)}"
        return f"{target} += {print_numpy(rest, arrays)}"
    return f"{target}[...] = {print_numpy(expr, arrays)}"


def out_name(j):
    """The keyword through which a kernel's ``j``-th result can be written in place."""
    return "out" if j == 0 else f"out{j}"


def _array_dict(outputs, value_of, strip):
    items = ", ".join(f"{k[strip:]!r}: _rt.materialize({value_of(n)}, DTYPE)" for k, n in outputs.items())
    return f"{{{items}}}"


def _dedupe(items):
    out = []
    for i in items:
        if i not in out:
            out.append(i)
    return out
