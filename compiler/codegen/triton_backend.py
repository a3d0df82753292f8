"""The Triton backend: the same kernels as the numpy backend, as Triton GPU kernels.

Every kernel of the partition (``compiler.fusion``) is one of three skeletons, each a
template under ``templates/triton/``: elementwise over the root's shape, matmul with
an epilogue fused at the store, or a reduction with its producers fused before it and
its consumers after it.  Operands are strided views: broadcasting is a zero stride, a
transpose swaps strides, a reshape of a buffer is a view, so no copy is made on the
host.  Bodies are printed from sympy by ``TritonPrinter``.  The host wrappers carry
the numpy kernels' names and arguments, so the entry points are shared.
"""
import re

import sympy

from compiler.codegen.numpy_backend import NumpyModule, out_name
from compiler.codegen.templates import render
from compiler.graph import contains
from compiler.codegen.triton_printer import print_triton
from compiler.config import VERSION
from compiler.ops.leaf import is_const
from compiler.ops.registry import OPS
from compiler.ops.shape import shape_code
from compiler.shapes import fmt, free_symbols


def _hoist_hyper(rule):
    """The rule's assignments with every largest subexpression of hyperparameters alone
    (``1 - b2``, ``1/bc2``) replaced by a scalar ``c0``, ``c1``, ...; and those scalars, in
    the ``<name>_64`` (float64) hyperparameters.  Computed once per kernel in float64 and
    rounded once, as numpy and PyTorch round ``(1 - beta2)`` from Python floats."""
    hyper = {sympy.Symbol(h, real=True) for h in rule.hyper}
    wide = {h: sympy.Symbol(f"{h.name}_64", real=True) for h in hyper}
    found, out = {}, []
    for target, expr in rule.assignments:
        walk = sympy.preorder_traversal(expr)
        for sub in walk:
            if sub.free_symbols and sub.free_symbols <= hyper and not sub.is_Symbol:
                if sub not in found:
                    found[sub] = sympy.Symbol(f"c{len(found)}", real=True)
                walk.skip()
        out.append((target, expr.xreplace(found)))
    return out, [(s.name, e.xreplace(wide)) for e, s in found.items()]


class Operands(list):
    """The buffers a kernel reads, named ``<prefix>0``, ``<prefix>1``, ..."""

    def __init__(self, prefix="v"):
        super().__init__()
        self.prefix = prefix


class TritonModule(NumpyModule):
    """Everything needed to print the Triton module of one compiled model."""

    def __init__(self, model, graph, kernels, dtype, source_name, kind="training",
                 precision="ieee"):
        super().__init__(model, graph, kernels, dtype, source_name, kind)
        self.precision = "ieee" if dtype == "float64" else precision  # tf32 is float32-only
        self.pointers = {}
        self._operand_nodes = {}

    # -- operands: buffers read through strided views ---------------------------------
    def _operand(self, node, members, operands, shapes_used, suffix=""):
        """The symbol standing for ``node`` when it is read from memory (a buffer, or a
        view of one: see ``OpDef.view``), registering it in ``operands``; ``suffix``
        extends the host's view of it (``.unsqueeze(-1)``)."""
        for o in operands:
            if o["node"] is node:
                return o["symbol"]
        if contains(members, node) and is_const(node.inputs[0]):
            return node.inputs[0].attr("value")  # a reshaped or broadcast constant
        if contains(members, node):  # a view op over a buffer: a strided view of that buffer
            base, kind = self.names.of[node.inputs[0]], OPS[node.op].view
            if kind == "permute":
                view = f"{base}.permute{tuple(node.attr('perm'))}"
            elif kind == "relabel":
                view = f"{base}.reshape({shape_code(node.attr('shape'))})"
                shapes_used.update(free_symbols(node.attr("shape")))
            else:  # broadcast: expanding to the iteration space does it
                view = base
        else:
            view = self.names.of[node]
        view += suffix
        name = f"{operands.prefix}{len(operands)}"
        self._operand_nodes[name] = node
        other = "0" if node.dtype == "int" else "0.0"
        operands.append({"node": node, "symbol": sympy.Symbol(name), "name": name,
                         "view": view, "other": other})
        return operands[-1]["symbol"]

    def _exprs(self, members, stop, operands, shapes_used, heavy_symbol=None, heavy=None):
        """sympy expressions for the elementwise members (a heavy node becomes a symbol)."""
        exprs = {}
        for m in members:
            if m is heavy:
                exprs[m] = heavy_symbol
                continue
            if OPS[m.op].kind != "elementwise" or m in stop:
                continue
            args = []
            for i in m.inputs:
                if contains(members, i) and OPS[i.op].kind == "shape" and is_const(i.inputs[0]):
                    i = i.inputs[0]  # a reshaped or broadcast constant is still that constant
                if i in exprs:
                    args.append(exprs[i])
                elif is_const(i):
                    args.append(i.attr("value"))
                    shapes_used.update(s.name for s in i.attr("value").free_symbols)
                else:
                    args.append(self._operand(i, members, operands, shapes_used))
            exprs[m] = OPS[m.op].scalar(*args, **dict(m.attrs))
        return exprs

    def _value(self, node, exprs, members, operands, shapes_used):
        if node in exprs:
            return exprs[node]
        if is_const(node):
            return node.attr("value")
        return self._operand(node, members, operands, shapes_used)

    # -- kernels -----------------------------------------------------------------------
    def kernel_source(self, k):
        if OPS[k.root.op].kind == "loss":
            return self._cross_entropy(k)
        root = k.root
        top = self._top(k)
        heavy = next((m for m in k.groups[0] if OPS[m.op].kind in ("contraction", "reduce")), None)
        shapes_used = set(free_symbols(root.shape)) | set(free_symbols(top.shape))
        context = dict(self.header(k), out_shape=shape_code(root.shape))
        extra_host, random = [], False
        if heavy is not None and OPS[heavy.op].kind == "contraction":
            template, ctx = self._matmul(k, heavy, top, shapes_used)
        elif heavy is not None:
            template, ctx = self._reduction(k, heavy, top, shapes_used)
        else:
            template, ctx, random = self._elementwise(k, top, shapes_used, extra_host)
        self.pointers[k.name] = self._pointer_types(template, k)
        args = [self.names.of[i] for i in k.inputs]
        args += [self.names.of[("sym", s)] for s in sorted(shapes_used) if ("sym", s) in self.names.of]
        device_code = ctx["body"] + ctx.get("epilogue_body", [])
        scalars = [a for a in args if ("sym", a) in self.names.of
                   and any(re.search(rf"\b{a}\b", line) for line in device_code)]
        if random:
            args.append("rng")
        self.kernel_args[k] = args
        return render(template, args=args + self.out_args(k), scalars=scalars,
                      float_type=self.float_type, **context, **ctx)

    @staticmethod
    def _top(k):
        """The node the kernel computes: its root, or what a root reshape relabels."""
        root = k.root
        relabel = OPS[root.op].view == "relabel" and contains(k.members, root.inputs[0])
        return root.inputs[0] if relabel else root

    @property
    def float_type(self):
        return "tl.float64" if self.dtype == "float64" else "tl.float32"

    def out_args(self, k):
        return [f"{out_name(j)}=None" for j in range(len(k.outputs))]

    def _cross_entropy(self, k):
        """The row-wise softmax cross-entropy: loss, gradient, or both from one read of the logits."""
        results = {OPS[r.op].result: out_name(j) for j, r in enumerate(k.outputs)}
        z, labels = k.root.inputs[:2]
        g_ptr, g_value = None, None
        grad = next((m for m in k.members if OPS[m.op].result == "grad"), None)
        if grad is not None:
            g = grad.inputs[2]
            if is_const(g):
                g_value = print_triton(g.attr("value"), self.dtype)
            else:
                g_ptr, g_value = self.names.of[g], "tl.load(g_ptr)"
        float_ptr = "*fp64" if self.dtype == "float64" else "*fp32"
        self.pointers[k.name] = {"z_ptr": float_ptr, "k_ptr": "*i64", "g_ptr": float_ptr,
                                 "loss_ptr": float_ptr, "dz_ptr": float_ptr, "acc_ptr": float_ptr}
        self.kernel_args[k] = [self.names.of[i] for i in k.inputs]
        return render("triton/cross_entropy.py.jinja", **self.header(k),
                      args=self.kernel_args[k] + self.out_args(k), z=self.names.of[z],
                      k=self.names.of[labels], g_ptr=g_ptr, g_value=g_value,
                      loss=results.get("loss"), grad=results.get("grad"),
                      accuracy=results.get("accuracy"), space_text=fmt(z.shape),
                      float_type=self.float_type, results=", ".join(results.values()))

    def _pointer_types(self, template, k):
        """Each pointer argument's Triton type, for compiling ahead of time."""
        float_ptr = "*fp64" if self.dtype == "float64" else "*fp32"
        types = {}
        for name, node in self._operand_nodes.items():
            types[f"{name}_ptr"] = {"int": "*i64", "bool": "*i1"}.get(node.dtype, float_ptr)
        root = self._top(k)
        types["out_ptr"] = {"int": "*i64", "bool": "*i1"}.get(root.dtype, float_ptr)
        if template == "triton/matmul.py.jinja":
            types["a_ptr"] = types["b_ptr"] = float_ptr
        self._operand_nodes = {}
        return types

    def _elementwise(self, k, top, shapes_used, host):
        operands = Operands()
        random = OPS[top.op].kind == "random"
        dims = list(range(len(top.shape)))
        extra_args, extra_values, body = [], [], []
        own = OPS[top.op].triton
        if own is not None:  # an op with Triton code of its own (a kernel to itself)

            def read(node, suffix=""):
                return str(self._operand(node, k.members, operands, shapes_used, suffix))

            code = own(top, read, f"i{dims[-1]}" if dims else None)
            host += code.get("host", [])
            extra_args = extra_values = code.get("extra", [])
            body += code["body"]
        else:
            exprs = self._exprs(k.members, set(), operands, shapes_used)
            value = self._value(top, exprs, k.members, operands, shapes_used)
            text = print_triton(value, self.dtype)
            if not any(s.name.startswith("v") for s in sympy.sympify(value).free_symbols):
                text = f"tl.zeros([BLOCK], tl.float32) + ({text})"
            body.append(f"result = {text}")
        out_dtype = {"bool": "torch.bool", "int": "torch.int64"}.get(top.dtype, "DTYPE")
        return "triton/elementwise.py.jinja", dict(
            operands=operands, dims=dims, body=body, space=shape_code(top.shape),
            space_text=fmt(top.shape), extra_args=extra_args, extra_values=extra_values, host=host,
            out_dtype=out_dtype), random

    def _matmul(self, k, mm, top, shapes_used):
        a_op, b_op = Operands("a"), Operands("b")
        self._operand(mm.inputs[0], k.members, a_op, shapes_used)
        self._operand(mm.inputs[1], k.members, b_op, shapes_used)
        operands = Operands()
        main = k.groups[0]
        exprs = self._exprs(main, set(), operands, shapes_used, sympy.Symbol("acc"), mm)
        value = self._value(top, exprs, main, operands, shapes_used)
        acc = self.float_type
        colsum = None
        if len(k.groups) > 1:  # a bias gradient: the column sums of b (fusion.merge_siblings)
            colsum = {"name": out_name(1), "shape": shape_code(k.outputs[1].shape)}
            shapes_used.update(free_symbols(k.outputs[1].shape))
        return "triton/matmul.py.jinja", dict(
            operands=operands, body=[f"result = {print_triton(value, self.dtype)}"], colsum=colsum,
            a_view=a_op[0]["view"], b_view=b_op[0]["view"], acc_dtype=acc, space_text=fmt(mm.shape))

    def _reduction(self, k, red, top, shapes_used):
        source_node = red.inputs[0]
        upstream, stack = set(), [source_node]
        while stack:
            n = stack.pop()
            if contains(k.members, n) and n not in upstream:
                upstream.add(n)
                stack.extend(n.inputs)
        prologue = [m for m in k.members if m in upstream]
        operands = Operands()
        pro = self._exprs(prologue, set(), operands, shapes_used)
        v = self._value(source_node, pro, k.members, operands, shapes_used)
        epilogue_ops = Operands("e")
        rest = [m for m in k.members if m not in upstream]
        epi = self._exprs(rest, set(), epilogue_ops, shapes_used, sympy.Symbol("total"), red)
        out_value = self._value(top, epi, k.members, epilogue_ops, shapes_used)
        axes, keep = red.attr("axes"), red.attr("keepdims")
        S = red.inputs[0].shape
        index, pos = {}, 0
        for d in range(len(S)):
            if d in axes:
                index[d] = f"j{d}"
                if keep:
                    pos += 1
            else:
                index[d] = f"o{d if keep else pos}"
                pos += 1
        acc = self.float_type
        passes = list(OPS[red.op].triton_passes)
        shapes_used.update(free_symbols(S))
        return "triton/reduction.py.jinja", dict(
            operands=operands, epilogue=epilogue_ops, dims=list(range(len(S))),
            out_dims=list(range(len(red.shape))), reduced=list(axes), index=index, passes=passes,
            out_used=[d for d in range(len(red.shape))
                      if epilogue_ops or f"o{d}" in index.values()],
            acc_dtype=acc, body=[f"v = {print_triton(v, self.dtype)}"],
            epilogue_body=[f"result = {print_triton(out_value, self.dtype)}"], space=shape_code(S),
            space_text=fmt(S), out_text=fmt(red.shape), reduced_shape=shape_code(red.shape))

    # -- the rest of the module ----------------------------------------------------------
    def value_of(self, node):
        if is_const(node):
            return f"_rt.constant({float(node.attr('value'))!r}, DTYPE)"
        return self.names.of[node]

    def update_source(self, rule):
        stored = []
        for target, _ in rule.assignments:
            if target not in stored:
                stored.append(target)
        assignments, scalars = _hoist_hyper(rule)
        used = set().union(*(e.free_symbols for _, e in assignments))
        direct = [h for h in rule.hyper if sympy.Symbol(h, real=True) in used]
        return {"function": f"update_{rule.name}", "hyper": list(rule.hyper),
                "source": render("triton/update.py.jinja", function=f"update_{rule.name}",
                                 hyper=list(rule.hyper), optimizer=rule.name, rule=list(rule.doc),
                                 state_names=list(rule.state), stored=stored, float_type=self.float_type,
                                 direct=direct,
                                 scalars=[(s, print_triton(e, "float64")) for s, e in scalars],
                                 assignments=[(t, print_triton(e)) for t, e in assignments])}

    def source(self):
        kernel_sources = [self.kernel_source(k) for k in self.kernels]
        if self.kind == "training":
            entries, updates = self.training_entries()
        else:
            entries, updates = self.derivative_entries()
        inputs = {x.name: (tuple(str(d) for d in x.shape), x.attr("dtype")) for x in self.model.inputs}
        params = {p.name: (p.shape, p.attr("init")) for p in self.model.params}
        table = [repr({**self.table_entry(k), "pointers": self.pointers[k.name]}) for k in self.kernels]
        return render("triton/module.py.jinja", version=VERSION, source=self.source_name,
                      dtype=self.dtype, kernels=kernel_sources, n_nodes=len(self.graph.nodes),
                      title=self.model.name or self.source_name, kind=self.kind,
                      entry_names=list(self.entry_inputs), inputs=repr(inputs), params=repr(params),
                      outputs=repr(tuple(self.model.outputs)), metrics=repr(tuple(self.model.metrics)),
                      entry_inputs=repr(self.entry_inputs), symbols=repr(self.symbols),
                      optimizers=repr(tuple(u["function"][7:] for u in updates)),
                      kernel_table=table, entries=entries, updates=updates, precision=self.precision)
