"""Data-parallel training on this machine: samples per second of the 784-256-256-10 MLP
(ReLU, softmax cross-entropy, float32, SGD) in 1 and 2 processes, each process held to
one BLAS thread, and the share of the step spent in the gradient's all_reduce.

Runs, alternating, median of ``--repeats``:
  1 process, batch 128                       (runtime.train, not distributed)
  2 processes, batch 64 each                 (the same 128 examples per step)
  2 processes, batch 128 each                (256 examples per step)

Each process trains ``--epochs`` epochs over 5,120 examples; an epoch's time is the
generated ``train_epoch`` call (minibatches, gradients, all_reduce, update), and the
all_reduce time is that of the flat gradient buffer's reductions inside it.  Then the
all_reduce alone, over buffers of 1 kB to the gradient's size, gives its latency and
bandwidth here; with them, a model (not a measurement) of the same step on N machines.

Run it:  python benchmarks/data_parallel.py [--repeats 3] [--epochs 3]
"""
import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
N_EXAMPLES = 5120


def model():
    from compiler import Input, Model, nn, ops as F

    x, k = Input("x", ("B", 784)), Input("k", ("B",), dtype="int64")
    net = nn.Chain(nn.Dense(784, 256, act=F.relu), nn.Dense(256, 256, act=F.relu),
                   nn.Dense(256, 10))
    return Model([x, k], {"logits": net(x)}, F.cross_entropy(net(x), k))


def worker(batch, epochs, distributed):
    """Train and print one JSON line: epoch seconds, all_reduce seconds, rows per epoch."""
    from compiler import compile
    from runtime import train

    prog = compile(model(), dtype="float32")
    rng = np.random.default_rng(0)
    data = {"x": rng.normal(size=(N_EXAMPLES, 784)).astype(np.float32),
            "k": rng.integers(0, 10, size=N_EXAMPLES)}
    epoch_seconds, reduce_seconds, grad_size = [], [0.0], sum(
        int(np.prod(shape)) for shape, _ in prog.param_specs.values()) + 1
    if distributed:
        import torch
        import torch.distributed as dist

        all_reduce = dist.all_reduce

        def timed_all_reduce(t, *args, **kwargs):  # the gradient buffer's reductions only
            start = time.perf_counter()
            result = all_reduce(t, *args, **kwargs)
            if t.numel() == grad_size:
                reduce_seconds[0] += time.perf_counter() - start
            return result

        dist.all_reduce = timed_all_reduce
    train_epoch = prog.module.train_epoch

    def timed_epoch(*args):
        reduce_seconds[0] = 0.0
        start = time.perf_counter()
        result = train_epoch(*args)
        epoch_seconds.append((time.perf_counter() - start, reduce_seconds[0]))
        return result

    prog.module.train_epoch = timed_epoch
    hist = train(prog, data, optimizer="sgd", lr=0.01, epochs=epochs + 1, batch_size=batch,
                 quiet=True, distributed=distributed)
    result = {"epochs": epoch_seconds[1:], "steps": len(hist.step_losses) // (epochs + 1)}
    if distributed and dist.get_rank() == 0:
        result["all_reduce"] = {}
    if distributed:  # the all_reduce alone, by buffer size (float32)
        sizes = [256, 4096, 65536, grad_size]
        for size in sizes:
            t = torch.zeros(size)
            for _ in range(5):
                all_reduce(t)
            times = []
            for _ in range(30):
                dist.barrier()
                start = time.perf_counter()
                all_reduce(t)
                times.append(time.perf_counter() - start)
            if dist.get_rank() == 0:
                result["all_reduce"][size] = statistics.median(times)
    if not distributed or dist.get_rank() == 0:
        print(json.dumps(result), flush=True)


def launch(nproc, batch, epochs):
    """Run the workers; rank 0's JSON result."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1",
           "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    command = [sys.executable, __file__, "--worker", "--batch", str(batch), "--epochs", str(epochs)]
    if nproc == 1:
        out = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
        return json.loads(out.strip().splitlines()[-1])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = [subprocess.Popen(command + ["--distributed"], stdout=subprocess.PIPE, text=True,
                              env={**env, "RANK": str(r), "LOCAL_RANK": str(r),
                                   "WORLD_SIZE": str(nproc), "MASTER_ADDR": "127.0.0.1",
                                   "MASTER_PORT": str(port)}) for r in range(nproc)]
    outs = [p.communicate()[0] for p in procs]
    if any(p.returncode for p in procs):
        raise SystemExit(f"a worker failed: {[p.returncode for p in procs]}")
    return json.loads(outs[0].strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--distributed", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=128, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.batch, args.epochs, args.distributed)

    configs = [("1 process, batch 128", 1, 128), ("2 processes, batch 64 each", 2, 64),
               ("2 processes, batch 128 each", 2, 128)]
    runs = {name: [] for name, _, _ in configs}
    loads = []
    for _ in range(args.repeats):
        for name, nproc, batch in configs:
            loads.append(os.getloadavg()[0])
            runs[name].append(launch(nproc, batch, args.epochs))
    print(f"784-256-256-10 MLP, float32, SGD, {N_EXAMPLES} examples; each process on one BLAS "
          f"thread; {os.cpu_count()} cores; load average {min(loads):.1f}-{max(loads):.1f}; "
          f"median of {args.repeats} runs of {args.epochs} epochs")
    print(f"{'':30s} {'samples/s':>10s} {'step':>9s} {'all_reduce':>11s} {'share':>6s} "
          f"{'vs 1':>6s}")
    base = None
    for name, nproc, batch in configs:
        epochs = [e for r in runs[name] for e in r["epochs"]]
        epoch = statistics.median(e for e, _ in epochs)
        reduce = statistics.median(r for _, r in epochs)
        steps = runs[name][0]["steps"]
        rate = steps * batch * nproc / epoch
        base = base or rate
        print(f"{name:30s} {rate:10,.0f} {1e3 * epoch / steps:7.2f}ms "
              f"{1e3 * reduce / steps:9.3f}ms {reduce / epoch:6.1%} {rate / base:5.2f}x")
    timings = {int(k): statistics.median(r["all_reduce"][k] for r in runs[configs[2][0]])
               for k in runs[configs[2][0]][0]["all_reduce"]}
    print("all_reduce alone, 2 processes (float32):")
    for size, t in timings.items():
        print(f"  {size:>9,} elements ({4 * size:>9,} bytes): {1e6 * t:8.1f} us, "
              f"{4 * size / t / 1e9:6.2f} GB/s")
    # Ring all-reduce on N machines: 2(N-1) steps, each sending S/N bytes: t = 2(N-1)*alpha +
    # 2(N-1)/N * S / beta.  With N = 2, t = 2*alpha + S/beta: a line fitted to the timings.
    large = max(timings)
    slope, intercept = np.polyfit([4 * k for k in timings], list(timings.values()), 1)
    alpha, beta = max(intercept, 0.0) / 2, 1 / slope
    compute = statistics.median(e - r for r in runs[configs[2][0]] for e, r in r["epochs"]) / \
        runs[configs[2][0]][0]["steps"]
    grad_bytes = 4 * large
    print(f"model (not a measurement): latency {1e6 * alpha:.0f} us, bandwidth "
          f"{beta / 1e9:.2f} GB/s (this machine's loopback); step without all_reduce "
          f"{1e3 * compute:.2f} ms at batch 128")
    for n in (2, 4, 8, 16):
        t = 2 * (n - 1) * alpha + 2 * (n - 1) / n * grad_bytes / beta
        print(f"  {n:2d} machines: all_reduce {1e3 * t:6.2f} ms, share {t / (compute + t):5.1%}, "
              f"{n * 128 / (compute + t):9,.0f} samples/s ({n * 128 / (compute + t) / base:.1f}x)")


if __name__ == "__main__":
    main()
