"""Every example runs in its fast mode and does what it claims."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
sys.path.insert(0, str(EXAMPLES))


def run(name, tmp_path):
    module = __import__(name)
    result = module.main(["--fast", "--plots", str(tmp_path)])
    return result, sorted(p.name for p in tmp_path.glob("*.png"))


def test_seed_regression(tmp_path):
    result, pngs = run("seed_regression", tmp_path)
    assert pngs == ["seed_regression.png"]
    for first, last in result.values():
        assert last < first / 10
    sgd, adam = result.values()
    assert adam[1] < sgd[1]  # Adam ahead of plain SGD at the same learning rate


def test_linear_features_reaches_least_squares(tmp_path):
    result, pngs = run("linear_features", tmp_path)
    assert pngs == ["linear_features.png"] and result["gap"] < 1e-6


def test_universal_approximation_improves_with_units(tmp_path):
    result, pngs = run("universal_approximation", tmp_path)
    assert pngs == ["universal_approximation.png"]
    assert result[3] > result[10] > result[100] and result[100] < 0.01


def test_toy_composite_matches_the_hand_derived_gradient(tmp_path):
    result, _ = run("toy_composite", tmp_path)
    assert result["relative"] < 1e-12


def test_gabor_gradient_descent_finds_the_global_and_a_local_minimum(tmp_path):
    result, pngs = run("gabor", tmp_path)
    assert pngs == ["gabor.png"]
    finals, true_loss = result["finals"], result["true_loss"]
    assert finals["GD from (-2.0, 19.0)"] < 1.5 * true_loss           # the global minimum
    assert finals["GD from (1.5, 8.0)"] > 5 * true_loss               # a local one
    for name, loss in finals.items():
        start = tuple(float(v) for v in name.split("from ")[1].strip("()").split(", "))
        assert loss <= result["initial"][start]


def test_logistic_binary(tmp_path):
    result, pngs = run("logistic_binary", tmp_path)
    assert pngs == ["logistic_binary.png"] and result["test_accuracy"] > 0.95


def test_digits_reaches_95_percent(tmp_path):
    pytest.importorskip("sklearn")
    result, pngs = run("digits", tmp_path)
    assert pngs == ["digits.png"]
    assert result["accuracy"] >= 0.95 and len(result["per_class"]) == 10


def test_cnn_digits_learns(tmp_path):
    pytest.importorskip("sklearn")
    result, pngs = run("cnn_digits", tmp_path)
    assert pngs == ["cnn_digits.png"]
    assert result["accuracy"] >= 0.95 and result["losses"][-1] < result["losses"][0] / 5


def test_resnet_blocks_residual_trains_and_plain_does_not(tmp_path):
    pytest.importorskip("sklearn")
    result, pngs = run("resnet_blocks", tmp_path)
    assert pngs == ["resnet_blocks.png"]
    plain, residual = result["plain"], result["residual"]
    assert residual["losses"][-1] < 0.95 * residual["losses"][0]
    assert residual["losses"][-1] < plain["losses"][-1] - 0.1
    assert residual["test_accuracy"][-1] > plain["test_accuracy"][-1] + 0.2


def test_tiny_gpt_learns_to_sort(tmp_path):
    result, pngs = run("tiny_gpt", tmp_path)
    assert pngs == ["tiny_gpt.png"]
    assert result["per_token"] > 0.5 and result["exact"] > 0.05  # chance: 0.1 and 1e-8


def test_flops_sqrt_exp(tmp_path):
    result, pngs = run("flops_sqrt_exp", tmp_path)
    assert pngs == ["flops_sqrt_exp.png"]
    assert list(result["seed"].values()) == [5, 10, 10]
    assert result["gradc"]["forward"] == 4 and result["gradc"]["naive + CSE"] == 7


def test_attention_flops_by_part_and_against_6nd(tmp_path):
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from compiler.flops import compare
    from compiler.shapes import symbol

    result, pngs = run("attention_flops", tmp_path)
    assert pngs == ["attention_flops.png"]
    parts, B, T = result["parts"], symbol("B"), symbol("T")
    # scores and mixing as FlopCounterMode counts the same attention in PyTorch
    b, t, heads, dim = 2, 32, 4, 64
    q, k, v = (torch.randn(b, heads, t, dim // heads, requires_grad=True) for _ in range(3))
    with FlopCounterMode(display=False) as forward:
        scores = (q @ k.transpose(-2, -1) / 4).masked_fill(torch.ones(t, t).triu(1) > 0, -1e9)
        out = torch.softmax(scores, -1) @ v
    with FlopCounterMode(display=False) as backward:
        out.sum().backward()
    assert forward.get_total_flops() == 2 * 2 * b * t ** 2 * dim
    for phase, counter in (("forward", forward), ("backward", backward)):
        ours = sum(parts[p][f"{phase}_matmul"] for p in ("scores q k^T", "mixing with v"))
        assert ours.subs({B: b, T: t}) == counter.get_total_flops()
    # the projections: 2 flops per weight and token forward, 4 backward (weight and input)
    for part, weights in (("QKV projection", 3 * dim ** 2), ("output projection", dim ** 2),
                          ("MLP", 8 * dim ** 2)):
        assert parts[part]["forward_matmul"] == 2 * weights * B * T
        assert parts[part]["backward_matmul"] == 4 * weights * B * T
    # the T^2 bytes: the (B, heads, T, T) float32 buffers the kernels read and write
    passes = sum(result["passes"].values())
    assert result["total_bytes"].coeff(T, 2).coeff(B, 1) == 4 * heads * passes > 0
    totals = [sum(series[i] for series in result["series"]["bytes"].values()) for i in (-2, -1)]
    assert result["ts"][-2:] == [1024, 2048] and 3.5 < totals[1] / totals[0] < 4
    assert result["share"]["bytes"][-1] > 0.9 > 0.1 > result["share"]["bytes"][0]
    # the tiny GPT against 6 * params * tokens
    import tiny_gpt

    gpt = result["gpt"]
    block = 2 * dim + (dim * 3 * dim + 3 * dim) + (dim * dim + dim) + 2 * dim + \
        (dim * 4 * dim + 4 * dim) + (4 * dim * dim + dim)
    assert gpt["params"] == 11 * dim + 16 * dim + 2 * block + 2 * dim + dim * 11 + 11
    assert gpt["six_n_d"] == 6 * gpt["params"] * 64 * 16
    reverse = compare(tiny_gpt.model, naive=False)["reverse_mode"]["flops"]
    assert gpt["total"] == reverse.subs(B, 64)
    assert gpt["attention_matmul"] == 2 * 3 * 2 * 2 * 64 * 16 ** 2 * dim
    assert gpt["matmul_params"] == 2 * 12 * dim ** 2 + dim * 11  # the blocks' and the head's
    assert gpt["weight_matmul"] == 6 * gpt["matmul_params"] * 64 * 16 == gpt["six_w_d"]


def test_td_learning_value_error_falls(tmp_path):
    result, pngs = run("td_learning", tmp_path)
    errors = result["errors"]
    assert pngs == ["td_learning.png"] and errors[-1] < errors[0] / 5


def test_shallow_vs_deep_equal_budgets(tmp_path):
    result, pngs = run("shallow_vs_deep", tmp_path)
    assert pngs == ["shallow_vs_deep.png"]
    counts = [r["params"] for r in result.values()]
    assert max(counts) / min(counts) < 1.05
    assert all(r["final"] < r["initial"] for r in result.values())
    assert min(result[2]["final"], result[3]["final"], result[4]["final"]) < result[1]["final"]


def test_regularization_lowers_the_test_loss(tmp_path):
    result, pngs = run("regularization", tmp_path)
    assert pngs == ["regularization.png"]
    plain = result["no regularization"]
    assert plain["train"] < plain["test"] / 3  # it memorises
    for name, r in result.items():
        if name != "no regularization":
            assert r["test"] < plain["test"], name


def test_optimizers_on_rosenbrock(tmp_path):
    result, pngs = run("optimizers", tmp_path)
    assert pngs == ["optimizers.png"]
    adam = next(v for k, v in result.items() if k.startswith("Adam"))
    gd = next(v for k, v in result.items() if k.startswith("gradient descent"))
    assert adam < 0.05 < gd


def test_walkthrough(tmp_path):
    result, _ = run("walkthrough", tmp_path)
    assert abs(result["reverse"] - result["fd"]) < 1e-7 and result["final"] < result["initial"] / 5


def test_expression_swell_script_writes_its_chart(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, str(EXAMPLES / "expression_swell.py"), "--plots",
                          str(tmp_path), "--max-depth", "3"], capture_output=True, text=True,
                         env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "expression_swell.png").is_file() and "12,623" in out.stdout


@pytest.mark.parametrize("name", ["seed_regression", "linear_features", "logistic_binary",
                                  "toy_composite"])
def test_model_files_train_from_the_command_line(name, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-m", "compiler", "train", str(EXAMPLES / f"{name}.py"),
                          "--epochs", "5", "--quiet"], capture_output=True, text=True, env=env,
                         cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "loss" in out.stdout
