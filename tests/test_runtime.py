"""The runtime: initialisers, data checks and the training loop."""
from pathlib import Path

import numpy as np
import pytest

from compiler import Input, Model, compile, nn, ops as F
from runtime import train
from runtime.errors import DataError, GradcError, TrainingError
from runtime.init import initial_value


def regression():
    x, y = Input("x", ("B", 1)), Input("y", ("B", 1))
    net = nn.Chain(nn.Dense(1, 16, act="tanh"), nn.Dense(16, 1))
    return compile(Model([x, y], {"y_hat": net(x)}, F.mse(net(x), y)))


def data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    xs = rng.uniform(-1, 1, size=(n, 1))
    return {"x": xs, "y": np.sin(3 * xs)}


@pytest.mark.parametrize("init,var", [
    ("xavier", 2 / (200 + 100)), ("xavier_normal", 2 / (200 + 100)),
    ("he", 2 / 200), ("he_uniform", 2 / 200)])
def test_initialisers_have_the_seeds_variance(init, var):
    w = initial_value(init, (200, 100), "w", seed=3)
    assert abs(w.mean()) < 0.01
    assert abs(w.var() / var - 1) < 0.05


def test_initialisation_is_reproducible_and_per_parameter():
    prog = regression()
    a, b = prog.init_params(seed=1), prog.init_params(seed=1)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(prog.init_params(seed=2)["dense0.W"], a["dense0.W"])
    assert not np.any(a["dense0.b"]) and a["dense0.W"].dtype == np.float32


def test_sgd_step_matches_the_rule():
    prog = regression()
    p0 = prog.init_params(0)
    batch = prog.check_batch(data(8))
    _, grads = prog.loss_and_grad(p0, batch)
    hist = train(prog, data(8), lr=0.1, epochs=1, batch_size=8, shuffle=False, quiet=True,
                 params=p0)
    for k in p0:
        np.testing.assert_allclose(hist.params[k], p0[k] - 0.1 * grads[k], rtol=1e-6, atol=1e-7)
    assert hist.initial_loss == pytest.approx(hist.step_losses[0])


def test_training_lowers_the_loss_and_records_history():
    hist = train(regression(), data(), lr=0.2, epochs=100, batch_size=8, quiet=True)
    assert len(hist.epoch_losses) == 100 and len(hist.step_losses) == 100 * 8
    assert hist.epoch_losses[-1] < hist.initial_loss / 10
    assert {"initial_loss", "epoch_losses", "step_losses"} <= set(hist.to_json())
    assert hist.lrs == [0.2] * 100


def test_same_seed_same_run():
    a = train(regression(), data(), lr=0.05, epochs=3, batch_size=5, quiet=True, seed=4)
    b = train(regression(), data(), lr=0.05, epochs=3, batch_size=5, quiet=True, seed=4)
    assert a.step_losses == b.step_losses
    assert len(a.step_losses) == 3 * 13  # 64 examples in batches of 5: the last one is short


@pytest.mark.parametrize("bad,message", [
    ({"x": np.zeros((4, 1))}, "no 'y'"),
    ({"x": np.zeros((4, 2)), "y": np.zeros((4, 1))}, "has shape"),
    ({"x": np.zeros((4, 1)), "y": np.zeros((5, 1))}, "size B is 4"),
    ({"x": np.full((4, 1), np.nan), "y": np.zeros((4, 1))}, "non-finite"),
    ({"x": np.zeros((0, 1)), "y": np.zeros((0, 1))}, "empty"),
    ({"x": np.array([["a"]] * 4), "y": np.zeros((4, 1))}, "numeric"),
])
def test_bad_data_is_named(bad, message):
    with pytest.raises(DataError, match=message):
        train(regression(), bad, epochs=1, batch_size=2, quiet=True)


def test_bad_settings_are_named():
    prog = regression()
    with pytest.raises(GradcError, match="unknown optimizer"):
        train(prog, data(4), optimizer="lbfgs", quiet=True)
    with pytest.raises(GradcError, match="lr must be a positive number"):
        train(prog, data(4), lr=-1.0, quiet=True)


def test_a_diverging_loss_stops_with_the_step():
    with pytest.raises(TrainingError, match="at step"):
        train(regression(), {k: v * 1e3 for k, v in data().items()}, lr=1e3, epochs=50,
              batch_size=4, quiet=True)


def test_the_seed_example_with_its_own_settings_falls_tenfold():
    """Issue 2's promise: Flux's loop (SGD, lr 1e-3, batch 1, 1000 epochs) lowers the loss 10x."""
    from compiler import modelfile

    ns = modelfile.load(Path(__file__).resolve().parent.parent / "examples" / "seed_regression.py")
    prog = compile(ns["model"])
    hist = train(prog, ns["data"](seed=0), quiet=True, **ns["training"])
    assert ns["training"] == {"optimizer": "sgd", "lr": 1e-3, "batch_size": 1, "epochs": 1000}
    assert hist.epoch_losses[-1] <= hist.initial_loss / 10


@pytest.mark.parametrize("image,kernel,stride,padding,layout", [
    ((3, 1, 8, 8), (3, 3), (1, 1), (1, 1, 1, 1), "NCHW"),
    ((2, 4, 7, 5), (2, 3), (2, 1), (0, 1, 2, 0), "NCHW"),
    ((2, 5, 6, 4), (3, 2), (1, 2), (1, 1, 0, 0), "NHWC"),  # channels-last, viewed as NCHW
])
def test_windows_reshape_copies_exactly_what_numpy_reshape_does(image, kernel, stride, padding,
                                                                layout):
    """The numpy backend's im2col copy (``windows_reshape``, one kernel offset at a time):
    the same values, in the same order, as ``numpy.reshape`` of the windows' view."""
    from runtime.npkernels import patches, windows_reshape

    x = np.random.default_rng(2).normal(size=image)
    if layout == "NHWC":
        x = x.transpose(0, 2, 3, 1).copy().transpose(0, 3, 1, 2)
    windows = patches(x, kernel, stride, (1, 1), padding)
    n, ho, wo, c, kh, kw = windows.shape
    for shape in [(n * ho * wo, c * kh * kw), (n, ho * wo, c, kh * kw)]:
        got = windows_reshape(windows, shape)
        assert got.flags.c_contiguous and np.array_equal(got, windows.reshape(shape))


@pytest.mark.parametrize("image,kernel,stride,dilation,padding", [
    ((2, 3, 8, 8), (2, 2), (2, 2), (1, 1), (0, 0, 0, 0)),  # pooling: windows side by side
    ((2, 3, 7, 5), (2, 2), (2, 2), (1, 1), (0, 0, 0, 0)),  # ... leaving a row and a column out
    ((2, 3, 7, 6), (3, 2), (3, 2), (1, 1), (1, 0, 1, 1)),  # ... and padded
    ((2, 3, 7, 5), (3, 3), (1, 2), (2, 1), (1, 1, 0, 2)),  # overlapping windows (added up)
])
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_patches_adjoint_is_the_adjoint_of_patches(image, kernel, stride, dilation, padding,
                                                   layout):
    """<patches(x), g> = <x, patches_adjoint(g)> for every x and g, in float64, whatever the
    memory order of g (the windows of a channels-last image come channels-last); and the
    padding keeps the image's memory order with the fill value (``numpy.pad`` as oracle)."""
    from runtime.npkernels import patches, patches_adjoint

    rng = np.random.default_rng(3)
    x = rng.normal(size=image)
    if layout == "NHWC":
        x = x.transpose(0, 2, 3, 1).copy().transpose(0, 3, 1, 2)
    windows = patches(x, kernel, stride, dilation, padding, fill=-np.inf)
    top, bottom, left, right = padding
    padded = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)), constant_values=-np.inf)
    if layout == "NHWC":  # the channel is the padded copy's innermost axis
        assert windows.strides[3] == x.itemsize
    flat = patches(padded, kernel, stride, dilation, (0, 0, 0, 0))
    assert np.array_equal(windows, flat)
    g = rng.normal(size=windows.shape)
    if layout == "NHWC":  # g in the order of the windows of a channels-last image
        g = np.ascontiguousarray(g.transpose(0, 1, 4, 2, 5, 3)).transpose(0, 1, 3, 5, 2, 4)
    back = patches_adjoint(g, image[2:], kernel, stride, dilation, padding)
    assert back.shape == image
    finite = patches(x, kernel, stride, dilation, padding, fill=0.0)
    assert np.isclose(np.sum(finite * g), np.sum(x * back), rtol=1e-12, atol=0)


@pytest.mark.parametrize("shape,n", [((3, 4, 5, 2, 2), 2), ((3, 4, 7), 1), ((5,), 1),
                                     ((2, 3, 1, 3), 2), ((2, 3, 1, 1), 2), ((2, 2, 3, 2), 3)])
@pytest.mark.parametrize("keepdims", [False, True])
def test_fold_last_reduces_the_trailing_axes_as_numpy(shape, n, keepdims):
    """``fold_last`` (small pooling windows and short rows on numpy): numpy's max exactly
    and numpy's sum to rounding, on a strided view too, and a new array (not a view)."""
    from runtime.npkernels import fold_last

    x = np.random.default_rng(4).normal(size=shape)
    strided = np.swapaxes(np.ascontiguousarray(np.swapaxes(x, 0, -1)), 0, -1)  # same values
    for a in (x, strided):
        axes = tuple(range(a.ndim - n, a.ndim))
        got = fold_last(np.maximum, a, n, keepdims)
        assert np.array_equal(got, a.max(axis=axes, keepdims=keepdims))
        total = fold_last(np.add, a, n, keepdims)
        np.testing.assert_allclose(total, a.sum(axis=axes, keepdims=keepdims), rtol=1e-13)
        assert not np.shares_memory(total, a)
