"""The numpy backend's emitter: each kernel a Python function over numpy arrays.

A kernel's elementwise members become one sympy expression printed by
``NumpyPrinter``; a structural member is its op's ``numpy`` code (a temporary
``u0``, ``u1``, ... when something reads it); a parameter gradient can be written
into the caller's buffer (``out=``).  Optimizer rules become in-place update kernels.
The module around the kernels is ``module.ModuleWriter``'s.
"""
from dataclasses import dataclass, field

import sympy

from compiler.codegen.module import KernelCode
from compiler.codegen.names import out_name
from compiler.codegen.printer import print_numpy, prints_boolean
from compiler.codegen.templates import render
from compiler.graph import contains, make
from compiler.ops.leaf import is_const
from compiler.ops.reduce import is_column_sum
from compiler.ops.registry import OPS
from compiler.ops.shape import shape_code
from compiler.shapes import broadcast_shapes, free_symbols

ZERO_BY_DEFAULT = ("wd", "dwd")  # weight decays: usually 0, so the update skips them then


@dataclass
class _Body:
    """What one kernel's body collects while it is written: the sympy expression of each
    elementwise member, the statements before the return, the shape of each array name,
    and the shape symbols the code uses."""

    exprs: dict = field(default_factory=dict)
    statements: list = field(default_factory=list)
    shapes: dict = field(default_factory=dict)
    symbols: set = field(default_factory=set)


class NumpyEmitter:
    """Kernels, update rules and constants as numpy code (see ``module.py``)."""

    backend = "numpy"

    def kernels(self, writer):
        written = {k: self.kernel(writer, k) for k in writer.kernels}
        return KernelCode([source for source, _ in written.values()],
                          {k: args for k, (_, args) in written.items()})

    @staticmethod
    def constant(value):
        return f"numpy.asarray({print_numpy(value)}, dtype=DTYPE)"

    # -- kernels -------------------------------------------------------------
    def kernel(self, writer, k):
        """``(source, arguments of its call)`` of kernel ``k``."""
        names = writer.names.of
        body = _Body(shapes={names[leaf]: leaf.shape for leaf in k.inputs})
        if len(k.members) > 1 and all(OPS[m.op].kind == "loss" for m in k.members):
            results = [self.fused_loss_call(writer, k, body)]
        elif k.rows:
            results = self.row_results(writer, k, body)
        else:
            results = [self.group_result(writer, group, j, body) for j, group in enumerate(k.groups)]
        args = [names[i] for i in k.inputs] + [names[("sym", s)] for s in sorted(body.symbols)]
        if any(OPS[m.op].kind == "random" for m in k.members):
            args.append("rng")
        outs = [f"{out_name(j)}=None" for j, r in enumerate(k.outputs) if r in writer.grad_of]
        source = render("numpy/kernel.py.jinja", args=args + outs, statements=body.statements,
                        result=", ".join(results), **writer.header(k))
        return source, args

    @staticmethod
    def ref(writer, node, exprs):
        """The sympy expression standing for ``node`` inside a kernel."""
        if node in exprs:
            return exprs[node]
        if is_const(node):
            return node.attr("value")
        return sympy.Symbol(writer.names.of[node])

    @staticmethod
    def array_code(expr, shape, body):
        """Source for ``expr`` as an array argument of ``shape``.

        sympy may simplify an elementwise expression to something smaller than its
        node (``x - x`` is 0): then it is broadcast back, so that structural ops see
        the shape the graph promised."""
        code = print_numpy(expr, body.shapes)
        present = [body.shapes[s.name] for s in sympy.sympify(expr).free_symbols
                   if s.name in body.shapes]
        if not present:
            code = f"numpy.asarray({code}, dtype=DTYPE)"
        if broadcast_shapes(*present) != shape:
            body.symbols.update(free_symbols(shape))
            return f"numpy.broadcast_to({code}, {shape_code(shape)})"
        return code

    def fused_loss_call(self, writer, k, body):
        """The merged loss kernel: one helper call returning its results in order."""
        z, labels = k.root.inputs
        grad = next((m for m in k.members if OPS[m.op].result == "grad"), None)
        g = grad.inputs[2] if grad is not None else None
        args = [self.array_code(self.ref(writer, i, body.exprs), i.shape, body)
                for i in (z, labels) + ((g,) if g is not None else ())]
        if g is None:
            args.append("None")
        wanted = tuple(OPS[m.op].result for m in k.members)
        options = "".join(f", {key}={value!r}" for key, value in k.root.attrs)  # the members agree
        return f"_rt.softmax_cross_entropy_fused({', '.join(args)}, {wanted!r}{options})"

    def row_results(self, writer, k, body):
        """The results of a row-wise kernel (a DAG): a member that several members read,
        or that is stored, or that is not elementwise becomes a temporary."""
        exprs, inside = body.exprs, set(k.members)
        reads = {}
        for m in k.members:
            for i in m.inputs:
                if i in inside:
                    reads[i] = reads.get(i, 0) + 1
        stored = set(k.outputs)
        for m in k.members:
            opdef = OPS[m.op]
            args = [self.ref(writer, i, exprs) for i in m.inputs]
            for i in m.inputs:
                if is_const(i):
                    body.symbols.update(s.name for s in i.attr("value").free_symbols)
            if opdef.kind == "elementwise":
                exprs[m] = opdef.scalar(*args, **dict(m.attrs))
                if m not in stored and reads.get(m, 0) < 2:
                    continue
                code = self.array_code(exprs[m], m.shape, body)
            else:
                for _, v in m.attrs:
                    if isinstance(v, tuple):
                        body.symbols.update(free_symbols(v))
                code = opdef.numpy(m, [self.array_code(a, i.shape, body)
                                       for a, i in zip(args, m.inputs)])
            name = f"u{len(body.statements)}"
            body.statements.append(f"{name} = {code}")
            body.shapes[name] = m.shape
            exprs[m] = sympy.Symbol(name)
        return [f"_rt.into({out_name(j)}, {exprs[r]})" if r in writer.grad_of else str(exprs[r])
                for j, r in enumerate(k.outputs)]

    def group_result(self, writer, members, j, body):
        """Code for the result of one group of a kernel (temporaries go to ``body``)."""
        root, out, into = members[-1], out_name(j), members[-1] in writer.grad_of
        if j > 0 and is_column_sum(members[0]) and len(root.shape) == 1:  # a merged bias gradient
            source = writer.names.of[members[0].inputs[0]]
            return f"_rt.column_sums({source}{f', out={out}' if into else ''})"
        temp, arg_codes, exprs = len(body.statements), {}, body.exprs
        for m in members:
            opdef = OPS[m.op]
            args = [self.ref(writer, i, exprs) for i in m.inputs]
            for i in m.inputs:
                if is_const(i):
                    body.symbols.update(s.name for s in i.attr("value").free_symbols)
            for _, v in m.attrs:
                if isinstance(v, tuple):
                    body.symbols.update(free_symbols(v))
            if opdef.kind == "elementwise":
                exprs[m] = opdef.scalar(*args, **dict(m.attrs))
                continue
            arg_codes[m] = [self.array_code(a, i.shape, body) for a, i in zip(args, m.inputs)]
            code = opdef.numpy(m, arg_codes[m])
            if m is root:
                return into_out(members, m, arg_codes, body.statements, code, out) if into else code
            tname = f"u{temp}"
            temp += 1
            body.statements.append(f"{tname} = {code}")
            body.shapes[tname] = m.shape
            exprs[m] = sympy.Symbol(tname)
        expr = exprs[root]
        result = print_numpy(expr, body.shapes)
        arrays = [body.shapes[s.name] for s in expr.free_symbols if s.name in body.shapes]
        if root.dtype == "float" and prints_boolean(expr):  # heaviside(x, 0) is (x > 0): a
            result = f"numpy.asarray({result}, dtype=DTYPE)"  # stored float, not a boolean
        if not arrays:
            result = f"numpy.full({shape_code(root.shape)}, {result}, dtype=DTYPE)"
            body.symbols.update(free_symbols(root.shape))
        elif broadcast_shapes(*arrays) != root.shape:
            result = f"numpy.broadcast_to({result}, {shape_code(root.shape)})"
            body.symbols.update(free_symbols(root.shape))
        return f"_rt.into({out}, {result})" if into else result

    # -- optimizer rules -----------------------------------------------------
    @staticmethod
    def update(rule):
        zero_names = [h for h in rule.hyper if h in ZERO_BY_DEFAULT]
        zeros = {sympy.Symbol(h, real=True): 0 for h in zero_names}
        arrays = {"p", "g", *rule.state}
        fast = [line for t, e in rule.assignments for line in _in_place(t, e.subs(zeros), arrays)]
        general = [line for t, e in rule.assignments for line in _in_place(t, e, arrays)]
        return {"function": f"update_{rule.name}", "hyper": list(rule.hyper),
                "source": render("numpy/update.py.jinja", function=f"update_{rule.name}",
                                 hyper=list(rule.hyper), optimizer=rule.name,
                                 rule=list(rule.doc), state_names=list(rule.state),
                                 zero_names=zero_names, fast=fast, general=general)}


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


def _in_place(target, expr, arrays):
    """The lines of an update that writes into the array it changes: ``target += ...`` /
    ``target -= ...`` when ``expr`` is target plus something; ``target *= c`` first when
    it is ``c*target`` plus something, for a scalar ``c`` (momentum, Adam's moments: no
    temporary for ``c*target``; not when the rest reads the target); else
    ``target[...] = expr``."""
    t = sympy.Symbol(target, real=True)
    scale = None
    if expr.is_Add and t not in expr.args:
        names = _symbols(arrays)
        scaled = [a for a in expr.args if a.is_Mul and t in a.args
                  and not (sympy.Mul(*[f for f in a.args if f != t]).free_symbols & names)]
        if len(scaled) == 1 and t not in (expr - scaled[0]).free_symbols:  # (the rest must
            scale = scaled[0] / t  # not read the target once it is scaled)
            expr = expr - scaled[0] + t
    lines = [f"{target} *= {print_numpy(scale, arrays)}"] if scale is not None else []
    if expr.is_Add and t in expr.args:
        rest = sympy.Add(*[a for a in expr.args if a != t])
        if rest.could_extract_minus_sign():
            return lines + [f"{target} -= {print_numpy(-rest, arrays)}"]
        return lines + [f"{target} += {print_numpy(rest, arrays)}"]
    return [f"{target}[...] = {print_numpy(expr, arrays)}"]


def _symbols(names):
    return {sympy.Symbol(n, real=True) for n in names} | {sympy.Symbol(n) for n in names}
