"""The bad-input catalogue: every case is one line naming the problem (and the model
file's line where it comes from there), exit status 2, no traceback, nothing half-written."""
import textwrap
from pathlib import Path

import numpy as np
import pytest

from compiler import Input, Model, Param, compile, nn, ops as F
from runtime.errors import GradcError
from runner import gradc  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent

GOOD = textwrap.dedent("""\
    import numpy as np
    from compiler import Input, Model, nn, ops as F
    x, y = Input("x", ("B", 2)), Input("y", ("B", 1))
    net = nn.Chain(nn.Dense(2, 4, act="tanh"), nn.Dense(4, 1))
    model = Model([x, y], {"y_hat": net(x)}, F.mse(net(x), y))
    def data(seed=0):
        rng = np.random.default_rng(seed)
        xs = rng.normal(size=(16, 2))
        return {"x": xs, "y": xs[:, :1]}
""")


def variant(old, new):
    assert old in GOOD
    return GOOD.replace(old, new)


# name -> (model file text or None for "no file", extra CLI args, expected message)
MODEL_CASES = {
    "missing model file": (None, [], "no such model file"),
    "syntax error": ("x = (1,\n", [], "model.py:1: syntax error"),
    "no model defined": ("x = 1\n", [], "defines no `model`"),
    "model is not a Model": ("model = 3\n", [], "`model` must be a compiler.Model"),
    "unknown op": (variant("F.mse(net(x), y)", "F.frobnicate(net(x), y)"), [],
                   "model.py:5: AttributeError"),
    "unknown activation": (variant('act="tanh"', 'act="swish"'), [],
                           "model.py:4: unknown activation 'swish'"),
    "broadcast that cannot work": (variant("F.mse(net(x), y)", "F.sum(net(x) + F.transpose(x))"),
                                   [], "model.py:5: shape mismatch in add: (B, 1) and (2, B)"),
    "matmul inner dimensions": (variant("net(x), y)", "net(x) @ x, y)"), [],
                                "model.py:5: shape mismatch in matmul: (B, 1) @ (B, 2)"),
    "wrong dtype": (variant('y = Input("x", ("B", 2)), Input("y", ("B", 1))'.replace('y = ', ''),
                            'Input("x", ("B", 2)), Input("y", ("B", 1), dtype="int64")'), [],
                    "model.py:5: wrong dtype"),
    "reduction over a missing axis": (variant("F.mse(net(x), y)", "F.sum(net(x), axis=3)"), [],
                                      "model.py:5: axis 3 is out of range"),
    "loss not scalar": (variant("F.mse(net(x), y)", "net(x) - y"), [], "the loss must be a float scalar"),
    "input not listed": (variant("Model([x, y]", "Model([x]"), [], "input 'y' is used but not listed"),
    "exception in the model file": (variant("net = nn", "1 / 0\nnet = nn"), [],
                                     "model.py:4: ZeroDivisionError"),
    "data() raises": (variant("xs = rng", "raise KeyError('oops')\n    xs = rng"), [],
                      "data() failed: KeyError"),
    "data() returns a list": (variant('return {"x": xs, "y": xs[:, :1]}', "return [xs]"), [],
                              "data() must return a dict"),
    "missing data key": (variant('"y": xs[:, :1]', '"target": xs[:, :1]'), [], "data has no 'y'"),
    "extra data key": (variant('"y": xs[:, :1]}', '"y": xs[:, :1], "z": xs}'), [],
                       "'z', which is not a model input"),
    "ragged data": (variant('"y": xs[:, :1]', '"y": xs[:8, :1]'), [], "size B is 16 in input 'x' but 8"),
    "NaN data": (variant('"y": xs[:, :1]', '"y": xs[:, :1] * np.nan'), [], "non-finite values"),
    "empty data": (variant("size=(16, 2)", "size=(0, 2)"), [], "empty (0 examples)"),
    "wrong feature size": (variant("size=(16, 2)", "size=(16, 3)"), [], "input 'x' has shape (16, 3)"),
    "non-numeric data": (variant('"y": xs[:, :1]', '"y": np.array([["a"]] * 16)'), [], "must be numeric"),
    "unknown optimizer": (GOOD, ["--optimizer", "lbfgs"], "unknown optimizer 'lbfgs'"),
    "unknown schedule": (GOOD, ["--schedule", "zigzag"], "unknown schedule 'zigzag'"),
    "bad flag value": (GOOD, ["--epochs", "many"], "invalid int value"),
    "resume without a checkpoint": (GOOD, ["--resume"], "--resume needs --checkpoint"),
    "unknown training setting": (GOOD + 'training = {"epoch": 3}\n', [], "unknown setting 'epoch'"),
}



def assert_one_line(out, message, out_dir=None):
    assert out.returncode == 2, (out.returncode, out.stdout, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gradc: error: "), out.stderr
    assert message in lines[0], lines[0]
    assert "Traceback" not in out.stderr
    if out_dir is not None:
        assert not out_dir.exists() or list(out_dir.iterdir()) == []


@pytest.mark.parametrize("case", MODEL_CASES)
def test_model_file_and_data_cases(case, tmp_path):
    text, flags, message = MODEL_CASES[case]
    model = tmp_path / "model.py"
    if text is not None:
        model.write_text(text)
    out = gradc("train", model, "--out", tmp_path / "out", "--quiet", "--epochs", "1", *flags,
                cwd=tmp_path)
    assert_one_line(out, message, tmp_path / "out")


def write_good(tmp_path):
    model = tmp_path / "model.py"
    model.write_text(GOOD)
    return model


@pytest.mark.parametrize("case,content,message", [
    ("corrupt npz", b"PK\x03\x04 not really a zip", "cannot read"),
    ("unknown extension", b"1,2\n", "must end in .npz or .csv"),
    ("csv column matching no input", b"x[0],x[1],y,w\n1,2,3,4\n", "column 'w' matches no model input"),
    ("csv with text", b"x[0],x[1],y\n1,two,3\n", "is not a number"),
])
def test_data_file_cases(case, content, message, tmp_path):
    suffix = {"corrupt npz": ".npz", "unknown extension": ".txt"}.get(case, ".csv")
    data = tmp_path / f"data{suffix}"
    data.write_bytes(content)
    out = gradc("train", write_good(tmp_path), "--data", data, "--quiet", cwd=tmp_path)
    assert_one_line(out, message)
    out = gradc("train", write_good(tmp_path), "--data", tmp_path / "absent.npz", "--quiet",
                cwd=tmp_path)
    assert_one_line(out, "no such data file")


def test_checkpoint_cases(tmp_path):
    model = write_good(tmp_path)
    ck = tmp_path / "run.ckpt"
    assert gradc("train", model, "--epochs", "2", "--batch-size", "4", "--checkpoint", ck, "--quiet",
                 cwd=tmp_path).returncode == 0
    good = ck.read_bytes()
    ck.write_bytes(good[: len(good) // 3])
    out = gradc("train", model, "--epochs", "3", "--batch-size", "4", "--checkpoint", ck, "--resume",
                "--quiet", cwd=tmp_path)
    assert_one_line(out, "corrupt or truncated")
    ck.write_bytes(b"hello")
    out = gradc("train", model, "--epochs", "3", "--batch-size", "4", "--checkpoint", ck, "--resume",
                "--quiet", cwd=tmp_path)
    assert_one_line(out, "is not a gradc checkpoint")
    ck.write_bytes(good)
    other = tmp_path / "other.py"
    other.write_text(GOOD.replace("nn.Dense(2, 4", "nn.Dense(2, 5").replace("nn.Dense(4, 1", "nn.Dense(5, 1"))
    out = gradc("train", other, "--epochs", "3", "--batch-size", "4", "--checkpoint", ck, "--resume",
                "--quiet", cwd=tmp_path)
    assert_one_line(out, "belongs to a different model")
    out = gradc("train", model, "--epochs", "3", "--batch-size", "4", "--checkpoint",
                tmp_path / "nope.ckpt", "--resume", "--quiet", cwd=tmp_path)
    assert_one_line(out, "cannot read checkpoint")


def test_output_and_backend_cases(tmp_path):
    model = write_good(tmp_path)
    blocker = tmp_path / "file"
    blocker.write_text("")
    out = gradc("train", model, "--out", blocker / "sub", "--quiet", cwd=tmp_path)
    assert_one_line(out, "cannot write to output directory")
    out = gradc("train", model, "--backend", "triton", "--quiet", cwd=tmp_path, interpret=False)
    assert_one_line(out, "the triton backend needs a CUDA GPU, or TRITON_INTERPRET=1")
    out = gradc("compile", model, "--backend", "cuda", cwd=tmp_path)
    assert_one_line(out, "invalid choice: 'cuda'")
    out = gradc("frobnicate", cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr


@pytest.mark.parametrize("build,message", [
    (lambda: Param("w", ("B", 3)), "concrete shape"),
    (lambda: Param("w", (3,), init="orthogonal"), "unknown init"),
    (lambda: bool(Input("x", (2,)) > 0), "truth value"),
    (lambda: compile(Model([], loss=F.sum(Param("w", (2,)))), dtype="float16"), "unknown dtype"),
    (lambda: compile(Model([], loss=F.sum(Param("w", (2,)))), backend="cuda"),
     "unknown backend 'cuda'"),
    (lambda: nn.Dense(0, 3), "positive integer sizes"),
    (lambda: F.dropout(Input("x", (2,)), 1.5), "dropout rate"),
    (lambda: Input("x y", (2,)), "must be a Python identifier"),
])
def test_python_api_cases(build, message):
    with pytest.raises(GradcError, match=message) as e:
        build()
    assert "\n" not in str(e.value)


def test_runtime_api_cases():
    prog = compile(Model([Input("x", ("B", 2))], loss=F.sum(Input("x", ("B", 2)) * Param("w", (2,)))))
    with pytest.raises(GradcError, match="missing parameters: w"):
        prog.loss({}, {"x": np.zeros((1, 2))})
    with pytest.raises(GradcError, match="parameter 'w' has shape"):
        prog.loss({"w": np.zeros(3)}, {"x": np.zeros((1, 2))})
