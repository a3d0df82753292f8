"""The gradc command line end to end, including its one-line errors."""
import json
import re
import textwrap
from pathlib import Path

import numpy as np
import pytest
from runner import gradc  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "seed_regression.py"



def write(tmp_path, text, name="model.py"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


GOOD = """\
    import numpy as np
    from compiler import Input, Model, nn, ops as F
    x, y = Input("x", ("B", 2)), Input("y", ("B", 1))
    net = nn.Chain(nn.Dense(2, 8, act="tanh"), nn.Dense(8, 1))
    model = Model([x, y], {"y_hat": net(x)}, F.mse(net(x), y))
    def data(seed=0):
        rng = np.random.default_rng(seed)
        xs = rng.normal(size=(32, 2))
        return {"x": xs, "y": xs[:, :1] * xs[:, 1:]}
"""


def test_help_lists_the_verbs():
    out = gradc("--help")
    assert out.returncode == 0
    for verb in ("compile", "check", "train"):
        assert verb in out.stdout
        assert gradc(verb, "--help").returncode == 0


def test_train_the_seed_example_writes_history_and_params(tmp_path):
    out = gradc("train", EXAMPLE, "--out", tmp_path / "run", "--epochs", "150")
    assert out.returncode == 0, out.stderr
    hist = json.loads((tmp_path / "run" / "history.json").read_text())
    assert len(hist["epoch_losses"]) == 150 and len(hist["step_losses"]) == 150 * 100
    assert hist["epoch_losses"][-1] < hist["initial_loss"] / 10
    with np.load(tmp_path / "run" / "params.npz") as z:
        assert sorted(z.files) == ["dense0.W", "dense0.b", "dense1.W", "dense1.b",
                                   "dense2.W", "dense2.b"]
        assert z["dense1.W"].shape == (32, 32)
    assert "train" in out.stderr and "loss=" in out.stderr  # the tqdm bar with the running loss
    assert [p.name for p in (tmp_path / "run").iterdir() if p.name.startswith(".")] == []


def test_compile_writes_a_readable_module(tmp_path):
    out = gradc("compile", EXAMPLE, "--out", tmp_path)
    assert out.returncode == 0, out.stderr
    module = (tmp_path / "seed_regression_numpy.py").read_text()
    assert "def k0_matmul_add_tanh(" in module and "seed_regression.py:" in module
    assert "k0_matmul_add_tanh" in out.stdout


def test_check_passes_on_a_correct_model(tmp_path):
    out = gradc("check", write(tmp_path, GOOD))
    assert out.returncode == 0, out.stderr
    assert "worst relative error" in out.stdout and "ok" in out.stdout
    worst = float(out.stdout.split("worst relative error")[1].split()[0])
    assert worst < 1e-6


def test_check_handles_scalar_parameters():
    """Regression: 0-d parameters were perturbed on a copy, so every check failed."""
    out = gradc("check", ROOT / "examples" / "toy_composite.py")
    assert out.returncode == 0, out.stdout
    assert float(out.stdout.split("worst relative error")[1].split()[0]) < 1e-6


def test_check_order_2_checks_hessian_vector_products(tmp_path):
    out = gradc("check", write(tmp_path, GOOD), "--order", "2")
    assert out.returncode == 0, out.stderr
    assert "Hessian-vector product" in out.stdout
    assert float(out.stdout.split("worst relative error")[1].split()[0]) < 1e-6


def test_check_fails_with_status_1_when_above_tolerance(tmp_path):
    out = gradc("check", write(tmp_path, GOOD), "--tol", "1e-30")
    assert out.returncode == 1 and "FAILED" in out.stdout


def test_train_with_npz_and_csv_data(tmp_path):
    model = write(tmp_path, GOOD.replace("def data", "def unused"))
    rng = np.random.default_rng(0)
    xs = rng.normal(size=(16, 2))
    np.savez(tmp_path / "d.npz", x=xs, y=xs[:, :1])
    out = gradc("train", model, "--data", tmp_path / "d.npz", "--epochs", "3", "--quiet",
                "--batch-size", "8")
    assert out.returncode == 0, out.stderr
    csv_model = write(tmp_path, GOOD.replace('("B", 2)', '("B", 1)').replace("nn.Dense(2, 8",
                      "nn.Dense(1, 8").replace("def data", "def unused"), "csvmodel.py")
    (tmp_path / "d.csv").write_text("x,y\n1,2\n2,4\n3,6\n")
    out = gradc("train", csv_model, "--data", tmp_path / "d.csv", "--epochs", "2", "--quiet",
                "--batch-size", "2")
    assert out.returncode == 0, out.stderr


ERRORS = {
    "missing file": (None, "no such model file"),
    "syntax error": ("x = (1,\n", "model.py:1: syntax error"),
    "no model": ("x = 1\n", "defines no `model`"),
    "shape mismatch": (GOOD.replace('F.mse(net(x), y)', 'F.sum(net(x) + F.transpose(x))'),
                       "model.py:5: shape mismatch in add: (B, 1) and (2, B)"),
    "unknown activation": (GOOD.replace('act="tanh"', 'act="swish"'),
                           "model.py:4: unknown activation 'swish'"),
    "user exception": (GOOD.replace("net = nn", "1 / 0\n    net = nn"), "model.py:4: ZeroDivisionError"),
    "data keys": (GOOD.replace('"y": xs[:, :1] * xs[:, 1:]', '"target": xs[:, :1]'),
                  "data has no 'y'"),
    "non-finite data": (GOOD.replace("xs[:, :1] * xs[:, 1:]", "xs[:, :1] * np.inf"), "non-finite"),
    "no data": (GOOD.replace("def data", "def unused"), "no data"),
}


@pytest.mark.parametrize("case", ERRORS)
def test_bad_input_is_one_line_with_status_2(case, tmp_path):
    text, message = ERRORS[case]
    path = tmp_path / "model.py" if text is None else write(tmp_path, text)
    out = gradc("train", path, "--out", tmp_path / "out", "--quiet")
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gradc: error: "), out.stderr
    assert message in lines[0]
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "out" / "history.json").exists()


def test_bad_flags_and_unwritable_output(tmp_path):
    out = gradc("train", EXAMPLE, "--epochs", "many")
    assert out.returncode == 2 and "invalid int value" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    blocker = tmp_path / "file"
    blocker.write_text("")
    out = gradc("train", EXAMPLE, "--out", blocker / "sub", "--quiet")
    assert out.returncode == 2 and "cannot write to output directory" in out.stderr
    out = gradc("frobnicate")
    assert out.returncode == 2


def test_train_flags_checkpoint_resume_and_plot(tmp_path):
    model = write(tmp_path, GOOD)
    ck = tmp_path / "run.ckpt"
    common = ["--optimizer", "adam", "--lr", "0.01", "--batch-size", "8", "--quiet",
              "--schedule", "cosine:6", "--weight-decay", "0.001"]
    full = gradc("train", model, "--epochs", "6", "--out", tmp_path / "full", *common)
    assert full.returncode == 0, full.stderr
    part = gradc("train", model, "--epochs", "3", "--checkpoint", ck, *common)
    assert part.returncode == 0, part.stderr
    resumed = gradc("train", model, "--epochs", "6", "--checkpoint", ck, "--resume",
                    "--out", tmp_path / "resumed", "--plot", tmp_path / "loss.png", *common)
    assert resumed.returncode == 0, resumed.stderr
    a = json.loads((tmp_path / "full" / "history.json").read_text())
    b = json.loads((tmp_path / "resumed" / "history.json").read_text())
    assert a["step_losses"] == b["step_losses"] and len(a["epoch_losses"]) == 6
    assert (tmp_path / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ck.write_bytes(ck.read_bytes()[:-100])
    bad = gradc("train", model, "--epochs", "8", "--checkpoint", ck, "--resume", *common)
    assert bad.returncode == 2 and "corrupt or truncated" in bad.stderr
    assert str(ck) in bad.stderr


def test_train_reports_accuracy_and_early_stopping(tmp_path):
    model = write(tmp_path, """\
        import numpy as np
        from compiler import Input, Model, nn, ops as F
        x, k = Input("x", ("B", 2)), Input("k", ("B",), dtype="int64")
        net = nn.Chain(nn.Dense(2, 16, act="relu"), nn.Dense(16, 3))
        model = Model([x, k], {"logits": net(x)}, F.cross_entropy(net(x), k))
        training = {"optimizer": "adam", "lr": 0.02, "epochs": 300, "batch_size": 16}
        def data(seed=0):
            rng = np.random.default_rng(seed)
            k = rng.integers(0, 3, size=200)
            return {"x": np.array([[0, 2], [2, -1], [-2, -1]])[k] + rng.normal(size=(200, 2)),
                    "k": k}
    """)
    out = gradc("train", model, "--val-fraction", "0.25", "--early-stopping", "4", "--quiet")
    assert out.returncode == 0, out.stderr
    assert "val_accuracy" in out.stdout and "early stopping at epoch" in out.stdout
    # the kept parameters' losses are reported, not the last epoch's
    best = int(re.search(r"best validation loss at epoch (\d+)", out.stdout).group(1))
    assert best < int(re.search(r"early stopping at epoch (\d+)", out.stdout).group(1))
    assert re.search(r"those parameters are kept: training loss [\d.e-]+, val_loss [\d.e-]+",
                     out.stdout)


def test_csv_columns_fill_feature_vectors(tmp_path):
    model = write(tmp_path, GOOD.replace("def data", "def unused"))
    rows = ["x[0],x[1],y"] + [f"{i},{-i},{i * 0.1}" for i in range(10)]
    (tmp_path / "d.csv").write_text("\n".join(rows))
    out = gradc("train", model, "--data", tmp_path / "d.csv", "--epochs", "2", "--batch-size",
                "5", "--quiet")
    assert out.returncode == 0, out.stderr
    (tmp_path / "bad.csv").write_text("x[0],x[1]\n1,2\n")
    out = gradc("train", model, "--data", tmp_path / "bad.csv", "--quiet")
    assert out.returncode == 2 and "data has no 'y'" in out.stderr


@pytest.mark.parametrize("flags,message", [
    (["--optimizer", "lbfgs"], "unknown optimizer 'lbfgs'"),
    (["--schedule", "zigzag"], "unknown schedule 'zigzag'"),
    (["--resume"], "--resume needs --checkpoint"),
    (["--early-stopping", "3"], "early stopping needs validation data"),
    (["--val-fraction", "1.5"], "validation fraction"),
    (["--lr", "-1"], "lr must be a positive number"),
])
def test_bad_training_flags(flags, message, tmp_path):
    out = gradc("train", write(tmp_path, GOOD), "--quiet", "--epochs", "1", *flags)
    assert out.returncode == 2, out.stderr
    assert message in out.stderr and len(out.stderr.strip().splitlines()) == 1
