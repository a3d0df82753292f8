"""ConvNets end to end: layers against PyTorch modules built from the same weights, batch
norm's running statistics and train/eval modes, the Triton backend against numpy,
checkpoints, flops against PyTorch's FlopCounterMode, and bad input.  (Each conv
primitive's own row is in oplib.py.)"""
import textwrap

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from compiler import Input, Model, compile, nn, ops as F
from compiler.cost import matmul_flops
from compiler.flops import reverse_mode_graph
from compiler.gradcheck import check_gradients, check_hessian
from compiler.shapes import symbol
from runner import compile_error, gradc, one_line_error  # noqa: E402
from runtime import train

torch.set_default_dtype(torch.float64)


def small_cnn(norm=True):
    """conv(2->3, 3x3, pad 1) -> [batch norm] -> relu -> max pool -> dense: gradc's model and
    the PyTorch module it is compared with."""
    x, y = Input("x", ("B", 2, 6, 5)), Input("y", ("B",), dtype="int64")
    layers = [nn.Conv2d(2, 3, 3, padding=1)] + ([nn.BatchNorm2d(3)] if norm else [])
    net = nn.Sequential(*layers, F.relu, nn.MaxPool2d(2), nn.Flatten(), nn.Dense(3 * 3 * 2, 4))
    logits = net(x)
    model = Model([x, y], {"logits": logits}, F.cross_entropy(logits, y))
    t = [torch.nn.Conv2d(2, 3, 3, padding=1)] + ([torch.nn.BatchNorm2d(3)] if norm else [])
    tnet = torch.nn.Sequential(*t, torch.nn.ReLU(), torch.nn.MaxPool2d(2), torch.nn.Flatten(),
                               torch.nn.Linear(18, 4))
    return model, tnet


def same_weights(tnet, params):
    """Copy gradc's parameters (moved off their initial ones) into the PyTorch module."""
    rng = np.random.default_rng(3)
    params = {k: v + (0.2 * rng.normal(size=v.shape) if not k.endswith("running_var") else 0)
              for k, v in params.items()}
    mapping = {"conv0.W": tnet[0].weight, "conv0.b": tnet[0].bias, "dense0.b": tnet[-1].bias}
    if isinstance(tnet[1], torch.nn.BatchNorm2d):
        mapping.update({"bn0.weight": tnet[1].weight, "bn0.bias": tnet[1].bias,
                        "bn0.running_mean": tnet[1].running_mean,
                        "bn0.running_var": tnet[1].running_var})
    with torch.no_grad():
        for name, t in mapping.items():
            t.copy_(torch.tensor(params[name]))
        tnet[-1].weight.copy_(torch.tensor(params["dense0.W"].T))
    return params


def data(n=8, seed=1):
    rng = np.random.default_rng(seed)
    return {"x": rng.normal(size=(n, 2, 6, 5)), "y": rng.integers(0, 4, size=n)}


def torch_loss(tnet, batch):
    return torch.nn.functional.cross_entropy(tnet(torch.tensor(batch["x"])),
                                             torch.tensor(batch["y"]))


@pytest.mark.parametrize("backend", ["numpy", "triton"])
def test_batch_norm_cnn_matches_pytorch_in_training_and_evaluation(backend):
    """Loss and gradients (training mode: the batch's statistics), the running statistics
    and parameters after three SGD steps over minibatches, and predict/evaluate (the
    running statistics), all equal a torch module's from the same weights (float64)."""
    model, tnet = small_cnn()
    prog = compile(model, backend=backend, dtype="float64")
    assert prog.buffers == ("bn0.running_mean", "bn0.running_var")
    params = same_weights(tnet, prog.init_params(0))
    batch = data()
    loss, grads = prog.loss_and_grad(params, batch)
    reference = torch_loss(tnet, batch)
    reference.backward()
    with torch.no_grad():  # that forward pass moved torch's running statistics: move them back
        tnet[1].running_mean.copy_(torch.tensor(params["bn0.running_mean"]))
        tnet[1].running_var.copy_(torch.tensor(params["bn0.running_var"]))
    assert abs(loss - reference.item()) <= 1e-12
    assert set(grads) == set(prog.trainable)  # buffers get no gradient
    for name, t in (("conv0.W", tnet[0].weight), ("bn0.weight", tnet[1].weight),
                    ("bn0.bias", tnet[1].bias), ("dense0.W", tnet[-1].weight)):
        want = t.grad.numpy().T if name == "dense0.W" else t.grad.numpy()
        assert np.allclose(grads[name], want, rtol=0, atol=1e-12), name
    hist = train(prog, batch, optimizer="sgd", lr=0.1, epochs=1, batch_size=3, shuffle=False,
                 params=params, quiet=True)
    opt = torch.optim.SGD(tnet.parameters(), lr=0.1)
    for start in range(0, 8, 3):  # the same minibatches: 3, 3, 2
        opt.zero_grad()
        torch_loss(tnet, {k: v[start:start + 3] for k, v in batch.items()}).backward()
        opt.step()
    after = hist.params
    assert np.abs(after["bn0.running_mean"] - tnet[1].running_mean.numpy()).max() <= 1e-12
    assert np.abs(after["bn0.running_var"] - tnet[1].running_var.numpy()).max() <= 1e-12
    assert np.abs(after["conv0.W"] - tnet[0].weight.detach().numpy()).max() <= 1e-12
    assert not np.allclose(after["bn0.running_var"], params["bn0.running_var"])
    tnet.eval()
    with torch.no_grad():
        want = tnet(torch.tensor(batch["x"])).numpy()
        want_loss = torch_loss(tnet, batch).item()
    assert np.abs(prog.predict(after, batch)["logits"] - want).max() <= 1e-12
    assert abs(prog.evaluate(after, batch)["loss"] - want_loss) <= 1e-12


@pytest.mark.parametrize("dtype,tol", [("float32", 1e-5), ("float64", 1e-10)])
def test_triton_matches_numpy_on_a_strided_batch_norm_cnn(dtype, tol):
    """The Triton backend (Triton's CPU interpreter) against the numpy backend in each
    dtype: the loss and every gradient, relative to the gradient's largest element, for
    conv (stride 2, padding 1, 7x5 images) -> batch norm -> relu -> conv (2x2, padding 1)
    -> relu -> max pool -> dense -> cross-entropy.  The first conv has no bias: batch norm
    cancels it, so its gradient is zero up to rounding, with no largest element to be
    relative to."""
    pytest.importorskip("triton")
    from oplib import rel_err

    x, y = Input("x", ("B", 2, 7, 5)), Input("y", ("B",), dtype="int64")
    net = nn.Sequential(nn.Conv2d(2, 3, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(3),
                        F.relu, nn.Conv2d(3, 4, 2, padding=1), F.relu, nn.MaxPool2d(2),
                        nn.Flatten(), nn.Dense(4 * 2 * 2, 4))
    model = Model([x, y], {"logits": net(x)}, F.cross_entropy(net(x), y))
    prog = compile(model, dtype=dtype)
    rng = np.random.default_rng(4)
    params = {k: (v + 0.2 * rng.normal(size=v.shape)).astype(dtype) if k in prog.trainable else v
              for k, v in prog.init_params(0).items()}
    batch = {"x": rng.normal(size=(6, 2, 7, 5)).astype(dtype), "y": rng.integers(0, 4, size=6)}
    loss, grads = prog.loss_and_grad(params, batch)
    t_loss, t_grads = compile(model, backend="triton", dtype=dtype).loss_and_grad(params, batch)
    assert rel_err(loss, t_loss) <= tol, (loss, t_loss)
    assert set(t_grads) == set(grads) == set(prog.trainable)
    for name, g in grads.items():
        assert t_grads[name].dtype == g.dtype == np.dtype(dtype), name
        assert rel_err(g, t_grads[name]) <= tol, (name, rel_err(g, t_grads[name]))


def test_batch_norm1d_over_features_and_sequences_matches_pytorch():
    for shape in ((5, 3), (4, 3, 6)):
        x = Input("x", ("B",) + shape[1:])
        bn = nn.BatchNorm1d(3, momentum=0.3, eps=1e-3)
        model = Model([x], {"y": bn(x)}, F.sum(bn(x) ** 3))
        prog = compile(model, dtype="float64")
        tbn = torch.nn.BatchNorm1d(3, momentum=0.3, eps=1e-3)
        params = prog.init_params(0)
        xs = np.random.default_rng(0).normal(size=shape)
        loss, grads = prog.loss_and_grad(params, {"x": xs})
        t = torch.tensor(xs, requires_grad=True)
        (tbn(t) ** 3).sum().backward()
        assert np.allclose(grads["bn0.weight"], tbn.weight.grad.numpy(), atol=1e-11)
        hist = train(prog, {"x": xs}, optimizer="sgd", lr=0.1, epochs=2, batch_size=shape[0],
                     shuffle=False, quiet=True)
        tbn(torch.tensor(xs))  # a second training-mode step for the running statistics
        assert np.allclose(hist.params["bn0.running_var"], tbn.running_var.detach().numpy(),
                           atol=1e-12)


def test_gradients_and_hessian_of_a_batch_norm_cnn_pass_the_checks():
    model, _ = small_cnn()
    assert check_gradients(model).ok
    assert check_hessian(model).ok


def test_resuming_a_batch_norm_cnn_is_bit_identical(tmp_path):
    """Buffers are saved with the parameters: 2 epochs, then 2 more from the checkpoint,
    equal 4 uninterrupted epochs bit for bit (losses, parameters, running statistics)."""
    model, _ = small_cnn()
    prog = compile(model)
    batch = data(12)
    whole = train(prog, batch, optimizer="adam", epochs=4, batch_size=4, quiet=True)
    path = tmp_path / "run.ckpt"
    train(prog, batch, optimizer="adam", epochs=2, batch_size=4, quiet=True, checkpoint=path)
    resumed = train(prog, batch, optimizer="adam", epochs=4, batch_size=4, quiet=True,
                    checkpoint=path, resume=True)
    assert resumed.step_losses == whole.step_losses
    for name, value in whole.params.items():
        assert np.array_equal(resumed.params[name], value), name


def test_layers_are_named_and_initialised_as_pytorch():
    model, _ = small_cnn()
    names = [p.name for p in model.params]
    assert names == ["conv0.W", "conv0.b", "bn0.weight", "bn0.bias", "dense0.W", "dense0.b"]
    prog = compile(model)
    params = prog.init_params(0)
    bound = 1 / np.sqrt(2 * 3 * 3)  # PyTorch: uniform in +-1/sqrt(fan_in), weight and bias
    assert 0.9 * bound < np.abs(params["conv0.W"]).max() <= bound
    assert np.abs(params["conv0.b"]).max() <= bound
    assert np.array_equal(params["bn0.running_var"], np.ones(3))
    assert np.array_equal(params["bn0.weight"], np.ones(3))


def _flops(groups):
    """gradc's matmul flops of a training step, and FlopCounterMode's forward and forward +
    backward flops, for conv(groups) -> relu -> strided, dilated conv -> dense."""
    x, y = Input("x", ("B", 4, 9, 7)), Input("y", ("B",), dtype="int64")
    net = nn.Sequential(nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=groups), F.relu,
                        nn.Conv2d(6, 5, (2, 3), dilation=(2, 1)), nn.Flatten())
    logits = nn.Dense(30, 3)(net(x))
    model = Model([x, y], {"logits": logits}, F.cross_entropy(logits, y))
    ours = matmul_flops(reverse_mode_graph(model).nodes).subs(symbol("B"), 16)
    tnet = torch.nn.Sequential(torch.nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=groups),
                               torch.nn.ReLU(), torch.nn.Conv2d(6, 5, (2, 3), dilation=(2, 1)),
                               torch.nn.Flatten(), torch.nn.Linear(30, 3))
    with FlopCounterMode(display=False) as counter:
        loss = torch.nn.functional.cross_entropy(tnet(torch.randn(16, 4, 9, 7)),
                                                 torch.randint(0, 3, (16,)))
    forward = counter.get_total_flops()
    with FlopCounterMode(display=False) as counter:
        loss.backward()
    return ours, forward, forward + counter.get_total_flops()


def test_conv_flops_equal_pytorchs_flop_counter_forward_and_backward():
    """The matmuls of the training step (im2col forward, both gradients; no gradient of the
    data) equal FlopCounterMode's convolution and linear flops exactly."""
    ours, _, total = _flops(groups=1)
    assert ours == total == 388_800


def test_grouped_conv_flops_count_each_group_once():
    """With groups, FlopCounterMode's backward formula counts the weight gradient as if
    every output channel read every input channel (groups times too many); its forward
    count and gradc's count each group once."""
    ours, forward, total = _flops(groups=2)
    conv1 = 2 * 16 * 6 * 5 * 4 * (4 // 2) * 3 * 3  # 2 N C_out H_out W_out C_in/groups kH kW
    assert forward == 106_560
    assert ours == total - conv1  # torch: 2 x conv1 for its weight gradient


def test_train_and_evaluation_modes_share_the_graph_before_batch_norm():
    """Without batch norm the module has no evaluation copy; with it, the kernels before
    the first batch norm are shared by both modes."""
    plain, _ = small_cnn(norm=False)
    assert plain.evaluation == {} and plain.updates == {}
    normed, _ = small_cnn()
    assert set(normed.evaluation) == {"loss", "logits", "metric:accuracy"}
    assert [b.name for b in normed.updates] == ["bn0.running_mean", "bn0.running_var"]


BAD = {
    "kernel larger than the padded input": (
        "nn.Conv2d(1, 2, 9)(x)", "model.py:4: kernel 9x9 (dilation 1x1) is larger than the padded"),
    "channels not divisible by groups": (
        "nn.Conv2d(1, 3, 3, groups=2)(x)", "model.py:4: Conv2d: in_channels 1 and out_channels 3"),
    "a 2-D input to Conv2d": (
        "nn.Conv2d(1, 2, 3)(F.reshape(x, (-1, 64)))", "model.py:4: Conv2d(1, 2, kernel_size=(3, 3)"),
    "a functional conv with the wrong weight": (
        "F.conv2d(x, F.Param('w', (2, 3, 3, 3)))", "model.py:4: conv2d with groups=1"),
    "pooling padding over half the kernel": (
        "F.max_pool2d(x, 2, padding=2)", "model.py:4: max_pool2d: padding 2 must be at most half"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_convnets_are_one_line_errors_with_the_model_line(case, tmp_path):
    expr, message = BAD[case]
    assert message in compile_error(tmp_path, f"""\
        from compiler import Input, Model, nn, ops as F
        x = Input("x", ("B", 1, 8, 8))
        y = Input("y", ("B",), dtype="int64")
        h = {expr}
        model = Model([x, y], loss=F.cross_entropy(F.flatten(h), y))
    """)


def test_a_minibatch_of_one_row_through_batch_norm_is_a_one_line_error(tmp_path):
    """PyTorch refuses batch norm over one value per channel while training; so does gradc,
    in one line, when the last minibatch has one row (33 examples in batches of 16)."""
    path = tmp_path / "model.py"
    path.write_text(textwrap.dedent("""\
        import numpy as np
        from compiler import Input, Model, nn, ops as F
        x, y = Input("x", ("B", 4)), Input("y", ("B",), dtype="int64")
        net = nn.Sequential(nn.Dense(4, 8), nn.BatchNorm1d(8), F.relu, nn.Dense(8, 3))
        model = Model([x, y], {"logits": net(x)}, F.cross_entropy(net(x), y))
        training = {"batch_size": 16, "epochs": 2}
        def data(seed=0):
            rng = np.random.default_rng(seed)
            return {"x": rng.normal(size=(33, 4)), "y": rng.integers(0, 3, size=33)}
    """))
    assert "more than one value per channel" in one_line_error(gradc("train", str(path), "--quiet"))


def test_kernels_of_a_batch_norm_model_are_labelled_by_phase():
    """The training graph's forward kernels are forward (also after a batch norm, where the
    evaluation graph differs), the running statistics' updates too."""
    model, _ = small_cnn()
    prog = compile(model)
    phases = {k.name: k.phase for k in prog.kernels}
    matmuls = [name for name in phases if "matmul" in name and phases[name] != "backward"]
    assert matmuls and all(phases[name] == "forward" for name in matmuls), phases
    assert sum(1 for p in phases.values() if p == "loss") <= 2, phases


def test_gelu_of_a_convolution_in_float32_matches_pytorch():
    """A convolution's output is a transposed view; numpy float32 erf once lost its
    |x| >= 1 branch on such arrays (off by up to 17 where PyTorch gives 2.3)."""
    x = Input("x", ("B", 1, 6, 6))
    conv = nn.Conv2d(1, 2, 3, padding=1)
    y = F.gelu(conv(x))
    model = Model([x], {"y": y}, F.sum(y))
    prog = compile(model)  # numpy, float32: the defaults
    params = {k: v * 3 for k, v in prog.init_params(0).items()}  # pre-activations past +-1
    batch = {"x": np.random.default_rng(7).normal(size=(3, 1, 6, 6)).astype(np.float32)}
    got = prog.predict(params, batch)["y"]
    want = torch.nn.functional.gelu(torch.nn.functional.conv2d(
        torch.tensor(batch["x"]), torch.tensor(params["conv0.W"]), torch.tensor(params["conv0.b"]),
        padding=1)).numpy()
    assert np.abs(want).max() > 1.5
    assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max()
