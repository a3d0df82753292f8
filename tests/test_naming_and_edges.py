"""Layer names from the model's structure, comparisons as nodes, and PyTorch's numerics at the
edges (NaN constants, powers at 0, ties at infinity, 0-d and empty reductions)."""
import math

import numpy as np
import pytest
import torch

from compiler import Input, Model, Param, compile, nn, ops as F
from runtime.errors import GradcError

try:
    import triton  # noqa: F401
except ImportError:
    triton = None
BACKENDS = ["numpy", pytest.param("triton", marks=pytest.mark.skipif(
    triton is None, reason="triton is not installed"))]


def autoencoder():
    x = Input("x", ("B", 4))
    enc = nn.Chain(nn.Dense(4, 4, act="tanh"))
    dec = nn.Chain(nn.Dense(4, 4))
    return Model([x], {"x_hat": dec(enc(x))}, F.mse(dec(enc(x)), x))


def test_unnamed_chains_of_equal_shapes_do_not_share_weights():
    model = autoencoder()
    assert [p.name for p in model.params] == ["dense0.W", "dense0.b", "dense1.W", "dense1.b"]
    prog = compile(model, dtype="float64")
    params = prog.init_params(seed=0)
    assert not np.array_equal(params["dense0.W"], params["dense1.W"])


def test_standalone_dense_then_chain_and_nested_chains_get_distinct_names():
    x = Input("x", ("B", 4))
    first = nn.Dense(4, 4)
    net = nn.Chain(nn.Dense(4, 4, act="relu"), nn.Chain(nn.Dense(4, 4)), nn.Dense(4, 1))
    model = Model([x], loss=F.sum(net(first(x))))
    assert [p.name for p in model.params if p.name.endswith(".W")] == \
        ["dense0.W", "dense1.W", "dense2.W", "dense3.W"]
    assert first.name == "dense0" and net.layers[2].name == "dense3"


def test_given_names_are_kept_and_skipped_by_the_automatic_ones():
    x = Input("x", ("B", 2))
    model = Model([x], loss=F.sum(nn.Dense(2, 2)(nn.Dense(2, 2, name="dense0")(x))))
    assert [p.name for p in model.params] == ["dense0.W", "dense0.b", "dense1.W", "dense1.b"]


def standalone_layers():
    x = Input("x", ("B", 3))
    return Model([x], loss=F.sum(nn.Dense(3, 2, act="tanh")(nn.Dense(3, 3)(x))))


def test_the_same_model_built_twice_has_the_same_names_values_and_source():
    first, second = standalone_layers(), standalone_layers()
    assert [p.name for p in first.params] == [p.name for p in second.params]
    a, b = compile(first), compile(second)
    assert a.source == b.source
    pa, pb = a.init_params(seed=3), b.init_params(seed=3)
    assert all(np.array_equal(pa[k], pb[k]) for k in pa)


def test_dropout_calls_draw_their_own_masks_numbered_by_the_model():
    x = Input("x", ("B", 8))
    h = F.dropout(x, 0.5)
    loss = F.sum(F.dropout(h, 0.5) * 1.0)
    model = Model([x], loss=loss)
    salts = [n.attr("salt") for n in model.graph().nodes if n.op == "dropout"]
    assert salts == [1, 2]
    twice = Model([x], loss=F.sum(F.dropout(F.dropout(x, 0.5), 0.5) * 1.0))
    assert [n.attr("salt") for n in twice.graph().nodes if n.op == "dropout"] == [1, 2]


def test_comparisons_with_eq_and_ne_build_nodes():
    t = Input("t", (3,))
    assert (t != 0).op == "not_equal" and (t == 0).op == "equal"
    assert (t != 0).dtype == "bool"
    with pytest.raises(GradcError, match="truth value"):
        bool(t == t)


@pytest.mark.parametrize("backend", BACKENDS)
def test_masking_by_not_equal_has_pytorch_gradient_at_zero(backend):
    t = Param("t", (3,))
    prog = compile(Model([], loss=F.sum(t * (t != 0))), backend=backend, dtype="float64")
    _, grads = prog.loss_and_grad({"t": np.array([0.0, 2.0, -1.0])}, {})
    assert grads["t"].tolist() == [0.0, 1.0, 1.0]


def _torch_or_gradc(gradc_fn, torch_fn):
    return lambda *a: torch_fn(*a) if isinstance(a[0], torch.Tensor) else gradc_fn(*a)


NAN, INF = float("nan"), float("inf")
# (name, function of the parameters, their values); gradients must equal PyTorch's, NaNs included
EDGES = [
    ("mul_nan", lambda t: t * NAN, {"t": [1.0, 0.0]}),
    ("div_by_nan", lambda t: t / NAN, {"t": [1.0, 0.0]}),
    ("nan_div", lambda t: NAN / t, {"t": [1.0, 2.0]}),
    ("mul_inf", lambda t: t * INF, {"t": [1.0, 2.0]}),
    ("pow_at_zero", lambda a, b: a ** b, {"a": [0.0, 0.0, 2.0, 0.0], "b": [2.0, 0.5, 3.0, 0.0]}),
    ("zero_base", lambda b: 0.0 ** b, {"b": [2.0, 0.5, 0.0, 1.0]}),
    ("negative_base", lambda b: (-2.0) ** b, {"b": [2.0, 3.0]}),
    ("maximum_ties_at_inf", _torch_or_gradc(F.maximum, torch.maximum),
     {"a": [INF, -INF, 1.0, 2.0], "b": [INF, -INF, 1.0, 3.0]}),
    ("minimum_ties_at_inf", _torch_or_gradc(F.minimum, torch.minimum),
     {"a": [INF, -INF, 1.0, 2.0], "b": [INF, -INF, 1.0, 3.0]}),
    ("sum_0d_axis0", _torch_or_gradc(lambda t: F.sum(t, axis=0), lambda t: t.sum(0)), {"t": 2.0}),
    ("sum_0d_axis-1", _torch_or_gradc(lambda t: F.sum(t, axis=-1), lambda t: t.sum(-1)), {"t": 2.0}),
    ("softmax_0d", _torch_or_gradc(lambda t: F.softmax(t, axis=0) * t,
                                   lambda t: torch.softmax(t, 0) * t), {"t": 2.0}),
    ("log_softmax_0d", _torch_or_gradc(lambda t: F.log_softmax(t, axis=-1) * t,
                                       lambda t: torch.log_softmax(t, -1) * t), {"t": 2.0}),
    ("logsumexp_0d", _torch_or_gradc(lambda t: F.logsumexp(t, axis=0) * t,
                                     lambda t: torch.logsumexp(t, 0) * t), {"t": 2.0}),
    ("softmax_empty", _torch_or_gradc(lambda t: F.softmax(t) * t, lambda t: torch.softmax(t, -1) * t),
     {"t": np.zeros((2, 0))}),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name,fn,values", EDGES, ids=[e[0] for e in EDGES])
def test_edge_values_and_gradients_match_pytorch(name, fn, values, backend):
    params = {k: Param(k, np.shape(v)) for k, v in values.items()}
    prog = compile(Model([], loss=F.sum(fn(*params.values()))), backend=backend, dtype="float64")
    with np.errstate(all="ignore"):
        loss, grads = prog.loss_and_grad({k: np.asarray(v, float) for k, v in values.items()}, {})
    tensors = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in values.items()}
    expected = fn(*tensors.values()).sum()
    expected.backward()
    np.testing.assert_allclose(loss, expected.item(), rtol=1e-12, equal_nan=True)
    for k, t in tensors.items():
        np.testing.assert_allclose(grads[k], t.grad.numpy(), rtol=1e-12, equal_nan=True)


def test_reductions_refuse_what_pytorch_refuses():
    with pytest.raises(GradcError, match="out of range"):
        F.sum(Input("s", ()), axis=1)
    with pytest.raises(GradcError, match="empty axis"):
        F.max(Input("e", (2, 0)), axis=1)


def test_no_kernel_of_an_empty_softmax_counts_negative_flops():
    t = Param("t", (2, 0))
    prog = compile(Model([], loss=F.sum(F.softmax(t) * t)), dtype="float64")
    assert prog.kernels and all(not k.flops.startswith("-") for k in prog.kernels)
    assert "flops: -" not in prog.source


def test_pow_derivatives_are_finite_where_pytorch_defines_them():
    a, b = Param("a", (1,)), Param("b", (1,))
    prog = compile(Model([], loss=F.sum(a ** b)), dtype="float64")
    _, grads = prog.loss_and_grad({"a": np.array([0.0]), "b": np.array([0.0])}, {})
    assert grads["a"][0] == 0.0 and grads["b"][0] == 0.0  # 0**0: both zero in PyTorch
    assert not math.isnan(float(prog.loss_and_grad({"a": np.array([3.0]),
                                                    "b": np.array([2.0])}, {})[1]["b"][0]))


@pytest.mark.parametrize("backend", BACKENDS)
def test_booleans_in_arithmetic_are_numbers_as_in_pytorch(backend):
    a = Param("a", (3,))
    count = (a > 0) + (a > -1) - (a == 1.0)  # numpy alone: a logical or, then a TypeError
    prog = compile(Model([], outputs={"n": count}, loss=F.sum(a * count)), backend=backend,
                   dtype="float64")
    values = {"a": np.array([1.0, -0.5, -2.0])}
    assert prog.predict(values, {})["n"].tolist() == [1.0, 1.0, 0.0]
    assert prog.loss_and_grad(values, {})[1]["a"].tolist() == [1.0, 1.0, 0.0]


def test_a_named_chain_prefixes_the_layers_of_the_chains_inside_it():
    x = Input("x", ("B", 2))
    net = nn.Chain(nn.Chain(nn.Dense(2, 2), nn.Dense(2, 2)), nn.Dense(2, 1), name="enc")
    model = Model([x], loss=F.sum(net(x)))
    assert [p.name for p in model.params if p.name.endswith(".W")] == \
        ["enc.chain0.dense0.W", "enc.chain0.dense1.W", "enc.dense1.W"]


def test_misuses_in_a_model_file_name_its_line():
    x = Input("x", (3,))
    with pytest.raises(GradcError, match=r"test_naming_and_edges\.py:\d+: cannot use ndarray"):
        x * np.array([1.0, 2.0, 3.0])
    with pytest.raises(GradcError, match=r"test_naming_and_edges\.py:\d+: a graph node has no "):
        if x != 0:
            pass


@pytest.mark.skipif(triton is None, reason="triton is not installed")
@pytest.mark.parametrize("dtype,values", [("float32", [89.0, 1e37, np.inf, 1e-8, -0.5]),
                                          ("float64", [710.0, 1e308, np.inf, 1e-12, -0.5])])
def test_expm1_and_log1p_agree_on_both_backends_where_exp_overflows(dtype, values):
    x = Input("x", ("B",))
    model = Model([x], {"e": F.expm1(x), "l": F.log1p(x)}, loss=F.mean(F.log1p(x)))
    batch = {"x": np.array(values, dtype)}
    with np.errstate(all="ignore"):
        ours = compile(model, dtype=dtype).predict({}, batch)
        theirs = compile(model, backend="triton", dtype=dtype).predict({}, batch)
    t = torch.tensor(values, dtype=getattr(torch, dtype))
    for key, ref in (("e", torch.expm1(t)), ("l", torch.log1p(t))):
        np.testing.assert_allclose(ours[key], ref.numpy(), rtol=1e-6)
        np.testing.assert_allclose(theirs[key], ref.numpy(), rtol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_stop_gradient_of_a_sum_keeps_its_parentheses(backend):
    """``0.5 * stop_gradient(0.7 p + 0.2)`` once printed as ``0.5*0.7*p + 0.2`` on both
    backends: the identity printed its argument bare.  Values as PyTorch's ``detach``."""
    p, r = Param("p", (3,)), Input("r", (3,), dtype="float64")
    out = F.stop_gradient(0.7 * p + 0.2) * 0.5 + p * p
    prog = compile(Model([r], {"out": out}, F.sum(out * r)), backend=backend, dtype="float64")
    params, batch = {"p": np.array([1.0, 2.0, -3.0])}, {"r": np.array([1.0, -2.0, 0.5])}
    tp = torch.tensor(params["p"], requires_grad=True)
    t_out = (0.7 * tp + 0.2).detach() * 0.5 + tp * tp
    (t_out * torch.tensor(batch["r"])).sum().backward()
    assert np.allclose(prog.predict(params, batch)["out"], t_out.detach().numpy(), rtol=1e-14)
    assert np.allclose(prog.loss_and_grad(params, batch)[1]["p"], tp.grad.numpy(), rtol=1e-14)
