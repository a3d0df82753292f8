"""The graph IR: hash-consing, shapes, locations, toposort, validator, printer."""
import sys

import pytest
import sympy

from compiler import Graph, Input, Model, Param, nn, ops as F
from compiler.graph import toposort
from compiler.shapes import broadcast_shapes, symbol
from runtime.errors import GradcError

HERE = __file__


def test_nodes_are_hash_consed():
    x = Input("x", ("B", 3))
    assert F.tanh(x) is F.tanh(x)
    assert x + 1 is x + 1.0
    assert Input("x", ("B", 3)) is x
    assert F.tanh(x) is not F.sin(x)


def test_string_dimensions_become_symbols_and_broadcast():
    x = Input("x", ("B", 1))
    y = x * Param("w", (4,))
    assert y.shape == (symbol("B"), 4)
    assert isinstance(y.shape[0], sympy.Symbol)
    assert broadcast_shapes((3, 1), (symbol("B"), 1, 4)) == (symbol("B"), 3, 4)


def test_shape_error_names_both_shapes_and_the_users_line():
    x, w = Input("x", ("B", 3)), Param("w", (4,))
    line = sys._getframe().f_lineno + 2
    with pytest.raises(GradcError) as e:
        x + w
    msg = str(e.value)
    assert "(B, 3)" in msg and "(4,)" in msg
    assert e.value.where == f"{HERE}:{line}"


def test_matmul_shape_error():
    with pytest.raises(GradcError, match=r"\(B, 3\) @ \(4, 2\)"):
        Input("x", ("B", 3)) @ Param("w", (4, 2))


@pytest.mark.parametrize("build,message", [
    (lambda: F.tanh(Input("k", ("B",), dtype="int64")), "wrong dtype"),
    (lambda: F.sum(Input("x", (2, 3)), axis=2), "out of range"),
    (lambda: Input("x", (2, 3), dtype="complex64"), "unknown dtype"),
    (lambda: Param("w", ("B", 3)), "concrete shape"),
    (lambda: Param("w", (3,), init="orthogonal"), "unknown init"),
    (lambda: nn.Dense(3, 4, act="swish"), "unknown activation"),
    (lambda: F.reshape(Input("x", (2, 3)), (4, 2)), "cannot reshape"),
    (lambda: F.broadcast_to(Input("x", (2, 3)), (3, 3)), "cannot broadcast"),
    (lambda: F.tanh("seven"), "cannot use str"),
    (lambda: F.where(Input("x", (2,)), 1.0, 0.0), "boolean condition"),
])
def test_bad_graphs_raise_one_line_errors(build, message):
    with pytest.raises(GradcError, match=message) as e:
        build()
    assert "\n" not in str(e.value)


def test_model_checks():
    x, y = Input("x", ("B", 1)), Input("y", ("B", 1))
    with pytest.raises(GradcError, match="not listed"):
        Model([x], loss=F.mse(x, y))
    with pytest.raises(GradcError, match="scalar"):
        Model([x], loss=x * 2)
    with pytest.raises(GradcError, match="used twice"):
        Model([x], loss=F.sum(x * Param("w", (1,))) + F.sum(x * Param("w", (1, 1))))


def test_dense_layers_get_stable_names():
    net = nn.Chain(nn.Dense(2, 3, act="relu"), nn.Dense(3, 1), name="enc")
    net(Input("x", ("B", 2)))
    assert [p.name for p in net.params()] == ["enc.dense0.W", "enc.dense0.b",
                                               "enc.dense1.W", "enc.dense1.b"]
    assert nn.Sequential is nn.Chain


def test_toposort_and_printer_on_a_10000_node_chain():
    x = Input("x", (3,))
    h = x
    for i in range(10_000):
        h = F.sin(h) if i % 2 else h * 1.5
    nodes = toposort([h])
    assert nodes[0] is x and nodes[-1] is h
    assert len([n for n in nodes if n.op in ("sin", "mul")]) == 10_000
    text = Graph({"h": h}).validate().format(locations=False)
    assert text.count("\n") == len(nodes) - 1


def test_printer_is_readable():
    x = Input("x", ("B", 2))
    w = Param("w", (2, 1))
    text = Graph({"loss": F.mean(F.tanh(x @ w))}).format()
    lines = text.splitlines()
    assert lines[0].startswith("%0 = input x : (B, 2) float32")
    assert lines[1].startswith("%1 = param w : (2, 1) init=xavier")
    assert lines[2].startswith("%2 = matmul(%0, %1) : (B, 1)")
    assert "test_graph.py" in lines[2]
    assert "-> loss" in lines[-1]


def test_node_has_no_truth_value():
    with pytest.raises(GradcError, match="truth value"):
        bool(Input("x", (2,)) > 0)
