"""What a new user hit (issue 13): checkpoint cost, outputs checked before training, short
batches, resume and summary messages, file modes, models without inputs, one-line errors,
BLAS threads for small matmuls."""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from compiler import Input, Model, Param, compile, nn, ops as F
from runner import ROOT, gradc
from runtime import checkpoint as ckpt
from runtime import train
from runtime.errors import GradcError

GOOD = textwrap.dedent("""\
    import numpy as np
    from pathlib import Path
    from compiler import Input, Model, nn, ops as F
    x, y = Input("x", ("B", 2)), Input("y", ("B", 1))
    net = nn.Chain(nn.Dense(2, 4, act="tanh"), nn.Dense(4, 1))
    model = Model([x, y], {"y_hat": net(x)}, F.mse(net(x), y))
    def data(seed=0):
        Path(__file__).with_name("data-was-loaded").touch()
        rng = np.random.default_rng(seed)
        xs = rng.normal(size=(16, 2))
        return {"x": xs, "y": xs[:, :1]}
""")


def write(tmp_path, text, name="model.py"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def one_line_error(out, message):
    assert out.returncode == 2, (out.returncode, out.stdout, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gradc: error: "), out.stderr
    assert message in lines[0], lines[0]


def blocking_package(tmp_path, name):
    """A directory for PYTHONPATH whose package ``name`` cannot be imported (as if absent)."""
    root = tmp_path / f"no-{name}"
    (root / name).mkdir(parents=True)
    message = f"No module named {name!r}"
    (root / name / "__init__.py").write_text(f"raise ImportError({message!r})\n")
    return f"{root}{os.pathsep}{ROOT}"


def small_regression():
    x, y = Input("x", ("B", 1)), Input("y", ("B", 1))
    net = nn.Chain(nn.Dense(1, 4, act="tanh"), nn.Dense(4, 1), name="newuser")
    return Model([x, y], {"y_hat": net(x)}, F.mse(net(x), y))


def curve(n=50, seed=0):
    xs = np.random.default_rng(seed).uniform(-1.5, 1.5, size=(n, 1))
    return {"x": xs, "y": np.sin(3 * xs)}


# -- 1. checkpoints: constant size, a sensible default cadence, exact resume ---------------
def test_a_checkpoint_does_not_grow_with_the_history_and_is_not_written_every_epoch(
        tmp_path, monkeypatch):
    prog = compile(small_regression(), dtype="float64")
    kwargs = dict(optimizer="sgd", lr=1e-2, batch_size=1, quiet=True)
    train(prog, curve(), epochs=2, checkpoint=tmp_path / "short.ckpt", **kwargs)
    saves = []
    real_save = ckpt.save
    monkeypatch.setattr(ckpt, "save", lambda *a: saves.append(a[3]["epoch"]) or real_save(*a))
    train(prog, curve(), epochs=40, checkpoint=tmp_path / "long.ckpt", **kwargs)
    # 2,000 step losses are kept out of the checkpoint: its size does not depend on them
    short, long = (tmp_path / "short.ckpt").stat().st_size, (tmp_path / "long.ckpt").stat().st_size
    assert long - short < 200, (short, long)
    # a run of a few seconds saves after its first epoch and at its end, not 40 times
    assert saves == [1, 40]
    # the whole history is still there on resume
    resumed = train(prog, curve(), epochs=41, checkpoint=tmp_path / "long.ckpt", resume=True,
                    **kwargs)
    assert len(resumed.step_losses) == 41 * 50 and len(resumed.epoch_losses) == 41


def test_resume_is_exact_even_after_a_kill_between_the_history_and_the_checkpoint(tmp_path):
    prog = compile(small_regression(), dtype="float64")
    kwargs = dict(optimizer="adam", lr=1e-2, batch_size=8, quiet=True, val_fraction=0.2, seed=2)
    ck = tmp_path / "run.ckpt"
    whole = train(prog, curve(), epochs=6, **kwargs)
    train(prog, curve(), epochs=3, checkpoint=ck, **kwargs)
    at_epoch_3 = ck.read_bytes()
    train(prog, curve(), epochs=5, checkpoint=ck, resume=True, **kwargs)
    ck.write_bytes(at_epoch_3)  # the history file holds 5 epochs, the checkpoint covers 3
    resumed = train(prog, curve(), epochs=6, checkpoint=ck, resume=True, **kwargs)
    for key in ("step_losses", "epoch_losses", "val_losses", "lrs", "metrics", "initial_loss"):
        assert getattr(resumed, key) == getattr(whole, key), key
    for k in whole.params:
        assert np.array_equal(resumed.params[k], whole.params[k])
    history = ckpt.history_path(ck).read_bytes()
    ckpt.history_path(ck).write_bytes(history[:-10])
    with pytest.raises(GradcError, match="does not match checkpoint"):
        train(prog, curve(), epochs=7, checkpoint=ck, resume=True, **kwargs)


# -- 2. every output checked before any work ----------------------------------------------
@pytest.mark.parametrize("case", ["checkpoint under a file", "checkpoint is a directory",
                                  "out under a file", "plot under a file", "plot.txt",
                                  "no matplotlib"])
def test_outputs_that_cannot_be_written_are_refused_before_any_work(case, tmp_path):
    model = write(tmp_path, GOOD)
    blocker = tmp_path / "file"
    blocker.write_text("")
    flags, env, message = {
        "checkpoint under a file": (["--checkpoint", blocker / "sub" / "run.ckpt"], None,
                                    "cannot write checkpoint"),
        "checkpoint is a directory": (["--checkpoint", tmp_path], None, "is a directory"),
        "out under a file": (["--out", blocker / "sub"], None, "cannot write to output directory"),
        "plot under a file": (["--plot", blocker / "sub" / "loss.png"], None, "cannot write plot"),
        "plot.txt": (["--plot", tmp_path / "plot.txt"], None, "cannot write a plot as .txt"),
        "no matplotlib": (["--plot", tmp_path / "loss.png"],
                          {"PYTHONPATH": blocking_package(tmp_path, "matplotlib")},
                          "plotting needs matplotlib"),
    }[case]
    out = gradc("train", model, "--epochs", "2", "--batch-size", "4", "--quiet", *flags, env=env)
    one_line_error(out, message)
    assert not (tmp_path / "data-was-loaded").exists()  # refused before data or training


# -- 3. a batch size larger than the data: one short batch, as PyTorch's DataLoader --------
def test_a_batch_larger_than_the_data_trains_one_short_batch_as_pytorch():
    prog = compile(small_regression(), dtype="float64")
    data = curve(n=8)
    hist = train(prog, data, optimizer="sgd", lr=0.1, epochs=3, quiet=True)  # batch size 32
    start = prog.init_params(0)
    w = {k: torch.tensor(v, requires_grad=True) for k, v in start.items()}
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.tensor(data["x"]), torch.tensor(data["y"])),
        batch_size=32, shuffle=True)
    opt = torch.optim.SGD(list(w.values()), lr=0.1)
    losses = []
    W0, b0, W1, b1 = w.values()  # dense0.W, dense0.b, dense1.W, dense1.b
    for _ in range(3):
        for x, y in loader:
            h = torch.tanh(x @ W0 + b0) @ W1 + b1
            loss = torch.mean((h - y) ** 2)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
    assert len(hist.step_losses) == len(losses) == 3
    np.testing.assert_allclose(hist.step_losses, losses, rtol=1e-12)
    for k, v in w.items():
        np.testing.assert_allclose(hist.params[k], v.detach().numpy(), rtol=1e-12)


# -- 4. resume with fewer epochs, a rising loss, validation loss, file modes ---------------
def test_resuming_with_fewer_epochs_than_trained_says_so(tmp_path):
    model = write(tmp_path, GOOD)
    ck = tmp_path / "run.ckpt"
    common = ["--batch-size", "4", "--quiet", "--checkpoint", ck]
    assert gradc("train", model, "--epochs", "3", *common).returncode == 0
    out = gradc("train", model, "--epochs", "2", "--resume", *common)
    one_line_error(out, "has already trained 3 epochs, more than the 2 asked for")
    out = gradc("train", model, "--epochs", "3", "--resume", *common)
    assert out.returncode == 0, out.stderr
    assert "nothing to train: the checkpoint is already at epoch 3 of 3" in out.stdout
    prog = compile(small_regression())
    train(prog, curve(), epochs=3, checkpoint=tmp_path / "api.ckpt", quiet=True)
    with pytest.raises(GradcError, match="already trained 3 epochs"):
        train(prog, curve(), epochs=2, checkpoint=tmp_path / "api.ckpt", resume=True, quiet=True)


def test_a_rising_loss_is_reported_as_higher(tmp_path):
    # loss w**2 (x = 1, y = 0) under SGD with lr 1.5: w -> w - 1.5 * 2w = -2w, the loss x4
    model = write(tmp_path, """\
        import numpy as np
        from compiler import Input, Model, Param, ops as F
        x, y = Input("x", ("B", 1)), Input("y", ("B", 1))
        w = Param("w", (1, 1), init="ones")
        model = Model([x, y], {"y_hat": x @ w}, F.mse(x @ w, y))
        training = {"optimizer": "sgd", "lr": 1.5, "epochs": 3, "batch_size": 4}
        def data(seed=0):
            return {"x": np.ones((4, 1)), "y": np.zeros((4, 1))}
    """)
    out = gradc("train", model, "--quiet", "--dtype", "float64")
    assert out.returncode == 0, out.stderr
    assert "loss 1 -> 16 (16.0x higher) after 3 epochs, 3 steps" in out.stdout


def test_the_summary_has_the_validation_loss_and_outputs_follow_the_umask(tmp_path):
    model = write(tmp_path, GOOD)
    old = os.umask(0o027)
    try:
        out = gradc("train", model, "--epochs", "3", "--batch-size", "4", "--val-fraction", "0.25",
                    "--quiet", "--out", tmp_path / "out", "--checkpoint", tmp_path / "run.ckpt",
                    "--plot", tmp_path / "loss.png")
        compiled = gradc("compile", model, "--out", tmp_path / "build")
    finally:
        os.umask(old)
    assert out.returncode == 0 and compiled.returncode == 0, out.stderr + compiled.stderr
    history = json.loads((tmp_path / "out" / "history.json").read_text())
    line = next(s for s in out.stdout.splitlines() if s.startswith("val_loss "))
    assert float(line.split()[1]) == pytest.approx(history["val_losses"][-1], rel=1e-5)
    files = [tmp_path / "out" / "history.json", tmp_path / "out" / "params.npz",
             tmp_path / "run.ckpt", tmp_path / "run.ckpt.history", tmp_path / "loss.png",
             tmp_path / "build" / "model_numpy.py"]
    assert {f.name: oct(f.stat().st_mode & 0o777) for f in files} == \
        {f.name: oct(0o640) for f in files}


# -- 5. a model without inputs trains on no data -------------------------------------------
def test_a_model_without_inputs_trains_from_the_command_line(tmp_path):
    model = write(tmp_path, """\
        from compiler import Model, Param
        w = Param("w", (), init="zeros")
        model = Model(inputs=[], outputs={"w": w}, loss=(w - 3.0) ** 2)
        training = {"optimizer": "sgd", "lr": 0.1, "epochs": 5}
    """)
    out = gradc("train", model, "--quiet", "--dtype", "float64", "--out", tmp_path / "out")
    assert out.returncode == 0, out.stderr
    w, expected = 0.0, []
    for _ in range(5):  # full-batch gradient descent by hand
        expected.append((w - 3.0) ** 2)
        w -= 0.1 * 2 * (w - 3.0)
    history = json.loads((tmp_path / "out" / "history.json").read_text())
    np.testing.assert_allclose(history["epoch_losses"], expected, rtol=1e-12)
    assert float(np.load(tmp_path / "out" / "params.npz")["w"]) == pytest.approx(w, rel=1e-12)
    out = gradc("train", ROOT / "examples" / "autodiff_trace.py", "--quiet", "--epochs", "3")
    assert out.returncode == 0, out.stderr
    assert "after 3 epochs, 3 steps" in out.stdout


# -- 6. one-line errors, no tracebacks -----------------------------------------------------
def test_inspect_into_a_closed_pipe_exits_quietly(tmp_path):
    model = write(tmp_path, GOOD)
    read_end, write_end = os.pipe()
    os.close(read_end)  # a reader that has gone away, as `| head` does after its lines
    try:
        proc = subprocess.run([sys.executable, "-m", "compiler", "inspect", str(model), "--source"],
                              stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=120,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    finally:
        os.close(write_end)
    assert proc.stderr == "" and proc.returncode == 141  # a writer ended by SIGPIPE


def test_digits_without_scikit_learn_is_a_one_line_error(tmp_path):
    out = gradc("train", ROOT / "examples" / "digits.py", "--epochs", "1", "--quiet",
                env={"PYTHONPATH": blocking_package(tmp_path, "sklearn")})
    one_line_error(out, "needs scikit-learn")


def test_compile_writes_triton_source_without_a_gpu(tmp_path):
    model = write(tmp_path, GOOD)
    plain = gradc("compile", model, "--backend", "triton", "--out", tmp_path / "a", interpret=False)
    assert plain.returncode == 0, plain.stderr
    interpreted = gradc("compile", model, "--backend", "triton", "--out", tmp_path / "b")
    assert interpreted.returncode == 0, interpreted.stderr
    source = (tmp_path / "a" / "model_triton.py").read_text()
    assert "@triton.jit" in source and source == (tmp_path / "b" / "model_triton.py").read_text()
    out = gradc("train", model, "--backend", "triton", "--quiet", interpret=False)
    one_line_error(out, "needs a CUDA GPU, or TRITON_INTERPRET=1")


# -- 7. BLAS threads chosen by the size of the step's matmuls ------------------------------
def mlp(sizes, name):
    x, k = Input("x", ("B", sizes[0])), Input("k", ("B",), dtype="int64")
    net = nn.Chain(*[nn.Dense(a, b, act="relu" if i < len(sizes) - 2 else None)
                     for i, (a, b) in enumerate(zip(sizes, sizes[1:]))], name=name)
    return Model([x, k], {"logits": net(x)}, F.cross_entropy(net(x), k))


def blas_threads():
    from threadpoolctl import threadpool_info

    return max(i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas")


@pytest.mark.parametrize("sizes,batch,busy,one_thread", [
    ((1, 32, 32, 2), 1, False, True),             # 2,144 flops: one thread
    ((784, 256, 256, 10), 128, False, False),     # 51 MFLOP on an idle machine: BLAS's own
    ((784, 256, 256, 10), 128, True, True),       # ... while every core is busy: one thread
])
def test_blas_threads_follow_the_size_of_the_matmuls_and_the_load(sizes, batch, busy, one_thread,
                                                                  monkeypatch):
    load = len(os.sched_getaffinity(0)) if busy else 0.0
    monkeypatch.setattr(os, "getloadavg", lambda: (load, load, load))
    prog = compile(mlp(sizes, f"blas{sizes[0]}"))
    rng = np.random.default_rng(0)
    data = {"x": rng.normal(size=(batch, sizes[0])), "k": rng.integers(0, sizes[-1], size=batch)}
    before, seen = blas_threads(), []
    real = prog.module.train_epoch
    monkeypatch.setattr(prog.module, "train_epoch",
                        lambda *a: seen.append(blas_threads()) or real(*a))
    train(prog, data, epochs=1, batch_size=batch, quiet=True)
    assert seen == [1 if one_thread else before]
    assert blas_threads() == before  # put back afterwards


def test_an_output_under_a_file_says_that_file_is_not_a_directory(tmp_path):
    (tmp_path / "afile").write_text("")
    for flag in ("--checkpoint", "--plot"):
        out = gradc("train", write(tmp_path, GOOD), flag, tmp_path / "afile" / "x.png")
        assert out.returncode == 2 and "afile is a file, not a directory" in out.stderr, out.stderr


def test_a_loss_that_is_nan_before_any_update_does_not_blame_the_learning_rate():
    w = Param("w", (2,))
    prog = compile(Model([], loss=F.sum(F.sqrt(w - 5.0))), dtype="float64")
    with pytest.raises(GradcError, match="at the first step, before any update"):
        train(prog, {}, epochs=1, quiet=True, params={"w": np.array([1.0, 2.0])})
