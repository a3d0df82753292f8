"""What the generated modules say: names, the KERNELS table, shared device kernels, and
the Triton module's own self-check; one module writer for both backends."""
import ast
import importlib.util
import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from compiler import Input, Model, Param, compile, modelfile, nn, ops as F
from compiler.codegen.module import ModuleWriter
from compiler.codegen.numpy_backend import NumpyEmitter
from compiler.codegen.triton_backend import TritonEmitter
from compiler.fusion import kernel_name
from compiler.pipeline import emitter, kernels_of, training_graph

ROOT = Path(__file__).resolve().parent.parent
RUNS_TRITON = pytest.mark.skipif(importlib.util.find_spec("triton") is None
                                 or importlib.util.find_spec("torch") is None,
                                 reason="running Triton kernels needs triton and torch")
SEED = modelfile.load(str(ROOT / "examples" / "seed_regression.py"))["model"]


def source(model, backend, dtype="float64"):
    graph = training_graph(model)
    return ModuleWriter(model, graph, kernels_of(model, graph), dtype, "m.py",
                        emitter(backend, dtype)).source()


def functions(text):
    return {f.name: f for f in ast.parse(text).body if isinstance(f, ast.FunctionDef)}


def test_buffers_are_named_after_the_outputs_they_are():
    text = source(SEED, "numpy")
    assert "y_hat = k2_matmul_add(t1, dense2_W, dense2_b)" in text
    assert "loss_value = k4_pow_sum_mul(t3, B)" in text
    assert "grad_dense0_W, grad_dense0_b = k8_matmul_and_sum(x, t7)" in text
    assert "return {'y_hat': _rt.materialize(y_hat, DTYPE)}" in text
    assert not re.search(r"\bt(2|4|8|9|10)\b", text)  # only intermediates keep kernel numbers


def test_kernel_names_tell_the_whole_story():
    names = [k.name for k in kernels_of(SEED, training_graph(SEED))]
    assert names == ["k0_matmul_add_tanh", "k1_matmul_add_tanh", "k2_matmul_add", "k3_sub",
                     "k4_pow_sum_mul", "k5_mul", "k6_matmul_pow_sub_mul",
                     "k7_matmul_pow_sub_mul", "k8_matmul_and_sum", "k9_matmul_and_sum",
                     "k10_matmul_and_sum"]
    # more distinct ops than fit: the first op, the reduction, the last op and a count
    x, w = Input("x", ("B", 4)), Param("w", ())
    chain = F.sum(F.exp(F.sin(F.cos(F.tanh(F.sigmoid(x)) * 2.0) + 1.0)))
    model = Model([x], loss=(chain - w) ** 2 / 3.0)
    k = kernels_of(model, training_graph(model))[0]
    assert k.name == "k0_sigmoid_to_sum_to_sub_9ops"
    assert kernel_name(k.index, k.groups) == k.name  # the same nodes: the same name


@RUNS_TRITON
def test_names_collide_with_nothing_the_module_uses():
    """An output named ``out`` (the kernels' keyword), an input named ``a`` read as a
    matmul's second operand (the Triton host's local) and one named ``range``."""
    a, rng_input = Input("a", (3, 2)), Input("range", (4, 2))
    w = Param("w", (4, 3))
    out = w @ a + rng_input
    model = Model([a, rng_input], {"out": out}, F.sum(out * out))
    np_src, tr_src = source(model, "numpy"), source(model, "triton")
    for text in (np_src, tr_src):
        assert "a_ = batch['a']" in text and "range_ = batch['range']" in text
        assert re.search(r"\bout_ = k\d+_", text)
    rng = np.random.default_rng(0)
    batch = {"a": rng.normal(size=(3, 2)), "range": rng.normal(size=(4, 2))}
    params = {"w": rng.normal(size=(4, 3))}
    want = params["w"] @ batch["a"] + batch["range"]
    for backend in ("numpy", "triton"):
        prog = compile(model, backend=backend, dtype="float64")
        loss, grads = prog.loss_and_grad(params, batch)
        assert loss == pytest.approx(float(np.sum(want ** 2)), rel=1e-12)
        assert np.allclose(grads["w"], 2 * want @ batch["a"].T, rtol=1e-12)


def test_triton_device_kernels_are_written_once_and_their_users_named():
    text = source(SEED, "triton")
    graph = training_graph(SEED)
    kernels = kernels_of(SEED, graph)
    defs = functions(text)
    devices = [n for n in defs if n.endswith("_kernel") and not n.startswith(("update_", "_"))]
    assert len(kernels) == 11 and len(devices) == 7
    assert "# Backend triton, dtype float64; 11 kernels (7 device kernels)" in text
    assert "# The device kernel of k8_matmul_and_sum, k9_matmul_and_sum, k10_matmul_and_sum" in text
    launched = {k.name: re.findall(r"(\w+_kernel)\[", ast.get_source_segment(text, defs[k.name]))
                for k in kernels}
    assert launched["k6_matmul_pow_sub_mul"] == launched["k7_matmul_pow_sub_mul"] \
        == ["matmul_pow_sub_mul_kernel"]
    assert launched["k2_matmul_add"] == ["k2_matmul_add_kernel"]  # one user: its own name
    # every device kernel stands before its first launch, once; a host wrapper launches one
    # (twice: the loss's whole-tensor sum, a first pass over programs and a second)
    assert all(len(set(names)) == 1 for names in launched.values())
    assert launched["k4_pow_sum_mul"] == ["k4_pow_sum_mul_kernel"] * 2
    assert sorted(devices) == sorted({names[0] for names in launched.values()})


@RUNS_TRITON
def test_triton_kernel_table_names_each_device_kernel_and_its_pointers():
    """The table's pointers are exactly the device kernel's pointer parameters (the
    matmul operands' own names no longer leak in as a0_ptr, b0_ptr)."""
    prog = compile(SEED, backend="triton", dtype="float64")
    for row in prog.module.KERNELS:
        fn = getattr(prog.module, row["device"])
        while not inspect.isfunction(fn):  # through triton.autotune and triton.jit
            fn = fn.fn
        params = [p for p in inspect.signature(fn).parameters if p.endswith("_ptr")]
        assert list(row["pointers"]) == params, row["name"]
    assert "def matmul_and_sum_kernel(" in prog.kernels[8].source  # inspect shows the shared one


def test_one_writer_and_emitters_that_keep_no_state():
    assert not issubclass(TritonEmitter, NumpyEmitter)
    for backend in ("numpy", "triton"):
        graph = training_graph(SEED)
        writer = ModuleWriter(SEED, graph, kernels_of(SEED, graph), "float32", "m.py",
                              emitter(backend, "float32"))
        assert writer.source() == writer.source()
        assert vars(writer.emitter) == vars(emitter(backend, "float32"))


@RUNS_TRITON
def test_a_gradient_two_parameters_share_is_copied_in_train_epoch():
    """grad a = grad b = r: train_epoch wrote it into one buffer and then copied a name
    it never assigned (NameError)."""
    a, b, r = Param("a", (4,)), Param("b", (4,)), Input("r", ("B", 4))
    model = Model([r], loss=F.sum((a + b) * r))
    for backend in ("numpy", "triton"):
        prog = compile(model, backend=backend, dtype="float64")
        data = {"r": np.arange(8.0).reshape(2, 4)}
        grads = {"a": np.zeros(4), "b": np.zeros(4)}
        batch_size = 2
        params = {"a": np.ones(4), "b": np.ones(4)}
        if backend == "triton":
            from runtime.tkernels import to_device

            params, data, grads = to_device((params, data, grads))
        prog.module.train_epoch(params, data, batch_size, grads, lambda step: None)
        for g in grads.values():
            assert np.allclose(np.asarray(g), [4.0, 6.0, 8.0, 10.0])


def run_module(path, interpret):
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = str(ROOT)
    if interpret:
        env["TRITON_INTERPRET"] = "1"
    return subprocess.run([sys.executable, str(path)], capture_output=True, text=True, env=env,
                          timeout=600)


@RUNS_TRITON
@pytest.mark.parametrize("dtype,tolerance", [("float64", 1e-6), ("float32", 1e-2)])
def test_triton_module_checks_its_own_gradients_in_the_interpreter(dtype, tolerance):
    x, k = Input("x", ("B", 3)), Input("k", ("B",), dtype="int64")
    net = nn.Chain(nn.Dense(3, 5, act="tanh"), nn.Dense(5, 4))
    prog = compile(Model([x, k], {"logits": net(x)}, F.cross_entropy(net(x), k)),
                   backend="triton", dtype=dtype)
    done = run_module(prog.path, interpret=True)
    assert done.returncode == 0, done.stderr
    assert float(done.stdout.rsplit("relative error", 1)[1]) < tolerance


@RUNS_TRITON
def test_triton_module_without_gpu_or_interpreter_says_so_in_one_line():
    if __import__("torch").cuda.is_available():
        pytest.skip("a GPU would run it")
    prog = compile(SEED, backend="triton")
    done = run_module(prog.path, interpret=False)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "TRITON_INTERPRET=1" in done.stderr
    assert "Traceback" not in done.stderr
