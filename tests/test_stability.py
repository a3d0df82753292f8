"""Stable primitives and losses stay finite, and equal PyTorch, at inputs of +-1e4."""
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
