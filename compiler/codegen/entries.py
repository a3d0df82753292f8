"""The entry points of a generated module, the same on both backends.

Each entry point reads the inputs and parameters its kernels need, reads the sizes it
passes from the inputs that hold them, calls its kernels in order and returns its
results: ``loss``, ``loss_and_grad``, ``predict``, ``evaluate`` and the minibatch loop
``train_epoch`` for training; ``jvp`` and ``hvp`` for derivatives.  ``args`` maps each
kernel to the arguments its call passes (from the backend's emitter).
"""
from compiler.codegen.names import Names, out_name
from compiler.codegen.templates import render
from compiler.ops.leaf import is_const
from compiler.ops.registry import OPS


def needed_kernels(writer, outputs):
    """The kernels that compute ``outputs``, in execution order."""
    need, stack = set(), [writer.owner[n] for n in outputs if n in writer.owner]
    while stack:
        k = stack.pop()
        if k in need:
            continue
        need.add(k)
        stack.extend(writer.owner[i] for i in k.inputs if i in writer.owner)
    return sorted(need, key=lambda k: k.index)


def value_of(writer, node):
    """The code of ``node``'s value inside an entry point: its name, or a constant."""
    if is_const(node):
        return writer.emitter.constant(node.attr("value"))
    return writer.names.of[node]


def _results(writer, k):
    """The names a kernel call assigns: ``t3`` or ``grad_dense0_W, grad_dense0_b``."""
    return ", ".join(writer.names.of[r] for r in k.outputs)


def _sizes(writer, kernels, args):
    """The shape symbols the calls of ``kernels`` pass, sorted."""
    return sorted({a for k in kernels for a in args[k] if ("sym", a) in writer.names.of})


def _holder(writer, symbol):
    """The input a shape symbol is read from, and the axis."""
    input_name, axis = writer.symbols[symbol]
    return next(x for x in writer.model.inputs if x.name == input_name), axis


def entry(writer, args, name, doc, outputs, result_fn):
    """``(source, input names)`` of the entry point ``name`` returning ``outputs``
    (a dict of nodes) as ``result_fn(value_of)`` writes them."""
    kernels = needed_kernels(writer, outputs.values())
    used = {}  # a dict: ordered, and nodes compare by identity
    for n in [i for k in kernels for i in k.inputs] + list(outputs.values()):
        if OPS[n.op].feed:
            used[n] = None
    sizes = [(s, *_holder(writer, s)) for s in _sizes(writer, kernels, args)]
    for _, holder, _ in sizes:  # a size no kernel's input gives (an hvp of a mean whose
        used[holder] = None     # value does not depend on the input): read from the input
    prologue = [f"{writer.names.of[leaf]} = {OPS[leaf.op].feed}[{leaf.name!r}]" for leaf in used]
    prologue += [f"{s} = {writer.names.of[holder]}.shape[{axis}]" for s, holder, axis in sizes]
    calls = [f"{_results(writer, k)} = {k.name}({', '.join(args[k])})" for k in kernels]
    signature = "params, batch, tangents, rng=None" if writer.kind == "derivatives" \
        else "params, batch, rng=None"
    source = render("entry.py.jinja", name=name, signature=signature, doc=doc,
                    prologue=prologue, calls=calls,
                    result=result_fn(lambda n: value_of(writer, n)))
    return source, tuple(x.name for x in writer.model.inputs if x in used)


def _array_dict(outputs, value, strip):
    items = ", ".join(f"{k[strip:]!r}: _rt.materialize({value(n)}, DTYPE)" for k, n in outputs.items())
    return f"{{{items}}}"


def _collect(found):
    """``(sources, {entry name: input names})`` of ``(name, (source, inputs))`` pairs."""
    return [source for _, (source, _) in found], {name: inputs for name, (_, inputs) in found}


def training(writer, args):
    """loss, loss_and_grad, predict, evaluate and train_epoch: ``(sources, entry inputs)``."""
    outs = writer.graph.outputs
    loss = {"loss": outs["loss"]}
    grads = {k: v for k, v in outs.items() if k.startswith("grad:")}
    # predict and evaluate run in evaluation mode (batch norm's running statistics)
    predicted = {k: outs.get(f"eval:{k}", v) for k, v in outs.items() if k in writer.model.outputs}
    metrics = {k: outs.get(f"eval:{k}", v) for k, v in outs.items() if k.startswith("metric:")}
    evaluated = {"loss": outs.get("eval:loss", outs["loss"])}

    def scalar(v):
        return f"float({v(loss['loss'])})"

    def grad_dict(v):
        return f"{scalar(v)}, {_array_dict(grads, v, 5)}"

    def metric_dict(v):
        items = "".join(f", {k[7:]!r}: float({v(n)})" for k, n in metrics.items())
        return f"{{'loss': float({v(evaluated['loss'])}){items}}}"

    sources, inputs = _collect([
        ("loss", entry(writer, args, "loss", "The loss (a float) for one batch.", loss, scalar)),
        ("loss_and_grad", entry(writer, args, "loss_and_grad",
                                "The loss and the gradient of every parameter.",
                                {**loss, **grads}, grad_dict)),
        ("predict", entry(writer, args, "predict", "The model's named outputs for one batch.",
                          predicted, lambda v: _array_dict(predicted, v, 0))),
        ("evaluate", entry(writer, args, "evaluate",
                           "The loss and every metric (floats) for one batch.",
                           {**evaluated, **metrics}, metric_dict)),
    ])
    return sources + [train_epoch(writer, args)], inputs


def train_epoch(writer, args):
    """The minibatch loop: forward, backward and update without leaving the module."""
    names, outs, model = writer.names.of, writer.graph.outputs, writer.model
    grads = [outs[f"grad:{p.name}"] for p in model.params]
    metrics = {k[7:]: v for k, v in outs.items() if k.startswith("metric:")}
    updated = {b: outs[f"update:{b.name}"] for b in model.updates}
    wanted = [outs["loss"], *grads, *metrics.values(), *updated.values()]
    kernels = needed_kernels(writer, wanted)
    read = {i: None for k in kernels for i in k.inputs}
    read.update((x, None) for x in wanted)
    used = [x for x in model.inputs if x in read]
    prologue = [f"{names[x]}_all = data[{x.name!r}]" for x in used]
    prologue += [f"{names[p]} = params[{p.name!r}]" for p in model.params + model.buffers
                 if p in read]
    slices = [f"{names[x]} = {names[x]}_all[start:start + batch_size]" for x in used]
    for s in _sizes(writer, kernels, args):
        holder, axis = _holder(writer, s)
        slices.append(f"{s} = {names[holder]}.shape[{axis}]")
    if any(a == "rng" for k in kernels for a in args[k]):
        slices.append("rng = None if seed is None else (seed, step)")
    prologue += [f"g_{names[p]} = grads[{p.name!r}]" for p in model.params]
    copied = [(p, g) for p, g in zip(model.params, grads) if writer.grad_of.get(g) is not p]
    read = {a for k in kernels for a in args[k]}  # (a gradient two parameters share is copied)
    read.update(value_of(writer, n) for n in [outs["loss"], *metrics.values(),
                                               *(g for _, g in copied), *updated.values()])
    calls = []
    for k in kernels:
        call_args = list(args[k])
        for j, result in enumerate(k.outputs):
            if result in writer.grad_of:
                call_args.append(f"{out_name(j)}=g_{names[writer.grad_of[result]]}")
        call = f"{k.name}({', '.join(call_args)})"
        if any(names[r] in read for r in k.outputs) or not all(
                r in writer.grad_of for r in k.outputs):
            call = f"{_results(writer, k)} = {call}"
        calls.append(call)  # a call that only writes gradients in place assigns nothing
    copies = [f"g_{names[p]}[...] = {value_of(writer, g)}" for p, g in copied]
    # the buffers' new values (running statistics), written once the step has read them
    buffers = [(f"params[{b.name!r}]", value_of(writer, v)) for b, v in updated.items()]
    length = f"{names[used[0]]}_all.shape[0]" if used else "1"
    sums = Names(names.values())  # each metric's running sum
    return render("train_epoch.py.jinja", prologue=prologue, slices=slices, calls=calls,
                  loss=value_of(writer, outs["loss"]), copies=copies, buffers=buffers,
                  length=length, device=writer.emitter.backend == "triton",
                  metrics=[{"name": k, "var": sums.add(k, f"sum_{k}"), "value": value_of(writer, v)}
                           for k, v in metrics.items()])


def derivatives(writer, args):
    """jvp (forward mode) and hvp (forward over reverse), both fed ``tangents``."""
    outs = writer.graph.outputs
    hvps = {k: v for k, v in outs.items() if k.startswith("hvp:")}
    return _collect([
        ("jvp", entry(writer, args, "jvp",
                      "The loss and its derivative along ``tangents`` (forward mode).",
                      {"loss": outs["loss"], "jvp": outs["jvp"]},
                      lambda v: f"float({v(outs['loss'])}), float({v(outs['jvp'])})")),
        ("hvp", entry(writer, args, "hvp", "The Hessian of the loss times ``tangents``, per parameter.",
                      hvps, lambda v: _array_dict(hvps, v, 4))),
    ])
