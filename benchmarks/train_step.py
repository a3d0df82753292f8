"""One SGD training step, four ways, on the CPU: gradc (numpy backend) vs hand-written
numpy vs PyTorch eager vs JAX jit.

Workloads (float32):
  W1  1-32-32-1 tanh MLP, MSE, batch 1     (the seed's Flux example)
  W2  the same at batch 256
  W3  784-256-256-10 ReLU MLP, softmax cross-entropy, batch 128

Each system runs the same number of SGD steps over the same data in the same order;
systems alternate, each repeat is timed, the median is reported with its ratio to the
fastest other system.  The sgemm floor is the step's matmul flops divided by the rate
of one large numpy matmul measured in this run; "numpy BLAS only" is the same matmuls
and the update with nothing else, the floor of any step whose matmuls numpy runs.
Also: W3's cold compile time and a cache hit.

Run it:  python benchmarks/train_step.py [--repeats 5]
"""
import argparse
import os
import statistics
import tempfile
import time

import numpy as np

from compiler import Input, Model, compile, nn, ops as F
from compiler.cost import matmul_flops
from compiler.flops import reverse_mode_graph
from compiler.shapes import symbol
from runtime import train

LR = 1e-3


def workloads():
    """Each workload: 10 epochs over its data (runtime.train's one-off setup, an
    evaluation of the initial loss, is a tenth of an epoch's forward passes)."""
    rng = np.random.default_rng(0)
    x1 = rng.uniform(-1.5, 1.5, size=(256 * 10, 1)).astype(np.float32)
    mlp = {"x": x1, "y": (2 * np.sin(3 * x1) + x1).astype(np.float32)}
    x3 = rng.normal(size=(128 * 10, 784)).astype(np.float32)
    cls = {"x": x3, "k": rng.integers(0, 10, size=128 * 10)}
    return {
        "W1": dict(kind="tanh", sizes=(1, 32, 32, 1), batch=1,
                   data={k: v[:200] for k, v in mlp.items()}, steps=2000),
        "W2": dict(kind="tanh", sizes=(1, 32, 32, 1), batch=256, data=mlp, steps=100),
        "W3": dict(kind="relu", sizes=(784, 256, 256, 10), batch=128, data=cls, steps=100),
    }


def gradc_model(w):
    sizes = w["sizes"]
    x = Input("x", ("B", sizes[0]))
    layers = [nn.Dense(a, b, act=w["kind"] if i < len(sizes) - 2 else None)
              for i, (a, b) in enumerate(zip(sizes, sizes[1:]))]
    net = nn.Chain(*layers)
    if w["kind"] == "tanh":
        y = Input("y", ("B", 1))
        return Model([x, y], {"y_hat": net(x)}, F.mse(net(x), y))
    k = Input("k", ("B",), dtype="int64")
    return Model([x, k], {"logits": net(x)}, F.cross_entropy(net(x), k))


def init(sizes, seed=0):
    rng = np.random.default_rng(seed)
    params = []
    for a, b in zip(sizes, sizes[1:]):
        bound = np.sqrt(6 / (a + b))
        params.append((rng.uniform(-bound, bound, (a, b)).astype(np.float32), np.zeros(b, np.float32)))
    return params


# -- the systems ---------------------------------------------------------------------
def run_gradc(w, prog, params):
    start = {f"dense{i}.{n}": v.copy() for i, (W, b) in enumerate(params)
             for n, v in (("W", W), ("b", b))}
    epochs = w["steps"] * w["batch"] // len(next(iter(w["data"].values())))
    t = time.perf_counter()
    train(prog, w["data"], optimizer="sgd", lr=LR, epochs=max(epochs, 1), batch_size=w["batch"],
          shuffle=False, params=start, quiet=True)
    return time.perf_counter() - t


def run_numpy(w, params):
    """A careful hand-written numpy step: forward, backward, in-place SGD."""
    Ws = [W.copy() for W, _ in params]
    bs = [b.copy() for _, b in params]
    xs, n = w["data"]["x"], len(w["data"]["x"])
    target = w["data"]["y"] if w["kind"] == "tanh" else w["data"]["k"]
    B, L = w["batch"], len(Ws)
    t = time.perf_counter()
    for step in range(w["steps"]):
        s = (step * B) % n
        h, hs = xs[s:s + B], []
        for i in range(L):
            hs.append(h)
            z = h @ Ws[i] + bs[i]
            h = z if i == L - 1 else (np.tanh(z) if w["kind"] == "tanh" else np.maximum(z, 0))
        if w["kind"] == "tanh":
            g = (2.0 / h.size) * (h - target[s:s + B])
        else:
            e = np.exp(h - h.max(axis=1, keepdims=True))
            g = e / e.sum(axis=1, keepdims=True)
            g[np.arange(len(g)), target[s:s + B]] -= 1
            g /= len(g)
        for i in reversed(range(L)):
            gW, gb = hs[i].T @ g, g.sum(axis=0)
            if i:
                g = g @ Ws[i].T
                g *= (1 - hs[i] ** 2) if w["kind"] == "tanh" else (hs[i] > 0)
            Ws[i] -= LR * gW
            bs[i] -= LR * gb
    return time.perf_counter() - t


def run_blas_only(w, params):
    """What any step that calls numpy for its matmuls and its update costs at least: the
    same matmuls (forward, input and weight gradients, into preallocated buffers) and
    ``W -= lr * dW``, with no activation, loss, bias or bookkeeping."""
    Ws = [W.copy() for W, _ in params]
    xs, n = w["data"]["x"], len(w["data"]["x"])
    B, L = w["batch"], len(Ws)
    hs = [np.empty((B, W.shape[1]), np.float32) for W in Ws]
    gs = [np.empty((B, W.shape[0]), np.float32) for W in Ws]
    gWs = [np.empty_like(W) for W in Ws]
    t = time.perf_counter()
    for step in range(w["steps"]):
        s = (step * B) % n
        h = xs[s:s + B]
        ins = []
        for i in range(L):
            ins.append(h)
            h = np.matmul(h, Ws[i], out=hs[i])
        g = h
        for i in reversed(range(L)):
            np.matmul(ins[i].T, g, out=gWs[i])
            if i:
                g = np.matmul(g, Ws[i].T, out=gs[i])
        for W, gW in zip(Ws, gWs):
            W -= LR * gW
    return time.perf_counter() - t


def run_torch(w, params):
    import torch

    Ws = [torch.tensor(W, requires_grad=True) for W, _ in params]
    bs = [torch.tensor(b, requires_grad=True) for _, b in params]
    opt = torch.optim.SGD(Ws + bs, lr=LR)
    xs = torch.tensor(w["data"]["x"])
    target = torch.tensor(w["data"]["y"] if w["kind"] == "tanh" else w["data"]["k"])
    n, B, L = len(xs), w["batch"], len(Ws)
    act = torch.tanh if w["kind"] == "tanh" else torch.relu
    t = time.perf_counter()
    for step in range(w["steps"]):
        s = (step * B) % n
        h = xs[s:s + B]
        for i in range(L):
            h = h @ Ws[i] + bs[i]
            h = act(h) if i < L - 1 else h
        if w["kind"] == "tanh":
            loss = torch.mean((h - target[s:s + B]) ** 2)
        else:
            loss = torch.nn.functional.cross_entropy(h, target[s:s + B])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return time.perf_counter() - t


def jax_step(w):
    import jax
    import jax.numpy as jnp

    act = jnp.tanh if w["kind"] == "tanh" else jax.nn.relu

    def loss(params, x, t):
        h = x
        for i, (W, b) in enumerate(params):
            h = h @ W + b
            h = act(h) if i < len(params) - 1 else h
        if w["kind"] == "tanh":
            return jnp.mean((h - t) ** 2)
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(h), t[:, None], axis=1))

    @jax.jit
    def step(params, x, t):
        g = jax.grad(loss)(params, x, t)
        return jax.tree_util.tree_map(lambda p, d: p - LR * d, params, g)

    return step


def run_jax(w, params, step):
    import jax
    import jax.numpy as jnp

    ps = [(jnp.asarray(W), jnp.asarray(b)) for W, b in params]
    xs = jnp.asarray(w["data"]["x"])
    target = jnp.asarray(w["data"]["y"] if w["kind"] == "tanh" else w["data"]["k"])
    n, B = len(xs), w["batch"]
    batches = [(xs[s:s + B], target[s:s + B]) for s in ((i * B) % n for i in range(w["steps"]))]
    ps = step(ps, *batches[0])  # compile outside the timing
    jax.block_until_ready(ps)
    t = time.perf_counter()
    for x, y in batches:
        ps = step(ps, x, y)
    jax.block_until_ready(ps)
    return time.perf_counter() - t


def sgemm_rate():
    a = np.random.default_rng(0).normal(size=(1024, 1024)).astype(np.float32)
    a @ a
    times = []
    for _ in range(5):
        t = time.perf_counter()
        a @ a
        times.append(time.perf_counter() - t)
    return 2 * 1024 ** 3 / min(times)


COMPILE_SCRIPT = """
import sys, time
sys.path.insert(0, {here!r})
from train_step import compile, gradc_model, workloads
model = gradc_model(workloads()["W3"])
t = time.perf_counter(); compile(model); cold = time.perf_counter() - t
print(cold)
"""


def compile_times():
    """W3's compile in a fresh process with an empty cache (imports not counted), then a
    cache hit in another fresh process."""
    import subprocess
    import sys

    here = os.path.dirname(os.path.abspath(__file__))
    script = COMPILE_SCRIPT.format(here=here)
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "GRADC_CACHE_DIR": cache}
        cold, hit = (float(subprocess.run([sys.executable, "-c", script], env=env, check=True,
                                          capture_output=True, text=True).stdout)
                     for _ in range(2))
    return cold, hit


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    try:
        import torch

        torch.set_num_threads(os.cpu_count())
    except ImportError:
        torch = None
    try:
        import jax  # noqa: F401
    except ImportError:
        jax = None
    rate = sgemm_rate()
    print(f"machine: {os.cpu_count()} cores; numpy {np.__version__}; sgemm 1024^3: {rate / 1e9:.1f} GFLOP/s")
    print(f"{'':4} {'system':<16} {'median step':>12} {'vs best other':>14}")
    for name, w in workloads().items():
        prog = compile(gradc_model(w))
        params = init(w["sizes"])
        systems = {"gradc": lambda: run_gradc(w, prog, params), "numpy (by hand)": lambda: run_numpy(w, params)}
        if torch is not None:
            systems["PyTorch eager"] = lambda: run_torch(w, params)
        if jax is not None:
            step = jax_step(w)
            systems["JAX jit"] = lambda: run_jax(w, params, step)
        times = {k: [] for k in systems}
        for _ in range(args.repeats):
            for k, fn in systems.items():
                times[k].append(fn() / w["steps"])
        med = {k: statistics.median(v) for k, v in times.items()}
        best_other = min(v for k, v in med.items() if k != "gradc")
        for k, v in med.items():
            ratio = v / best_other if k == "gradc" else v / min(med["gradc"], best_other)
            print(f"{name:4} {k:<16} {v * 1e6:>10.1f} us {ratio:>13.2f}x")
        floor = statistics.median(run_blas_only(w, params) / w["steps"] for _ in range(args.repeats))
        print(f"{name:4} {'numpy BLAS only':<16} {floor * 1e6:>10.1f} us {floor / best_other:>13.2f}x"
              "   (the same matmuls and update alone)")
        mm = float(matmul_flops(reverse_mode_graph(gradc_model(w)).nodes).subs(symbol("B"), w["batch"]))
        print(f"{name:4} {'sgemm floor':<16} {mm / rate * 1e6:>10.1f} us   gradc at "
              f"{med['gradc'] / (mm / rate):.2f}x the floor")
    cold, hit = compile_times()
    print(f"W3 compile: cold {cold * 1e3:.0f} ms, cache hit {hit * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
