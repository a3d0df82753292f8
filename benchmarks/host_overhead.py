"""gradc's own host work per Triton training step, with every kernel launch stubbed.

The 784-256-256-10 ReLU MLP (softmax cross-entropy, Adam, batch 128, float32) is compiled
for the Triton backend and trained by ``runtime.train`` with Triton's launch call replaced
by one that returns at once (``JITFunction.run`` and ``Autotuner.run``): what is left is
the Python that gradc itself runs around the launches (the generated host wrappers, the
``train_epoch`` loop, the update's hyperparameters, the runtime's per-step work).  Triton
is imported without ``TRITON_INTERPRET``, so the kernels are real ``@triton.jit``
functions; tensors are CPU torch tensors (no GPU is needed, and none is used), so a
device-to-host read is a memory read here where on a GPU it would wait for the device.

The time per step is the slope between two runs over the same data (``STEPS``
minibatches per epoch, in order: no shuffling, whose gather a GPU does on the device),
of ``FEW`` and ``MANY`` epochs, so the one-off work (checking the data, the buffers, the
initial loss) cancels out and what an epoch costs stays in; the median of ``--repeats``.

Run it:  python benchmarks/host_overhead.py [--repeats 7] [--profile]
"""
import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.pop("TRITON_INTERPRET", None)  # real @triton.jit kernels, whose launch is stubbed
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

STEPS, FEW, MANY = 100, 1, 5  # minibatches per epoch; epochs of the two runs timed


def model():
    from compiler import Input, Model, nn, ops as F

    x, k = Input("x", ("B", 784)), Input("k", ("B",), dtype="int64")
    net = nn.Chain(nn.Dense(784, 256, act=F.relu), nn.Dense(256, 256, act=F.relu),
                   nn.Dense(256, 10))
    return Model([x, k], {"logits": net(x)}, F.cross_entropy(net(x), k))


def stub_launches():
    """Triton's launch call returns at once: no kernel is compiled or run."""
    from triton.runtime.autotuner import Autotuner
    from triton.runtime.jit import JITFunction

    def launch(self, *args, **kwargs):
        return None

    JITFunction.run = launch
    Autotuner.run = launch


def program():
    """The MLP's Triton Program, loaded as on a GPU (its module written by the compiler)."""
    from compiler.pipeline import module_path
    from runtime import tkernels
    from runtime.program import Program

    path = module_path(model(), "training", "triton", "float32")
    # nothing runs, so a result is whatever its memory held: a 0-d result (the loss, a
    # metric) starts at zero, so that no garbage NaN stops training
    empty = tkernels.output

    def output(out, shape, dtype):
        return tkernels.zeros(None, shape, dtype) if out is None and shape == () \
            else empty(out, shape, dtype)

    tkernels.output = output
    return Program.load(path)


def run(prog, data, epochs):
    from runtime import train

    start = time.perf_counter()
    train(prog, data, optimizer="adam", epochs=epochs, batch_size=128, shuffle=False, quiet=True)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--profile", action="store_true", help="cProfile one long run instead")
    args = parser.parse_args()
    stub_launches()
    prog = program()
    rng = np.random.default_rng(0)
    data = {"x": rng.normal(size=(128 * STEPS, 784)).astype(np.float32),
            "k": rng.integers(0, 10, size=128 * STEPS)}
    run(prog, data, FEW)  # warm up (imports, first allocations)
    if args.profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        profiler.runcall(run, prog, data, MANY)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
        return
    per_step = []
    for _ in range(args.repeats):
        few, many = run(prog, data, FEW), run(prog, data, MANY)
        per_step.append((many - few) / ((MANY - FEW) * STEPS) * 1e6)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"784-256-256-10 MLP, Adam, batch 128, float32, Triton launches stubbed: "
          f"{statistics.median(per_step):.1f} us/step of gradc host work (median of "
          f"{args.repeats}; min {min(per_step):.1f}, max {max(per_step):.1f}; "
          f"load average {load:.2f})")


if __name__ == "__main__":
    main()
