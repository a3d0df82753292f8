"""Values recomputed on Triton and stored on numpy (``fusion.free_recomputes``), and a
matmul read twice by its one epilogue: GELU's ``Phi(x)`` is a kernel of its own on numpy,
read by the backward pass (no second erf), and computed again where it is read on
Triton; both backends agree with PyTorch autograd, and Triton's step moves fewer bytes."""
import numpy as np
import pytest
import torch

from compiler import Input, Model, Param, compile, fusion, nn, ops as F
from compiler.inspection import traffic
from compiler.pipeline import kernels_of, training_graph

pytest.importorskip("triton")


def gelu_mlp():
    x, y = Input("x", ("B", 5)), Input("y", ("B", 3))
    net = nn.Chain(nn.Dense(5, 8, act="gelu"), nn.Dense(8, 3))
    out = net(x)
    return Model([x, y], {"out": out}, F.mean((out - y) ** 2))


def kernel_ops(model, backend):
    return [{m.op for m in k.members} for k in kernels_of(model, training_graph(model), backend)]


def test_gelu_stores_phi_on_numpy_and_recomputes_it_on_triton():
    model = gelu_mlp()
    numpy_kernels, triton_kernels = kernel_ops(model, "numpy"), kernel_ops(model, "triton")
    assert {"ndtr"} in numpy_kernels  # Phi(x), stored once
    assert sum("ndtr" in ops for ops in numpy_kernels) == 1
    assert {"ndtr"} not in triton_kernels  # computed by the forward mul and the backward
    assert sum("ndtr" in ops for ops in triton_kernels) == 2
    source = compile(model).source  # numpy: the gradient reads Phi, erf only once
    assert source.count("_rt.erf(") == 1


def test_recomputing_moves_fewer_bytes_in_fewer_kernels(monkeypatch):
    model = gelu_mlp()
    recomputed, n_recomputed, _, _ = traffic(model, backend="triton")
    monkeypatch.setattr(fusion, "free_recomputes", lambda kernels, outputs: kernels)
    stored, n_stored, _, _ = traffic(model, backend="triton")
    assert n_recomputed == n_stored - 1
    assert (stored - recomputed).subs("B", 1) > 0


def test_a_value_a_matmul_reads_is_stored():
    """A matmul operand is a buffer: tanh(h), read by the next layer's matmul and by the
    backward pass, stays a kernel of its own on Triton too."""
    x, y = Input("x", ("B", 5)), Input("y", ("B", 3))
    out = nn.Chain(nn.Dense(5, 8, act="tanh"), nn.Dense(8, 3))(x)
    model = Model([x, y], {"out": out}, F.mean((out - y) ** 2))
    assert kernel_ops(model, "triton") == kernel_ops(model, "numpy")


def test_a_matmul_read_twice_by_its_epilogue_keeps_it():
    """GELU's gradient ``g * Phi(x) + (g * x) * phi(x)`` reads the matmul's ``g`` twice,
    and both reads are in the matmul's epilogue: one kernel (``g`` is not stored)."""
    model = gelu_mlp()
    for backend in ("numpy", "triton"):
        kernels = kernel_ops(model, backend)
        assert any({"matmul", "exp", "mul", "add"} <= ops for ops in kernels), (backend, kernels)
        assert {"matmul", "transpose"} not in kernels and {"matmul"} not in kernels


@pytest.mark.parametrize("backend", ["numpy", "triton"])
def test_gelu_and_a_twice_read_matmul_match_pytorch_in_float64(backend):
    x, w, v = Input("x", ("B", 5)), Param("w", (5, 6)), Param("v", (6, 2))
    h = x @ w
    out = F.gelu(h * F.cos(h)) @ v
    model = Model([x], {"out": out}, F.sum(out ** 2))
    prog = compile(model, backend=backend, dtype="float64")
    rng = np.random.default_rng(3)
    params = {"w": rng.normal(size=(5, 6)), "v": rng.normal(size=(6, 2))}
    batch = {"x": rng.normal(size=(7, 5)) * 2}
    loss, grads = prog.loss_and_grad(params, batch)
    tp = {k: torch.tensor(p, requires_grad=True) for k, p in params.items()}
    th = torch.tensor(batch["x"]) @ tp["w"]
    tl = ((torch.nn.functional.gelu(th * torch.cos(th)) @ tp["v"]) ** 2).sum()
    tl.backward()
    assert abs(loss - tl.item()) <= 1e-12 * abs(tl.item())
    for k, t in tp.items():
        assert np.abs(grads[k] - t.grad.numpy()).max() <= 1e-10 * np.abs(t.grad.numpy()).max(), k


@pytest.mark.parametrize("backend", ["numpy", "triton"])
def test_a_value_read_after_a_reduction_is_stored(backend):
    """``tanh(p) - max(tanh(p))`` in one reduction kernel (a softmax over one element, no
    row-wise kernel): the subtraction comes after the max, where the kernel holds reduced
    values only, so Triton reads ``tanh(p)`` from memory (recomputing it there was a
    KeyError, found by the fuzzer)."""
    p, r = Param("p", (1,)), Input("r", (1,), dtype="float64")
    out = F.softmax(F.tanh(p), axis=0) * 3.0 + F.tanh(p)
    model = Model([r], {"out": out}, F.sum(out * r))
    prog = compile(model, backend=backend, dtype="float64")
    params, batch = {"p": np.array([0.3])}, {"r": np.array([-1.5])}
    tp = torch.tensor(params["p"], requires_grad=True)
    t_out = torch.softmax(torch.tanh(tp), 0) * 3.0 + torch.tanh(tp)
    (t_out * torch.tensor(batch["r"])).sum().backward()
    loss, grads = prog.loss_and_grad(params, batch)
    assert abs(loss - float((t_out * torch.tensor(batch["r"])).sum().detach())) <= 1e-14
    assert np.allclose(grads["p"], tp.grad.numpy(), rtol=1e-12)
