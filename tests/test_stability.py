"""Stable primitives and losses stay finite, and equal PyTorch, at inputs of +-1e4."""
import importlib.util

import numpy as np
import pytest
import torch

from compiler import Input, Model, Param, compile, ops as F
from oplib import rel_err

torch.set_default_dtype(torch.float64)
Z = np.array([[-1e4, 0.0, 1e4], [1e4, 1e4 - 1.0, -3.0]])
LABELS = np.array([0, 2])
TARGETS = np.array([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]])

CASES = {
    "sigmoid": (lambda z: F.sum(F.sigmoid(z)), lambda z: torch.sigmoid(z).sum()),
    "softplus": (lambda z: F.sum(F.softplus(z)), lambda z: torch.nn.functional.softplus(z).sum()),
    "logsumexp": (lambda z: F.sum(F.logsumexp(z, axis=1)), lambda z: torch.logsumexp(z, 1).sum()),
    "log_softmax": (lambda z: F.sum(F.log_softmax(z) * Input("t", (2, 3))),
                    lambda z: (torch.log_softmax(z, 1) * torch.tensor(TARGETS, dtype=z.dtype)).sum()),
    "bce_with_logits": (lambda z: F.bce_with_logits(z, Input("t", (2, 3))),
                        lambda z: torch.nn.functional.binary_cross_entropy_with_logits(
                            z, torch.tensor(TARGETS, dtype=z.dtype))),
    "cross_entropy": (lambda z: F.cross_entropy(z, Input("k", (2,), dtype="int64")),
                      lambda z: torch.nn.functional.cross_entropy(z, torch.tensor(LABELS))),
}


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_finite_and_equal_to_torch_at_large_inputs(name, dtype):
    build, reference = CASES[name]
    z = Param("z", (2, 3))
    loss = build(z)
    used = [n for n in (Input("t", (2, 3)), Input("k", (2,), dtype="int64"))
            if n.name in {"bce_with_logits": "t", "log_softmax": "t", "cross_entropy": "k"}.get(name, "")]
    prog = compile(Model(used, loss=loss), dtype=dtype)
    batch = {"t": TARGETS, "k": LABELS}
    value, grads = prog.loss_and_grad({"z": Z}, {k: v for k, v in batch.items()
                                                 if k in prog.inputs})
    torch.set_default_dtype(getattr(torch, dtype))
    try:
        tz = torch.tensor(Z, requires_grad=True)
        ref = reference(tz)
        ref.backward()
    finally:
        torch.set_default_dtype(torch.float64)
    assert np.isfinite(value) and np.all(np.isfinite(grads["z"]))
    # float32 keeps ~7 digits of 1e4-sized intermediates (x - logsumexp), as PyTorch does
    tol = 1e-12 if dtype == "float64" else 2e-4 if name == "logsumexp" else 1e-6
    assert rel_err(value, ref.item()) <= tol
    assert rel_err(grads["z"], tz.grad.numpy()) <= tol


SELECTIONS = {  # an infinite slope (sqrt at 0) behind a selection that picks something else
    "relu": (lambda v: F.sqrt(F.relu(v)), lambda v: torch.sqrt(torch.relu(v))),
    "where": (lambda v: F.sqrt(F.where(v > 0, v, 0.0)), lambda v: torch.sqrt(torch.where(v > 0, v, 0.0))),
    "maximum": (lambda v: F.sqrt(F.maximum(v, 0.0)), lambda v: torch.sqrt(torch.clamp_min(v, 0.0))),
    "clip": (lambda v: F.sqrt(F.clip(v, 0.0, 3.0)), lambda v: torch.sqrt(torch.clip(v, 0.0, 3.0))),
    "std_of_a_constant_column": (lambda v: F.std(v, axis=0), lambda v: torch.std(v, dim=0)),
}


@pytest.mark.parametrize("backend", ["numpy", pytest.param("triton", marks=pytest.mark.skipif(
    importlib.util.find_spec("triton") is None, reason="triton not installed"))])
@pytest.mark.parametrize("name", SELECTIONS)
def test_a_selection_gives_no_gradient_where_it_picks_the_other_side(name, backend):
    """``sqrt(relu(v))`` at ``v <= 0``: the square root's slope is infinite there, and relu
    passes nothing back, so the gradient is 0, as in PyTorch (it was ``inf * 0``, NaN); the
    same for where, maximum, clip and the standard deviation of a constant column."""
    x = Input("x", ("B", 3))
    build, reference = SELECTIONS[name]
    prog = compile(Model([x], loss=F.sum(build(x * Param("w", (3,))))), backend=backend, dtype="float64")
    X = np.array([[1.0, -2.0, 4.0], [1.0, 3.0, -1.0]])  # column 0 constant (for std)
    W = np.array([0.5, 1.0, 2.0])
    value, grads = prog.loss_and_grad({"w": W}, {"x": X})
    tw = torch.tensor(W, requires_grad=True)
    expected = reference(torch.tensor(X) * tw).sum()
    expected.backward()
    assert np.isfinite(grads["w"]).all()
    assert rel_err(value, expected.item()) <= 1e-12 and rel_err(grads["w"], tw.grad.numpy()) <= 1e-12
