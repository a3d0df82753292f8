"""F.cross_entropy as torch.nn.functional.cross_entropy, beyond the op table (tests/oplib.py):
all targets ignored, training with ignored targets on both backends, bad input."""
import importlib.util
import re
import textwrap
import inspect

import numpy as np
import pytest
import torch

from compiler import Input, Model, Param, compile, ops as F
from oplib import ROWS, build
from runner import gradc, one_line_error
from runtime import train
from runtime.errors import GradcError

torch.set_default_dtype(torch.float64)
BACKENDS = ["numpy", pytest.param("triton", marks=pytest.mark.skipif(
    importlib.util.find_spec("triton") is None, reason="triton not installed"))]


@pytest.mark.parametrize("name,ignored", [("cross_entropy_ignore_index", 4),
                                          ("cross_entropy_ignore_and_smoothing", 1),
                                          ("accuracy_ignore_index", 0)])
def test_the_table_rows_with_ignore_index_have_ignored_and_counted_targets(name, ignored):
    """Every shape case of these rows draws targets both ignored and counted (else the row
    could not tell the mean over counted targets from the mean over all)."""
    row = next(r for r in ROWS if r.name == name)
    for shapes in row.shapes:
        targets = build(row, shapes)[3][1]
        assert 0 < np.count_nonzero(targets == ignored) < targets.size, (name, shapes)


@pytest.mark.parametrize("backend", BACKENDS)
def test_all_targets_ignored_gives_nan_and_zero_gradients_as_torch(backend):
    z, k = Param("z", (2, 3, 4)), Input("k", (2, 3), dtype="int64")
    loss = F.cross_entropy(z, k, label_smoothing=0.1)
    prog = compile(Model([k], {"accuracy": F.accuracy(z, k)}, loss), backend=backend, dtype="float64")
    params, batch = {"z": np.random.default_rng(0).normal(size=(2, 3, 4))}, {"k": np.full((2, 3), -100)}
    value, grads = prog.loss_and_grad(params, batch)
    tz = torch.tensor(params["z"], requires_grad=True)
    reference = torch.nn.functional.cross_entropy(tz.reshape(6, 4), torch.tensor(batch["k"]).reshape(6),
                                                  label_smoothing=0.1)
    reference.backward()
    assert np.isnan(value) and torch.isnan(reference)
    assert np.array_equal(grads["z"], tz.grad.numpy()) and not grads["z"].any()
    assert np.isnan(prog.predict(params, batch)["accuracy"])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("row", [[np.inf, 1.0, 0.0], [-np.inf, 1.0, 0.0], [1.0, -np.inf, 0.0],
                                 [-np.inf] * 3, [np.nan, 1.0, 0.0]])
def test_infinite_and_nan_logits_give_torchs_loss_and_gradient(backend, row):
    """A +inf logit makes PyTorch's loss and gradient NaN (the numpy backend gave inf); a
    -inf logit is a class of probability 0 (infinite loss when it is the target)."""
    z, k = Param("z", (2, 3)), Input("k", (2,), dtype="int64")
    prog = compile(Model([k], loss=F.cross_entropy(z, k)), backend=backend, dtype="float64")
    params, batch = {"z": np.array([row, [0.5, -1.0, 2.0]])}, {"k": np.array([1, 2])}
    tz = torch.tensor(params["z"], requires_grad=True)
    reference = torch.nn.functional.cross_entropy(tz, torch.tensor(batch["k"]))
    reference.backward()
    value, grads = prog.loss_and_grad(params, batch)
    np.testing.assert_allclose(value, reference.item(), rtol=1e-12, equal_nan=True)
    np.testing.assert_allclose(grads["z"], tz.grad.numpy(), rtol=1e-12, atol=1e-15, equal_nan=True)


@pytest.mark.parametrize("backend", BACKENDS)
def test_evaluate_in_chunks_weighs_them_by_counted_targets(backend):
    """``evaluate`` in chunks gives the whole batch's loss and accuracy when some targets
    are ignored: each chunk's mean counts as many times as it has counted targets (by
    rows, a chunk of ignored targets made the result NaN, and others moved it)."""
    x, k = Input("x", ("B", "T", 3)), Input("k", ("B", "T"), dtype="int64")
    logits = x @ Param("w", (3, 4))
    prog = compile(Model([x, k], loss=F.cross_entropy(logits, k, label_smoothing=0.1)),
                   backend=backend, dtype="float64")
    rng = np.random.default_rng(5)
    params = {"w": rng.normal(size=(3, 4))}
    data = {"x": rng.normal(size=(7, 2, 3)), "k": rng.integers(0, 4, size=(7, 2))}
    data["k"][:2] = -100      # the first chunk of two all ignored
    data["k"][4, 1] = -100
    z = torch.tensor(data["x"]) @ torch.tensor(params["w"])
    reference = torch.nn.functional.cross_entropy(z.reshape(-1, 4), torch.tensor(data["k"]).reshape(-1),
                                                  label_smoothing=0.1).item()
    whole = prog.evaluate(params, data)
    counted = data["k"] != -100
    hits = (z.argmax(-1).numpy() == data["k"])[counted].mean()
    assert abs(whole["loss"] - reference) <= 1e-12 and abs(whole["accuracy"] - hits) <= 1e-12
    for size in (2, 3):
        chunked = prog.evaluate(params, data, batch_size=size)
        assert abs(chunked["loss"] - reference) <= 1e-12, size
        assert abs(chunked["accuracy"] - hits) <= 1e-12, size


@pytest.mark.parametrize("backend", BACKENDS)
def test_training_with_ignored_targets_follows_torch(backend):
    """Logits (B, T, 5), one target in three ignored (-100, the default): nine SGD steps
    of minibatches of 4 sequences give PyTorch's losses and parameters, and the accuracy
    counts only the other targets."""
    x, k = Input("x", ("B", "T", 3)), Input("k", ("B", "T"), dtype="int64")
    w, b = Param("w", (3, 5)), Param("b", (5,))
    model = Model([x, k], {"logits": x @ w + b}, F.cross_entropy(x @ w + b, k, label_smoothing=0.05))
    prog = compile(model, backend=backend, dtype="float64")
    rng = np.random.default_rng(3)
    data = {"x": rng.normal(size=(12, 6, 3)), "k": rng.integers(0, 5, size=(12, 6))}
    data["k"][rng.random((12, 6)) < 1 / 3] = -100
    start = {"w": rng.normal(size=(3, 5)), "b": rng.normal(size=5)}
    hist = train(prog, data, optimizer="sgd", lr=0.5, epochs=3, batch_size=4, shuffle=False,
                 params=start, quiet=True)
    tp = {name: torch.tensor(v, requires_grad=True) for name, v in start.items()}
    opt, losses = torch.optim.SGD(tp.values(), lr=0.5), []
    for _ in range(3):
        for i in range(0, 12, 4):
            logits = torch.tensor(data["x"][i:i + 4]) @ tp["w"] + tp["b"]
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, 5),
                                                     torch.tensor(data["k"][i:i + 4]).reshape(-1),
                                                     label_smoothing=0.05)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
    np.testing.assert_allclose(hist.step_losses, losses, rtol=1e-10)
    for name in start:
        np.testing.assert_allclose(hist.params[name], tp[name].detach().numpy(), rtol=1e-10)
    logits = data["x"] @ hist.params["w"] + hist.params["b"]
    counted = data["k"] != -100
    right = logits.argmax(-1) == data["k"]
    assert prog.evaluate(hist.params, data)["accuracy"] == pytest.approx(right[counted].mean(), abs=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_accuracy_with_other_options_is_not_merged_into_the_loss_kernel(backend):
    """The loss ignores class 0, the accuracy added to it ignores nothing: two kernels,
    each with its own options (merged, the accuracy would skip the 0s)."""
    z, k = Param("z", (8, 3)), Input("k", (8,), dtype="int64")
    model = Model([k], loss=F.cross_entropy(z, k, ignore_index=0) + F.accuracy(z, k))
    prog = compile(model, backend=backend, dtype="float64")
    params = {"z": np.random.default_rng(1).normal(size=(8, 3))}
    batch = {"k": np.array([0, 1, 2, 0, 1, 2, 0, 0])}
    tz = torch.tensor(params["z"])
    expected = (torch.nn.functional.cross_entropy(tz, torch.tensor(batch["k"]), ignore_index=0)
                + (tz.argmax(1).numpy() == batch["k"]).mean())
    assert prog.loss_and_grad(params, batch)[0] == pytest.approx(expected.item(), rel=1e-12)


def _line_of(build):
    """``file:line`` of the last line of ``build``'s source (where it calls gradc)."""
    lines, first = inspect.getsourcelines(build)
    return f"test_cross_entropy.py:{first + len(lines) - 1}"


def _targets_of_another_shape():
    return F.cross_entropy(Param("z", (2, 3, 4)), Input("k", (2, 4), dtype="int64"))


def _float_targets():
    return F.cross_entropy(Param("z", (6, 4)), Input("k", (6,)))


def _smoothing_above_one():
    return F.cross_entropy(Param("z", (6, 4)), Input("k", (6,), dtype="int64"), label_smoothing=1.5)


def _negative_smoothing():
    return F.cross_entropy(Param("z", (6, 4)), Input("k", (6,), dtype="int64"), label_smoothing=-0.1)


def _accuracy_targets_of_another_shape():
    return F.accuracy(Param("z", (2, 3, 4)), Input("k", (2, 3, 4), dtype="int64"))


@pytest.mark.parametrize("build,message", [
    (_targets_of_another_shape, "cross_entropy needs (..., C) logits and integer targets of shape "
                                "(...), got (2, 3, 4) and (2, 4)"),
    (_float_targets, "cross_entropy needs integer targets (class indices), got float targets"),
    (_smoothing_above_one, "label_smoothing must be between 0.0 and 1.0, got 1.5"),
    (_negative_smoothing, "label_smoothing must be between 0.0 and 1.0, got -0.1"),
    (_accuracy_targets_of_another_shape, "accuracy needs (..., C) logits"),
])
def test_bad_input_is_one_line_at_the_users_line(build, message):
    with pytest.raises(GradcError) as e:
        build()
    assert e.value.where.endswith(_line_of(build)) and message in e.value.message
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("labels,ignore_index,message", [
    ([0, 1, 3, 2], -100, "holds class 3; the model has 3 classes (0 to 2 or -100 (ignore_index))"),
    ([-1, 0, 0, 0], -100, "holds class -1"),
    ([0, 1, 2, -100], 5, "holds class -100; the model has 3 classes (0 to 2 or 5"),
    ([0, 1, 2, 5], 5, None),  # an ignore_index outside the classes is allowed
    ([0, 1, 2, -100], -100, None),
])
@pytest.mark.parametrize("backend", BACKENDS)
def test_a_target_outside_the_classes_is_a_data_error_as_in_pytorch(labels, ignore_index,
                                                                     message, backend):
    """PyTorch refuses a target outside [0, C) that is not ignore_index ("Target 3 is out of
    bounds"); gradc says which input holds it before computing anything (it would add
    nothing to the loss and be counted in the mean)."""
    x, k = Input("x", ("B", 4)), Input("k", ("B",), dtype="int64")
    z = x @ Param("w", (4, 3))
    prog = compile(Model([x, k], {"z": z}, F.cross_entropy(z, k, ignore_index=ignore_index)),
                   backend=backend)
    params = prog.init_params(0)
    batch = {"x": np.ones((4, 4), np.float32), "k": np.array(labels)}
    if message is None:
        prog.loss_and_grad(params, batch)
        return
    with pytest.raises(GradcError, match=re.escape(message)):
        prog.loss_and_grad(params, batch)
    with pytest.raises(GradcError, match="holds class"):
        train(prog, batch, epochs=1, batch_size=2, quiet=True)
    with pytest.raises((IndexError, RuntimeError)):  # PyTorch refuses the same targets
        torch.nn.functional.cross_entropy(torch.ones(4, 3), torch.tensor(labels),
                                          ignore_index=ignore_index)


def test_one_hot_of_an_input_checks_its_classes_and_the_cli_says_so_in_one_line(tmp_path):
    """``F.one_hot`` of an input as ``torch.nn.functional.one_hot``: a label outside
    [0, n) is refused; ``gradc train`` gives one line and exit status 2."""
    model = tmp_path / "hot.py"
    model.write_text(textwrap.dedent("""
        import numpy as np
        from compiler import Input, Model, Param, ops as F
        x, k = Input("x", ("B", 2)), Input("k", ("B",), dtype="int64")
        y = x @ Param("w", (2, 4))
        model = Model([x, k], {"y": y}, F.mse(y, F.one_hot(k, 4)))
        def data(seed=0):
            return {"x": np.ones((6, 2)), "k": np.array([0, 1, 2, 3, 4, 1])}
    """))
    line = one_line_error(gradc("train", model, "--epochs", "1"))
    assert "input 'k' holds class 4; the model has 4 classes (0 to 3)" in line
