"""The Triton backend's host side (issue 17): launches worked out once per shape, losses
and metrics kept on the device with the NaN stop of the host loop, hyperparameters
uploaded once per epoch, autotuning choices kept next to the module, data that stays on
the device, and the tf32 note.  Under Triton's CPU interpreter, torch CPU tensors stand
for device tensors."""
import json
import os

import numpy as np
import pytest

pytest.importorskip("triton")
torch = pytest.importorskip("torch")
os.environ["TRITON_INTERPRET"] = "1"

from compiler import Input, Model, compile, nn, ops as F  # noqa: E402
from runtime import tkernels, train  # noqa: E402
from runtime.errors import TrainingError  # noqa: E402
from runtime.train import flat_parameters  # noqa: E402


def classifier():
    x, k = Input("x", ("B", 3)), Input("k", ("B",), dtype="int64")
    net = nn.Chain(nn.Dense(3, 5, act="relu"), nn.Dense(5, 4))
    return Model([x, k], {"logits": net(x)}, F.cross_entropy(net(x), k))


def normed():
    """A batch-norm regression: a buffer each step writes (kept back after a NaN loss)."""
    x, y = Input("x", ("B", 3)), Input("y", ("B", 1))
    net = nn.Sequential(nn.Dense(3, 4), nn.BatchNorm1d(4), F.relu, nn.Dense(4, 1))
    return Model([x, y], {"y_hat": net(x)}, F.mse(net(x), y))


def data(n=10, seed=0):
    rng = np.random.default_rng(seed)
    return {"x": rng.normal(size=(n, 3)), "y": rng.normal(size=(n, 1))}


def test_a_second_call_at_the_same_shapes_reuses_its_launch(monkeypatch):
    prog = compile(classifier(), backend="triton", dtype="float64")
    params = prog.init_params(0)
    rng = np.random.default_rng(1)
    batch = {"x": rng.normal(size=(6, 3)), "k": rng.integers(0, 4, size=6)}
    first = prog.loss_and_grad(params, batch)
    calls = []
    for name in ("expand", "strides", "wide"):
        real = getattr(tkernels, name)
        monkeypatch.setattr(tkernels, name, lambda *a, real=real: calls.append(1) or real(*a))
    again = prog.loss_and_grad(params, batch)
    assert calls == []  # no view, stride or width worked out again
    assert again[0] == first[0] and all(np.array_equal(again[1][k], first[1][k]) for k in first[1])
    other = prog.loss_and_grad(params, {k: v[:5] for k, v in batch.items()})  # a new shape
    assert calls and other[0] != first[0]
    reference = compile(classifier(), dtype="float64").loss_and_grad(params, batch)
    assert abs(first[0] - reference[0]) <= 1e-12 * abs(reference[0])


def test_results_handed_out_are_not_overwritten_by_the_next_call():
    prog = compile(classifier(), backend="triton", dtype="float64")
    params = prog.init_params(0)
    x = torch.tensor(np.random.default_rng(2).normal(size=(4, 3)))
    device_params = tkernels.to_device(params)
    first = prog.module.predict(device_params, {"x": x})["logits"]
    kept = first.clone()
    prog.module.predict(device_params, {"x": x * 2})
    assert torch.equal(first, kept)


def test_a_plan_whose_view_copies_is_not_kept():
    plans, base = {}, torch.arange(6.0).reshape(2, 3)
    copied = base.t().reshape(6)  # a reshape of a transposed tensor copies
    plan = tkernels.Plan(plans, "key", None, (base,), (copied,), (), [])
    assert plans == {} and plan.views == (copied,)
    plan = tkernels.Plan(plans, "key", None, (base,), (base.t(),), (), [((2,), torch.float64)])
    assert plans == {"key": plan} and plan.views is None
    assert plan.result(None) is plan.result(None) and plan.result(base) is base


def test_the_epoch_reads_the_device_once_and_makes_no_tensor_per_step(monkeypatch):
    prog = compile(classifier(), backend="triton", dtype="float64")
    rng = np.random.default_rng(3)
    batch = {"x": rng.normal(size=(40, 3)), "k": rng.integers(0, 4, size=40)}
    train(prog, batch, optimizer="adam", epochs=1, batch_size=8, quiet=True)  # compiled, planned
    reads, made = [], []
    for name in ("__float__", "item", "tolist", "cpu", "numpy"):
        real = getattr(torch.Tensor, name)
        monkeypatch.setattr(torch.Tensor, name,
                            lambda self, *a, real=real, name=name: reads.append(name) or real(self, *a))
    real_tensor = torch.tensor
    monkeypatch.setattr(torch, "tensor", lambda *a, **k: made.append(1) or real_tensor(*a, **k))
    flat, params = flat_parameters(prog, prog.init_params(0), on_device=True)
    flat_grads, grads = flat_parameters(prog, None, on_device=True)
    from runtime import optim

    opt = optim.make("adam")
    epochs = tkernels.Epochs(prog.module, opt, flat, flat_grads, opt.init_state(flat), params,
                             grads, 8, 0)
    losses, sums = epochs.run(tkernels.to_device(batch), 0, 1e-3)
    assert len(losses) == 5 and reads == ["tolist"] and made == []


def test_a_nan_loss_stops_before_its_update_as_on_numpy():
    """A NaN in the third minibatch: the device-side stop (the update skips from that
    loss on, buffers keep their values) leaves the parameters, running statistics,
    losses and message of the numpy backend's host loop."""
    model, bad = normed, data(40)
    bad["y"][20, 0] = np.nan  # (in y: Triton's relu, tl.maximum, drops a NaN that numpy keeps)
    progs = [compile(model(), dtype="float64"), compile(model(), backend="triton", dtype="float64")]
    results = []
    for prog in progs:
        flat, params = flat_parameters(prog, prog.init_params(0), on_device=prog.backend == "triton")
        flat_grads, grads = flat_parameters(prog, None, on_device=prog.backend == "triton")
        from runtime import optim

        opt = optim.make("adam", lr=0.05)
        state = opt.init_state(flat)
        if prog.backend == "triton":
            run = tkernels.Epochs(prog.module, opt, flat, flat_grads, state, params, grads, 8, 0)
            losses, _ = run.run(tkernels.to_device(bad), 0, 0.05)
        else:
            update = prog.module.update_adam

            def step_update(step):
                update(flat, flat_grads, state, **opt.hyper(step, 0.05))

            losses, _ = prog.module.train_epoch(params, bad, 8, grads, step_update, 0, 0)
        results.append((losses, {k: np.array(v) for k, v in tkernels.from_device(params).items()}))
    (l1, p1), (l2, p2) = results
    assert len(l1) == len(l2) == 3 and np.isnan(l1[-1]) and np.isnan(l2[-1])
    assert np.allclose(l1[:2], l2[:2], rtol=1e-12, atol=0)
    for k in p1:
        assert np.allclose(p1[k], p2[k], rtol=1e-8, atol=1e-8), k  # (a step: 0.05)
    bad = {k: np.delete(v, 20, axis=0) for k, v in bad.items()}  # train() refuses NaN data:
    bad["y"][16:24] = 1e200  # an overflow to inf in the third minibatch instead
    with pytest.raises(TrainingError) as one:
        train(progs[0], {**bad}, lr=0.05, optimizer="adam", batch_size=8, shuffle=False, quiet=True)
    with pytest.raises(TrainingError) as two:
        train(progs[1], {**bad}, lr=0.05, optimizer="adam", batch_size=8, shuffle=False, quiet=True)
    assert str(one.value) == str(two.value)


def test_remembered_autotuning_choices():
    key = [128, 256, 784, "torch.float32", "torch.float32"]
    known = [[key, "BM: 64"], [[4096, 256, 784, "torch.float32", "torch.float32"], "BM: 128"]]
    assert tkernels.remembered_choice(known, key) == "BM: 64"  # its own
    # a short last minibatch (32 rows) takes the smallest larger one's: the full batch's
    assert tkernels.remembered_choice(known, [32, 256, 784, "torch.float32", "torch.float32"]) \
        == "BM: 64"
    assert tkernels.remembered_choice(known, [8192, 256, 784, "torch.float32", "torch.float32"]) \
        is None  # larger than any: tuned
    assert tkernels.remembered_choice(known, [32, 256, 784, "torch.float64", "torch.float64"]) \
        is None  # other dtypes


def test_autotuning_choices_are_kept_next_to_the_module(tmp_path):
    import triton

    prog = compile(classifier(), backend="triton")
    assert prog.module._TUNING.path == prog.path.with_suffix(".autotune.json")
    configs = [triton.Config({"BM": 32}, num_warps=2), triton.Config({"BM": 64}, num_warps=4)]

    class Tuner:  # what the tuning reads of triton.autotune's Autotuner
        keys, cache = ["M"], {}

    module = tmp_path / "m.py"
    namespace = {"mm_kernel": Tuner}
    tuning = tkernels.Tuning(str(module), namespace)
    prune = tuning.prune("mm_kernel")["early_config_prune"]
    x = torch.zeros(2, dtype=torch.float32)  # (another test may change torch's default dtype)
    assert prune(configs, {"M": 128, "a_ptr": x}) == configs  # unknown: Triton benchmarks all
    Tuner.cache[(128, "torch.float32")] = configs[1]  # ... and chooses
    assert prune(configs, {"M": 32, "a_ptr": x}) == [configs[1]]  # a short batch: the choice
    saved = json.loads(tkernels.tuning_path(str(module)).read_text())
    assert saved[tkernels.gpu_name()]["mm_kernel"] == [[[128, "torch.float32"], str(configs[1])]]
    fresh = tkernels.Tuning(str(module), {"mm_kernel": type("T", (), {"keys": ["M"], "cache": {}})})
    assert fresh.prune("mm_kernel")["early_config_prune"](configs, {"M": 128, "a_ptr": x}) \
        == [configs[1]]  # a new process: no benchmark


def test_program_keeps_device_data_on_the_device(monkeypatch):
    """Device tensors in, device tensors out: nothing is converted from numpy (an upload)
    or to numpy (a download), and the update runs in place on the device."""
    prog = compile(classifier(), backend="triton", dtype="float64")
    rng = np.random.default_rng(5)
    batch = {"x": rng.normal(size=(6, 3)), "k": rng.integers(0, 4, size=6)}
    params = prog.init_params(0)
    want = prog.loss_and_grad(params, batch)
    # (copies: on the CPU a tensor from numpy shares the array's memory)
    device_params, device_batch = tkernels.to_device(({k: v.copy() for k, v in params.items()},
                                                      batch))
    moved = []
    real_from, real_numpy = torch.from_numpy, torch.Tensor.numpy
    monkeypatch.setattr(torch, "from_numpy", lambda a: moved.append("up") or real_from(a))
    monkeypatch.setattr(torch.Tensor, "numpy", lambda t, *a: moved.append("down") or real_numpy(t, *a))
    loss, grads = prog.loss_and_grad(device_params, device_batch)
    logits = prog.predict(device_params, device_batch)["logits"]
    scores = prog.evaluate(device_params, device_batch, batch_size=4)  # in chunks
    from runtime import optim

    opt = optim.make("adam")
    state = opt.init_state(device_params)
    before = device_params["dense0.W"].clone()
    prog.update(device_params, grads, state, opt, 1)
    assert moved == []
    assert isinstance(logits, torch.Tensor) and isinstance(grads["dense0.W"], torch.Tensor)
    assert abs(loss - want[0]) <= 1e-12 * abs(want[0])
    assert np.allclose(real_numpy(grads["dense0.W"]), want[1]["dense0.W"], rtol=1e-12)
    numpy_scores = prog.evaluate(params, batch, batch_size=4)
    assert scores == pytest.approx(numpy_scores, rel=1e-12)
    reference = {k: v.copy() for k, v in params.items()}
    numpy_state = opt.init_state(reference)
    prog.update(reference, want[1], numpy_state, opt, 1)  # numpy arrays: uploaded, copied back
    assert np.allclose(real_numpy(device_params["dense0.W"]), reference["dense0.W"], rtol=1e-12)
    assert not torch.equal(before, device_params["dense0.W"])


def test_training_validates_on_the_device_without_downloading(monkeypatch):
    prog = compile(classifier(), backend="triton", dtype="float64")
    rng = np.random.default_rng(6)
    batch = {"x": rng.normal(size=(24, 3)), "k": rng.integers(0, 4, size=24)}
    numpy_run = train(compile(classifier(), dtype="float64"), batch, optimizer="adam", epochs=3,
                      batch_size=8, val_fraction=0.25, quiet=True)
    downloads = []
    real = torch.Tensor.numpy
    monkeypatch.setattr(torch.Tensor, "numpy", lambda self, *a: downloads.append(1) or real(self, *a))
    run = train(prog, batch, optimizer="adam", epochs=3, batch_size=8, val_fraction=0.25, quiet=True)
    assert len(downloads) <= len(prog.param_specs)  # the final parameters only
    assert np.allclose(run.val_losses, numpy_run.val_losses, rtol=1e-10)
    assert np.allclose(run.step_losses, numpy_run.step_losses, rtol=1e-10)
    assert run.metrics["accuracy"] == pytest.approx(numpy_run.metrics["accuracy"], rel=1e-12)


def test_tf32_note_on_a_gpu_only(monkeypatch):
    from compiler.inspection import tf32_note, tf32_step_us

    x, k = Input("x", ("B", 784)), Input("k", ("B",), dtype="int64")
    net = nn.Chain(nn.Dense(784, 256, act="relu"), nn.Dense(256, 256, act="relu"), nn.Dense(256, 10))
    model = Model([x, k], {"logits": net(x)}, F.cross_entropy(net(x), k))
    assert tf32_note(model, 128, "float32", "ieee") is None  # no GPU here
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: (9, 0))
    note = tf32_note(model, 128, "float32", "ieee")
    ieee, tf32 = tf32_step_us(model, 128)
    assert tf32 < ieee and f"{ieee / tf32:.2f}x" in note and "--input-precision tf32" in note
    assert tf32_note(model, 128, "float32", "tf32") is None
    assert tf32_note(model, 128, "float64", "ieee") is None
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: (7, 5))  # no tf32
    assert tf32_note(model, 128, "float32", "ieee") is None
