"""Forward mode, Hessian-vector products and derivatives of derivatives, on whole models."""
import numpy as np
import pytest
import sympy
import torch

from compiler import Input, Model, Param, compile, nn, ops as F
from compiler.autodiff import grad
from oplib import rel_err

torch.set_default_dtype(torch.float64)


def check_hvp(model, batch, torch_loss, seed=0):
    """Assert jvp and hvp of ``model`` against torch.autograd.functional (relative 1e-8)."""
    prog = compile(model, dtype="float64")
    rng = np.random.default_rng(seed)
    params = {k: v + 0.1 * rng.normal(size=v.shape) for k, v in prog.init_params(seed).items()}
    vector = {k: rng.normal(size=v.shape) for k, v in params.items()}
    names = list(params)
    tb = {k: torch.tensor(v) for k, v in batch.items()}

    def f(*ps):
        return torch_loss(dict(zip(names, ps)), tb)

    ps = tuple(torch.tensor(params[k]) for k in names)
    vs = tuple(torch.tensor(vector[k]) for k in names)
    loss, directional = prog.jvp(params, batch, vector)
    ref_loss, ref_jvp = torch.autograd.functional.jvp(f, ps, vs)
    assert rel_err(loss, ref_loss.item()) <= 1e-12
    assert rel_err(directional, ref_jvp.item()) <= 1e-9
    hv = prog.hvp(params, batch, vector)
    _, ref_hv = torch.autograd.functional.hvp(f, ps, vs)
    for k, ref in zip(names, ref_hv):
        assert rel_err(hv[k], ref.numpy()) <= 1e-8, k


def test_hvp_of_the_flux_mlp():
    x, y = Input("x", ("B", 1)), Input("y", ("B", 1))
    net = nn.Chain(nn.Dense(1, 32, act="tanh"), nn.Dense(32, 32, act="tanh"), nn.Dense(32, 1))
    model = Model([x, y], {"y_hat": net(x)}, F.mse(net(x), y))
    rng = np.random.default_rng(1)
    batch = {"x": rng.normal(size=(8, 1)), "y": rng.normal(size=(8, 1))}

    def loss(p, b):
        h = b["x"]
        for i, act in enumerate([torch.tanh, torch.tanh, None]):
            h = h @ p[f"dense{i}.W"] + p[f"dense{i}.b"]
            h = act(h) if act else h
        return torch.mean((h - b["y"]) ** 2)

    check_hvp(model, batch, loss)


def test_hvp_of_the_seed_001_toy_network():
    x, y = Input("x", ("B",)), Input("y", ("B",))
    b = [Param(f"beta{i}", ()) for i in range(4)]
    w = [Param(f"omega{i}", ()) for i in range(4)]
    f = b[3] + w[3] * F.cos(b[2] + w[2] * F.exp(b[1] + w[1] * F.sin(b[0] + w[0] * x)))
    model = Model([x, y], {"f": f}, F.sum((f - y) ** 2))

    def loss(p, d):
        f0 = p["beta1"] + p["omega1"] * torch.sin(p["beta0"] + p["omega0"] * d["x"])
        f3 = p["beta3"] + p["omega3"] * torch.cos(p["beta2"] + p["omega2"] * torch.exp(f0))
        return torch.sum((f3 - d["y"]) ** 2)

    rng = np.random.default_rng(2)
    check_hvp(model, {"x": rng.normal(size=3), "y": rng.normal(size=3)}, loss)


def test_hvp_of_the_gabor_model():
    x, y = Input("x", ("B",)), Input("y", ("B",))
    p0, p1 = Param("phi0", (), init="normal(1.0)"), Param("phi1", (), init="normal(1.0)")
    z = p0 + 0.06 * p1 * x
    f = F.sin(z) * F.exp(-z ** 2 / 8.0)
    model = Model([x, y], {"f": f}, F.sum((f - y) ** 2))

    def loss(p, d):
        z = p["phi0"] + 0.06 * p["phi1"] * d["x"]
        return torch.sum((torch.sin(z) * torch.exp(-z ** 2 / 8.0) - d["y"]) ** 2)

    rng = np.random.default_rng(3)
    check_hvp(model, {"x": rng.uniform(-15, 15, size=10), "y": rng.normal(size=10)}, loss)


def test_hvp_of_a_softmax_cross_entropy_classifier():
    x, k = Input("x", ("B", 4)), Input("k", ("B",), dtype="int64")
    net = nn.Chain(nn.Dense(4, 8, act="tanh"), nn.Dense(8, 3))
    model = Model([x, k], {"logits": net(x)}, F.cross_entropy(net(x), k))

    def loss(p, d):
        h = torch.tanh(d["x"] @ p["dense0.W"] + p["dense0.b"])
        return torch.nn.functional.cross_entropy(h @ p["dense1.W"] + p["dense1.b"], d["k"])

    rng = np.random.default_rng(4)
    check_hvp(model, {"x": rng.normal(size=(6, 4)), "k": rng.integers(0, 3, size=6)}, loss)


def test_reverse_over_reverse_matches_torch():
    """grad of <grad L, v> built by applying ``grad`` twice."""
    x = Input("x", ("B", 2))
    w = Param("w", (2, 3))
    loss = F.sum(F.sigmoid(x @ w) ** 2)
    (g,) = grad(loss, [w])
    v = np.arange(6.0).reshape(2, 3) / 10
    inner = F.sum(g * F.const(1.0) * Input("v", (2, 3)))
    (gg,) = grad(inner, [w])
    model = Model([x, Input("v", (2, 3))], {"gg": gg}, loss)
    prog = compile(model, dtype="float64")
    params = {"w": np.random.default_rng(5).normal(size=(2, 3))}
    xs = np.random.default_rng(6).normal(size=(4, 2))
    out = prog.predict(params, {"x": xs, "v": v})["gg"]
    tw = torch.tensor(params["w"], requires_grad=True)
    (tg,) = torch.autograd.grad(torch.sum(torch.sigmoid(torch.tensor(xs) @ tw) ** 2), tw,
                                create_graph=True)
    (tgg,) = torch.autograd.grad(torch.sum(tg * torch.tensor(v)), tw)
    assert rel_err(out, tgg.numpy()) <= 1e-10


@pytest.mark.parametrize("at", [-1.3, -0.2, 0.4, 1.1])
def test_third_derivative_of_seed_004_matches_sympy(at):
    """d^3/dx^3 sqrt(x**2 + exp(x**2)) by nesting grad three times, against sympy.diff."""
    x = Param("x", ())
    f = F.sqrt(x ** 2 + F.exp(x ** 2))
    (d1,) = grad(f, [x])
    (d2,) = grad(d1, [x])
    (d3,) = grad(d2, [x])
    prog = compile(Model([], {"d1": d1, "d2": d2, "d3": d3}, f), dtype="float64")
    out = prog.predict({"x": np.array(at)}, {})
    s = sympy.Symbol("s")
    expr = sympy.sqrt(s ** 2 + sympy.exp(s ** 2))
    for order in (1, 2, 3):
        exact = float(sympy.diff(expr, s, order).subs(s, at))
        assert rel_err(out[f"d{order}"], exact) <= 1e-12, order


def test_conventions_at_kinks():
    """relu at 0 has derivative 0 (and second derivative 0); maximum splits ties evenly."""
    a, b = Param("a", (3,)), Param("b", (3,))
    model = Model([], loss=F.sum(F.relu(a) ** 2 + F.maximum(a, b) * 2.0))
    prog = compile(model, dtype="float64")
    params = {"a": np.array([0.0, 1.0, -1.0]), "b": np.array([0.0, 2.0, -3.0])}
    _, grads = prog.loss_and_grad(params, {})
    assert grads["a"].tolist() == [1.0, 2.0, 2.0]   # relu'(0) = 0; tie at 0: half of 2
    assert grads["b"].tolist() == [1.0, 2.0, 0.0]
    hv = prog.hvp(params, {}, {"a": np.ones(3), "b": np.ones(3)})
    assert hv["a"].tolist() == [0.0, 2.0, 0.0] and hv["b"].tolist() == [0.0, 0.0, 0.0]


def test_stop_gradient_in_every_mode():
    w = Param("w", ())
    model = Model([], loss=F.stop_gradient(w ** 2) * w)
    prog = compile(model, dtype="float64")
    p, v = {"w": np.array(3.0)}, {"w": np.array(1.0)}
    assert prog.loss_and_grad(p, {})[1]["w"] == 9.0
    assert prog.jvp(p, {}, v) == (27.0, 9.0)
    assert prog.hvp(p, {}, v)["w"] == 0.0
