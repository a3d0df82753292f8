"""One training step on the CPU (SGD; Adam for W5): gradc (numpy backend) vs hand-written
numpy vs PyTorch eager vs JAX jit.

Workloads (float32):
  W1  1-32-32-1 tanh MLP, MSE, batch 1     (the seed's Flux example)
  W2  the same at batch 256
  W3  784-256-256-10 ReLU MLP, softmax cross-entropy, batch 128
  W4  the digits ConvNet of examples/cnn_digits.py (issue 15), one SGD step at batch 128:
      gradc compiles the example's model; hand-written numpy (im2col by
      sliding_window_view, one matmul per convolution), PyTorch eager and JAX jit
      (convnet_step.py) run it from gradc's initial parameters, losses checked as W5's
  W5  the tiny GPT of examples/tiny_gpt.py (issue 16), one Adam step at batch 32: gradc
      compiles the example's model; PyTorch eager and JAX jit run the same network
      written by hand from gradc's initial parameters (no hand-written numpy step), and
      their first-step losses are checked against gradc's

Each system runs the same number of steps over the same data in the same order;
systems alternate, each repeat is timed, the median is reported with its ratio to the
fastest other system.  The sgemm floor is the step's matmul flops divided by the rate
of one large numpy matmul measured in this run; "numpy BLAS only" is the same matmuls
and the update with nothing else, the floor of any step whose matmuls numpy runs (W4 and
W5: the step's matmuls from its graph, also on one BLAS thread).
Also: W3's cold compile time and a cache hit.  ``--profile`` times each kernel of
gradc's W4 and W5 steps (those chosen) in place instead.

Run it:  python benchmarks/train_step.py [--repeats 5] [--workloads W1,W2,W3,W4,W5] [--profile]
"""
import argparse
import collections
import os
import statistics
import sys
import tempfile
import time

import numpy as np
import sympy

import convnet_step
from compiler import Input, Model, compile, nn, ops as F
from compiler.cost import matmul_flops
from compiler.flops import reverse_mode_graph
from compiler.ops.registry import OPS
from compiler.pipeline import training_graph
from compiler.shapes import symbol
from runtime import train
from runtime.train import blas_threads

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
        "W1": dict(kind="regression", sizes=(1, 32, 32, 1), batch=1,
                   data={k: v[:200] for k, v in mlp.items()}, steps=2000),
        "W2": dict(kind="regression", sizes=(1, 32, 32, 1), batch=256, data=mlp, steps=100),
        "W3": dict(kind="classification", sizes=(784, 256, 256, 10), batch=128, data=cls, steps=100),
    }


def gradc_model(w):
    sizes = w["sizes"]
    x = Input("x", ("B", sizes[0]))
    layers = [nn.Dense(a, b, act=(F.tanh if w["kind"] == "regression" else F.relu)
                        if i < len(sizes) - 2 else None)
              for i, (a, b) in enumerate(zip(sizes, sizes[1:]))]
    net = nn.Chain(*layers)
    if w["kind"] == "regression":
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
    target = w["data"]["y"] if w["kind"] == "regression" else w["data"]["k"]
    B, L = w["batch"], len(Ws)
    t = time.perf_counter()
    for step in range(w["steps"]):
        s = (step * B) % n
        h, hs = xs[s:s + B], []
        for i in range(L):
            hs.append(h)
            z = h @ Ws[i] + bs[i]
            h = z if i == L - 1 else (np.tanh(z) if w["kind"] == "regression" else np.maximum(z, 0))
        if w["kind"] == "regression":
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
                g *= (1 - hs[i] ** 2) if w["kind"] == "regression" else (hs[i] > 0)
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
    target = torch.tensor(w["data"]["y"] if w["kind"] == "regression" else w["data"]["k"])
    n, B, L = len(xs), w["batch"], len(Ws)
    act = torch.tanh if w["kind"] == "regression" else torch.relu
    t = time.perf_counter()
    for step in range(w["steps"]):
        s = (step * B) % n
        h = xs[s:s + B]
        for i in range(L):
            h = h @ Ws[i] + bs[i]
            h = act(h) if i < L - 1 else h
        if w["kind"] == "regression":
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

    act = jnp.tanh if w["kind"] == "regression" else jax.nn.relu

    def loss(params, x, t):
        h = x
        for i, (W, b) in enumerate(params):
            h = h @ W + b
            h = act(h) if i < len(params) - 1 else h
        if w["kind"] == "regression":
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
    target = jnp.asarray(w["data"]["y"] if w["kind"] == "regression" else w["data"]["k"])
    n, B = len(xs), w["batch"]
    batches = [(xs[s:s + B], target[s:s + B]) for s in ((i * B) % n for i in range(w["steps"]))]
    ps = step(ps, *batches[0])  # compile outside the timing
    jax.block_until_ready(ps)
    t = time.perf_counter()
    for x, y in batches:
        ps = step(ps, x, y)
    jax.block_until_ready(ps)
    return time.perf_counter() - t


# -- W5: the tiny GPT ------------------------------------------------------------------
EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")
GPT_LR = 3e-3  # tiny_gpt.py's learning rate, held constant (its cosine schedule left out)
BETAS, EPS = (0.9, 0.999), 1e-8  # Adam's defaults in gradc, PyTorch and here


def gpt_workload():
    """W5: 10 epochs over 320 sorting sequences in order, 100 Adam steps of 32."""
    sys.path.insert(0, EXAMPLES)
    import tiny_gpt

    return dict(gpt=tiny_gpt, model=tiny_gpt.model, batch=32, steps=100, optimizer="adam",
                lr=GPT_LR, data=tiny_gpt.sequences(32 * 10, seed=0),
                sample=lambda n: tiny_gpt.sequences(n, seed=0))


def gpt_names(params):
    """gradc's parameter names of each transformer block of tiny_gpt.py, then the final
    layer norm's and the output layer's; an error if gradc names them otherwise."""
    blocks = [dict(ln1=f"layernorm{2 * i}", attn=f"attn{i}", ln2=f"layernorm{2 * i + 1}",
                   fc=f"dense{2 * i}", proj=f"dense{2 * i + 1}") for i in range(2)]
    used = {"embedding0.weight", "pos", "layernorm4.weight", "layernorm4.bias", "dense4.W",
            "dense4.b"}
    for block in blocks:
        used |= {f"{block[k]}.{n}" for k in ("ln1", "ln2") for n in ("weight", "bias")}
        used |= {f"{block['attn']}.{n}" for n in ("in_proj_W", "in_proj_b", "out_proj_W",
                                                  "out_proj_b")}
        used |= {f"{block[k]}.{n}" for k in ("fc", "proj") for n in ("W", "b")}
    if used != set(params):
        raise SystemExit(f"tiny_gpt.py's parameters are not the ones W5 writes by hand: "
                         f"{sorted(used ^ set(params))}")
    return blocks


def run_gradc_recorded(w, prog, params):
    """gradc through runtime.train (BLAS threads as its rule sets them): ``w["steps"]``
    steps of ``w["optimizer"]`` over ``w["data"]`` in order; seconds and step losses."""
    start = {k: v.copy() for k, v in params.items()}
    epochs = w["steps"] * w["batch"] // len(next(iter(w["data"].values())))
    t = time.perf_counter()
    hist = train(prog, w["data"], optimizer=w["optimizer"], lr=w["lr"], epochs=epochs,
                 batch_size=w["batch"], shuffle=False, params=start, quiet=True)
    return time.perf_counter() - t, hist.step_losses


def one_blas_thread(fn, *args):
    """``fn(*args)`` with BLAS held to one thread."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, "blas"):
        return fn(*args)


def gpt_batches(w, asarray):
    """The minibatches in order: tokens, and the sorted half's targets (the last N)."""
    tokens, targets = w["data"]["tokens"], w["data"]["targets"][:, -w["gpt"].N:]
    B, n = w["batch"], len(tokens)
    return [(asarray(tokens[s:s + B]), asarray(targets[s:s + B]))
            for s in ((i * B) % n for i in range(w["steps"]))]


def torch_gpt_loss(w, p, tokens, targets):
    """tiny_gpt.py's loss in PyTorch: the mean cross-entropy of the sorted half."""
    import torch.nn.functional as TF

    g = w["gpt"]
    (b, t), d, h = tokens.shape, g.WIDTH, g.HEADS
    x = TF.embedding(tokens, p["embedding0.weight"]) + p["pos"]
    for k in w["blocks"]:
        a = TF.layer_norm(x, (d,), p[k["ln1"] + ".weight"], p[k["ln1"] + ".bias"])
        qkv = TF.linear(a, p[k["attn"] + ".in_proj_W"], p[k["attn"] + ".in_proj_b"])
        q, key, v = (z.reshape(b, t, h, d // h).transpose(1, 2) for z in qkv.split(d, dim=-1))
        a = TF.scaled_dot_product_attention(q, key, v, is_causal=True)
        a = a.transpose(1, 2).reshape(b, t, d)
        x = x + TF.linear(a, p[k["attn"] + ".out_proj_W"], p[k["attn"] + ".out_proj_b"])
        a = TF.layer_norm(x, (d,), p[k["ln2"] + ".weight"], p[k["ln2"] + ".bias"])
        a = TF.gelu(TF.linear(a, p[k["fc"] + ".W"], p[k["fc"] + ".b"]))
        x = x + TF.linear(a, p[k["proj"] + ".W"], p[k["proj"] + ".b"])
    x = TF.layer_norm(x, (d,), p["layernorm4.weight"], p["layernorm4.bias"])
    logits = TF.linear(x, p["dense4.W"], p["dense4.b"])
    return TF.cross_entropy(logits[:, g.N:].reshape(-1, g.VOCAB), targets.reshape(-1))


def run_torch_gpt(w, params, threads):
    import torch

    torch.set_num_threads(threads)
    # gradc's weights are (in, out); torch's linear layers keep (out, in)
    p = {k: torch.tensor(v.T.copy() if k.endswith("W") else v, requires_grad=True)
         for k, v in params.items()}
    # fused: one kernel over all parameters, the fastest of PyTorch's Adams here (NOTES.md)
    opt = torch.optim.Adam(p.values(), lr=GPT_LR, betas=BETAS, eps=EPS, fused=True)
    return convnet_step.torch_timed(opt, gpt_batches(w, torch.tensor),
                                    lambda tokens, targets: torch_gpt_loss(w, p, tokens, targets))


def jax_gpt_step(w):
    import jax
    import jax.numpy as jnp

    g = w["gpt"]
    d, h, tree = g.WIDTH, g.HEADS, jax.tree_util.tree_map
    causal = jnp.tril(jnp.ones((g.T, g.T), bool))

    def norm(x, p, name):
        centred = x - x.mean(-1, keepdims=True)
        scaled = centred / jnp.sqrt((centred * centred).mean(-1, keepdims=True) + 1e-5)
        return scaled * p[name + ".weight"] + p[name + ".bias"]

    def loss(p, tokens, targets):
        (b, t), heads = tokens.shape, (lambda z: z.reshape(b, t, h, d // h).transpose(0, 2, 1, 3))
        x = p["embedding0.weight"][tokens] + p["pos"]
        for k in w["blocks"]:
            qkv = norm(x, p, k["ln1"]) @ p[k["attn"] + ".in_proj_W"] + p[k["attn"] + ".in_proj_b"]
            q, key, v = (heads(z) for z in jnp.split(qkv, 3, axis=-1))
            scores = jnp.where(causal, q @ key.transpose(0, 1, 3, 2) / np.sqrt(d // h), -jnp.inf)
            a = (jax.nn.softmax(scores, axis=-1) @ v).transpose(0, 2, 1, 3).reshape(b, t, d)
            x = x + a @ p[k["attn"] + ".out_proj_W"] + p[k["attn"] + ".out_proj_b"]
            a = norm(x, p, k["ln2"]) @ p[k["fc"] + ".W"] + p[k["fc"] + ".b"]
            x = x + jax.nn.gelu(a, approximate=False) @ p[k["proj"] + ".W"] + p[k["proj"] + ".b"]
        logits = norm(x, p, "layernorm4") @ p["dense4.W"] + p["dense4.b"]
        z = jax.nn.log_softmax(logits[:, g.N:].reshape(-1, g.VOCAB))
        return -jnp.mean(jnp.take_along_axis(z, targets.reshape(-1, 1), axis=1))

    @jax.jit
    def step(p, m, v, count, tokens, targets):
        """One Adam step as PyTorch's: p -= lr/bc1 * m / (sqrt(v)/sqrt(bc2) + eps)."""
        (b1, b2), count = BETAS, count + 1
        value, grads = jax.value_and_grad(loss)(p, tokens, targets)
        m = tree(lambda m, d: b1 * m + (1 - b1) * d, m, grads)
        v = tree(lambda v, d: b2 * v + (1 - b2) * d * d, v, grads)
        bc1, bc2 = 1 - b1 ** count, 1 - b2 ** count
        p = tree(lambda p, m, v: p - GPT_LR / bc1 * m / (jnp.sqrt(v) / jnp.sqrt(bc2) + EPS), p, m, v)
        return p, m, v, count, value

    return step


def run_jax_gpt(w, params, step):
    import jax
    import jax.numpy as jnp

    p = {k: jnp.asarray(v) for k, v in params.items()}
    m, v = ({k: jnp.zeros_like(x) for k, x in p.items()} for _ in range(2))
    count, batches, losses = jnp.zeros((), jnp.float32), gpt_batches(w, jnp.asarray), []
    jax.block_until_ready(step(p, m, v, count, *batches[0]))  # compile outside the timing
    t = time.perf_counter()
    for tokens, targets in batches:
        p, m, v, count, loss = step(p, m, v, count, tokens, targets)
        losses.append(loss)
    jax.block_until_ready(p)
    elapsed = time.perf_counter() - t
    return elapsed, [float(v) for v in losses]


def run_graph_blas_only(w, graph):
    """The matmuls of one gradc step (forward and backward, shapes from the graph at
    the batch size) on float32 operands, into preallocated results, ``steps`` times."""
    rng, sizes = np.random.default_rng(0), {symbol("B"): w["batch"]}
    calls = []
    for node in graph.nodes:
        if is_matmul(node.op):
            a, b, out = (tuple(int(sympy.sympify(d).subs(sizes)) for d in shape)
                         for shape in (node.inputs[0].shape, node.inputs[1].shape, node.shape))
            calls.append((rng.normal(size=a).astype(np.float32),
                          rng.normal(size=b).astype(np.float32), np.empty(out, np.float32)))
    t = time.perf_counter()
    for _ in range(w["steps"]):
        for a, b, out in calls:
            np.matmul(a, b, out=out)
    return time.perf_counter() - t


def loss_check(losses, at):
    """The losses of step ``at`` and their largest difference relative to gradc's."""
    values = {k: v[at] for k, v in losses.items()}
    spread = max(abs(v - values["gradc"]) for v in values.values()) / abs(values["gradc"])
    return ", ".join(f"{k} {v:.7f}" for k, v in values.items()), spread


def framework_systems(torch, jax, run_torch, make_jax_step, run_jax):
    """PyTorch eager on its default threads and on one (other work on the cores: see
    NOTES), and JAX jit, for those installed; each a function of no arguments."""
    systems = {}
    if torch is not None:
        systems["PyTorch eager"] = lambda: run_torch(os.cpu_count())
        systems["PyTorch, 1 thread"] = lambda: run_torch(1)
    if jax is not None:
        step = make_jax_step()
        systems["JAX jit"] = lambda: run_jax(step)
    return systems


def compare(name, w, prog, params, others, repeats, rate, tol):
    """gradc (BLAS as runtime.train's rule sets it, and on one thread) and ``others`` (name
    -> function returning seconds and step losses), alternating ``repeats`` times: medians,
    the BLAS-only and sgemm floors of gradc's step, and the first two steps' losses checked
    against gradc's to ``tol`` (relative; the second follows one update, so a wrong
    gradient shows there)."""
    systems = {"gradc": lambda: run_gradc_recorded(w, prog, params),
               "gradc, 1 thread": lambda: one_blas_thread(run_gradc_recorded, w, prog, params),
               **others}
    n = len(next(iter(w["data"].values())))
    threads = blas_threads(prog, prog.check_batch(w["data"]), w["batch"], n)
    print(f"{name}   load average {os.getloadavg()[0]:.2f} at the start; gradc's BLAS: "
          f"{'one thread' if threads == 1 else 'its own threads'} (runtime.train's rule)")
    times, losses = {k: [] for k in systems}, {}
    for _ in range(repeats):
        for k, fn in systems.items():
            elapsed, run_losses = fn()
            times[k].append(elapsed / w["steps"])
            losses.setdefault(k, run_losses)
    best_other = print_times(name, {k: statistics.median(v) for k, v in times.items()})
    graph = reverse_mode_graph(w["model"])
    count = sum(is_matmul(node.op) for node in graph.nodes)
    for label, run in (("numpy BLAS only", run_graph_blas_only),
                       ("BLAS, 1 thread", lambda *a: one_blas_thread(run_graph_blas_only, *a))):
        floor = statistics.median(run(w, graph) / w["steps"] for _ in range(repeats))
        print(f"{name}   {label:<16} {floor * 1e6:>10.1f} us {floor / best_other:>13.2f}x"
              f"   (the step's {count} matmuls alone)")
    mm = float(matmul_flops(graph.nodes).subs(symbol("B"), w["batch"]))
    gradc = statistics.median(times["gradc"])
    print(f"{name}   {'sgemm floor':<16} {mm / rate * 1e6:>10.1f} us   gradc at "
          f"{gradc / (mm / rate):.2f}x the floor ({mm / 1e6:.0f} MFLOP of matmuls)")
    for at, which in ((0, "first-step"), (1, "second-step")):  # the second checks a gradient
        values, spread = loss_check(losses, at)
        verdict = "agree" if spread <= tol else "DISAGREE"
        print(f"{name}   {which} loss: {values}; largest relative difference {spread:.1e} "
              f"({verdict} to {tol:.0e})")
    last, spread = loss_check(losses, -1)
    print(f"{name}   step-{w['steps']} loss: {last}; largest relative difference {spread:.1e}")
    print(f"{name}   load average {os.getloadavg()[0]:.2f} at the end")


def gpt_benchmark(repeats, torch, jax, rate):
    w = gpt_workload()
    prog = compile(w["model"])
    params = prog.init_params(0)
    w["blocks"] = gpt_names(params)
    others = framework_systems(torch, jax, lambda threads: run_torch_gpt(w, params, threads),
                               lambda: jax_gpt_step(w), lambda step: run_jax_gpt(w, params, step))
    compare("W5", w, prog, params, others, repeats, rate, tol=1e-4)


def cnn_benchmark(repeats, torch, jax, rate):
    """W4: gradc, the hand-written numpy step (BLAS's threads and one), PyTorch, JAX."""
    w = convnet_step.workload()
    prog = compile(w["model"])
    params = prog.init_params(0)
    others = {"numpy (by hand)": lambda: convnet_step.run_numpy(w, params),
              "numpy, 1 thread": lambda: one_blas_thread(convnet_step.run_numpy, w, params)}
    others.update(framework_systems(
        torch, jax, lambda threads: convnet_step.run_torch(w, params, threads),
        lambda: convnet_step.jax_step(w), lambda step: convnet_step.run_jax(w, params, step)))
    compare("W4", w, prog, params, others, repeats, rate, tol=1e-5)


def is_matmul(op):
    """Whether the op called ``op`` is a contraction (a matmul), from its registry entry."""
    return OPS[op].kind == "contraction"


def calls_erf(op):
    """Whether an elementwise op's body calls erf (GELU, erf itself): the W5 profile's GELU."""
    entry = OPS[op]
    if entry.kind != "elementwise" or entry.scalar is None:
        return False
    try:
        body = entry.scalar(*sympy.symbols(f"a0:{entry.arity}"))
    except TypeError:  # a body that needs an attribute (heaviside's value at 0): not GELU
        return False
    return body.has(sympy.erf)


def gpt_kinds(model, module):
    """W5's kernels by kind: GELU (its body calls erf), matmuls, other."""
    kinds = {}
    for k in module.KERNELS:
        ops = {n.split()[1] for n in k["nodes"]}
        kinds[k["name"]] = "GELU" if any(calls_erf(op) for op in ops) else \
            "matmuls" if any(is_matmul(op) for op in ops) else "other"
    return kinds


def cnn_kinds(model, module):
    """W4's kernels by what they do, from the training graph's nodes (KERNELS names them
    ``%index``) and the registry's kinds of their ops: matmuls (with their bias adds and
    column sums); conv windows (a windows node, ``patches`` or its adjoint, joined to a
    matmul through shape ops only, and the copy that reshapes gathered windows into
    im2col's matrix); pooling (the other windows nodes, the reductions, and elementwise kernels
    reading a reduction: max-pool's tie mask and shares); loss; elementwise (relu and its
    derivative); layout (transposes and reshapes)."""
    graph = training_graph(model)
    users = collections.defaultdict(list)
    for n in graph.nodes:
        for i in n.inputs:
            users[i].append(n)

    def kind(n):
        return OPS[n.op].kind

    def windows(n):
        return kind(n) == "shape" and n.attr("kernel") is not None

    def joins_matmul(n):
        seen, todo = {n}, [n]
        while todo:
            for m in (*todo[-1].inputs, *users[todo.pop()]):
                if m not in seen:
                    seen.add(m)
                    if kind(m) == "contraction":
                        return True
                    if kind(m) == "shape":
                        todo.append(m)
        return False

    kinds = {}
    for k in module.KERNELS:
        nodes = [graph.nodes[int(text.split()[0][1:])] for text in k["nodes"]]
        ops = {kind(n) for n in nodes}
        inputs = [i for n in nodes for i in n.inputs if all(i is not m for m in nodes)]
        # the kernel's windows node, or the gathered windows (more axes than their image)
        # that a kernel of shape ops copies
        window = [n for n in nodes if windows(n)] or [
            i for i in inputs if ops == {"shape"} and windows(i) and i.ndim > i.inputs[0].ndim]
        reads_reduction = any(kind(i) == "reduce" for i in inputs)
        if "contraction" in ops or "loss" in ops:
            kinds[k["name"]] = "matmuls" if "contraction" in ops else "loss"
        elif window:
            kinds[k["name"]] = "conv windows" if joins_matmul(window[0]) else "pooling"
        elif "reduce" in ops or ("elementwise" in ops and reads_reduction):
            kinds[k["name"]] = "pooling"
        else:
            kinds[k["name"]] = "elementwise" if "elementwise" in ops else "layout"
    return kinds


def profile(w, kinds_of, repeats):
    """gradc's step of workload ``w`` with each kernel of the generated module (and the
    update) timed in place, at its batch size and at batch 1 (where a kernel's time is
    almost all its fixed cost: the Python call and numpy's dispatch): totals by kind
    (``kinds_of(model, module)``), the largest kernels.  As in the step's time,
    runtime.train's one evaluation of the initial loss is in."""
    prog = compile(w["model"])
    params, module = prog.init_params(0), prog.module
    kinds = {**kinds_of(w["model"], module), f"update_{w['optimizer']}": "update"}
    originals = {name: getattr(module, name) for name in kinds}
    print(f"load average {os.getloadavg()[0]:.2f}; {prog.path.name}")
    for batch in (w["batch"], 1):
        wb = {**w, "batch": batch, "data": w["sample"](batch * 10)}
        one = blas_threads(prog, prog.check_batch(wb["data"]), batch, batch * 10) == 1
        print(f"batch {batch}: BLAS on {'one thread' if one else 'its own threads'} "
              "(runtime.train's rule; OPENBLAS_NUM_THREADS=1 holds it to one)")
        plain = statistics.median(run_gradc_recorded(wb, prog, params)[0] for _ in range(repeats))
        spent = collections.Counter()
        for name, fn in originals.items():
            setattr(module, name, _timed(spent, name, fn))
        try:
            elapsed = sum(run_gradc_recorded(wb, prog, params)[0] for _ in range(repeats))
        finally:
            for name, fn in originals.items():
                setattr(module, name, fn)
        steps = repeats * w["steps"]
        us = {k: v / steps * 1e6 for k, v in spent.items()}
        print(f"batch {batch}: step {plain / w['steps'] * 1e6:.0f} us (median of {repeats}); "
              f"with each kernel timed {elapsed / steps * 1e6:.0f} us, in kernels "
              f"{sum(us.values()):.0f} us")
        totals, phases = collections.Counter(), collections.Counter()
        phase = {k["name"]: k["phase"] for k in module.KERNELS}
        for name, t in us.items():
            totals[kinds[name]] += t
            phases[phase.get(name, "update")] += t
        print("  by phase: " + ", ".join(f"{k} {t:.0f} us" for k, t in phases.items()))
        for group, t in totals.most_common():
            count = sum(1 for k in us if kinds[k] == group)
            print(f"  {group:<12} {count:3d} kernels {t:8.0f} us")
        for name, t in sorted(us.items(), key=lambda kv: -kv[1])[:12]:
            print(f"    {name:<44} {kinds[name]:<12} {t:7.1f}")


def _timed(spent, name, fn):
    def run(*args, **kwargs):
        t = time.perf_counter()
        out = fn(*args, **kwargs)
        spent[name] += time.perf_counter() - t
        return out
    return run


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


def print_times(name, med):
    """One row per system: its median step and its ratio to the fastest other system
    (for the others, to the fastest of gradc and that)."""
    best_other = min(v for k, v in med.items() if not k.startswith("gradc"))
    for k, v in med.items():
        ratio = v / best_other if k.startswith("gradc") else v / min(med["gradc"], best_other)
        print(f"{name:4} {k:<16} {v * 1e6:>10.1f} us {ratio:>13.2f}x")
    return best_other


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--workloads", default="W1,W2,W3,W4,W5", help="comma-separated")
    parser.add_argument("--profile", action="store_true",
                        help="time each kernel of gradc's W4 and W5 steps (those chosen)")
    args = parser.parse_args()
    chosen = args.workloads.split(",")
    if args.profile:
        for name, make, kinds_of in (("W4", convnet_step.workload, cnn_kinds),
                                     ("W5", gpt_workload, gpt_kinds)):
            if name in chosen:
                print(f"{name} profile")
                profile(make(), kinds_of, args.repeats)
        return
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
        if name not in chosen:
            continue
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
        best_other = print_times(name, med)
        floor = statistics.median(run_blas_only(w, params) / w["steps"] for _ in range(args.repeats))
        print(f"{name:4} {'numpy BLAS only':<16} {floor * 1e6:>10.1f} us {floor / best_other:>13.2f}x"
              "   (the same matmuls and update alone)")
        mm = float(matmul_flops(reverse_mode_graph(gradc_model(w)).nodes).subs(symbol("B"), w["batch"]))
        print(f"{name:4} {'sgemm floor':<16} {mm / rate * 1e6:>10.1f} us   gradc at "
              f"{med['gradc'] / (mm / rate):.2f}x the floor")
    if "W4" in chosen:
        cnn_benchmark(args.repeats, torch, jax, rate)
    if "W5" in chosen and (torch is not None or jax is not None):
        gpt_benchmark(args.repeats, torch, jax, rate)
    if "W3" in chosen:
        cold, hit = compile_times()
        print(f"W3 compile: cold {cold * 1e3:.0f} ms, cache hit {hit * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
