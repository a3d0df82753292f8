"""The Triton backend under Triton's CPU interpreter, against the numpy backend."""
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("triton")

from compiler import Input, Model, Param, compile, nn, ops as F  # noqa: E402
from oplib import ROWS, build, rel_err  # noqa: E402
from runtime import optim  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CASES = [(row, shapes) for row in ROWS for shapes in row.shapes[:1]]


def both(model, dtype):
    return compile(model, dtype=dtype), compile(model, backend="triton", dtype=dtype)


def assert_same(a, b, tol):
    assert np.shape(a) == np.shape(b)
    assert rel_err(a, b) <= tol, rel_err(a, b)


@pytest.mark.parametrize("row,shapes", CASES, ids=[r.name for r, _ in CASES])
def test_op_row_triton_matches_numpy(row, shapes):
    prog, params, batch, _ = build(row, shapes)
    triton_prog = compile(prog_model(row, shapes), backend="triton", dtype="float64")
    assert_same(prog.predict(params, batch)["out"], triton_prog.predict(params, batch)["out"], 1e-12)
    loss, grads = prog.loss_and_grad(params, batch)
    t_loss, t_grads = triton_prog.loss_and_grad(params, batch)
    assert_same(loss, t_loss, 1e-12)
    for k in grads:
        assert_same(grads[k], t_grads[k], 1e-10)


def prog_model(row, shapes):
    """The same model ``oplib.build`` compiles (nodes are hash-consed, so this is it)."""
    nodes = []
    for i, shape in enumerate(shapes):
        nodes.append(Input(f"k{i}", shape, dtype="int64") if i in row.int_inputs else Param(f"a{i}", shape))
    out = row.gradc(*nodes)
    r = Input("r", out.shape, dtype="float64")
    inputs = [n for n in nodes if n.op == "input"] + [r]
    return Model(inputs=inputs, outputs={"out": out}, loss=F.sum(out * r))


def mlp(act="tanh", sizes=(3, 16, 16, 1), classifier=False):
    x = Input("x", ("B", sizes[0]))
    net = nn.Chain(*[nn.Dense(a, b, act=act if i < len(sizes) - 2 else None)
                     for i, (a, b) in enumerate(zip(sizes, sizes[1:]))])
    if classifier:
        k = Input("k", ("B",), dtype="int64")
        return Model([x, k], {"logits": net(x)}, F.cross_entropy(net(x), k))
    y = Input("y", ("B", sizes[-1]))
    return Model([x, y], {"y_hat": net(x)}, F.mse(net(x), y))


@pytest.mark.parametrize("dtype,tol", [("float32", 1e-5), ("float64", 1e-11)])
@pytest.mark.parametrize("kind", ["regression", "classifier"])
def test_models_forward_loss_gradients_and_one_step(dtype, tol, kind):
    model = mlp("relu", (5, 37, 53, 4), classifier=True) if kind == "classifier" else mlp()
    prog, tprog = both(model, dtype)
    rng = np.random.default_rng(1)
    params = prog.init_params(0)
    n = 19
    batch = {"x": rng.normal(size=(n, prog.inputs["x"][0][1] and int(prog.inputs["x"][0][1])))}
    if kind == "classifier":
        batch["k"] = rng.integers(0, 4, size=n)
    else:
        batch["y"] = rng.normal(size=(n, 1))
    out = next(iter(prog.outputs))
    assert_same(prog.predict(params, batch)[out], tprog.predict(params, batch)[out], tol)
    loss, grads = prog.loss_and_grad(params, batch)
    t_loss, t_grads = tprog.loss_and_grad(params, batch)
    assert_same(loss, t_loss, tol)
    for k in grads:
        assert_same(grads[k], t_grads[k], tol * 10)
    opt = optim.Adam(lr=0.01)
    p1, p2 = {k: v.copy() for k, v in params.items()}, {k: v.copy() for k, v in params.items()}
    s1, s2 = opt.init_state(p1), opt.init_state(p2)
    prog.update(p1, grads, s1, opt, 1)
    tprog.update(p2, grads, s2, opt, 1)
    for k in p1:
        assert_same(p1[k], p2[k], tol)


def test_dropout_masks_are_identical_on_both_backends():
    x = Param("x", (37, 53))
    model = Model([], {"d": F.dropout(x, 0.3) * 1.0}, F.sum(F.dropout(x, 0.3, salt=7) ** 2))
    prog, tprog = both(model, "float32")
    params = {"x": np.ones((37, 53), dtype=np.float32)}
    a = prog.loss_and_grad(params, {}, rng=(5, 11))
    b = tprog.loss_and_grad(params, {}, rng=(5, 11))
    assert a[0] == pytest.approx(b[0], rel=1e-6)
    assert np.array_equal(a[1]["x"] != 0, b[1]["x"] != 0)   # the same elements dropped
    kept = float(np.mean(a[1]["x"] != 0))
    assert abs(kept - 0.7) < 0.03


def test_nan_passes_through_relu_maximum_minimum_and_max_reductions_on_both_backends():
    """Triton's maximum and minimum drop a NaN by default (``max(nan, 0)`` gave 0 where
    numpy and PyTorch give NaN), and so do its max reductions: the outputs, NaN included,
    are numpy's, for elementwise ops, row and column reductions and a max pool."""
    x = Input("x", (2, 4))
    outputs = {"relu": F.relu(x), "max": F.maximum(x, 0.5), "min": F.minimum(x, 0.5),
               "in_matmul": F.relu(x @ Param("w", (4, 3))), "row_max": F.max(x, axis=1),
               "column_max": F.max(x, axis=0), "row_min": F.min(x, axis=1),
               "pool": F.max_pool2d(F.reshape(x, (1, 1, 2, 4)), 2)}
    model = Model([x], outputs, F.sum(outputs["relu"]))
    prog, tprog = both(model, "float32")
    params = {"w": np.ones((4, 3), np.float32)}
    batch = {"x": np.array([[np.nan, -1, 2, np.inf], [-np.inf, 0.25, np.nan, 3]], np.float32)}
    want, got = prog.predict(params, batch), tprog.predict(params, batch)
    for name in outputs:
        assert np.array_equal(np.asarray(got[name]), want[name], equal_nan=True), name
    assert np.isnan(want["relu"]).sum() == 2 and np.isnan(want["in_matmul"]).sum() == 6
    assert np.isnan(want["row_max"]).all() and np.isnan(want["pool"]).all()
    assert np.isnan(want["column_max"]).tolist() == [True, False, True, False]


def _conv_mean_mse(x):  # a size (B) only in what a row-wise kernel stores
    out = F.conv2d(x, Param("w", (2, 3, 2, 2))).mean(axis=(2, 3))
    return F.mse(out, F.sum(x, axis=(2, 3))[:, :2])


def _pools_of_a_broadcast(x):  # a kernel reading a broadcast under a transpose
    h = F.tanh(x * Param("w", (3, 7, 5)))
    s = (F.max_pool2d(h, (3, 2), padding=(1, 1)) ** 2).sum(axis=(2, 3))
    return F.sum(s + F.max_pool2d(h, 2, stride=1).sum(axis=(2, 3)))


def _sum_of_a_max(x):  # the max's gradient starts from the constant 1, broadcast
    return F.sum(F.max(x * Param("w", (5,)), axis=(1, 2, 3)))


@pytest.mark.parametrize("build", [_conv_mean_mse, _pools_of_a_broadcast, _sum_of_a_max])
def test_models_that_crashed_triton_codegen_match_numpy(build):
    """Three Triton codegen crashes found by a new user's models: a row kernel that did
    not take the batch size its stored value divides by; a launch keyed on the module
    ``_rt`` instead of the tensor under a broadcast view; a constant broadcast outside the
    kernel read as a buffer."""
    x = Input("x", ("B", 3, 7, 5))
    model = Model([x], loss=build(x))
    prog, tprog = both(model, "float64")
    rng = np.random.default_rng(7)
    params = {k: rng.normal(size=v.shape) for k, v in prog.init_params(0).items()}
    batch = {"x": rng.normal(size=(3, 3, 7, 5))}
    loss, grads = prog.loss_and_grad(params, batch)
    t_loss, t_grads = tprog.loss_and_grad(params, batch)
    assert rel_err(loss, t_loss) <= 1e-10
    for name, g in grads.items():
        assert rel_err(g, t_grads[name]) <= 1e-10, name


def test_a_broadcast_a_matmul_reads_is_expanded_to_the_operands_shape():
    """Found by the fuzzer: a broadcast read directly by a matmul (here the gradient of a
    row mean for the weight, ``x.T @ broadcast(r / 5)``) reached the matmul kernel as the
    (B, 1) buffer under it, so the kernel took N = 1: the weight's gradient was right in
    its first column and memory past the buffer in the others, silently."""
    import torch

    x, r = Input("x", ("B", 4)), Input("r", ("B", 1))
    model = Model([x, r], loss=F.sum(F.mean(x @ Param("w", (4, 5)), axis=-1, keepdims=True) * r))
    rng = np.random.default_rng(1)
    params = {"w": rng.normal(size=(4, 5))}
    batch = {"x": rng.normal(size=(3, 4)), "r": rng.normal(size=(3, 1))}
    tw = torch.tensor(params["w"], requires_grad=True)
    (torch.tensor(batch["x"]) @ tw).mean(dim=-1, keepdim=True).mul(torch.tensor(batch["r"])).sum().backward()
    for prog in both(model, "float64"):
        assert rel_err(prog.loss_and_grad(params, batch)[1]["w"], tw.grad.numpy()) <= 1e-12


@pytest.mark.parametrize("classifier", [False, True])
def test_hvp_on_triton_matches_numpy(classifier):
    """The classifier's Hessian runs the cross-entropy gradient with a tangent scale."""
    model = mlp("tanh", (3, 8, 4), classifier=True) if classifier else mlp()
    prog, tprog = both(model, "float64")
    params = prog.init_params(0)
    rng = np.random.default_rng(2)
    batch = {"x": rng.normal(size=(6, 3))}
    batch.update({"k": rng.integers(0, 4, size=6)} if classifier else {"y": rng.normal(size=(6, 1))})
    vector = {k: rng.normal(size=v.shape) for k, v in params.items()}
    a, b = prog.hvp(params, batch, vector), tprog.hvp(params, batch, vector)
    for k in a:
        assert_same(a[k], b[k], 1e-10)
    assert abs(prog.jvp(params, batch, vector)[1] - tprog.jvp(params, batch, vector)[1]) <= \
        1e-10 * abs(prog.jvp(params, batch, vector)[1])


def test_triton_source_is_readable():
    _, tprog = both(mlp(), "float32")
    source = tprog.source
    assert "def matmul_add_tanh_kernel(" in source and "@triton.jit" in source  # k0 and k1 share it
    assert "# Fused nodes" in source and "tl.dot(" in source
    assert [k.name for k in tprog.kernels] == [k.name for k in compile(mlp()).kernels]


@pytest.mark.parametrize("backend", ["numpy", "triton"])
def test_generated_modules_have_no_dead_code(backend):
    """pyflakes finds no unused name, import or assignment in any example's module."""
    from pyflakes.api import check
    from pyflakes.reporter import Reporter
    import io

    for name in EXAMPLE_MODELS:
        source = compile(example(name)["model"], backend=backend).source
        out = io.StringIO()
        assert check(source, name, Reporter(out, out)) == 0, out.getvalue()


def test_missing_gpu_and_interpreter_is_a_one_line_error(tmp_path):
    model = tmp_path / "m.py"
    model.write_text("from compiler import Model, Param, ops as F\n"
                     "model = Model([], loss=F.sum(Param('w', (2,)) ** 2))\n")
    script = ("import sys; from compiler import compile, modelfile;"
              f"ns = modelfile.load({str(model)!r})\n"
              "try:\n    compile(ns['model'], backend='triton')\n"
              "except Exception as e:\n    print(e)")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = str(ROOT)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
    assert "needs a CUDA GPU, or TRITON_INTERPRET=1" in out.stdout


EXAMPLE_MODELS = ["seed_regression", "linear_features", "logistic_binary", "toy_composite",
                  "autodiff_trace", "digits"]


def example(name):
    from compiler import modelfile

    return modelfile.load(ROOT / "examples" / f"{name}.py")


@pytest.mark.parametrize("name", EXAMPLE_MODELS)
def test_example_models_triton_matches_numpy(name):
    ns = example(name)
    prog, tprog = both(ns["model"], "float32")
    params = prog.init_params(0)
    if "data" in ns:
        if name == "digits":
            pytest.importorskip("sklearn")
        batch = {k: np.asarray(v)[:16] for k, v in ns["data"]().items()}
    else:
        batch = {}
    for out, value in prog.predict(params, batch).items():
        assert_same(value, tprog.predict(params, batch)[out], 1e-5)
    loss, grads = prog.loss_and_grad(params, batch)
    t_loss, t_grads = tprog.loss_and_grad(params, batch)
    assert_same(loss, t_loss, 1e-5)
    for k in grads:
        assert rel_err(grads[k], t_grads[k]) <= 1e-5, k
    opt = optim.Adam(lr=0.01)
    p1, p2 = {k: v.copy() for k, v in params.items()}, {k: v.copy() for k, v in params.items()}
    prog.update(p1, grads, opt.init_state(p1), opt, 1)
    tprog.update(p2, grads, opt.init_state(p2), opt, 1)
    for k in p1:
        assert_same(p1[k], p2[k], 1e-6)


@pytest.mark.parametrize("arch", ["sm_90", "sm_80"])
def test_every_example_kernel_compiles_for_hopper_and_ampere_without_spills(arch):
    compile_without_spills(EXAMPLE_MODELS, arch)


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["sm_90", "sm_80"])
def test_convnet_and_transformer_kernels_compile_without_spills(arch):
    compile_without_spills(["cnn_digits", "tiny_gpt"], arch)


def compile_without_spills(names, arch):
    from compiler.aot import compile_in_subprocess
    from compiler.pipeline import module_path

    for name in names:
        path = module_path(example(name)["model"], "training", "triton", "float32")
        result = compile_in_subprocess(path, arch, want=("resources", "ptx"))
        assert result, name
        for kernel, r in result.items():
            assert r["local"] == 0, (name, kernel, r)
            assert r["registers"] and r["registers"] <= 255, (name, kernel, r)
            # no float atomics: a loss or metric summed by atomic adds would depend on the
            # order the blocks finish (different bits from run to run on a GPU)
            assert not re.search(r"\b(atom|red)\.[\w.]*add\.f(32|64)", r["ptx"]), (name, kernel)


def test_inspect_reports_kernels_resources_and_memory_traffic(tmp_path):
    model = tmp_path / "mlp.py"
    model.write_text(
        "from compiler import Input, Model, nn, ops as F\n"
        "x, k = Input('x', ('B', 784)), Input('k', ('B',), dtype='int64')\n"
        "net = nn.Chain(nn.Dense(784, 256, act='relu'), nn.Dense(256, 256, act='relu'),"
        " nn.Dense(256, 10))\n"
        "model = Model([x, k], {'logits': net(x)}, F.cross_entropy(net(x), k))\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-m", "compiler", "inspect", str(model), "--batch", "128",
                          "--json", "--resources", "--arch", "sm_90", "--gpu", "h100"],
                         capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr
    import json

    report = json.loads(out.stdout)
    phases = {k["phase"] for k in report["kernels"]}
    assert phases == {"forward", "loss", "backward", "update"}  # the accuracy is in the loss kernel
    graph_kernels = [k for k in report["kernels"] if k["phase"] != "update"]
    assert all(k["local"] == 0 for k in report["kernels"])
    assert all(isinstance(k["flops"], int) and k["roofline_us"] > 0 for k in graph_kernels)
    assert report["kernel_count"] == 10  # 3L + 1 for L = 3
    (sgd,) = [k for k in report["kernels"] if k["name"] == "update_sgd"]
    assert sgd["bytes"] == 3 * 4 * 269_322  # p and g read, p written: 269,322 float32 parameters
    merged = [k for k in graph_kernels if k["merged"]]
    assert len(merged) == 4 and all(k["boundary"] for k in graph_kernels)
    # at batch 128 the traffic is mostly weights, which fusion cannot save: 8.19 MB vs 10.57 MB;
    # per example (the part that grows with the batch) fusion moves 19,792 bytes against 38,392
    assert report["bytes_fused"] <= 0.81 * report["bytes_unfused"]
    from compiler.inspection import traffic
    from compiler.shapes import symbol

    fused, _, unfused, _ = traffic(mlp("relu", (784, 256, 256, 10), classifier=True))
    B = symbol("B")
    assert fused.coeff(B) / unfused.coeff(B) <= 0.56  # 19,792 against 35,368 bytes per example
    from compiler.inspection import inspect_model

    seed = inspect_model(example("seed_regression")["model"], batch=128)
    assert seed["bytes_fused"] <= seed["bytes_unfused"] / 2


@pytest.mark.parametrize("layers", [1, 2, 3, 4])
def test_mlp_training_step_is_3l_plus_1_kernels(layers):
    """L forward matmuls, one loss kernel (forward and backward), L dW matmuls with the
    bias gradient fused in, L - 1 dX matmuls, and the update: 3L + 1 kernels."""
    from compiler.inspection import traffic
    from compiler.pipeline import forward_nodes, training_graph
    from compiler.fusion import partition

    model = mlp("relu", (784,) + (256,) * (layers - 1) + (10,), classifier=True)
    _, n_kernels, _, _ = traffic(model)
    assert n_kernels == 3 * layers + 1
    graph = training_graph(model)
    grads = {graph.outputs[f"grad:{p.name}"] for p in model.params}
    kernels = partition(graph, forward_nodes(model))
    assert len(kernels) == 3 * layers  # and the training accuracy adds none
    (loss,) = [k for k in kernels if k.root.op == "softmax_cross_entropy"]
    assert [m.op for m in loss.members] == ["softmax_cross_entropy", "softmax_cross_entropy_grad",
                                            "softmax_cross_entropy_accuracy"]
    bias = [k for k in kernels if len(k.outputs) == 2 and k.root.op == "matmul"]
    assert len(bias) == layers and all(set(k.outputs) <= grads for k in bias)


@pytest.mark.parametrize("dtype,tol", [("float32", 1e-5), ("float64", 1e-11)])
def test_fused_kernels_over_many_blocks_match_numpy_and_torch(dtype, tol):
    """300 classes are three chunks of the loss kernel's online logsumexp; a batch of 75
    is three K steps of the weight-gradient matmul that also sums the bias gradient."""
    import torch

    x, k = Input("x", ("B", 9)), Input("k", ("B",), dtype="int64")
    logits = nn.Dense(9, 300)(x)
    model = Model([x, k], {"logits": logits}, F.cross_entropy(logits, k))
    prog, tprog = both(model, dtype)
    rng = np.random.default_rng(5)
    params = prog.init_params(0)
    batch = {"x": rng.normal(size=(75, 9)) * 3, "k": rng.integers(0, 300, size=75)}
    loss, grads = prog.loss_and_grad(params, batch)
    t_loss, t_grads = tprog.loss_and_grad(params, batch)
    assert_same(loss, t_loss, tol)
    for name in grads:
        assert_same(grads[name], t_grads[name], tol)
    w_name, b_name = sorted(params, key=lambda n: params[n].ndim, reverse=True)
    W = torch.tensor(params[w_name], dtype=torch.float64, requires_grad=True)
    b = torch.tensor(params[b_name], dtype=torch.float64, requires_grad=True)
    ref = torch.nn.functional.cross_entropy(torch.tensor(batch["x"]) @ W + b, torch.tensor(batch["k"]))
    ref.backward()
    assert abs(float(t_loss) - ref.item()) <= 10 * tol * abs(ref.item())
    assert_same(t_grads[w_name], W.grad.numpy(), 10 * tol)
    assert_same(t_grads[b_name], b.grad.numpy(), 10 * tol)


def test_a_loss_gradient_that_needs_the_loss_stays_a_kernel_of_its_own():
    """loss = ce**2: the gradient scale 2*ce exists only after the loss, so no merge,
    and the lone gradient kernel reads its scale from memory on both backends."""
    x, k = Input("x", ("B", 6)), Input("k", ("B",), dtype="int64")
    logits = nn.Dense(6, 5)(x)
    model = Model([x, k], {"logits": logits}, F.cross_entropy(logits, k) ** 2)
    prog, tprog = both(model, "float64")
    assert any(len(kern.nodes) == 1 and "softmax_cross_entropy_grad" in kern.nodes[0]
               for kern in prog.kernels)
    rng = np.random.default_rng(3)
    params = prog.init_params(0)
    batch = {"x": rng.normal(size=(37, 6)), "k": rng.integers(0, 5, size=37)}
    loss, grads = prog.loss_and_grad(params, batch)
    t_loss, t_grads = tprog.loss_and_grad(params, batch)
    assert_same(loss, t_loss, 1e-11)
    for name in grads:
        assert_same(grads[name], t_grads[name], 1e-10)


def test_input_precision_is_an_option_of_float32_matmuls():
    from runtime.errors import GradcError

    model = mlp("relu", (5, 37, 53, 4), classifier=True)
    ieee = compile(model, backend="triton")
    tf32 = compile(model, backend="triton", input_precision="tf32")
    assert 'INPUT_PRECISION = tl.constexpr("ieee")' in ieee.source
    assert 'INPUT_PRECISION = tl.constexpr("tf32")' in tf32.source
    assert ieee.path != tf32.path
    # float64 has no tf32: its matmuls stay exact
    assert 'tl.constexpr("ieee")' in compile(model, backend="triton", dtype="float64",
                                             input_precision="tf32").source
    with pytest.raises(GradcError, match="unknown input_precision 'bf16'"):
        compile(model, backend="triton", input_precision="bf16")


def test_training_on_triton_follows_numpy(tmp_path):
    from runtime import train

    ns = example("logistic_binary")
    data = {k: v[:96] for k, v in ns["data"]().items()}
    prog, tprog = both(ns["model"], "float64")
    kwargs = dict(optimizer="adam", lr=0.02, epochs=2, batch_size=32, quiet=True, val_fraction=0.25,
                  checkpoint=tmp_path / "t.ckpt")
    a, b = train(prog, data, **kwargs), train(tprog, data, **kwargs)
    assert rel_err(a.step_losses, b.step_losses) <= 1e-9
    assert a.metrics["val_accuracy"] == b.metrics["val_accuracy"]
    for k in a.params:
        assert rel_err(a.params[k], b.params[k]) <= 1e-9
    resumed = train(tprog, data, **{**kwargs, "epochs": 3, "resume": True})
    assert resumed.step_losses[:len(b.step_losses)] == b.step_losses
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-m", "compiler", "train", str(ROOT / "examples" / "logistic_binary.py"),
                          "--backend", "triton", "--epochs", "1", "--quiet"], capture_output=True,
                         text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr


def test_kernels_with_64_bit_indices_compute_the_same(monkeypatch):
    """A tensor of 2**31 elements or more launches each kernel's 64-bit-index specialization
    (WIDE): forced here on small tensors, every kernel of a ConvNet step (elementwise,
    gathers, matmuls, reductions, the loss, the update) gives the same results."""
    from runtime import tkernels

    x, y = Input("x", ("B", 1, 6, 6)), Input("y", ("B",), dtype="int64")
    net = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), F.relu, nn.MaxPool2d(2), nn.Flatten(),
                        nn.Dense(27, 4))
    model = Model([x, y], {"logits": net(x)}, F.cross_entropy(net(x), y))
    prog = compile(model, backend="triton", dtype="float64")
    params = prog.init_params(0)
    rng = np.random.default_rng(0)
    batch = {"x": rng.normal(size=(5, 1, 6, 6)), "y": rng.integers(0, 4, size=5)}
    narrow = prog.loss_and_grad(params, batch)
    calls = []
    monkeypatch.setattr(tkernels, "wide", lambda *t: calls.append(len(t)) or True)
    # (a launch is worked out once per shape: a fresh module's kernels decide it anew)
    wide = type(prog).load(prog.path).loss_and_grad(params, batch)
    assert len(calls) >= 8
    assert wide[0] == narrow[0]
    for name in params:
        assert np.array_equal(wide[1][name], narrow[1][name]), name


def test_wide_index_arithmetic_is_64_bit_in_the_compiled_kernels():
    """The 64-bit specialization compiles for sm_90 without spills, and its addresses are
    computed in 64 bits (mul.wide from a 32-bit index is what the 32-bit one does)."""
    from compiler.aot import compile_in_subprocess
    from compiler.pipeline import module_path

    path = module_path(example("digits")["model"], "training", "triton", "float32")
    wide = compile_in_subprocess(path, "sm_90", ("resources", "ptx", "wide"))
    narrow = compile_in_subprocess(path, "sm_90", ("resources", "ptx"))
    # (and the loss kernel is compiled with the class chunk the host launches: 16 for 10
    # classes, not the largest, 128, which needed 230 registers instead of 32)
    assert narrow["k2_cross_entropy_and_grad_and_accuracy"]["registers"] <= 64
    for kernel, r in wide.items():
        assert r["local"] == 0, (kernel, r)
        if kernel.startswith("update_"):
            continue
        assert re.search(r"\bcvt\.s64\.s32\b", r["ptx"]), kernel  # the index widened
        assert r["ptx"] != narrow[kernel]["ptx"], kernel


def test_a_whole_tensor_reduction_runs_on_several_programs_with_the_same_bits():
    """A loss summed over a whole tensor is not left to one program: over 20,000 values the
    first pass runs on several programs (each adding every SPLIT-th block), one more adds
    their results in order.  The loss and gradients equal the numpy backend's, and two
    calls give the same bits."""
    model = mlp("tanh", (16, 8, 4))
    rng = np.random.default_rng(0)
    batch = {"x": rng.normal(size=(5000, 16)), "y": rng.normal(size=(5000, 4))}
    ours, theirs = both(model, "float64")
    params = ours.init_params(0)
    loss, grads = ours.loss_and_grad(params, batch)
    first, t_grads = theirs.loss_and_grad(params, batch)
    assert_same(loss, first, 1e-12)
    for k in grads:
        assert_same(grads[k], t_grads[k], 1e-10)
    assert theirs.loss_and_grad(params, batch)[0] == first
    splits = [plan.meta["SPLIT"] for name, plans in vars(theirs.module).items()
              if name.endswith("_plans") for plan in plans.values() if "SPLIT" in plan.meta]
    assert max(splits) == 5  # 20,000 values, 4,096 a program in the interpreter
