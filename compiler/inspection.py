"""What ``gradc inspect`` reports: each kernel's nodes, flops and bytes, compiled resources,
and the memory traffic of a training step fused against one kernel per op.

The traffic model counts each kernel reading its inputs once and writing its results
once; "one kernel per op" (what an eager framework does) counts every op of those
kernels that computes something doing the same on its own.  Both cover exactly the
kernels ``gradc inspect`` lists (forward, loss, backward, metric) plus the SGD update
(parameters and gradients read, parameters written); the other optimizers' update
kernels, also listed, would take its place.  With ``gpu="h100"`` each kernel
gets a roofline time, max(flops / peak, bytes / bandwidth): a model, not a measurement.
"""
import sympy

from compiler import cost
from compiler.ops.counting import tree_flops
from compiler.ops.leaf import is_const
from compiler.optim import RULES
from compiler.shapes import numel
from runtime.loader import load_module
from runtime.program import kernel_source

H100 = {"bytes_per_s": 3.35e12, "flops_per_s": 67e12}  # HBM3; fp32 dense (tf32: 495e12)
TF32_FLOPS = 495e12  # the H100 SXM's dense tf32 tensor-core rate


def traffic(model, dtype="float32", backend="triton"):
    """``(fused bytes, kernel count, unfused bytes, op count)`` of a training step: the
    kernels generated for ``backend`` and the SGD update, fused as generated or one kernel
    per op."""
    from compiler.pipeline import kernels_of, training_graph

    kernels = kernels_of(model, training_graph(model), backend)
    fused = sum((cost.kernel_cost(k, dtype).bytes for k in kernels), sympy.S.Zero)
    ops = list(dict.fromkeys(  # each op once, also one that several kernels recompute
        m for k in kernels for m in k.members if cost.node_cost(m).flops != 0))
    unfused = sympy.S.Zero
    for n in ops:
        unfused += sum((cost.nbytes(i, dtype) for i in n.inputs if not is_const(i)), sympy.S.Zero)
        unfused += cost.nbytes(n, dtype)
    n_params = sum((numel(p.shape) for p in model.params), sympy.S.Zero)
    _, update = update_cost(RULES["sgd"], n_params, dtype)
    return sympy.expand(fused + update), len(kernels) + 1, sympy.expand(unfused + update), len(ops) + 1


def update_cost(rule, n_params, dtype):
    """Flops (each assignment read as a tree, as written) and bytes of one update step over
    ``n_params`` floats: parameters, gradients and state read, targets written."""
    per_element = tree_flops([e for _, e in rule.assignments])
    stored = {t for t, _ in rule.assignments}
    arrays = 2 + len(rule.state) + len(stored)
    return per_element * n_params, arrays * cost.ITEMSIZE[dtype] * n_params


def _roofline_us(entry):
    return max(entry["flops"] / H100["flops_per_s"], entry["bytes"] / H100["bytes_per_s"]) * 1e6


def tf32_step_us(model, batch, dtype="float32"):
    """The H100 roofline model's time of one training step (the kernels ``inspect`` lists
    and the SGD update) at ``batch``, in microseconds: ``(ieee, tf32)``, the second with
    the matmul kernels' flops at the tf32 tensor-core rate (their bytes unchanged)."""
    from compiler.ops.registry import OPS
    from compiler.pipeline import kernels_of, training_graph

    times = [0.0, 0.0]
    kernels = [(cost.kernel_cost(k, dtype), any(OPS[m.op].kind == "contraction" for m in k.members))
               for k in kernels_of(model, training_graph(model))]
    n_params = sum((numel(p.shape) for p in model.params), sympy.S.Zero)
    kernels.append((cost.Estimates(*update_cost(RULES["sgd"], n_params, dtype)), False))
    for estimate, matmul in kernels:
        flops, moved = (float(cost.at_batch(x, batch)) for x in (estimate.flops, estimate.bytes))
        for j, peak in enumerate((H100["flops_per_s"], TF32_FLOPS if matmul else H100["flops_per_s"])):
            times[j] += max(flops / peak, moved / H100["bytes_per_s"]) * 1e6
    return tuple(times)


def tf32_note(model, batch, dtype, input_precision):
    """What ``gradc train --backend triton`` says once on a GPU with tf32 (compute
    capability 8.0 or later) when float32 matmuls are "ieee": None otherwise."""
    if dtype != "float32" or input_precision != "ieee":
        return None
    import torch

    if not torch.cuda.is_available() or torch.cuda.get_device_capability()[0] < 8:
        return None
    ieee, tf32 = tf32_step_us(model, batch, dtype)
    return (f"gradc: note: this GPU multiplies float32 matrices faster in tf32 "
            f"(--input-precision tf32, 10-bit mantissas); the H100 roofline model (gradc "
            f"inspect --gpu h100) puts a step at batch {batch} at {tf32:.1f} us instead of "
            f"{ieee:.1f} us ({ieee / tf32:.2f}x)")


def inspect_model(model, backend="numpy", dtype="float32", batch=None, aot=(), arch="sm_90",
                  gpu=None, input_precision="ieee"):
    """A dict: ``kernels`` (name, phase, nodes, flops, bytes, source[, resources]) and totals."""
    from compiler.pipeline import module_path

    path = module_path(model, "training", backend, dtype, input_precision)
    module = load_module(path)
    compiled = {}
    if aot:
        from compiler.aot import compile_in_subprocess

        want = tuple(dict.fromkeys(["resources", *aot]))
        compiled = compile_in_subprocess(path, arch, want)
    kernels = []
    for k in module.KERNELS:
        entry = {"name": k["name"], "phase": k["phase"], "nodes": list(k["nodes"]),
                 "boundary": k["boundary"], "merged": k["merged"],
                 "flops": cost.at_batch(k["flops"], batch),
                 "bytes": cost.at_batch(k["bytes"], batch),
                 "source": kernel_source(module, k["name"])}
        entry.update(compiled.get(k["name"], {}))
        if gpu and batch is not None:
            entry["roofline_us"] = _roofline_us(entry)
        kernels.append(entry)
    n_params = sum((numel(p.shape) for p in model.params), sympy.S.Zero)
    for rule in module.OPTIMIZERS:
        flops, moved = update_cost(RULES[rule], n_params, dtype)
        entry = {"name": f"update_{rule}", "phase": "update", "nodes": [],
                 "boundary": "one kernel over every parameter", "merged": "",
                 "flops": cost.at_batch(flops, batch), "bytes": cost.at_batch(moved, batch),
                 **compiled.get(f"update_{rule}", {})}
        if gpu and batch is not None:
            entry["roofline_us"] = _roofline_us(entry)
        kernels.append(entry)
    fused, n_kernels, unfused, n_ops = traffic(model, dtype, backend)
    return {"path": str(path), "kernels": kernels, "bytes_fused": cost.at_batch(fused, batch),
            "bytes_unfused": cost.at_batch(unfused, batch), "kernel_count": n_kernels, "op_count": n_ops}
