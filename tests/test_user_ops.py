"""One op, one place: the registry entry is the op, and users define elementwise ops of their own."""
import re
from pathlib import Path

import numpy as np
import pytest
import sympy
import torch

from compiler import Model, Param, compile, ops as F
from compiler.codegen.printer import print_numpy
from compiler.codegen.triton_printer import print_triton
from compiler.cost import node_cost
from compiler.ops.registry import OPS, functions, missing_rules
from runtime.errors import GradcError
from runner import gradc

ROOT = Path(__file__).resolve().parent.parent

SOFTSIGN_MODEL = '''
import numpy as np
import sympy
from compiler import Input, Model, nn, ops as F

softsign = F.elementwise("softsign_user", lambda a: a / (1 + sympy.Abs(a)), doc="a / (1 + |a|)")
x, y = Input("x", ("B", 2)), Input("y", ("B", 1))
net = nn.Chain(nn.Dense(2, 4, act=softsign), nn.Dense(4, 1))
model = Model([x, y], {"y_hat": net(x)}, F.mse(net(x), y))
training = {"epochs": 3, "batch_size": 8}

def data(seed=0):
    xs = np.random.default_rng(seed).normal(size=(16, 2))
    return {"x": xs, "y": np.sin(xs[:, :1])}
'''

SCALAR_MODEL = '''
import sympy
from compiler import Param, Model, ops as F

cube_plus = F.elementwise("cube_plus", lambda a, b: a**3 + sympy.exp(b) * a)
x1, x2 = Param("x1", ()), Param("x2", ())
model = Model([], loss=cube_plus(x1, x2) + F.sin(x2))
'''


def test_the_registry_is_complete():
    """Every op has what each path needs (its rows in tests/oplib.py run both backends)."""
    assert missing_rules() == []
    assert all(op.numpy_code is not None and op.triton_code is not None
               for op in functions().values())


def test_printers_refuse_a_function_no_op_introduces():
    x = sympy.Symbol("x")
    with pytest.raises(GradcError, match="no Triton code for the sympy function atan"):
        print_triton(sympy.atan(x))
    with pytest.raises(GradcError, match="no numpy code for the sympy function atan"):
        print_numpy(sympy.atan(x))


def test_elementwise_costs_count_their_bodies():
    w = Param("w", (2, 3))
    gelu = F.gelu(w)  # w * ndtr(w): a multiply and (1 + erf(a*sqrt(2)/2))/2, 3 + the erf
    assert node_cost(gelu).flops + node_cost(gelu.inputs[1]).flops == 5 * 6
    assert node_cost(F.softsign(w)).flops == 3 * 6  # add, abs, divide
    assert node_cost(F.erf(w)).flops == 6 and node_cost(w ** 3).flops == 2 * 6


@pytest.mark.parametrize("backend", ["numpy", "triton"])
def test_a_user_defined_op_trains_and_matches_pytorch(backend):
    logcosh = F.elementwise("logcosh_test", lambda a: sympy.log(sympy.cos(a) + 2) * sympy.tanh(a))
    w = Param("w", (4,))
    prog = compile(Model([], loss=F.sum(logcosh(w) * w)), backend=backend, dtype="float64")
    values = np.array([0.3, -1.2, 2.0, 0.0])
    loss, grads = prog.loss_and_grad({"w": values}, {})
    t = torch.tensor(values, requires_grad=True)
    expected = (torch.log(torch.cos(t) + 2) * torch.tanh(t) * t).sum()
    expected.backward()
    assert abs(loss - expected.item()) < 1e-12
    np.testing.assert_allclose(grads["w"], t.grad.numpy(), rtol=1e-11, atol=1e-14)


def test_defining_an_op_again_returns_it_and_a_new_body_is_refused():
    first = F.elementwise("twice_test", lambda a: 2 * a + 1)
    again = F.elementwise("twice_test", lambda a: 2 * a + 1)
    assert first.__name__ == again.__name__ == "twice_test" and "twice_test" in OPS
    with pytest.raises(GradcError, match="another body"):
        F.elementwise("twice_test", lambda a: 3 * a)


BAD_BODIES = [
    ("exp", lambda a: a, "already an op of gradc's own"),
    ("bad_atan", lambda a: sympy.atan(a), "uses atan, which neither backend can print"),
    ("bad_free", lambda a: a + sympy.Symbol("z"), "uses z, which is not an argument"),
    ("bad_complex", lambda a: sympy.I * a, "not finite or not real"),
    ("bad_inf", lambda a: a * sympy.zoo, "not finite or not real"),
    ("bad_log_deriv", lambda a: sympy.Abs(a) ** sympy.Rational(1, 2) * sympy.zoo, "not finite"),
    ("bad_matrix", lambda a: sympy.Matrix([a]), "scalar sympy expression"),
    ("bad_args", lambda a, b, c, d, e: a, "takes 5 arguments"),
    ("bad_raises", lambda a: 1 / 0, "failed on sympy symbols: ZeroDivisionError"),
    ("not an identifier", lambda a: a, "Python identifier"),
]


@pytest.mark.parametrize("name,fn,message", BAD_BODIES, ids=[b[0] for b in BAD_BODIES])
def test_bad_bodies_get_a_one_line_error_at_the_users_line(name, fn, message):
    with pytest.raises(GradcError, match=re.escape(message)) as e:
        F.elementwise(name, fn)
    assert "test_user_ops.py:" in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("verb", [["check"], ["flops", "--batch", "4"], ["inspect", "--batch", "4"],
                                  ["train", "--quiet"], ["train", "--quiet", "--backend", "triton"],
                                  ["compile", "--backend", "triton"]])
def test_a_user_defined_op_from_a_model_file_works_in_every_verb(tmp_path, verb):
    model = tmp_path / "softsign_model.py"
    model.write_text(SOFTSIGN_MODEL)
    out = gradc(verb[0], model, *verb[1:])
    assert out.returncode == 0, out.stderr
    if verb[0] == "check":
        assert out.stdout.rstrip().endswith("ok")
    if verb[0] == "flops":
        assert re.search(r"^reverse mode .* [\d,]+ +\d+\.\d\d$", out.stdout, re.M), out.stdout


def test_a_user_defined_op_in_the_trace_of_a_scalar_model(tmp_path):
    model = tmp_path / "scalar_model.py"
    model.write_text(SCALAR_MODEL)
    out = gradc("trace", model, "--at", "x1=0.5,x2=1.5")
    assert out.returncode == 0, out.stderr
    # d/dx1 = 3 x1^2 + e^x2, d/dx2 = x1 e^x2 + cos(x2)
    assert f"{3 * 0.25 + np.exp(1.5):.4g}" in out.stdout
    assert f"{0.5 * np.exp(1.5) + np.cos(1.5):.4g}" in out.stdout


def test_the_new_functions_compile_ahead_of_time_for_sm90():
    """erf, expm1, log1p and a varying power are Triton code a GPU compiler accepts."""
    pytest.importorskip("triton")
    from compiler.aot import compile_in_subprocess

    a, b = Param("a", (5,)), Param("b", (5,))
    loss = F.sum(F.gelu(a) * F.expm1(b) + a ** b + F.erf(b) * F.log1p(F.softsign(a) + 1.0))
    prog = compile(Model([], loss=loss), backend="triton")
    result = compile_in_subprocess(prog.path, "sm_90")
    assert len(result) >= len(prog.kernels) and all(r["local"] == 0 for r in result.values())


def test_numpy_erf_without_scipy_is_the_c_librarys(monkeypatch):
    import math

    from runtime import npkernels

    monkeypatch.setattr(npkernels, "_erf_vector", None)
    x = np.array([-2.0, -0.3, 0.0, 0.7, 3.0])
    assert npkernels.erf(x).tolist() == [math.erf(v) for v in x]
    assert npkernels.erf(np.array(0.5)) == math.erf(0.5)  # 0-d stays an array
    assert npkernels.erf(x.astype(np.float32)).dtype == np.float32


def test_sympy_max_and_min_in_a_body_split_ties_as_pytorch():
    clip01 = F.elementwise("clip01_test", lambda a: sympy.Min(sympy.Max(a, 0), 1))
    w = Param("w", (4,))
    prog = compile(Model([], loss=F.sum(clip01(w) * w)), dtype="float64")
    values = np.array([-1.0, 0.0, 0.5, 1.0])
    loss, grads = prog.loss_and_grad({"w": values}, {})
    t = torch.tensor(values, requires_grad=True)
    (torch.minimum(torch.maximum(t, torch.tensor(0.0)), torch.tensor(1.0)) * t).sum().backward()
    assert loss == 0.25 + 1.0 and grads["w"].tolist() == t.grad.tolist()


def test_an_unprintable_body_is_told_how_to_write_the_functions_it_may_use():
    with pytest.raises(GradcError, match=r"sympy\.exp.*compiler\.ops\.scalar\.Sigmoid"):
        F.elementwise("bad_floor", lambda a: sympy.floor(a))
