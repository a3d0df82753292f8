"""Transformers end to end: attention and a pre-norm block against PyTorch computations
from the same weights (float64), their matmul flops against FlopCounterMode, and bad input."""
import math
import textwrap

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from compiler import Input, Model, compile, nn, ops as F
from compiler.cost import matmul_flops
from compiler.flops import reverse_mode_graph
from compiler.shapes import symbol
from runner import compile_error, gradc, one_line_error  # noqa: E402

torch.set_default_dtype(torch.float64)
DIM, HEADS, T = 8, 2, 5


def torch_attention(x, p, prefix, heads, causal):
    """Multi-head self-attention written with torch matmuls (PyTorch's own formula)."""
    b, t, d = x.shape
    qkv = x @ p[f"{prefix}.in_proj_W"] + p[f"{prefix}.in_proj_b"]
    q, k, v = (part.reshape(b, t, heads, d // heads).transpose(1, 2) for part in qkv.split(d, -1))
    scores = q @ k.transpose(-1, -2) / math.sqrt(d // heads)
    if causal:
        scores = scores.masked_fill(torch.ones(t, t).triu(1).bool(), float("-inf"))
    out = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, t, d)
    return out @ p[f"{prefix}.out_proj_W"] + p[f"{prefix}.out_proj_b"]


def torch_block(x, p):
    ln = torch.nn.functional.layer_norm
    x = x + torch_attention(ln(x, (DIM,), p["layernorm0.weight"], p["layernorm0.bias"]), p,
                            "attn0", HEADS, True)
    h = ln(x, (DIM,), p["layernorm1.weight"], p["layernorm1.bias"])
    h = torch.nn.functional.gelu(h @ p["dense0.W"] + p["dense0.b"])
    return x + h @ p["dense1.W"] + p["dense1.b"]


def block_model():
    x = Input("x", ("B", T, DIM))
    r = Input("r", ("B", T, DIM))
    y = nn.TransformerBlock(DIM, HEADS)(x)
    return Model([x, r], {"y": y}, F.sum(y * r))


def moved(params, seed=0):
    """Parameters off their initial values (ones and zeros would hide mistakes)."""
    rng = np.random.default_rng(seed)
    return {k: v + 0.3 * rng.normal(size=v.shape) for k, v in params.items()}


def compare(prog, torch_fn, params, batch, tol=1e-10):
    """The output and every parameter gradient of ``sum(y * r)`` against torch's."""
    out = prog.predict(params, batch)["y"]
    _, grads = prog.loss_and_grad(params, batch)
    tp = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    ty = torch_fn(torch.tensor(batch["x"]), tp)
    (ty * torch.tensor(batch["r"])).sum().backward()
    scale = np.abs(ty.detach().numpy()).max()
    assert np.abs(out - ty.detach().numpy()).max() <= tol * scale
    for name, t in tp.items():
        g = t.grad.numpy()
        assert np.abs(grads[name] - g).max() <= tol * max(1.0, np.abs(g).max()), name


@pytest.mark.parametrize("causal", [False, True])
def test_attention_matches_pytorch(causal):
    x, r = Input("x", ("B", T, DIM)), Input("r", ("B", T, DIM))
    y = nn.MultiHeadAttention(DIM, HEADS, causal=causal)(x)
    prog = compile(Model([x, r], {"y": y}, F.sum(y * r)), dtype="float64")
    params = moved(prog.init_params(0))
    rng = np.random.default_rng(1)
    batch = {"x": rng.normal(size=(3, T, DIM)), "r": rng.normal(size=(3, T, DIM))}
    compare(prog, lambda x, p: torch_attention(x, p, "attn0", HEADS, causal), params, batch)


def test_attention_matches_torch_nn_multiheadattention():
    """The same layer as torch.nn.MultiheadAttention (batch_first) with the weights moved
    over: its in-projection weight is our in_proj_W transposed."""
    x = Input("x", ("B", T, DIM))
    attn = nn.MultiHeadAttention(DIM, HEADS, causal=True)
    y = attn(x)
    prog = compile(Model([x], {"y": y}, F.sum(y)), dtype="float64")
    params = moved(prog.init_params(0))
    ref = torch.nn.MultiheadAttention(DIM, HEADS, batch_first=True)
    with torch.no_grad():
        ref.in_proj_weight.copy_(torch.tensor(params["attn0.in_proj_W"].T))
        ref.in_proj_bias.copy_(torch.tensor(params["attn0.in_proj_b"]))
        ref.out_proj.weight.copy_(torch.tensor(params["attn0.out_proj_W"].T))
        ref.out_proj.bias.copy_(torch.tensor(params["attn0.out_proj_b"]))
    xs = np.random.default_rng(2).normal(size=(2, T, DIM))
    mask = torch.ones(T, T).triu(1).bool()
    want, _ = ref(*(torch.tensor(xs),) * 3, attn_mask=mask, need_weights=False)
    assert np.abs(prog.predict(params, {"x": xs})["y"] - want.detach().numpy()).max() <= 1e-12


@pytest.mark.parametrize("backend", ["numpy", "triton"])
def test_transformer_block_matches_pytorch(backend):
    prog = compile(block_model(), backend=backend, dtype="float64")
    assert [n for n in prog.param_specs] == [
        "layernorm0.weight", "layernorm0.bias", "attn0.in_proj_W", "attn0.in_proj_b",
        "attn0.out_proj_W", "attn0.out_proj_b", "layernorm1.weight", "layernorm1.bias",
        "dense0.W", "dense0.b", "dense1.W", "dense1.b"]
    params = moved(prog.init_params(0))
    rng = np.random.default_rng(3)
    batch = {"x": rng.normal(size=(2, T, DIM)), "r": rng.normal(size=(2, T, DIM))}
    compare(prog, torch_block, params, batch)


def test_transformer_block_matmul_flops_equal_flop_counter():
    """Every matmul of a training step (projections, scores, mixing, MLP; forward and
    backward, no gradient of the data) as FlopCounterMode counts the same computation."""
    ours = matmul_flops(reverse_mode_graph(block_model()).nodes).subs(symbol("B"), 4)
    prog = compile(block_model(), dtype="float64")
    params = {k: torch.tensor(v, requires_grad=True) for k, v in prog.init_params(0).items()}
    x, r = torch.randn(4, T, DIM), torch.randn(4, T, DIM)
    with FlopCounterMode(display=False) as counter:
        (torch_block(x, params) * r).sum().backward()
    assert ours == counter.get_total_flops()


BAD = {
    "heads that do not divide the width": (
        "nn.MultiHeadAttention(8, 3)(x)", "model.py:3: MultiHeadAttention: 3 heads do not divide"),
    "mismatched batch dimensions in @": (
        "x @ F.reshape(x, (-1, 2, 8, 5))",
        "model.py:3: shape mismatch in matmul: (B, 5, 8) @ (B/2, 2, 8, 5)"),
    "attention over a 2-D input": (
        "nn.MultiHeadAttention(8, 2)(x[:, 0])", "model.py:3: MultiHeadAttention(8, heads=2"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_transformers_are_one_line_errors_with_the_model_line(case, tmp_path):
    expr, message = BAD[case]
    assert message in compile_error(tmp_path, f"""\
        from compiler import Input, Model, nn, ops as F
        x = Input("x", ("B", 5, 8))
        h = {expr}
        model = Model([x], loss=F.sum(h))
    """)


def test_a_token_past_the_vocabulary_is_a_one_line_error(tmp_path):
    path = tmp_path / "model.py"
    path.write_text(textwrap.dedent("""\
        import numpy as np
        from compiler import Input, Model, nn, ops as F
        t, y = Input("t", ("B", 3), dtype="int64"), Input("y", ("B",), dtype="int64")
        logits = nn.Dense(12, 3)(F.flatten(nn.Embedding(10, 4)(t)))
        model = Model([t, y], {"logits": logits}, F.cross_entropy(logits, y))
        def data(seed=0):
            return {"t": np.array([[1, 2, 12]] * 4), "y": np.zeros(4, int)}
    """))
    assert "input 't' holds index 12, outside an axis of 10 elements" in one_line_error(
        gradc("train", str(path), "--quiet"))
