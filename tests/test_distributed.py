"""Data-parallel training on torch.distributed (gloo on localhost): the data order against
DistributedSampler, 2 processes against 1 with twice the batch, resume across process
counts, agreed errors, dead and silent ranks, the command line, and the Triton backend.

Workers are this file run as a script (``python tests/test_distributed.py SCENARIO DIR``)
or ``python -m compiler train`` with the environment torchrun would set.
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from compiler import Input, Model, compile, nn, ops as F  # noqa: E402
from runner import gradc  # noqa: E402
from runtime import distributed, train  # noqa: E402
from runtime.errors import GradcError, TrainingError  # noqa: E402

SETTINGS = {"optimizer": "adam", "lr": 0.01, "seed": 3, "quiet": True}


def regression():
    x, y = Input("x", ("B", 3)), Input("y", ("B", 2))
    net = nn.Chain(nn.Dense(3, 8, act="tanh"), nn.Dense(8, 2))
    return Model([x, y], {"y_hat": net(x)}, F.mse(net(x), y))


def normalized():
    """A batch-norm layer: batch statistics per process, running statistics (buffers)."""
    x, y = Input("x", ("B", 3)), Input("y", ("B", 2))
    out = nn.Dense(8, 2)(F.tanh(nn.BatchNorm1d(8)(nn.Dense(3, 8)(x))))
    return Model([x, y], {"y_hat": out}, F.mse(out, y))


def dataset(n=100, seed=0):
    rng = np.random.default_rng(seed)
    xs = rng.normal(size=(n, 3))
    return {"x": xs, "y": np.stack([np.sin(xs[:, 0]), xs[:, 1] * xs[:, 2]], axis=1)}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(command, nproc=2, env=None):
    """``nproc`` processes of ``command`` with the environment torchrun sets (no agent)."""
    port = free_port()
    procs = []
    for rank in range(nproc):
        penv = {**os.environ, "PYTHONPATH": str(ROOT), "RANK": str(rank), "LOCAL_RANK": str(rank),
                "WORLD_SIZE": str(nproc), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
                "OMP_NUM_THREADS": "1", **(env or {})}
        procs.append(subprocess.Popen(command, env=penv, cwd=ROOT, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))
    return procs


def finish(procs, timeout=120):
    """``[(returncode, stdout, stderr)]`` of every process (each killed after ``timeout`` s)."""
    results = []
    for p in procs:
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
        results.append((p.returncode, out, err))
    return results


def scenario(name, tmp_path, nproc=2, env=None, timeout=120):
    procs = start([sys.executable, __file__, name, str(tmp_path)], nproc, env)
    return finish(procs, timeout)


# ---------------------------------------------------------------- worker side

def worker_runs(out):
    """Trainings in 2 processes, each rank saving its results to ``out/rank<r>.npz`` and
    its errors to ``out/rank<r>.json``."""
    rank = int(os.environ["RANK"])
    prog = compile(regression(), dtype="float64")
    data = dataset()
    saved, errors = {}, {}

    def keep(name, hist):
        saved.update({f"{name}/{k}": v for k, v in hist.params.items()})
        saved[f"{name}/losses"] = np.array(hist.step_losses)
        saved[f"{name}/epoch_losses"] = np.array(hist.epoch_losses)

    keep("epoch", train(prog, data, epochs=1, batch_size=16, distributed=True, **SETTINGS))
    keep("four", train(prog, data, epochs=4, batch_size=16, distributed=True, **SETTINGS))
    keep("two", train(prog, data, epochs=2, batch_size=16, checkpoint=out / "two.ckpt",
                      distributed=True, **SETTINGS))
    train(prog, data, epochs=2, batch_size=16, checkpoint=out / "again.ckpt", distributed=True,
          **SETTINGS)
    keep("again", train(prog, data, epochs=4, batch_size=16, checkpoint=out / "again.ckpt",
                        resume=True, distributed=True, **SETTINGS))
    keep("grown", train(prog, data, epochs=4, batch_size=16, checkpoint=out / "copy.ckpt",
                        resume=True, distributed=True, **SETTINGS))  # written by 1 process
    hist = train(compile(normalized(), dtype="float64"), data, epochs=3, batch_size=16,
                 val_fraction=0.2, early_stopping=5, distributed=True, **SETTINGS)
    keep("norm", hist)
    saved["norm/val_losses"] = np.array(hist.val_losses)
    bad = {k: v[:, :2] for k, v in data.items()} if rank == 1 else data
    huge = {k: v.copy() for k, v in data.items()}
    huge["y"][7] = 1e200  # its squared error overflows: the loss is inf where it is trained
    for name, kwargs in [("bad_data", {"data": bad}), ("seed", {"seed": rank}),
                         ("overflow", {"data": huge})]:
        try:
            train(prog, **{"data": data, "epochs": 2, "batch_size": 16, "distributed": True,
                           **SETTINGS, **kwargs})
        except GradcError as e:
            errors[name] = [type(e).__name__, str(e)]
    np.savez(out / f"rank{rank}.npz", **saved)
    (out / f"rank{rank}.json").write_text(json.dumps(errors))


def worker_stalls(out, how):
    """Rank 1 is killed (``kill``) or stopped (``stop``) 1.5 s into a long run; rank 0
    writes the error it stopped with to ``out/error.txt``."""
    import datetime
    import threading

    import torch.distributed as dist

    prog = compile(regression(), dtype="float64")
    rank = int(os.environ["RANK"])  # a process group with a 3 s timeout, after a patient rendezvous
    store = dist.TCPStore("127.0.0.1", int(os.environ["MASTER_PORT"]), 2, rank == 0,
                          timeout=datetime.timedelta(seconds=60))
    dist.init_process_group("gloo", store=store, rank=rank, world_size=2,
                            timeout=datetime.timedelta(seconds=3))
    dist.barrier()
    if rank == 1:
        sig = signal.SIGKILL if how == "kill" else signal.SIGSTOP
        threading.Timer(1.5, os.kill, (os.getpid(), sig)).start()
    try:
        train(prog, dataset(), epochs=10**6, batch_size=16, distributed=True, **SETTINGS)
    except GradcError as e:
        (out / "error.txt").write_text(str(e))
        sys.exit(2)


def worker_triton(out):
    """One epoch on the Triton backend (interpreter, float64) in 2 processes."""
    prog = compile(regression(), backend="triton", dtype="float64")
    hist = train(prog, dataset(32), epochs=1, batch_size=8, distributed=True, **SETTINGS)
    np.savez(out / f"rank{os.environ['RANK']}.npz", **hist.params)


# ---------------------------------------------------------------- the data order

@pytest.mark.parametrize("n, procs", [(10, 2), (11, 2), (7, 3), (2, 4), (12, 4)])
def test_shards_are_distributed_samplers(n, procs):
    from torch.utils.data import DistributedSampler

    order = np.random.default_rng(n).permutation(n)
    for rank in range(procs):
        sampler = DistributedSampler(list(order), num_replicas=procs, rank=rank, shuffle=False)
        expected = [order[i] for i in sampler]
        assert distributed.epoch_rows(order, procs, procs, rank).tolist() == expected


def test_a_process_with_several_shards_trains_their_union_each_step():
    from torch.utils.data import DistributedSampler

    order, batch = np.random.default_rng(0).permutation(37), 3
    shards = [list(DistributedSampler(list(order), num_replicas=4, rank=s, shuffle=False))
              for s in range(4)]
    for procs in (1, 2):
        for rank in range(procs):
            rows = distributed.epoch_rows(order, 4, procs, rank)
            m = 4 // procs
            steps = [rows[i:i + m * batch] for i in range(0, len(rows), m * batch)]
            assert len(steps) == -(-len(shards[0]) // batch)
            for k, step in enumerate(steps):
                union = [order[i] for s in range(rank * m, rank * m + m)
                         for i in shards[s][k * batch:(k + 1) * batch]]
                assert sorted(step.tolist()) == sorted(union)


# ---------------------------------------------------------------- 2 processes on localhost

@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The worker_runs trainings; ``one.ckpt`` is written by 1 process first."""
    out = tmp_path_factory.mktemp("dp")
    prog = compile(regression(), dtype="float64")
    train(prog, dataset(), epochs=2, batch_size=16, checkpoint=out / "one.ckpt", **SETTINGS)
    for suffix in ("", ".history"):  # the workers resume (and overwrite) a copy
        shutil.copy(out / f"one.ckpt{suffix}", out / f"copy.ckpt{suffix}")
    results = scenario("runs", out)
    assert [r[0] for r in results] == [0, 0], results
    ranks = [np.load(out / f"rank{r}.npz") for r in (0, 1)]
    errors = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
    return {"out": out, "prog": prog, "ranks": ranks, "errors": errors, "results": results}


def test_two_processes_of_16_are_one_process_of_32(runs):
    """float64: 2 processes with batch 16 step as 1 process with batch 32 over the same
    permutation (each step's 32 rows are the union of the ranks' 16), to 1e-12."""
    r0, r1 = runs["ranks"]
    one = train(runs["prog"], dataset(), epochs=1, batch_size=32, **SETTINGS)
    other = train(runs["prog"], dataset(), epochs=1, batch_size=16, **SETTINGS)
    for name, value in one.params.items():
        assert np.array_equal(r0[f"epoch/{name}"], r1[f"epoch/{name}"])  # identical on every rank
        assert np.max(np.abs(r0[f"epoch/{name}"] - value)) < 1e-12
    assert len(r0["epoch/losses"]) == len(one.step_losses) == 4
    assert np.max(np.abs(r0["epoch/losses"] - one.step_losses)) < 1e-12
    assert max(np.max(np.abs(r0[f"epoch/{k}"] - v)) for k, v in other.params.items()) > 1e-3


def test_a_two_process_checkpoint_resumes_in_one_process(runs):
    """Resumed in 1 process, the checkpoint keeps its 2 shards: 32-row steps, each the union
    of the two ranks' 16, so the losses are the uninterrupted 2-process run's."""
    r0 = runs["ranks"][0]
    hist = train(runs["prog"], dataset(), epochs=4, batch_size=16,
                 checkpoint=runs["out"] / "two.ckpt", resume=True, **SETTINGS)
    assert hist.start_epoch == 2 and len(hist.step_losses) == len(r0["four/losses"]) == 16
    assert np.max(np.abs(np.array(hist.step_losses) - r0["four/losses"])) < 1e-12
    for name, value in hist.params.items():
        assert np.max(np.abs(value - r0[f"four/{name}"])) < 1e-12
    assert np.array_equal(r0["again/losses"], r0["four/losses"])  # resumed in 2 processes


def test_a_one_process_checkpoint_resumes_in_two_processes(runs):
    """1 shard cannot be split in 2: from the resumed epoch on each process takes one shard
    of 16, the steps of a 1-process run with batch 32 resumed from the same checkpoint."""
    r0 = runs["ranks"][0]
    hist = train(runs["prog"], dataset(), epochs=4, batch_size=32,
                 checkpoint=runs["out"] / "one.ckpt", resume=True, **SETTINGS)
    assert np.max(np.abs(np.array(hist.step_losses[-8:]) - r0["grown/losses"][-8:])) < 1e-12
    assert "from epoch 3 on it has 2 (one per process)" in runs["results"][0][2]
    assert "note" not in runs["results"][1][2]


def test_running_statistics_are_rank_0s_on_every_rank(runs):
    """Each process normalises with its own minibatch's statistics, but the running
    statistics (and so the validation losses) are rank 0's everywhere, as in PyTorch's
    DistributedDataParallel; without that, rank 1's would follow its own minibatches."""
    r0, r1 = runs["ranks"]
    names = [k for k in r0.files if k.startswith("norm/")]
    assert "norm/bn0.running_mean" in names and "norm/bn0.running_var" in names
    for k in names:
        assert np.array_equal(r0[k], r1[k]), k
    assert np.max(np.abs(r0["norm/bn0.running_mean"])) > 1e-3  # they moved


def test_errors_are_agreed_on_every_rank(runs):
    """Bad data on rank 1 alone, different seeds, an overflow on one rank: every rank stops
    with the same one-line error, naming the rank it came from."""
    e0, e1 = runs["errors"]
    assert e0 == e1
    kind, message = e0["bad_data"]
    assert kind == "DataError" and message.startswith("rank 1: input 'x'")
    assert e0["seed"] == ["GradcError", "rank 1 has seed 1 but rank 0 has 0: every process "
                          "needs the same settings and data"]
    huge = {k: v.copy() for k, v in dataset().items()}
    huge["y"][7] = 1e200
    with pytest.raises(TrainingError) as single:
        train(runs["prog"], huge, epochs=2, batch_size=32, **SETTINGS)
    kind, message = e0["overflow"]
    assert kind == "TrainingError" and message.split(": ", 1)[1] == str(single.value)
    assert message.split(": ")[0] in ("rank 0", "rank 1")


@pytest.mark.parametrize("how", ["kill", pytest.param("stop", marks=pytest.mark.slow)])
def test_a_dead_or_silent_rank_is_named(how, tmp_path):
    """Killed: its connection closes at once; stopped (SIGSTOP): the 3 s timeout.  Rank 0
    stops with one line naming rank 1, not a hang."""
    began = time.monotonic()
    procs = start([sys.executable, __file__, how, str(tmp_path)])
    code, _, err = finish(procs[:1], timeout=60)[0]
    procs[1].kill()
    finish(procs[1:])
    assert code == 2, err
    message = (tmp_path / "error.txt").read_text()
    assert re.match(r"rank 1 stopped responding (at step|in epoch) \d+ \(", message), message
    assert "\n" not in message
    assert ("Timed out" in message) == (how == "stop")
    assert time.monotonic() - began < 40


def test_triton_backend_in_two_processes(tmp_path):
    """The Triton backend (interpreter, float64) in 2 gloo processes: the parameters of 1
    numpy process with twice the batch, to 1e-9."""
    results = scenario("triton", tmp_path, env={"TRITON_INTERPRET": "1"})
    assert [r[0] for r in results] == [0, 0], results
    one = train(compile(regression(), dtype="float64"), dataset(32), epochs=1, batch_size=16,
                **SETTINGS)
    ranks = [np.load(tmp_path / f"rank{r}.npz") for r in (0, 1)]
    for name, value in one.params.items():
        assert np.array_equal(ranks[0][name], ranks[1][name])
        assert np.max(np.abs(ranks[0][name] - value)) < 1e-9


# ---------------------------------------------------------------- the command line

MODEL = """\
    import os, signal, threading
    import numpy as np
    from compiler import Input, Model, nn, ops as F
    x, y = Input("x", ("B", 2)), Input("y", ("B", 1))
    net = nn.Chain(nn.Dense(2, 8, act="tanh"), nn.Dense(8, 1))
    model = Model([x, y], {"y_hat": net(x)}, F.mse(net(x), y))
    def data(seed=0):
        if os.environ.get("KILL_RANK", "no") == os.environ.get("RANK"):
            threading.Timer(1.5, os.kill, (os.getpid(), signal.SIGKILL)).start()
        xs = np.random.default_rng(seed).normal(size=(64, 2))
        return {"x": xs, "y": xs[:, :1] * xs[:, 1:]}
"""


@pytest.fixture
def model(tmp_path):
    path = tmp_path / "model.py"
    path.write_text(textwrap.dedent(MODEL))
    return path


def test_cli_nproc_trains_on_rank_0_outputs(model, tmp_path):
    result = gradc("train", model, "--nproc", "2", "--epochs", "3", "--batch-size", "8",
                   "--dtype", "float64", "--out", tmp_path / "out", "--checkpoint", tmp_path / "ck")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("loss ") == 1 and "after 3 epochs, 12 steps" in result.stdout
    assert "error" not in result.stderr
    saved = json.loads((tmp_path / "out" / "history.json").read_text())
    one = gradc("train", model, "--epochs", "3", "--batch-size", "16", "--dtype", "float64",
                "--out", tmp_path / "one")
    assert one.returncode == 0, one.stderr
    reference = json.loads((tmp_path / "one" / "history.json").read_text())
    assert np.max(np.abs(np.subtract(saved["step_losses"], reference["step_losses"]))) < 1e-12
    assert (tmp_path / "ck").exists() and (tmp_path / "ck.history").exists()


def test_cli_bad_input_is_one_line_with_status_2(model, tmp_path):
    zero = gradc("train", model, "--nproc", "0")
    assert zero.returncode == 2 and zero.stderr.strip() == (
        "gradc: error: argument --nproc: must be a positive integer, got 0")
    fake = tmp_path / "notorch" / "torch"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('No module named torch')\n")
    notorch = gradc("train", model, "--nproc", "2",
                    env={"PYTHONPATH": f"{tmp_path / 'notorch'}{os.pathsep}{ROOT}"})
    assert notorch.returncode == 2 and notorch.stderr.strip() == (
        "gradc: error: distributed training needs PyTorch (pip install torch)")
    many = gradc("train", model, "--nproc", "2", "--batch-size", "64")
    assert many.returncode == 2 and many.stderr.strip() == (
        "gradc: error: 2 processes, but 64 examples make only 1 minibatch of 64: use at most "
        "1 process or a smaller batch size"), many.stderr
    assert many.stdout == ""


def test_cli_names_a_killed_rank(model):
    began = time.monotonic()
    result = gradc("train", model, "--nproc", "2", "--epochs", "1000000", "--quiet",
                   env={"KILL_RANK": "1"})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "gradc: error: rank 1 was killed by SIGKILL; the other processes were stopped")
    assert "Traceback" not in result.stderr
    assert time.monotonic() - began < 60


def test_train_without_a_launcher_is_one_line():
    with pytest.raises(GradcError, match="needs the environment torchrun sets"):
        train(compile(regression()), dataset(), epochs=1, distributed=True)


if __name__ == "__main__":
    where = Path(sys.argv[2])
    if sys.argv[1] == "runs":
        worker_runs(where)
    elif sys.argv[1] == "triton":
        worker_triton(where)
    else:
        worker_stalls(where, sys.argv[1])
