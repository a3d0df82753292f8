"""Compile time against graph size: chains of 100, 1,000 and 10,000 nodes, and a 50-layer MLP.

Each compile runs in a fresh process with an empty cache (imports not counted), so
sympy's caches start cold as they would for a user.

Run it:  python benchmarks/compile_scale.py
"""
import os
import subprocess
import sys
import tempfile

SCRIPT = """
import time
from compiler import Input, Model, Param, compile, nn, ops as F
from compiler.graph import toposort
kind, size = {kind!r}, {size}
if kind == "chain":
    x, w = Input("x", ("B",)), Param("w", ())
    h = x
    for i in range(int(size / 1.5)):  # 1.5 new nodes per step: the 0.001*w term is shared
        h = F.tanh(h * w) if i % 2 else h + 0.001 * w
    model = Model([x], loss=F.mean(h ** 2))
else:
    x, y = Input("x", ("B", 32)), Input("y", ("B", 1))
    net = nn.Chain(*[nn.Dense(32, 32, act=F.tanh) for _ in range(size - 1)], nn.Dense(32, 1))
    model = Model([x, y], loss=F.mse(net(x), y))
nodes = len(toposort([model.loss]))
t = time.perf_counter()
prog = compile(model)
print(nodes, time.perf_counter() - t, len(prog.kernels))
"""


def run(kind, size):
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "GRADC_CACHE_DIR": cache}
        out = subprocess.run([sys.executable, "-c", SCRIPT.format(kind=kind, size=size)], env=env,
                             check=True, capture_output=True, text=True).stdout.split()
    return int(out[0]), float(out[1]), int(out[2])


def main():
    print(f"{'graph':<26} {'forward nodes':>14} {'kernels':>8} {'compile':>10} {'per node':>10}")
    for kind, size, label in (("chain", 100, "chain of 100 nodes"), ("chain", 1000, "chain of 1,000"),
                              ("chain", 10000, "chain of 10,000"), ("mlp", 50, "MLP, 50 layers of 32")):
        nodes, seconds, kernels = run(kind, size)
        print(f"{label:<26} {nodes:>14,} {kernels:>8,} {seconds:>9.2f}s {seconds / nodes * 1e3:>8.2f}ms")


if __name__ == "__main__":
    main()
