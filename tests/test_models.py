"""Whole models against PyTorch autograd in float64 (relative error <= 1e-9), and seed formulas."""
import numpy as np
import pytest
import torch

from compiler import Input, Model, Param, compile, nn, ops as F
from oplib import rel_err

torch.set_default_dtype(torch.float64)


def compare(model, batch, torch_loss, seed=0):
    """Assert gradc's loss and gradients equal PyTorch's on the same parameters."""
    prog = compile(model, dtype="float64")
    rng = np.random.default_rng(seed)
    params = {k: v + 0.1 * rng.normal(size=v.shape) for k, v in prog.init_params(seed).items()}
    loss, grads = prog.loss_and_grad(params, batch)
    tp = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    tb = {k: torch.tensor(v) for k, v in batch.items()}
    ref = torch_loss(tp, tb)
    ref.backward()
    assert rel_err(loss, ref.item()) <= 1e-9
    for k in params:
        assert rel_err(grads[k], tp[k].grad.numpy()) <= 1e-9, k
    return prog, params, grads


def mlp_torch(layers, acts):
    def forward(p, x):
        for i, act in enumerate(acts):
            x = x @ p[f"dense{i}.W"] + p[f"dense{i}.b"]
            x = act(x) if act else x
        return x
    return forward


def test_flux_mlp_of_seed_000():
    x, y = Input("x", ("B", 1)), Input("y", ("B", 1))
    net = nn.Chain(nn.Dense(1, 32, act="tanh"), nn.Dense(32, 32, act="tanh"), nn.Dense(32, 1))
    model = Model([x, y], {"y_hat": net(x)}, F.mse(net(x), y))
    rng = np.random.default_rng(1)
    batch = {"x": rng.normal(size=(16, 1)), "y": rng.normal(size=(16, 1))}
    fwd = mlp_torch(3, [torch.tanh, torch.tanh, None])
    compare(model, batch, lambda p, b: torch.mean((fwd(p, b["x"]) - b["y"]) ** 2))


def toy_model():
    x, y = Input("x", ("B",)), Input("y", ("B",))
    b = [Param(f"beta{i}", ()) for i in range(4)]
    w = [Param(f"omega{i}", ()) for i in range(4)]
    f = b[3] + w[3] * F.cos(b[2] + w[2] * F.exp(b[1] + w[1] * F.sin(b[0] + w[0] * x)))
    return Model([x, y], {"f": f}, F.sum((f - y) ** 2))


def toy_torch(p, b):
    f0 = p["beta0"] + p["omega0"] * b["x"]
    f1 = p["beta1"] + p["omega1"] * torch.sin(f0)
    f2 = p["beta2"] + p["omega2"] * torch.exp(f1)
    f3 = p["beta3"] + p["omega3"] * torch.cos(f2)
    return torch.sum((f3 - b["y"]) ** 2)


def test_toy_network_of_seed_001_matches_torch_and_the_hand_derived_gradient():
    rng = np.random.default_rng(2)
    batch = {"x": rng.normal(size=1), "y": rng.normal(size=1)}
    _, p, grads = compare(toy_model(), batch, toy_torch)
    x, y = batch["x"][0], batch["y"][0]
    b = [p[f"beta{i}"] for i in range(4)]
    w = [p[f"omega{i}"] for i in range(4)]
    inner = b[1] + w[1] * np.sin(b[0] + w[0] * x)
    f = b[3] + w[3] * np.cos(b[2] + w[2] * np.exp(inner))
    # Seed 001: dl/dw0 = -2 (f - y) w1 w2 w3 x cos[b0 + w0 x] exp[b1 + w1 sin[.]] sin[b2 + w2 exp[.]]
    by_hand = (-2 * (f - y) * w[1] * w[2] * w[3] * x * np.cos(b[0] + w[0] * x) * np.exp(inner)
               * np.sin(b[2] + w[2] * np.exp(inner)))
    assert rel_err(grads["omega0"], by_hand) <= 1e-12


def test_sigmoid_binary_cross_entropy_classifier():
    x, y = Input("x", ("B", 2)), Input("y", ("B", 1))
    net = nn.Chain(nn.Dense(2, 8, act="relu"), nn.Dense(8, 1))
    model = Model([x, y], {"p": F.sigmoid(net(x))}, F.bce_with_logits(net(x), y))
    rng = np.random.default_rng(3)
    batch = {"x": rng.normal(size=(10, 2)), "y": (rng.random((10, 1)) < 0.5) * 1.0}
    fwd = mlp_torch(2, [torch.relu, None])
    compare(model, batch, lambda p, b: torch.nn.functional.binary_cross_entropy(
        torch.sigmoid(fwd(p, b["x"])), b["y"]))


def test_softmax_cross_entropy_classifier_with_l2_penalty():
    x, k = Input("x", ("B", 4)), Input("k", ("B",), dtype="int64")
    l1, l2 = nn.Dense(4, 16, act="tanh"), nn.Dense(16, 3)
    logits = nn.Chain(l1, l2)(x)
    lam = 1e-3
    model = Model([x, k], {"logits": logits},
                  F.cross_entropy(logits, k) + lam * F.l2(l1.params()[0], l2.params()[0]))
    rng = np.random.default_rng(4)
    batch = {"x": rng.normal(size=(12, 4)), "k": rng.integers(0, 3, size=12)}
    fwd = mlp_torch(2, [torch.tanh, None])
    compare(model, batch, lambda p, b: torch.nn.functional.cross_entropy(fwd(p, b["x"]), b["k"])
            + lam * ((p["dense0.W"] ** 2).sum() + (p["dense1.W"] ** 2).sum()))


def test_seed_002_loss_and_its_backward_pass():
    x, y = Input("x", ()), Input("y", ())
    w, b = Param("w", ()), Param("b", ())
    lam = 0.1
    u = F.sigmoid(w * x + b)
    model = Model([x, y], {"u": u}, 0.5 * (y - u) ** 2 + lam * w ** 2)
    batch = {"x": np.array(1.5), "y": np.array(0.25)}
    _, p, grads = compare(model, batch, lambda p, b: 0.5 * (b["y"] - torch.sigmoid(
        p["w"] * b["x"] + p["b"])) ** 2 + lam * p["w"] ** 2)
    # The seed's backward pass: dL/du = u - y; dL/dz = dL/du * s'(z); dL/dw = dL/dz * x + lam * 2w.
    z = p["w"] * 1.5 + p["b"]
    s = 1 / (1 + np.exp(-z))
    dz = (s - 0.25) * s * (1 - s)
    assert rel_err(grads["w"], dz * 1.5 + lam * 2 * p["w"]) <= 1e-12
    assert rel_err(grads["b"], dz) <= 1e-12


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_outputs_have_the_compiled_dtype(dtype):
    x = Input("x", ("B", 3))
    w = Param("w", (3, 2))
    prog = compile(Model([x], {"h": F.tanh(x @ w)}, F.mean(F.tanh(x @ w))), dtype=dtype)
    params = prog.init_params(0)
    loss, grads = prog.loss_and_grad(params, {"x": np.ones((4, 3))})
    assert isinstance(loss, float)
    assert grads["w"].dtype == np.dtype(dtype) and params["w"].dtype == np.dtype(dtype)
    assert prog.predict(params, {"x": np.ones((4, 3))})["h"].dtype == np.dtype(dtype)
