"""Cache integrity, concurrent compiles, checkpoints under SIGKILL."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np

from compiler import Input, Model, compile, nn, ops as F
from compiler.cache import is_intact
from runner import gradc  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
MODEL = textwrap.dedent("""\
    import numpy as np
    from compiler import Input, Model, nn, ops as F
    x, y = Input("x", ("B", 8)), Input("y", ("B", 1))
    net = nn.Chain(nn.Dense(8, 256, act="tanh"), nn.Dense(256, 256, act="tanh"), nn.Dense(256, 1))
    model = Model([x, y], {"y_hat": net(x)}, F.mse(net(x), y))
    def data(seed=0):
        rng = np.random.default_rng(seed)
        xs = rng.normal(size=(64, 8))
        return {"x": xs, "y": np.sin(xs[:, :1])}
""")



def small_model():
    x, y = Input("x", ("B", 2)), Input("y", ("B", 1))
    net = nn.Chain(nn.Dense(2, 3, act="tanh"), nn.Dense(3, 1), name="reliability")
    return Model([x, y], {"y_hat": net(x)}, F.mse(net(x), y))


def test_four_processes_compiling_at_once_leave_one_valid_module(tmp_path):
    model = tmp_path / "model.py"
    model.write_text(MODEL)
    cache = tmp_path / "cache"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GRADC_CACHE_DIR": str(cache)}
    procs = [subprocess.Popen([sys.executable, "-m", "compiler", "compile", str(model)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(4)]
    assert all(p.wait(timeout=300) == 0 for p in procs)
    files = sorted(p.name for p in cache.iterdir())
    assert len(files) == 1 and files[0].startswith("gradc_numpy_training_"), files
    assert is_intact(cache / files[0])


def test_a_damaged_cached_module_is_detected_and_regenerated(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GRADC_CACHE_DIR", str(tmp_path))
    prog = compile(small_model())
    text = prog.path.read_text()
    prog.path.write_text(text[: len(text) // 2])
    assert not is_intact(prog.path)
    again = compile(small_model())
    assert "is damaged; regenerating it" in capsys.readouterr().err
    assert again.path == prog.path and is_intact(again.path)
    assert again.path.read_text() == text
    loss, _ = again.loss_and_grad(again.init_params(0), {"x": np.ones((2, 2)), "y": np.ones((2, 1))})
    assert np.isfinite(loss)


def test_an_unwritable_cache_falls_back_to_a_temporary_one(tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    monkeypatch.setenv("GRADC_CACHE_DIR", str(blocker / "cache"))
    prog = compile(small_model())
    err = capsys.readouterr().err
    assert "is not writable" in err and "using" in err
    assert prog.path.is_file() and not str(prog.path).startswith(str(blocker))


def test_sigkill_while_saving_never_corrupts_the_checkpoint_and_resume_is_exact(tmp_path):
    model = tmp_path / "model.py"
    model.write_text(MODEL)
    ck = tmp_path / "run.ckpt"
    common = ["--epochs", "400", "--batch-size", "8", "--optimizer", "adam", "--quiet"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "compiler", "train", str(model), *common,
                             "--checkpoint", str(ck), "--checkpoint-every", "1"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while not ck.exists() and time.time() < deadline:  # wait for the first checkpoint
        time.sleep(0.05)
    time.sleep(0.7)  # it saves every epoch (~0.8 MB each): kill it somewhere in there
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    resumed = gradc("train", model, *common, "--checkpoint", ck, "--resume", "--out", tmp_path / "r")
    assert resumed.returncode == 0, resumed.stderr
    whole = gradc("train", model, *common, "--out", tmp_path / "w")
    assert whole.returncode == 0, whole.stderr
    a = json.loads((tmp_path / "r" / "history.json").read_text())
    b = json.loads((tmp_path / "w" / "history.json").read_text())
    assert a["step_losses"] == b["step_losses"] and len(a["epoch_losses"]) == 400
