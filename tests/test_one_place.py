"""One op, one place: code outside ``compiler/ops`` reads an op's registry entry (its
fields, or a predicate of ``compiler/ops``) and never branches on the op's name."""
import ast
import pathlib

import pytest

from compiler import Input, Model, nn, ops as F
from compiler.ops.registry import OPS, OpDef, missing_rules

ROOT = pathlib.Path(__file__).resolve().parents[1]



def _docstrings(tree):
    """The string constants that are docstrings (of the module, classes and functions)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            first = node.body[0] if node.body else None
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) \
                    and isinstance(first.value.value, str):
                found.add(id(first.value))
    return found


def _op_names_outside_ops():
    """``(file, line, string)`` for each string literal equal to a built-in op's name in
    ``compiler/**`` and ``runtime/**`` outside ``compiler/ops``, docstrings left out."""
    names = {name for name, op in OPS.items() if not op.user_defined}
    paths = sorted(ROOT.glob("compiler/**/*.py")) + sorted(ROOT.glob("runtime/**/*.py"))
    for path in paths:
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith("compiler/ops/"):
            continue
        tree = ast.parse(path.read_text(), filename=rel)
        docs = _docstrings(tree)
        for node in ast.walk(tree):
            if (isinstance(node, ast.Constant) and isinstance(node.value, str)
                    and node.value in names and id(node) not in docs):
                yield rel, node.lineno, node.value


def test_no_module_outside_ops_names_an_op():
    found = [f"{rel}:{line}: {value!r}" for rel, line, value in _op_names_outside_ops()]
    assert not found, ("op names outside compiler/ops (read a field of the op's OpDef or a "
                       "predicate of compiler/ops instead):\n" + "\n".join(found))


def test_missing_rules_asks_a_reduction_for_its_scalarization_and_triton_code():
    probe = OpDef("_probe_reduce", "reduce", shape=lambda i, a: (), dtype=lambda i, a: "float",
                  vjp=lambda n, g: [g], jvp=lambda n, t: t[0], numpy=lambda n, a: a[0], flops=0)
    OPS[probe.name] = probe
    try:
        missing = missing_rules()
    finally:
        del OPS[probe.name]
    assert f"{probe.name}: scalarize" in missing
    assert f"{probe.name}: triton_passes and triton_row" in missing


@pytest.mark.parametrize("act", ["gelu_tanh", "softsign", "tanh", "heaviside"])
def test_any_elementwise_op_of_one_tensor_is_an_activation(act):
    x = Input("x", ("B", 3))
    out = nn.Dense(3, 2, act=act, name="d")(x)
    assert out.op == act
    Model([x], loss=F.sum(out))


def test_gelu_is_an_activation_made_of_two_ops():
    x = Input("x", ("B", 3))
    out = nn.Dense(3, 2, act="gelu", name="d")(x)
    assert out.op == "mul" and out.inputs[1].op == "ndtr" and out.inputs[1].inputs[0] is out.inputs[0]


def test_an_activation_must_be_an_elementwise_op_of_one_tensor():
    for act in ("swish", "add", "sum"):
        with pytest.raises(Exception, match=f"unknown activation '{act}'"):
            nn.Dense(3, 2, act=act)
