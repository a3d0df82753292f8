"""The Triton backend's emitter: the same kernels as the numpy backend, as Triton GPU kernels.

Every kernel of the partition (``compiler.fusion``) is one of five skeletons, each a
template under ``templates/triton/`` with two macros, the device kernel and its host
wrapper: elementwise over the root's shape, matmul with an epilogue fused at the store,
a reduction with its producers fused before it and its consumers after it, row-wise
(whole rows in registers: reductions over the last axes with the elementwise ops around
them, a layer norm or a softmax), column sums (several, of one shape, in one pass), and
the row-wise softmax cross-entropy.  Operands are strided views: broadcasting is a zero
stride, a transpose swaps strides, a reshape of a buffer is a view, so no copy is made
on the host.  Bodies are printed from sympy by ``TritonPrinter``.  The host wrappers
carry the kernels' names and take the numpy kernels' arguments, so the entry points are
the same (``module.ModuleWriter`` writes them).

Kernels whose device code is the same (the two hidden layers' forward matmuls, every
weight gradient with its bias gradient) share one ``@triton.jit`` function: it is
written once, named after what it computes (``matmul_add_tanh_kernel``) with a comment
naming every kernel that launches it; a device kernel of one kernel is ``<kernel>_kernel``.
"""
import math
import re
import textwrap
from dataclasses import dataclass

import sympy

from compiler.codegen.module import KernelCode
from compiler.codegen.names import out_name
from compiler.codegen.templates import render, render_macro
from compiler.codegen.triton_printer import number_value, print_triton
from compiler.fusion import column_key, row_class
from compiler.graph import contains
from compiler.ops.leaf import is_const
from compiler.ops.registry import OPS
from compiler.ops.shape import shape_code
from compiler.optim import RULES
from compiler.shapes import fmt, free_symbols, numel
from compiler.view_index import (ONE_SIDE, TILE, Axis, operand_chain, operand_chain_of,
                                 operand_index, source_index, tile)

POINTER_TYPES = {"int": "*i64", "bool": "*i1"}  # of an operand's dtype; floats: the module's
ROW_ELEMENTS = 1024  # a row-wise kernel's program holds at least this many elements (whole
ROW_PER_THREAD = 8   # rows), about this many per thread in each value (more would spill)
COLUMN_BLOCK = (32, 32)  # merged column sums: rows added per step, columns per program


@dataclass(frozen=True)
class Launch:
    """One kernel's Triton code before its device kernel is named: the skeleton
    (``template``) and its variables (``context``), the arguments the kernel's call
    passes, and each pointer parameter's Triton type (for compiling ahead of time)."""

    kernel: object
    template: str
    context: dict
    args: list
    pointers: dict
    sizes: dict = None  # sizes the host derives its constants from, known at generation

    def device(self, name):
        return render_macro(self.template, "device", self.context, name)

    def host(self, device_name):
        return render_macro(self.template, "host", self.context, device_name)


class Operands(list):
    """The buffers a kernel reads, named ``<prefix>0``, ``<prefix>1``, ..."""

    def __init__(self, prefix="v"):
        super().__init__()
        self.prefix = prefix


def load_by_index(name, strides, at, mask, valid, fill):
    """Device code loading buffer ``<name>_ptr`` at the index ``at`` (one expression per
    axis, times the strides ``<strides>0``, ``<strides>1``, ...), ``fill`` where ``mask``
    or ``valid`` is false."""
    address = " + ".join(f"({i}) * {strides}{d}" for d, i in enumerate(at)) or "0"
    mask = mask if valid is None else f"{mask} & ({valid})"
    return f"tl.load({name}_ptr + {address}, mask={mask}, other={fill})"


def _const_under_views(node):
    """The constant ``node`` views (reshapes, broadcasts: the same values), else ``node``."""
    base = node
    while OPS[base.op].view:
        base = base.inputs[0]
    return base if is_const(base) else node


class _Reads:
    """What one kernel's code reads, gathered while it is written: its operands (each
    ``Operands`` list the caller passes) and the shape symbols the code uses (``sizes``)."""

    def __init__(self, names, sizes=()):
        self.names, self.sizes = names, set(sizes)

    def operand(self, node, members, operands, suffix="", whole=False):
        """The symbol standing for ``node`` when it is read from memory (a buffer, or a
        view of one: see ``OpDef.view``), added to ``operands``; ``suffix`` extends the
        host's view of it (``.unsqueeze(-1)``); ``whole``: see ``view``."""
        for o in operands:
            if o["node"] is node:
                return o["symbol"]
        if contains(members, node) and is_const(node.inputs[0]):
            return node.inputs[0].attr("value")  # a reshaped or broadcast constant
        view = self.view(node, members, whole)
        name = f"{operands.prefix}{len(operands)}"
        other = "0" if node.dtype == "int" else "0.0"
        operands.append({"node": node, "symbol": sympy.Symbol(name), "name": name,
                         "view": view + suffix, "base": self.base(node, members),
                         "other": other})
        return operands[-1]["symbol"]

    def view(self, node, members, whole=False):
        """The host's code for ``node``: a buffer's name, or (a view op in ``members``, or a
        chain of them) a strided view of the buffer under it.  A broadcast last in the
        chain is left to the kernel's expansion to its iteration space, unless ``whole``
        (a matmul operand, whose view's shape is the operand's)."""
        chain = []
        while contains(members, node) and OPS[node.op].view:
            chain.append(node)
            node = node.inputs[0]
        code = self.names[node]
        for i, v in enumerate(reversed(chain)):
            kind = OPS[v.op].view
            if kind == "permute":
                code = f"{code}.permute{tuple(v.attr('perm'))}"
            elif kind == "relabel":
                code = f"{code}.reshape({shape_code(v.attr('shape'))})"
                self.sizes.update(free_symbols(v.attr("shape")))
            elif whole or i < len(chain) - 1:  # a broadcast under another view
                code = f"_rt.expand({code}, {shape_code(v.shape)})"
                self.sizes.update(free_symbols(v.shape))
            # (the last broadcast: expanding to the iteration space does it)
        return code

    def base(self, node, members):
        """The name of the buffer under ``view(node, members)`` (what a launch plan keys on)."""
        while contains(members, node) and OPS[node.op].view:
            node = node.inputs[0]
        return self.names[node]

    @staticmethod
    def under_views(node, members, at):
        """``(buffer, index into it)`` for ``node`` read at ``at``: through the views of
        ``members`` that ``node`` is (index arithmetic, ``compiler.view_index``)."""
        chain, buffer = operand_chain_of(node, members)
        if not chain:
            return node, at
        index = source_index(chain, [Axis(str(i), ONE_SIDE) for i in at])
        return buffer, [a.code for a in index]

    def gather(self, node, operands, at, valid=None, fill="0.0"):
        """Device code loading buffer ``node`` at the index ``at`` (one device expression per
        axis of ``node``; ``valid``: where the index is inside, ``fill`` elsewhere): the
        buffer is passed once, with its own strides, however many places read it."""
        found = next((o for o in operands if o["node"] is node and o.get("gather")), None)
        if found is None:
            name = f"{operands.prefix}{len(operands)}"
            found = {"node": node, "symbol": sympy.Symbol(name), "name": name,
                     "view": self.names[node], "base": self.names[node], "gather": node.ndim,
                     "other": "0.0"}
            operands.append(found)
            self.sizes.update(free_symbols(node.shape))  # the host may use its sizes
        return load_by_index(found["name"], f"{found['name']}_g", at, "mask", valid, fill)

    def exprs(self, members, operands, heavy_symbol=None, heavy=None):
        """sympy expressions for the elementwise members (a heavy node becomes a symbol)."""
        exprs = {}
        for m in members:
            if m is heavy:
                exprs[m] = heavy_symbol
                continue
            if OPS[m.op].kind != "elementwise":
                continue
            args = []
            for i in m.inputs:
                i = _const_under_views(i)  # a reshaped or broadcast constant is that constant
                if i in exprs:
                    args.append(exprs[i])
                elif is_const(i):
                    args.append(i.attr("value"))
                    self.sizes.update(s.name for s in i.attr("value").free_symbols)
                else:
                    args.append(self.operand(i, members, operands))
            exprs[m] = OPS[m.op].scalar(*args, **dict(m.attrs))
        return exprs

    def value(self, node, exprs, members, operands):
        if node in exprs:
            return exprs[node]
        if is_const(node):
            return node.attr("value")
        return self.operand(node, members, operands)


def _views_a_buffer(node, members):
    """Whether ``node`` is a view (or a chain of them) of a buffer the kernel reads: then
    the epilogue after a reduction can read it as well as the loop before it."""
    if not OPS[node.op].view:
        return False
    while contains(members, node) and OPS[node.op].view:
        node = node.inputs[0]
    return not contains(members, node)


def _device_names(groups, kernels):
    """Each kernel -> the name of its device kernel: ``<kernel>_kernel`` when it has one of
    its own, else (a device kernel several kernels launch) what the first of them computes,
    ``matmul_add_tanh_kernel``, numbered from 2 when two such names would be the same."""
    taken = {f"{k.name}_kernel" for k in kernels} | {f"update_{r}_kernel" for r in RULES}
    device_of = {}
    for group in groups:
        name = f"{group[0].kernel.name}_kernel"
        if len(group) > 1:
            story = re.sub(r"^k\d+_", "", group[0].kernel.name)
            name, n = f"{story}_kernel", 2
            while name in taken:
                name, n = f"{story}_{n}_kernel", n + 1
            taken.add(name)
        device_of.update((launch.kernel, name) for launch in group)
    return device_of


def _shared_by(users):
    """The comment over a device kernel several kernels launch (nothing for one)."""
    if len(users) < 2:
        return ""
    text = f"The device kernel of {', '.join(users)}: their code is the same."
    return textwrap.fill(text, 92, initial_indent="# ", subsequent_indent="# ") + "\n"


def _top(k):
    """The node the kernel computes: its root, or what a root reshape relabels."""
    root = k.root
    relabel = OPS[root.op].view == "relabel" and contains(k.members, root.inputs[0])
    return root.inputs[0] if relabel else root


def _out_args(k):
    return [f"{out_name(j)}=None" for j in range(len(k.outputs))]


class TritonEmitter:
    """Kernels, update rules and constants as Triton code (see ``module.py``); float32
    matmuls multiply at ``precision`` ("ieee", "tf32", "tf32x3"; float64 is always "ieee")."""

    backend = "triton"

    def __init__(self, dtype, precision="ieee"):
        self.dtype = dtype
        self.precision = "ieee" if dtype == "float64" else precision  # tf32 is float32-only
        self.float_type = "tl.float64" if dtype == "float64" else "tl.float32"
        self.float_ptr = "*fp64" if dtype == "float64" else "*fp32"

    @staticmethod
    def constant(value):
        return f"_rt.constant({float(value)!r}, DTYPE)"

    def pointer(self, node):
        return POINTER_TYPES.get(node.dtype, self.float_ptr)

    # -- the module's kernels: each device kernel once --------------------------------
    def kernels(self, writer):
        launches = [self.kernel(writer, k) for k in writer.kernels]
        groups = {}  # (skeleton, device code, pointer types) -> the launches that run it
        for launch in launches:
            key = (launch.template, launch.device("KERNEL"), tuple(launch.pointers.items()))
            groups.setdefault(key, []).append(launch)
        device_of = _device_names(groups.values(), writer.kernels)
        users = {}
        for k, name in device_of.items():
            users.setdefault(name, []).append(k.name)
        sources = []
        for launch in launches:
            name = device_of[launch.kernel]
            if users[name][0] == launch.kernel.name:  # the device kernel, before its first launch
                sources.append(_shared_by(users[name]) + launch.device(name))
            sources.append(launch.host(name))
        table = {x.kernel: {"device": device_of[x.kernel], "pointers": x.pointers,
                            **(x.sizes or {})} for x in launches}
        return KernelCode(sources, {x.kernel: x.args for x in launches}, table,
                          {"precision": self.precision, "n_devices": len(groups)})

    def kernel(self, writer, k):
        """The ``Launch`` of kernel ``k``."""
        if OPS[k.root.op].kind == "loss":
            return self._cross_entropy(writer, k)
        names, root, top = writer.names.of, k.root, _top(k)
        heavy = next((m for m in k.groups[0] if OPS[m.op].kind in ("contraction", "reduce")), None)
        reads = _Reads(names, set(free_symbols(root.shape)) | set(free_symbols(top.shape)))
        constants = None
        if k.rows:
            template, ctx, pointers = self._rows(k, reads)
            constants = {"constants": {"BLOCK_M": ctx["block_m"], "BLOCK_N": ctx["block_n"]},
                         "num_warps": ctx["num_warps"]}
        elif len(k.groups) > 1 and column_key(k.groups[0]) is not None:
            template, ctx, pointers = self._columns(k, reads)
            constants = {"constants": {"BLOCK_M": COLUMN_BLOCK[0], "BLOCK_N": COLUMN_BLOCK[1]}}
        elif heavy is not None and OPS[heavy.op].kind == "contraction":
            template, ctx, pointers = self._matmul(k, heavy, top, reads)
        elif heavy is not None:
            template, ctx, pointers = self._reduction(k, heavy, top, reads)
        else:
            template, ctx, pointers = self._elementwise(k, top, reads)
        args = [names[i] for i in k.inputs]
        args += [names[("sym", s)] for s in sorted(reads.sizes) if ("sym", s) in names]
        device_code = ctx["body"] + ctx.get("epilogue_body", []) + [  # and what rows and
            s["value"] for s in ctx.get("stores", []) + ctx.get("sums", [])]  # columns store
        scalars = [a for a in args if ("sym", a) in names
                   and any(re.search(rf"\b{a}\b", line) for line in device_code)]
        if any(OPS[m.op].kind == "random" for m in k.members):
            args.append("rng")
        context = dict(writer.header(k), out_shape=shape_code(root.shape), args=args + _out_args(k),
                       scalars=scalars, float_type=self.float_type, **ctx,
                       # the host's launch plans are keyed on these (runtime.tkernels.Plan)
                       tensors=args[:len(k.inputs)],
                       sizes=[a for a in args[len(k.inputs):] if a != "rng"])
        return Launch(k, template, context, args, pointers, constants)

    def _elementwise(self, k, top, reads):
        operands = Operands()
        dims = list(range(len(top.shape)))
        extra, host, body = [], [], []
        own = OPS[top.op].triton
        if own is not None:  # an op with Triton code of its own (a kernel to itself)

            def read(node, suffix="", at=None, valid=None, fill="0.0"):
                if at is None:
                    operand = reads.operand(node, k.members, operands, suffix)
                    return print_triton(operand, self.dtype)
                buffer, at = reads.under_views(node, k.members, at)
                return reads.gather(buffer, operands, at, valid, self._literal(fill))

            code = own(top, read, f"i{dims[-1]}" if dims else None)
            host += code.get("host", [])
            extra = code.get("extra", [])
            body += code["body"]
        else:
            exprs = reads.exprs(k.members, operands)
            value = reads.value(top, exprs, k.members, operands)
            text = print_triton(value, self.dtype)
            if not any(s.name.startswith("v") for s in sympy.sympify(value).free_symbols):
                text = f"tl.zeros([BLOCK], {self.float_type}) + ({text})"  # a number
            body.append(f"result = {text}")
        out_dtype = {"bool": "torch.bool", "int": "torch.int64"}.get(top.dtype, "DTYPE")
        ctx = dict(operands=operands, dims=dims, body=body, space=shape_code(top.shape),
                   indexed=bool(operands) or own is not None,
                   detail=f"elementwise over {fmt(top.shape)}", space_text=fmt(top.shape),
                   extra_args=extra, extra_values=extra, host_lines=host, out_dtype=out_dtype)
        return "triton/elementwise.py.jinja", ctx, {**self._pointers(operands),
                                                    "out_ptr": self.pointer(top)}

    def _matmul(self, k, mm, top, reads):
        main, operands = k.groups[0], Operands()
        (a_view, a_base, a_gather), (b_view, b_base, b_gather) = (
            self._operand(mm, p, main, reads) for p in (0, 1))
        exprs = reads.exprs(main, operands, sympy.Symbol("acc"), mm)
        value = reads.value(top, exprs, main, operands)
        colsum = None
        if len(k.groups) > 1:  # a bias gradient: the column sums of b (fusion.merge_siblings)
            colsum = {"name": out_name(1), "shape": shape_code(k.outputs[1].shape)}
            reads.sizes.update(free_symbols(k.outputs[1].shape))
        detail = f"matmul {fmt(mm.shape)} with epilogue" + ("; the column sums of b" if colsum else "")
        pointers = {"a_ptr": self.float_ptr, "b_ptr": self.float_ptr, **self._pointers(operands),
                    "out_ptr": self.pointer(top)}
        if colsum:
            pointers["colsum_ptr"] = self.pointer(k.outputs[1])
        return "triton/matmul.py.jinja", dict(
            operands=operands, body=[f"result = {print_triton(value, self.dtype)}"], colsum=colsum,
            a_view=a_view, b_view=b_view, bases=[a_base, b_base], a_gather=a_gather,
            b_gather=b_gather,
            acc_dtype=self.float_type,
            batch=[f"Z{i}" for i in range(mm.ndim - 2)], detail=detail), pointers

    def _operand(self, mm, position, members, reads):
        """``(host view, its buffer, None)`` of matmul operand ``position`` read from memory,
        or, when it is an op computed by index (``OpDef.by_index``, through views), ``(the
        buffer that op reads, the same, its device code)``: the skeleton computes the
        operand as it loads it (implicit GEMM)."""
        chain, under = operand_chain(mm, position, members)
        if not (contains(members, under) and OPS[under.op].by_index):
            op = Operands("ab"[position])
            reads.operand(mm.inputs[position], members, op, whole=True)
            return op[0]["view"], op[0]["base"], None
        side, (image,) = "ab"[position], under.inputs
        source = _Reads.under_views(image, members, [0] * image.ndim)[0]  # read through views
        index = operand_index(mm, position, chain)
        lines = [f"i{d} = {tile(axis, TILE[position])}" for d, axis in enumerate(index)]

        fills = set()

        def read(node, suffix="", at=None, valid=None, fill="0.0"):
            node, at = _Reads.under_views(node, members, at)
            fill = self._literal(fill)
            fills.add(fill)
            return load_by_index(side, f"s{side}_g", at, f"mask_{side}", valid, fill)

        lines += OPS[under.op].triton(under, read, None)["body"]
        if fills - {"0.0"}:  # a fill other than 0 (-inf, a pad value) stays off the tile's edge
            lines.append(f"{side} = tl.where(mask_{side}, result, 0.0)")
        else:
            lines.append(f"{side} = result")
        reads.sizes.update(free_symbols(mm.inputs[position].shape))
        what = f"{under.op} of {fmt(image.shape)}, as {fmt(mm.inputs[position].shape)}"
        return reads.names[source], reads.names[source], {
            "lines": lines, "ndim": source.ndim, "what": what,
            "shape": shape_code(mm.inputs[position].shape)}

    def _number(self, value):
        """A number as a scalar of the kernel's float type (a bare literal is float32)."""
        if number_value(value) is None:  # a gradc function of literals (Sigmoid(0))
            return f"(tl.zeros([], {self.float_type}) + {print_triton(value, self.dtype)})"
        value = number_value(value)
        code = repr(value) if math.isfinite(value) else f'float("{value}")'
        return f"tl.full([], {code}, {self.float_type})"

    def _literal(self, fill):
        """A gather's fill value as device code, exact in a float64 kernel (Triton reads a
        bare literal as float32)."""
        try:
            return print_triton(sympy.Float(float(fill)), self.dtype)
        except ValueError:  # float("inf") and such: exact already
            return fill

    def _reduction(self, k, red, top, reads):
        source_node = red.inputs[0]
        upstream, stack = set(), [source_node]
        while stack:
            n = stack.pop()
            if contains(k.members, n) and n not in upstream:
                upstream.add(n)
                stack.extend(n.inputs)
        operands, epilogue = Operands(), Operands("e")
        pro = reads.exprs([m for m in k.members if m in upstream], operands)
        v = reads.value(source_node, pro, k.members, operands)
        epi = reads.exprs([m for m in k.members if m not in upstream or _views_a_buffer(m, k.members)],
                          epilogue, sympy.Symbol("total"), red)
        out_value = reads.value(top, epi, k.members, epilogue)
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
        reads.sizes.update(free_symbols(S))
        # a whole-tensor reduction in one pass: split over programs, then finished by one
        split = len(OPS[red.op].triton_passes) == 1 and all(d == 1 for d in red.shape)
        return "triton/reduction.py.jinja", dict(
            operands=operands, epilogue=epilogue, dims=list(range(len(S))),
            out_dims=list(range(len(red.shape))), reduced=list(axes), index=index,
            passes=list(OPS[red.op].triton_passes),
            out_used=[d for d in range(len(red.shape)) if epilogue or f"o{d}" in index.values()],
            acc_dtype=self.float_type, body=[f"v = {print_triton(v, self.dtype)}"],
            epilogue_body=[f"result = {print_triton(out_value, self.dtype)}"], space=shape_code(S),
            space_text=fmt(S), out_text=fmt(red.shape), reduced_shape=shape_code(red.shape),
            split=split, detail=f"reduction of {fmt(S)} to {fmt(red.shape)}"
            + ("; a whole tensor: over many programs, then one adds theirs" if split else "")), \
            {**self._pointers(operands, epilogue), "out_ptr": self.pointer(top),
             **({"part_ptr": self.float_ptr} if split else {})}

    def _rows(self, k, reads):
        """A row-wise kernel: each program holds ``BLOCK_M`` whole rows of ``S``; members that
        several members read, reductions and stored members become temporaries ``t0``, ..."""
        S, depth = k.rows
        lead, n = S[:len(S) - depth], numel(S[len(S) - depth:])
        operands, exprs, body, temps, loaded = Operands(), {}, [], [], {}
        inside, used = set(k.members), {}
        for m in k.members:
            for i in m.inputs:
                used[i] = used.get(i, 0) + (i in inside)
        stored = set(k.outputs)

        def value(node, cls):
            """``node``'s value where a member of class ``cls`` reads it: its expression, a
            constant, or a buffer (or a view of one) loaded as that class needs it, whole rows
            or one value per row (a load for each class that reads it)."""
            if node in exprs:
                return exprs[node]
            base = node
            while contains(k.members, base) and OPS[base.op].view:
                base = base.inputs[0]
            if is_const(base):
                reads.sizes.update(s.name for s in base.attr("value").free_symbols)
                return base.attr("value")
            if (id(node), cls) not in loaded:
                name = f"{operands.prefix}{len(operands)}"
                operands.append({"node": node, "symbol": sympy.Symbol(name), "name": name,
                                 "view": reads.view(node, k.members),
                                 "base": reads.base(node, k.members),
                                 "other": "0" if node.dtype == "int" else "0.0"})
                operands[-1].update(self._row_operand(operands[-1], cls, S, lead))
                loaded[id(node), cls] = operands[-1]["symbol"]
            return loaded[id(node), cls]

        def temporary(m, lines_for):
            name = f"t{len(temps)}"
            temps.append(name)
            body.extend(lines_for(name))
            exprs[m] = sympy.Symbol(name)

        for m in k.members:
            opdef, cls = OPS[m.op], row_class(m.shape, k.rows)
            if opdef.kind == "reduce":
                v = print_triton(value(m.inputs[0], "full"), self.dtype)
                temporary(m, lambda name: opdef.triton_row(v, name))
            elif opdef.kind == "shape" and opdef.view:
                if m.inputs[0] in exprs:  # a relabel or broadcast of a row: the same values
                    exprs[m] = exprs[m.inputs[0]]
                # (a view of a buffer or a constant: loaded where it is read)
            elif opdef.triton is not None:  # positional: tril, triu

                def read(node, suffix="", at=None, valid=None, fill="0.0"):
                    return print_triton(value(node, "full"), self.dtype)

                code = opdef.triton(m, read, f"i{len(S) - 1}")
                temporary(m, lambda name: code["body"] + [f"{name} = result"])
            else:
                exprs[m] = opdef.scalar(*[value(i, cls) for i in m.inputs], **dict(m.attrs))
                if m in stored or used.get(m, 0) > 1:
                    text = print_triton(exprs[m], self.dtype)
                    if not sympy.sympify(exprs[m]).free_symbols:  # a number (p - p is 0): in
                        text = self._number(exprs[m])  # the kernel's type, not a float32
                    temporary(m, lambda name: [f"{name} = {text}"])
        stores = []
        for j, r in enumerate(k.outputs):
            full = row_class(r.shape, k.rows) in ("full", "flat")
            stored_value = value(r, "full" if full else row_class(r.shape, k.rows))
            text = print_triton(stored_value, self.dtype)
            if not sympy.sympify(stored_value).free_symbols:
                zeros = f"tl.zeros([BLOCK_M, {'BLOCK_N' if full else 1}], {self.float_type})"
                text = f"{zeros} + ({text})"
            dtype = {"bool": "torch.bool", "int": "torch.int64"}.get(r.dtype, "DTYPE")
            stores.append({"name": out_name(j), "value": text, "full": full,
                           "shape": shape_code(r.shape), "dtype": dtype})
        reads.sizes.update(free_symbols(S))
        block_n = 1 << (n - 1).bit_length()
        block_m = max(1, ROW_ELEMENTS // block_n)
        warps = max(4, block_m * block_n // (32 * ROW_PER_THREAD))
        rows_shape = lead + (1,) * depth
        m_code = " * ".join(f"shape[{d}]" for d in range(len(lead))) or "1"
        pointers = {**self._pointers(operands),
                    **{f"{out_name(j)}_ptr": self.pointer(r) for j, r in enumerate(k.outputs)}}
        return "triton/rows.py.jinja", dict(
            operands=operands, stores=stores, body=body, dims=list(range(len(S))),
            lead=list(range(len(lead))), along=list(range(len(lead), len(S))),
            space=shape_code(S), space_text=fmt(S), rows_shape=shape_code(rows_shape),
            m_code=m_code, n=n, block_n=block_n, block_m=block_m, num_warps=warps,
            detail=f"row-wise over {fmt(S)}: rows of {n}"), pointers

    def _columns(self, k, reads):
        """Column sums of one shape ``S`` over its leading axes (``fusion.column_key``), one
        per group, added in one pass over the rows: each program sums ``BLOCK_N`` columns."""
        S, axes = column_key(k.groups[0])
        operands, sums = Operands(), []
        for j, group in enumerate(k.groups):
            at = next(i for i, m in enumerate(group) if OPS[m.op].kind == "reduce")
            total, before = group[at], group[:at]
            exprs = reads.exprs(before, operands)
            value = reads.value(total.inputs[0], exprs, before, operands)
            sums.append({"name": out_name(j), "value": print_triton(value, self.dtype),
                         "shape": shape_code(group[-1].shape)})
            reads.sizes.update(free_symbols(group[-1].shape))
        reads.sizes.update(free_symbols(S))
        kept = list(range(len(axes), len(S)))
        return "triton/columns.py.jinja", dict(
            operands=operands, sums=sums, body=[r["value"] for r in sums],
            dims=list(range(len(S))), kept=kept, summed=list(axes), space=shape_code(S),
            space_text=fmt(S), m_code=" * ".join(f"shape[{d}]" for d in axes),
            n_code=" * ".join(f"shape[{d}]" for d in kept), acc_dtype=self.float_type,
            block_m=COLUMN_BLOCK[0], block_n=COLUMN_BLOCK[1],
            detail=f"{len(sums)} column sums of {fmt(S)} over axes {axes}"), \
            {**self._pointers(operands),
             **{f"{out_name(j)}_ptr": self.pointer(r) for j, r in enumerate(k.outputs)}}

    @staticmethod
    def _row_operand(o, cls, S, lead):
        """How a row-wise kernel loads operand ``o`` for a member of class ``cls``: whole rows
        (``full``: the host's view over ``shape``), or one value per row (over ``rows``)."""
        node_shape = o["node"].shape
        if cls == "lead":  # aligned with the rows' axes
            host = f"_rt.expand({o['view']}, {shape_code(lead)}).reshape(rows)"
            return {"host": host, "dims": list(range(len(lead))), "mask": "rmask"}
        trailing = tuple(node_shape)[max(0, len(node_shape) - (len(S) - len(lead))):]
        if cls == "full" and any(d != 1 for d in trailing):
            return {"host": f"_rt.expand({o['view']}, shape)", "dims": list(range(len(S))),
                    "mask": "mask"}
        return {"host": f"_rt.expand({o['view']}, rows)", "dims": list(range(len(lead))),
                "mask": "rmask"}

    def _pointers(self, *operand_lists):
        """Each operand's pointer parameter and its Triton type."""
        return {f"{o['name']}_ptr": self.pointer(o["node"]) for ops in operand_lists for o in ops}

    def _cross_entropy(self, writer, k):
        """The row-wise softmax cross-entropy: loss, gradient, or both from one read of the logits."""
        names = writer.names.of
        results = {OPS[r.op].result: out_name(j) for j, r in enumerate(k.outputs)}
        z, labels = k.root.inputs[:2]
        g_ptr, g_value = None, None
        grad = next((m for m in k.members if OPS[m.op].result == "grad"), None)
        if grad is not None:
            g = grad.inputs[2]
            if is_const(g):
                g_value = print_triton(g.attr("value"), self.dtype)
            else:
                g_ptr, g_value = names[g], "tl.load(g_ptr)"
        pointers = {"z_ptr": self.float_ptr, "k_ptr": "*i64"}
        pointers.update((p, self.float_ptr) for p, present in (
            ("g_ptr", g_ptr), ("loss_ptr", "loss" in results), ("dz_ptr", "grad" in results),
            ("acc_ptr", "accuracy" in results)) if present)
        smoothing = k.root.attr("label_smoothing", 0.0)  # the members agree on their options
        args = [names[i] for i in k.inputs]
        context = dict(writer.header(k), args=args + _out_args(k), z=names[z], k=names[labels],
                       leading=z.ndim != 2, ignore_index=k.root.attr("ignore_index"),
                       smoothing=print_triton(smoothing, self.dtype) if smoothing else None,
                       g_ptr=g_ptr, g_value=g_value, loss=results.get("loss"),
                       grad=results.get("grad"), accuracy=results.get("accuracy"),
                       detail=f"row-wise over {fmt(z.shape)} logits", float_type=self.float_type,
                       results=", ".join(results.values()))
        classes = z.shape[-1]  # the host's BLOCK_C follows from it (for compiling ahead of time)
        sizes = {"classes": classes} if isinstance(classes, int) else {}
        return Launch(k, "triton/cross_entropy.py.jinja", context, args, pointers, sizes)

    # -- optimizer rules -----------------------------------------------------------------
    def update(self, rule):
        stored = list(dict.fromkeys(target for target, _ in rule.assignments))
        assignments, scalars = _hoist_hyper(rule)
        used = set().union(*(e.free_symbols for _, e in assignments))
        direct = [h for h in rule.hyper if sympy.Symbol(h, real=True) in used]
        return {"function": f"update_{rule.name}", "hyper": list(rule.hyper),
                "source": render("triton/update.py.jinja", function=f"update_{rule.name}",
                                 hyper=list(rule.hyper), optimizer=rule.name, rule=list(rule.doc),
                                 state_names=list(rule.state), stored=stored,
                                 float_type=self.float_type, direct=direct,
                                 scalars=[(s, print_triton(e, "float64")) for s, e in scalars],
                                 assignments=[(t, print_triton(e)) for t, e in assignments])}


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
