"""Row-wise kernels: reductions over the last axes fused with the elementwise ops around
them (layer norm, softmax, log-softmax, the attention softmax with its scale and causal
mask), on both backends, against PyTorch autograd in float64 and the numpy backend in
float32; and the partition they come from (how many kernels, in an order that works)."""
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from compiler import Input, Model, Param, compile, ops as F
from compiler.fusion import MAX_ROW
from compiler.nn import causal_mask

pytest.importorskip("triton")


def causal_softmax(x):
    return F.softmax(causal_mask(x * 0.5), -1)


def torch_causal_softmax(x):
    t = x.shape[-1]
    return (x * 0.5).masked_fill(torch.ones(t, t).triu(1).bool(), float("-inf")).softmax(-1)


def torch_ln(x, p, shape):
    return torch.nn.functional.layer_norm(x, shape, p.get("w"), p.get("b"), 1e-5)


# name, shape of x, gradc function of (x, params), torch function of (x, params),
# other parameters' shapes, and what the partition must give: forward kernels, backward kernels
CASES = [
    ("layer_norm", (3, 5, 6), lambda x, p: F.layer_norm(x, 6, p["w"], p["b"]),
     lambda x, p: torch_ln(x, p, (6,)), {"w": (6,), "b": (6,)}, 1, 2),
    ("layer_norm_two_axes", (3, 4, 5), lambda x, p: F.layer_norm(x, (4, 5)),
     lambda x, p: torch_ln(x, p, (4, 5)), {}, 1, 1),
    ("softmax_rows_of_7", (4, 7), lambda x, p: F.softmax(x, -1),
     lambda x, p: x.softmax(-1), {}, 1, 1),
    ("log_softmax", (2, 3, 9), lambda x, p: F.log_softmax(x, -1),
     lambda x, p: x.log_softmax(-1), {}, 1, 1),
    ("attention_softmax", (2, 3, 5, 5), lambda x, p: causal_softmax(x),
     lambda x, p: torch_causal_softmax(x), {}, 2, 1),
    ("var_and_std", (6, 10),
     lambda x, p: F.var(x, -1, keepdims=True) * F.std(x, -1, keepdims=True) + x,
     lambda x, p: x.var(-1, keepdim=True) * x.std(-1, keepdim=True) + x, {}, 1, 1),
    # rows as long as they are many: a (4,) operand broadcasts along each row, not down
    ("per_column_view", (4, 4), lambda x, p: F.softmax(x + F.reshape(p["w"], (4,)), -1),
     lambda x, p: (x + p["w"].reshape(4)).softmax(-1), {"w": (4, 1)}, 1, 2),
    # one operand read along rows and once per row (a reduction without kept axes)
    ("per_row_and_per_column", (4, 4),
     lambda x, p: x + p["b"] - F.reshape(F.sum(x + p["b"], -1) * p["b"], (4, 1)),
     lambda x, p: x + p["b"] - ((x + p["b"]).sum(-1) * p["b"]).reshape(4, 1), {"b": (4,)}, 1, 3),
    ("softmax_row_too_long", (2, MAX_ROW + 3), lambda x, p: F.softmax(x, -1),
     lambda x, p: x.softmax(-1), {}, None, None),
]


def model_of(shape, fn, others):
    x = Param("x", shape, init="normal(1.0)")
    params = {k: Param(k, s, init="normal(1.0)") for k, s in others.items()}
    y = fn(x, params)
    r = Input("r", y.shape)
    return Model([r], {"y": y}, F.sum(y * r))


def data(prog, shape, seed=0):
    rng = np.random.default_rng(seed)
    params = {k: rng.normal(size=s) for k, (s, _) in prog.param_specs.items()}
    return params, {"r": rng.normal(size=shape)}


@pytest.mark.parametrize("backend", ["numpy", "triton"])
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_row_kernels_match_pytorch_in_float64(case, backend):
    name, shape, fn, torch_fn, others, _, _ = case
    prog = compile(model_of(shape, fn, others), backend=backend, dtype="float64")
    params, batch = data(prog, shape)
    out = prog.predict(params, batch)["y"]
    _, grads = prog.loss_and_grad(params, batch)
    tp = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in params.items()}
    ty = torch_fn(tp["x"], tp)
    (ty * torch.tensor(batch["r"])).sum().backward()
    want = ty.detach().numpy()
    assert np.abs(out - want).max() <= 1e-10 * np.abs(want).max()
    for k, t in tp.items():
        g = t.grad.numpy()
        assert np.abs(grads[k] - g).max() <= 1e-10 * max(1.0, np.abs(g).max()), k


@pytest.mark.parametrize("case", CASES[:-1], ids=[c[0] for c in CASES[:-1]])
def test_row_kernels_in_float32_match_the_numpy_backend(case):
    name, shape, fn, _, others, _, _ = case
    model = model_of(shape, fn, others)
    ours, theirs = (compile(model, backend=b, dtype="float32") for b in ("numpy", "triton"))
    params, batch = data(ours, shape)
    a, b = ours.loss_and_grad(params, batch)[1], theirs.loss_and_grad(params, batch)[1]
    a["y"], b["y"] = ours.predict(params, batch)["y"], theirs.predict(params, batch)["y"]
    for k in a:
        assert np.abs(a[k] - b[k]).max() <= 1e-5 * max(1.0, np.abs(a[k]).max()), k


@pytest.mark.parametrize("batch", [1, 5])
def test_row_kernels_over_a_batch_of_any_size(batch):
    """Rows of a layer norm and a softmax over a symbolic batch, the Triton backend against
    the numpy backend (float64), one row and several."""
    x, r = Input("x", ("B", 3, 6)), Input("r", ("B", 3, 6))
    y = F.softmax(F.layer_norm(x, 6, Param("w", (6,)), Param("b", (6,))), -1)
    model = Model([x, r], {"y": y}, F.sum(y * r))
    ours, theirs = (compile(model, backend=b, dtype="float64") for b in ("numpy", "triton"))
    rng = np.random.default_rng(batch)
    params = {"w": rng.normal(size=6), "b": rng.normal(size=6)}
    data_ = {"x": rng.normal(size=(batch, 3, 6)), "r": rng.normal(size=(batch, 3, 6))}
    a, b = ours.loss_and_grad(params, data_), theirs.loss_and_grad(params, data_)
    assert abs(a[0] - b[0]) <= 1e-12 * abs(a[0])
    for k in params:
        assert np.abs(a[1][k] - b[1][k]).max() <= 1e-10 * np.abs(a[1][k]).max(), k
    assert np.abs(ours.predict(params, data_)["y"] - theirs.predict(params, data_)["y"]).max() \
        <= 1e-12


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_row_kernels_fuse_each_normalisation_into_one_kernel(case):
    """The forward pass of a layer norm or a softmax is one kernel (the attention softmax:
    the mask's -inf triangle is a kernel of its own, the scale, mask and softmax one), and
    its input gradient one more; the layer norm's weight and bias gradients, two column
    sums of the output gradient, are one kernel more.  A row too long for registers falls
    back to several kernels."""
    name, shape, fn, _, others, forward, backward = case
    prog = compile(model_of(shape, fn, others), dtype="float64")
    phases = [k.phase for k in prog.kernels]
    if forward is None:
        assert phases.count("forward") == 4, [k.name for k in prog.kernels]
        return
    assert phases.count("forward") == forward, [k.name for k in prog.kernels]
    assert phases.count("backward") == backward, [k.name for k in prog.kernels]


def test_a_stored_member_that_would_make_kernels_read_each_other_stays_inside():
    """``a = exp(x)`` feeds the softmax's sum and a matmul whose result the softmax's
    kernel adds: were ``a`` stored by that kernel, it and the matmul would each wait for the
    other.  The partition keeps ``a`` out, and the results are still right."""
    x, w = Param("x", (4, 6)), Param("w", (6, 6))
    a = F.exp(x)
    h = a @ w
    out = a / F.sum(a, -1, keepdims=True) + h
    r = Input("r", (4, 6))
    prog = compile(Model([r], {"out": out, "h": h}, F.sum(out * r)), dtype="float64")
    # exp, the matmul, and the row-wise sum, divide and add: a stored exp would be a cycle
    assert [k.phase for k in prog.kernels].count("forward") == 3, [k.name for k in prog.kernels]
    rng = np.random.default_rng(0)
    params = {"x": rng.normal(size=(4, 6)), "w": rng.normal(size=(6, 6))}
    batch = {"r": rng.normal(size=(4, 6))}
    tx, tw = (torch.tensor(params[k], requires_grad=True) for k in ("x", "w"))
    ta = tx.exp()
    tout = ta / ta.sum(-1, keepdim=True) + ta @ tw
    (tout * torch.tensor(batch["r"])).sum().backward()
    assert np.abs(prog.predict(params, batch)["out"] - tout.detach().numpy()).max() <= 1e-12
    grads = prog.loss_and_grad(params, batch)[1]
    assert np.abs(grads["x"] - tx.grad.numpy()).max() <= 1e-10 * np.abs(tx.grad.numpy()).max()
    assert np.abs(grads["w"] - tw.grad.numpy()).max() <= 1e-10 * np.abs(tw.grad.numpy()).max()


@pytest.mark.parametrize("width", [7, 4096])
def test_row_kernels_compile_for_hopper_without_spills(width, tmp_path):
    """Rows of 7 (many per program) and of 4,096 (one per program, 16 warps): no local
    memory and no stack (registers spilled there) for the forward and backward kernels
    and the column sums,
    and at most 128 registers a thread (about 8 elements of each value: 4 warps on the
    4,096-wide rows would take 207)."""
    from compiler.aot import compile_in_subprocess
    from compiler.pipeline import module_path

    model = model_of((5, width), lambda x, p: F.layer_norm(x, width, p["w"], p["b"]),
                     {"w": (width,), "b": (width,)})
    path = module_path(model, "training", "triton", "float32")
    fixed = [k["name"] for k in compile(model, backend="triton").module.KERNELS if "constants" in k]
    assert len(fixed) == 3  # forward, input gradient, weight and bias gradients
    found = compile_in_subprocess(path, "sm_90")
    for name in fixed:
        r = found[name]
        assert r["local"] == 0 and not r["stack"] and r["registers"] <= 128, (name, r)


@pytest.mark.parametrize("name", ["cnn_digits", "tiny_gpt"])
def test_views_of_buffers_are_read_through_and_steps_move_fewer_bytes_than_per_op(name):
    """A reshape, transpose or broadcast of a buffer is no kernel of its own (a copy): each
    kernel that reads it reads the buffer with the view's strides.  With the row-wise
    kernels, the ConvNet's and the transformer's steps then move fewer bytes per example
    than one kernel per op would."""
    from compiler.inspection import traffic
    from compiler.modelfile import load
    from compiler.ops.registry import OPS
    from compiler.pipeline import kernels_of, training_graph
    from compiler.shapes import symbol

    model = load(str(Path(__file__).resolve().parent.parent / "examples" / f"{name}.py"))["model"]
    graph = training_graph(model)
    kernels = kernels_of(model, graph)
    outputs = set(graph.outputs.values())
    for k in kernels:
        views = [m for m in k.members if OPS[m.op].view]
        if len(k.members) == 1 and views and k.root not in outputs:
            readers = [m for c in kernels for m in c.members if any(i is k.root for i in m.inputs)]
            # only a view read by a view, a loss, a gather or a multi-result kernel stays a copy
            assert any(OPS[m.op].view or OPS[m.op].kind == "loss" or OPS[m.op].triton
                       or len(c.groups) > 1 for c in kernels for m in c.members
                       if any(i is k.root for i in m.inputs)), (k.name, readers)
    fused, _, unfused, _ = traffic(model)
    B = symbol("B")
    assert fused.coeff(B) < unfused.coeff(B), (fused, unfused)
