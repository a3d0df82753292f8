"""Optimizers against torch.optim, schedules, dropout, metrics, early stopping, checkpoints."""
import numpy as np
import pytest
import torch

from compiler import Input, Model, compile, nn, ops as F
from oplib import rel_err
from runtime import optim, schedules, train
from runtime.checkpoint import load
from runtime.errors import CheckpointError, TrainingError

torch.set_default_dtype(torch.float64)


def regression():
    x, y = Input("x", ("B", 3)), Input("y", ("B", 2))
    net = nn.Chain(nn.Dense(3, 8, act="tanh"), nn.Dense(8, 2))
    return Model([x, y], {"y_hat": net(x)}, F.mse(net(x), y))


def dataset(n=40, seed=0):
    rng = np.random.default_rng(seed)
    xs = rng.normal(size=(n, 3))
    return {"x": xs, "y": np.stack([np.sin(xs[:, 0]), xs[:, 1] * xs[:, 2]], axis=1)}


OPTIMIZERS = {
    "sgd": (lambda wd: optim.SGD(lr=0.1, weight_decay=wd),
            lambda p, wd: torch.optim.SGD(p, lr=0.1, weight_decay=wd)),
    "momentum": (lambda wd: optim.SGD(lr=0.05, momentum=0.9, dampening=0.1, weight_decay=wd),
                 lambda p, wd: torch.optim.SGD(p, lr=0.05, momentum=0.9, dampening=0.1,
                                               weight_decay=wd)),
    "nesterov": (lambda wd: optim.SGD(lr=0.05, momentum=0.9, nesterov=True, weight_decay=wd),
                 lambda p, wd: torch.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True,
                                               weight_decay=wd)),
    "adagrad": (lambda wd: optim.Adagrad(lr=0.1, lr_decay=0.01, weight_decay=wd,
                                         initial_accumulator_value=0.1),
                lambda p, wd: torch.optim.Adagrad(p, lr=0.1, lr_decay=0.01, weight_decay=wd,
                                                  initial_accumulator_value=0.1)),
    "rmsprop": (lambda wd: optim.RMSprop(lr=0.01, weight_decay=wd),
                lambda p, wd: torch.optim.RMSprop(p, lr=0.01, weight_decay=wd)),
    "rmsprop_centered_momentum": (
        lambda wd: optim.RMSprop(lr=0.01, momentum=0.5, centered=True, weight_decay=wd),
        lambda p, wd: torch.optim.RMSprop(p, lr=0.01, momentum=0.5, centered=True,
                                          weight_decay=wd)),
    "adam": (lambda wd: optim.Adam(lr=0.01, weight_decay=wd),
             lambda p, wd: torch.optim.Adam(p, lr=0.01, weight_decay=wd)),
    "adamw": (lambda wd: optim.AdamW(lr=0.01, weight_decay=wd or 0.01),
              lambda p, wd: torch.optim.AdamW(p, lr=0.01, weight_decay=wd or 0.01)),
}
SCHEDULES = {
    None: lambda o: None,
    "step:30:0.5": lambda o: torch.optim.lr_scheduler.StepLR(o, 30, 0.5),
    "exponential:0.98": lambda o: torch.optim.lr_scheduler.ExponentialLR(o, 0.98),
    "cosine": lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, 100),
    "warmup:10": lambda o: torch.optim.lr_scheduler.LinearLR(o, 1 / 3, total_iters=10),
}
CASES = [(name, wd, None) for name in OPTIMIZERS for wd in (0.0, 0.05)]
CASES += [(name, 0.0, sched) for name in ("sgd", "adam", "momentum") for sched in SCHEDULES if sched]


@pytest.mark.parametrize("name,wd,schedule", CASES)
def test_optimizer_tracks_torch_optim_for_100_full_batch_steps(name, wd, schedule):
    ours, theirs = OPTIMIZERS[name]
    prog = compile(regression(), dtype="float64")
    data = dataset()
    start = prog.init_params(seed=1)
    hist = train(prog, data, optimizer=ours(wd), epochs=100, batch_size=40, shuffle=False,
                 params=start, schedule=schedule, quiet=True)

    tp = {k: torch.tensor(v, requires_grad=True) for k, v in start.items()}
    opt = theirs(list(tp.values()), wd)
    sched = SCHEDULES[schedule](opt)
    x, y = torch.tensor(data["x"]), torch.tensor(data["y"])
    losses = []
    for _ in range(100):
        opt.zero_grad()
        h = torch.tanh(x @ tp["dense0.W"] + tp["dense0.b"])
        loss = torch.mean((h @ tp["dense1.W"] + tp["dense1.b"] - y) ** 2)
        loss.backward()
        losses.append(loss.item())
        opt.step()
        if sched:
            sched.step()
    assert rel_err(hist.step_losses, losses) <= 1e-6
    for k in start:
        assert rel_err(hist.params[k], tp[k].detach().numpy()) <= 1e-6, k


def test_seed_form_momentum_follows_the_seed_formula():
    prog = compile(regression(), dtype="float64")
    data = dataset()
    start = prog.init_params(seed=2)
    hist = train(prog, data, optimizer=optim.Momentum(lr=0.1, beta=0.8, form="seed"), epochs=5,
                 batch_size=40, shuffle=False, params=start, quiet=True)
    p = {k: v.copy() for k, v in start.items()}
    v = {k: np.zeros_like(a) for k, a in p.items()}
    for _ in range(5):
        _, g = prog.loss_and_grad(p, data)
        for k in p:
            v[k] = 0.8 * v[k] + (1 - 0.8) * g[k]   # seed 002: v <- mu v + (1 - mu) grad
            p[k] = p[k] - 0.1 * v[k]
    for k in p:
        assert rel_err(hist.params[k], p[k]) <= 1e-12


def test_changing_the_learning_rate_does_not_recompile():
    a = compile(regression())
    train(a, dataset(), optimizer="adam", lr=0.1, epochs=1, quiet=True)
    b = compile(regression())
    assert a.path == b.path


def test_schedules_follow_torch_closed_forms():
    assert schedules.parse("step:2:0.5", 10)(3, 1.0) == 0.5
    assert schedules.parse("cosine", 10)(10, 2.0) == pytest.approx(0.0)
    assert schedules.parse("warmup:4", 10)(0, 3.0) == pytest.approx(1.0)
    assert schedules.parse(None, 10)(5, 0.1) == 0.1


# -- dropout -------------------------------------------------------------------------
def dropout_model(rate):
    x = Input("x", ("B", 4))
    w = nn.Dense(4, 4, act="tanh")
    h = F.dropout(w(x), rate)
    return Model([x], {"h": h}, F.sum(h * h))


def test_dropout_drops_the_expected_fraction_and_preserves_the_mean():
    from runtime.npkernels import dropout, dropout_keep

    keep = dropout_keep((500, 400), 0.3, salt=1, seed=7, step=3)
    assert abs(1 - keep.mean() - 0.3) < 0.005
    x = np.ones((500, 400))
    assert abs(dropout(x, 0.3, 1, (7, 3)).mean() - 1.0) < 0.01
    assert np.array_equal(keep, dropout_keep((500, 400), 0.3, salt=1, seed=7, step=3))
    assert not np.array_equal(keep, dropout_keep((500, 400), 0.3, salt=1, seed=7, step=4))
    assert not np.array_equal(keep, dropout_keep((500, 400), 0.3, salt=2, seed=7, step=3))
    assert dropout(x, 0.3, 1, None) is x


def test_dropout_gradients_use_the_same_mask():
    prog = compile(dropout_model(0.5), dtype="float64")
    params = prog.init_params(0)
    batch = {"x": np.random.default_rng(0).normal(size=(6, 4))}
    rng = (11, 5)
    _, grads = prog.loss_and_grad(params, batch, rng)
    h = 1e-6
    for idx in [(0, 0), (1, 2), (3, 1)]:
        up = {k: v.copy() for k, v in params.items()}
        down = {k: v.copy() for k, v in params.items()}
        up["dense0.W"][idx] += h
        down["dense0.W"][idx] -= h
        fd = (prog.loss(up, batch, rng) - prog.loss(down, batch, rng)) / (2 * h)
        assert abs(fd - grads["dense0.W"][idx]) <= 1e-6 * max(1, abs(fd))
    # evaluation and predict do not drop
    full = np.tanh(batch["x"] @ params["dense0.W"] + params["dense0.b"])
    assert np.allclose(prog.predict(params, batch)["h"], full)
    assert prog.loss(params, batch) == pytest.approx(np.sum(full ** 2))
    assert prog.loss(params, batch, rng) != pytest.approx(np.sum(full ** 2))


# -- metrics, validation, early stopping ---------------------------------------------
def classifier():
    x, k = Input("x", ("B", 2)), Input("k", ("B",), dtype="int64")
    net = nn.Chain(nn.Dense(2, 16, act="relu"), nn.Dense(16, 3))
    return Model([x, k], {"logits": net(x)}, F.cross_entropy(net(x), k))


def blobs(n=300, seed=0):
    rng = np.random.default_rng(seed)
    k = rng.integers(0, 3, size=n)
    centers = np.array([[0, 2], [2, -1], [-2, -1]])
    return {"x": centers[k] + 0.5 * rng.normal(size=(n, 2)), "k": k}


def test_classifiers_report_accuracy_on_train_and_validation():
    prog = compile(classifier())
    assert prog.metrics == ("accuracy",)
    hist = train(prog, blobs(), optimizer="adam", lr=0.05, epochs=20, batch_size=30,
                 val_fraction=0.2, quiet=True)
    assert len(hist.metrics["accuracy"]) == 20 and len(hist.metrics["val_accuracy"]) == 20
    assert hist.metrics["val_accuracy"][-1] > 0.9
    logits = prog.predict(hist.params, blobs())["logits"]
    assert prog.evaluate(hist.params, blobs())["accuracy"] == pytest.approx(
        np.mean(np.argmax(logits, 1) == blobs()["k"]))


def test_early_stopping_stops_and_returns_the_best_parameters():
    prog = compile(regression(), dtype="float64")
    data = dataset(60)
    data["y"] = data["y"] + np.random.default_rng(1).normal(size=data["y"].shape)  # noise to overfit
    hist = train(prog, data, optimizer="adam", lr=0.05, epochs=400, batch_size=6,
                 val_fraction=0.25, early_stopping=5, quiet=True)
    assert hist.stopped_epoch is not None and hist.stopped_epoch < 400
    assert hist.stopped_epoch == hist.best_epoch + 5
    assert min(hist.val_losses) == hist.val_losses[hist.best_epoch - 1]


# -- checkpoints ---------------------------------------------------------------------
def test_resume_is_bit_identical_to_an_uninterrupted_run(tmp_path):
    prog = compile(dropout_model(0.2))
    data = {"x": np.random.default_rng(0).normal(size=(30, 4))}
    kwargs = dict(optimizer="adam", lr=0.01, batch_size=7, quiet=True, seed=3)
    whole = train(prog, data, epochs=6, **kwargs)
    train(prog, data, epochs=4, checkpoint=tmp_path / "c.ckpt", checkpoint_every=2, **kwargs)
    resumed = train(prog, data, epochs=6, checkpoint=tmp_path / "c.ckpt", resume=True, **kwargs)
    assert resumed.step_losses == whole.step_losses
    assert resumed.epoch_losses == whole.epoch_losses
    for k in whole.params:
        assert np.array_equal(resumed.params[k], whole.params[k])


def test_truncated_or_foreign_checkpoints_are_named(tmp_path):
    prog = compile(regression())
    path = tmp_path / "c.ckpt"
    train(prog, dataset(), epochs=1, checkpoint=path, quiet=True)
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        train(prog, dataset(), epochs=2, checkpoint=path, resume=True, quiet=True)
    path.write_bytes(raw)
    with pytest.raises(CheckpointError, match="different model"):
        train(compile(classifier()), blobs(), epochs=2, checkpoint=path, resume=True, quiet=True)
    with pytest.raises(CheckpointError, match="cannot read"):
        train(prog, dataset(), epochs=2, checkpoint=tmp_path / "none", resume=True, quiet=True)


def test_a_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    prog = compile(regression())
    path = tmp_path / "c.ckpt"
    data = dataset()
    with pytest.raises(TrainingError, match=r"at step \d+"):
        train(prog, {k: v * 30 for k, v in data.items()}, optimizer="sgd", lr=3.0, epochs=200,
              batch_size=10, checkpoint=path, quiet=True)
    params, _, record = load(path)
    assert all(np.all(np.isfinite(v)) for v in params.values())
    assert record["epoch"] >= 1


def test_a_model_without_inputs_trains_one_step_per_epoch():
    from compiler import Param

    x, y = Param("x", (), init="zeros"), Param("y", (), init="zeros")
    rosenbrock = (1 - x) ** 2 + 100.0 * (y - x ** 2) ** 2
    prog = compile(Model([], {"f": rosenbrock}, rosenbrock), dtype="float64")
    hist = train(prog, {}, optimizer="adam", lr=0.05, epochs=2000, quiet=True)
    assert len(hist.step_losses) == 2000
    assert abs(float(hist.params["x"]) - 1) < 1e-3 and abs(float(hist.params["y"]) - 1) < 2e-3
