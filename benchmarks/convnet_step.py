"""W4 of train_step.py (issue 15): one SGD step of examples/cnn_digits.py's ConvNet at
batch 128, float32, in hand-written numpy, PyTorch eager and JAX jit.

Each system starts from gradc's ``prog.init_params(0)`` (passed in as ``params``), runs
the same minibatches in the same order and returns ``(seconds, step losses)``;
train_step.py times gradc itself, alternates the systems and checks the losses.

The network (NCHW, as PyTorch): conv 1->16 3x3 pad 1, relu, max pool 2 (8x8 -> 4x4),
conv 16->32 3x3 pad 1, relu, max pool 2 (-> 2x2), flatten (C, H, W), dense 128 -> 10,
softmax cross-entropy (mean).  gradc's dense weight is (in, out); PyTorch's (out, in).
"""
import os
import sys
import time

import numpy as np

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")
LR = 0.1  # plain SGD, no momentum


def workload():
    """W4: 10 epochs over the first 1,280 training images of cnn_digits.py's split, in
    order: 100 SGD steps of 128.  ``sample(n)`` is the first n images (the profile's
    batch-1 run uses 10 of them)."""
    sys.path.insert(0, EXAMPLES)
    import cnn_digits

    train_set = cnn_digits.load()[0]
    images = {"x": train_set["x"].astype(np.float32), "label": train_set["label"]}

    def sample(n):
        return {k: v[:n] for k, v in images.items()}

    return dict(model=cnn_digits.model, batch=128, steps=100, optimizer="sgd", lr=LR,
                data=sample(128 * 10), sample=sample)


def batches(w, asarray):
    """The minibatches in order, as ``(x, label)`` pairs."""
    x, label, B = w["data"]["x"], w["data"]["label"], w["batch"]
    n = len(x)
    return [(asarray(x[s:s + B]), asarray(label[s:s + B]))
            for s in ((i * B) % n for i in range(w["steps"]))]


# -- hand-written numpy ----------------------------------------------------------------
def _im2col(h, k=3):
    """NHWC images (B, H, W, C), zero-padded by 1, as the (B*H*W, C*k*k) matrix of their
    3x3 windows: one sliding_window_view (no copy) and the reshape's copy.  Columns are
    ordered (C, kH, kW), as a (C_out, C_in, kH, kW) weight reshaped to (C_out, C_in*9)."""
    b, hh, ww, c = h.shape
    padded = np.zeros((b, hh + 2, ww + 2, c), h.dtype)
    padded[:, 1:-1, 1:-1] = h
    windows = np.lib.stride_tricks.sliding_window_view(padded, (k, k), axis=(1, 2))
    return windows.reshape(b * hh * ww, c * k * k)


def _col2im(g, shape, k=3):
    """The adjoint of ``_im2col``: (B*H*W, C*9) window gradients added back into
    (B, H, W, C) images; one strided add per kernel offset (9), none per pixel."""
    b, hh, ww, c = shape
    windows = g.reshape(b, hh, ww, c, k, k)
    padded = np.zeros((b, hh + 2, ww + 2, c), g.dtype)
    for i in range(k):
        for j in range(k):
            padded[:, i:i + hh, j:j + ww] += windows[..., i, j]
    return padded[:, 1:-1, 1:-1]


def _pool(a):
    """2x2 max pooling of NHWC ``a``: the pooled images and each window element's share
    of the gradient: 1/(number of maxima) at the maxima, as gradc's rule.  Ties are common
    here: the digits' blank background gives equal positive activations (relu of the
    bias), so giving the gradient to every maximum would be wrong."""
    b, hh, ww, c = a.shape
    windows = a.reshape(b, hh // 2, 2, ww // 2, 2, c)
    pooled = windows.max(axis=(2, 4))
    mask = windows == pooled[:, :, None, :, None]
    return pooled, mask / mask.sum(axis=(2, 4), keepdims=True, dtype=a.dtype)


def _unpool(g, share):
    """The pooled gradient ``g`` (B, H/2, W/2, C) sent to each window's maxima."""
    b, h2, _, w2, _, c = share.shape
    return (share * g[:, :, None, :, None]).reshape(b, 2 * h2, 2 * w2, c)


def run_numpy(w, params):
    """A careful hand-written step in NHWC (no transposes between layers): im2col by
    sliding_window_view, one matmul per convolution and two per convolution's gradient,
    the loss and its gradient by hand, in-place SGD."""
    W0 = params["conv0.W"].reshape(16, 9).copy()  # (C_out, C_in*kH*kW)
    W1 = params["conv1.W"].reshape(32, 144).copy()
    b0, b1 = params["conv0.b"].copy(), params["conv1.b"].copy()
    Wd, bd = params["dense0.W"].copy(), params["dense0.b"].copy()
    steps = batches(w, lambda a: a)
    losses, lr = [], w["lr"]
    t = time.perf_counter()
    for x, label in steps:
        B = len(x)
        cols0 = _im2col(x.reshape(B, 8, 8, 1))           # (64B, 9)
        a0 = np.maximum(cols0 @ W0.T + b0, 0).reshape(B, 8, 8, 16)
        p0, share0 = _pool(a0)                             # (B, 4, 4, 16)
        cols1 = _im2col(p0)                               # (16B, 144)
        a1 = np.maximum(cols1 @ W1.T + b1, 0).reshape(B, 4, 4, 32)
        p1, share1 = _pool(a1)                             # (B, 2, 2, 32)
        f = p1.transpose(0, 3, 1, 2).reshape(B, 128)      # flatten in (C, H, W) order
        z = f @ Wd + bd
        e = np.exp(z - z.max(axis=1, keepdims=True))
        s = e.sum(axis=1, keepdims=True)
        rows = np.arange(B)
        losses.append(float(np.mean(np.log(s[:, 0]) - np.log(e[rows, label]))))
        g = e / s
        g[rows, label] -= 1
        g /= B
        gf = (g @ Wd.T).reshape(B, 32, 2, 2).transpose(0, 2, 3, 1)
        gz1 = (_unpool(gf, share1) * (a1 > 0)).reshape(B * 16, 32)
        gp0 = _col2im(gz1 @ W1, (B, 4, 4, 16))
        gz0 = (_unpool(gp0, share0) * (a0 > 0)).reshape(B * 64, 16)
        for p, d in ((Wd, f.T @ g), (bd, g.sum(axis=0)), (W1, gz1.T @ cols1),
                     (b1, gz1.sum(axis=0)), (W0, gz0.T @ cols0), (b0, gz0.sum(axis=0))):
            p -= lr * d
    return time.perf_counter() - t, losses


# -- PyTorch eager ---------------------------------------------------------------------
def torch_loss(p, x, label):
    import torch.nn.functional as TF

    h = TF.max_pool2d(TF.relu(TF.conv2d(x, p["conv0.W"], p["conv0.b"], padding=1)), 2)
    h = TF.max_pool2d(TF.relu(TF.conv2d(h, p["conv1.W"], p["conv1.b"], padding=1)), 2)
    return TF.cross_entropy(TF.linear(h.flatten(1), p["dense0.W"], p["dense0.b"]), label)


def run_torch(w, params, threads):
    import torch

    torch.set_num_threads(threads)
    p = {k: torch.tensor(v.T.copy() if k == "dense0.W" else v, requires_grad=True)
         for k, v in params.items()}
    opt = torch.optim.SGD(p.values(), lr=w["lr"])
    return torch_timed(opt, batches(w, torch.tensor), lambda x, label: torch_loss(p, x, label))


def torch_timed(opt, steps, loss_of):
    """``(seconds, losses)`` of ``loss_of(*batch)``, its backward and ``opt.step()`` for each
    batch of ``steps`` (the losses read once, at the end)."""
    losses = []
    t = time.perf_counter()
    for batch in steps:
        loss = loss_of(*batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.detach())
    elapsed = time.perf_counter() - t
    return elapsed, [float(v) for v in losses]


# -- JAX jit ---------------------------------------------------------------------------
def jax_step(w):
    """value_and_grad and the SGD update in one jitted function."""
    import jax
    import jax.numpy as jnp
    from jax import lax

    def block(h, W, b):
        h = lax.conv_general_dilated(h, W, (1, 1), ((1, 1), (1, 1)),
                                     dimension_numbers=("NCHW", "OIHW", "NCHW"))
        h = jax.nn.relu(h + b[None, :, None, None])
        return lax.reduce_window(h, -jnp.inf, lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")

    def loss(p, x, label):
        h = block(block(x, p["conv0.W"], p["conv0.b"]), p["conv1.W"], p["conv1.b"])
        z = jax.nn.log_softmax(h.reshape(h.shape[0], -1) @ p["dense0.W"] + p["dense0.b"])
        return -jnp.mean(jnp.take_along_axis(z, label[:, None], axis=1))

    @jax.jit
    def step(p, x, label):
        value, grads = jax.value_and_grad(loss)(p, x, label)
        return jax.tree_util.tree_map(lambda v, d: v - w["lr"] * d, p, grads), value

    return step


def run_jax(w, params, step):
    import jax
    import jax.numpy as jnp

    p = {k: jnp.asarray(v) for k, v in params.items()}
    steps, losses = batches(w, jnp.asarray), []
    jax.block_until_ready(step(p, *steps[0]))  # compile outside the timing
    t = time.perf_counter()
    for x, label in steps:
        p, loss = step(p, x, label)
        losses.append(loss)
    jax.block_until_ready(p)
    elapsed = time.perf_counter() - t
    return elapsed, [float(v) for v in losses]
