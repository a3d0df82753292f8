"""The Triton backend on a real GPU, checked in a few minutes by whoever has one.

Run from the repository root on a machine with a CUDA GPU:

    python benchmarks/gpu_check.py

1. every example model file, Triton against numpy, float32 and float64, at batch sizes
   1, 3, 32 and 1024: the loss, every gradient and the predictions;
2. two epochs of training on each backend from the same parameters: the losses and the
   final parameters;
3. the cross-entropy loss and accuracy are bitwise repeatable (the same bits 20 times);
4. the 784-256-256-10 MLP's training step at batch 128 (Adam): the first epoch's time
   (compiling and autotuning included), microseconds per step after it, and the GPU's busy
   time per step from ``torch.profiler``, with ``input_precision`` "ieee" and "tf32";
5. the same with ``GRADC_CUDA_GRAPH=1`` (the step replayed from a CUDA graph): the same
   losses and parameters as without it over two epochs, and its microseconds per step;
6. what the approximate instructions cost (``ex2.approx``, ``sqrt.approx``, FMA
   contraction: README, "Precision"): each example's float32 loss and gradients, Triton
   and numpy, against float64 numpy.

``python benchmarks/gpu_check.py --ptx`` (no GPU needed) counts those instructions in the
PTX of every example's float32 kernels compiled ahead of time for sm_90.

Without a GPU it says so in one line, runs parts 1 to 3 in Triton's CPU interpreter at
small sizes (batch sizes 1 and 3, a few examples), and exits 0.  It prints one line per
check and exits 1 if any fails.
"""
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

GPU = None  # decided before triton is imported: the interpreter must be chosen first


def choose_device():
    global GPU
    import torch

    GPU = torch.cuda.is_available()
    if not GPU:
        os.environ["TRITON_INTERPRET"] = "1"
        print("gpu_check: no CUDA GPU here; running the correctness checks in Triton's CPU "
              "interpreter at small sizes, and no timings")


import numpy as np  # noqa: E402

TOLERANCE = {"float32": 2e-4, "float64": 1e-9}  # relative, of the largest element


def examples():
    """Each example model file (those defining ``model = ...`` at the top level)."""
    found = []
    for path in sorted((ROOT / "examples").glob("*.py")):
        if "\nmodel = " in path.read_text():
            found.append(path)
    return found if GPU else [p for p in found if p.stem in ("seed_regression", "digits",
                                                              "cnn_digits")]


def relative(a, b):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    scale = max(np.abs(a).max(initial=0), np.abs(b).max(initial=0), 1e-30)
    return float(np.abs(a - b).max(initial=0) / scale)


def batch_of(prog, data, size, seed=0):
    n = len(next(iter(data.values())))
    rows = np.random.default_rng(seed).integers(0, n, size=size)
    return {k: v[rows] for k, v in data.items()}


def compare_backends(path, dtype, sizes, report):
    """Part 1: loss, gradients and predictions of both backends on the same batches."""
    from compiler import compile, modelfile

    ns = modelfile.load(path)
    model = ns["model"]
    data = modelfile.load_data(ns, path, compile(model, dtype=dtype).inputs)
    ref, tri = compile(model, dtype=dtype), compile(model, backend="triton", dtype=dtype)
    params = ref.init_params(0)
    for size in sizes:
        batch = batch_of(ref, data, size)
        (l1, g1), (l2, g2) = ref.loss_and_grad(params, batch), tri.loss_and_grad(params, batch)
        worst = max([relative(l1, l2)] + [relative(g1[k], g2[k]) for k in g1])
        if ref.outputs:
            p1, p2 = ref.predict(params, batch), tri.predict(params, batch)
            worst = max([worst] + [relative(p1[k], p2[k]) for k in p1])
        report(f"{path.stem} {dtype} batch {size}: largest relative difference {worst:.1e}",
               worst <= TOLERANCE[dtype])
    return ns, ref, tri, data, params


def compare_training(name, ns, ref, tri, data, params, dtype, report):
    """Part 2: two epochs on each backend from the same parameters."""
    from runtime import train

    settings = {**{"optimizer": "sgd", "batch_size": 32}, **(ns.get("training") or {})}
    settings = {k: v for k, v in settings.items() if k in ("optimizer", "lr", "batch_size")}
    if not GPU:
        data = {k: v[:16] for k, v in data.items()}
    h1 = train(ref, data, epochs=2, params=params, quiet=True, **settings)
    h2 = train(tri, data, epochs=2, params=params, quiet=True, **settings)
    losses = relative(h1.step_losses, h2.step_losses)
    weights = max(relative(h1.params[k], h2.params[k]) for k in h1.params)
    limit = 100 * TOLERANCE[dtype]  # differences grow over the steps
    report(f"{name} {dtype} two epochs: losses {losses:.1e}, parameters {weights:.1e}",
           losses <= limit and weights <= limit)


def repeatable(report):
    """Part 3: the cross-entropy loss and accuracy give the same bits every run."""
    from compiler import Input, Model, compile, nn, ops as F

    x, k = Input("x", ("B", 64)), Input("k", ("B",), dtype="int64")
    net = nn.Chain(nn.Dense(64, 128, act=F.relu), nn.Dense(128, 10))
    prog = compile(Model([x, k], {"logits": net(x)}, F.cross_entropy(net(x), k)),
                   backend="triton")
    rng = np.random.default_rng(0)
    n = 4096 if GPU else 64
    batch = {"x": rng.normal(size=(n, 64)), "k": rng.integers(0, 10, size=n)}
    params = prog.init_params(0)
    runs = {tuple(np.float64(v).tobytes() for v in prog.evaluate(params, batch).values())
            for _ in range(20)}
    report(f"cross-entropy loss and accuracy over {n} rows: {len(runs)} distinct result(s) "
           "in 20 runs", len(runs) == 1)


def timings():
    """Part 4: the 784-256-256-10 MLP's training step on the GPU."""
    import torch

    from compiler import Input, Model, compile, nn, ops as F
    from runtime import train

    x, k = Input("x", ("B", 784)), Input("k", ("B",), dtype="int64")
    net = nn.Chain(nn.Dense(784, 256, act=F.relu), nn.Dense(256, 256, act=F.relu),
                   nn.Dense(256, 10))
    model = Model([x, k], {"logits": net(x)}, F.cross_entropy(net(x), k))
    rng = np.random.default_rng(0)
    data = {"x": rng.normal(size=(128 * 200, 784)).astype(np.float32),
            "k": rng.integers(0, 10, size=128 * 200)}
    for precision in ("ieee", "tf32"):
        prog = compile(model, backend="triton", input_precision=precision)
        start = time.perf_counter()
        train(prog, data, optimizer="adam", epochs=1, batch_size=128, quiet=True)
        torch.cuda.synchronize()
        first = time.perf_counter() - start
        start = time.perf_counter()
        train(prog, data, optimizer="adam", epochs=1, batch_size=128, quiet=True)
        torch.cuda.synchronize()
        per_step = (time.perf_counter() - start) / 200 * 1e6
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
            train(prog, data, optimizer="adam", epochs=1, batch_size=128, quiet=True)
            torch.cuda.synchronize()
        busy = sum(e.device_time_total for e in prof.key_averages()) / 200
        print(f"784-256-256-10, batch 128, Adam, {precision}: first epoch {first:.2f} s, "
              f"{per_step:.0f} us/step, GPU busy {busy:.0f} us/step")
    return prog, data


def cuda_graph(prog, data, report):
    """Part 5: GRADC_CUDA_GRAPH=1 (each full minibatch's step replayed from a CUDA graph):
    the same losses and parameters as without it, and its time per step."""
    import torch

    from runtime import train

    plain = train(prog, data, optimizer="adam", epochs=2, batch_size=128, quiet=True)
    os.environ["GRADC_CUDA_GRAPH"] = "1"
    try:
        graphed = train(prog, data, optimizer="adam", epochs=2, batch_size=128, quiet=True)
        start = time.perf_counter()
        train(prog, data, optimizer="adam", epochs=1, batch_size=128, quiet=True)
        torch.cuda.synchronize()
        per_step = (time.perf_counter() - start) / 200 * 1e6
    finally:
        del os.environ["GRADC_CUDA_GRAPH"]
    same = plain.step_losses == graphed.step_losses and all(
        np.array_equal(plain.params[k], graphed.params[k]) for k in plain.params)
    report(f"CUDA graph: the same losses and parameters over 2 epochs; {per_step:.0f} us/step", same)


def precision(path, report):
    """Part 6: what the approximate instructions cost: float32 Triton and float32 numpy,
    each against float64 numpy (loss and gradients, batch 32), on one example."""
    from compiler import compile, modelfile

    ns = modelfile.load(path)
    exact = compile(ns["model"], dtype="float64")
    data = modelfile.load_data(ns, path, exact.inputs)
    params = exact.init_params(0)
    batch = batch_of(exact, data, 32)
    truth = exact.loss_and_grad(params, batch)
    errors = []
    for prog in (compile(ns["model"], dtype="float32"),
                 compile(ns["model"], backend="triton", dtype="float32")):
        loss, grads = prog.loss_and_grad(params, batch)
        errors.append(max([relative(loss, truth[0])] + [relative(grads[k], truth[1][k]) for k in grads]))
    report(f"{path.stem} float32 against float64 numpy: numpy {errors[0]:.1e}, Triton "
           f"{errors[1]:.1e}", errors[1] <= max(10 * errors[0], TOLERANCE["float32"]))


APPROXIMATE = {  # PTX instruction -> what it is (its error bound: PTX ISA 8.x, "Floating-point instructions")
    "ex2.approx": "2^x, max rel. error 2^-22 (f32; ftz: subnormals flushed)",
    "lg2.approx": "log2(x), max abs. error 2^-22 in [0.5, 2], rel. 2^-22 elsewhere",
    "sqrt.approx": "sqrt(x), max rel. error 2^-23 (about 1 ulp)",
    "rsqrt.approx": "1/sqrt(x), max rel. error 2^-22.9",
    "rcp.approx": "1/x, max rel. error 2^-23",
    "div.full": "x/y, max error 2 ulp (the approximate division)",
    "sin.approx": "sin(x), max abs. error 2^-20.9 in [-pi, pi]",
    "cos.approx": "cos(x), max abs. error 2^-20.9 in [-pi, pi]",
    "tanh.approx": "tanh(x), max rel. error 2^-10.987",
    "fma.rn.f32": "a*b + c rounded once (FMA contraction: not numpy's two roundings)",
}


def approximate_instructions(arch="sm_90"):
    """How often each approximate (or contracted) instruction appears in the PTX of every
    example's float32 kernels compiled ahead of time (no GPU needed): one line per example."""
    import re

    from compiler import modelfile
    from compiler.aot import compile_in_subprocess
    from compiler.pipeline import module_path

    paths = [p for p in sorted((ROOT / "examples").glob("*.py")) if "\nmodel = " in p.read_text()]
    print("example: " + ", ".join(APPROXIMATE))
    for path in paths:
        model = modelfile.load(path)["model"]
        compiled = compile_in_subprocess(module_path(model, "training", "triton", "float32"),
                                         arch, ("ptx",))
        counts = {op: sum(len(re.findall(rf"\b{re.escape(op)}\b", k["ptx"]))
                          for k in compiled.values()) for op in APPROXIMATE}
        print(f"{path.stem}: " + ", ".join(str(counts[op]) for op in APPROXIMATE))


def main():
    if "--ptx" in sys.argv:  # the approximate instructions in the examples' PTX (no GPU needed)
        approximate_instructions()
        return 0
    choose_device()
    failures = []

    def report(line, ok):
        print(("ok    " if ok else "FAIL  ") + line, flush=True)
        if not ok:
            failures.append(line)

    sizes = (1, 3, 32, 1024) if GPU else (1, 3)
    for path in examples():
        for dtype in ("float32", "float64"):
            ns, ref, tri, data, params = compare_backends(path, dtype, sizes, report)
            compare_training(path.stem, ns, ref, tri, data, params, dtype, report)
    repeatable(report)
    if GPU:
        prog, data = timings()
        cuda_graph(prog, data, report)
        for path in examples():
            precision(path, report)
    print(f"gpu_check: {len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
