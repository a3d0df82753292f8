"""Reverse mode: derivative rules from sympy, gradients only where they are needed, depth."""
import numpy as np
import sympy

from compiler import Input, Model, Param, compile, ops as F
from compiler.autodiff import grad
from compiler.graph import toposort
from compiler.symbolic import partials


def test_elementwise_derivatives_come_from_sympy_and_reuse_the_output():
    y = sympy.Symbol("y", real=True)
    a = sympy.Symbol("a0", real=True)
    assert partials("tanh", 1, (), ())[2] == [1 - y ** 2]
    assert partials("sigmoid", 1, (), ())[2] == [y * (1 - y)]
    assert partials("exp", 1, (), ())[2] == [y]
    assert partials("sqrt", 1, (), ())[2] == [1 / (2 * y)]
    assert partials("log", 1, (), ())[2] == [1 / a]
    # a constant exponent is substituted before differentiating: d(x**2)/dx = 2x
    assert partials("pow", 2, (), ((1, sympy.Integer(2)),))[2] == [2 * a, None]
    # derivatives of steps are zero almost everywhere
    assert partials("sign", 1, (), ())[2] == [None]


def test_no_gradient_flows_into_data_inputs():
    x = Input("x", ("B", 784))
    w1, w2 = Param("w1", (784, 16)), Param("w2", (16, 10))
    loss = F.mean(F.relu(x @ w1) @ w2)
    (g1, g2) = grad(loss, [w1, w2])
    nodes = toposort([g1, g2])
    # the first layer's input gradient (d loss / d x = ... @ w1.T) is never built
    assert not any(n.op == "matmul" and n.shape == x.shape for n in nodes)


def test_stop_gradient_blocks_the_target():
    w = Param("w", ())
    (g,) = grad(F.stop_gradient(w * 3.0) * w, [w])
    prog = compile(Model([], loss=F.stop_gradient(w * 3.0) * w), dtype="float64")
    _, grads = prog.loss_and_grad({"w": np.array(2.0)}, {})
    assert grads["w"] == 6.0  # d/dw [c * w] with c = 3w held fixed


def test_unused_parameter_gets_a_zero_gradient():
    x = Input("x", (2,))
    w, unused = Param("w", (2,)), Param("unused", (3,))
    prog = compile(Model([x], {"u": unused * 1.0}, F.sum(x * w)), dtype="float64")
    params = {"w": np.ones(2), "unused": np.ones(3)}
    _, grads = prog.loss_and_grad(params, {"x": np.array([1.0, 2.0])})
    assert grads["unused"].tolist() == [0.0, 0.0, 0.0]
    assert grads["w"].tolist() == [1.0, 2.0]


def test_a_10000_node_chain_builds_differentiates_and_compiles():
    x = Input("x", ("B",))
    w = Param("w", ())
    h = x
    for i in range(7_000):
        h = F.tanh(h * w) if i % 2 else h + 0.001 * w
    model = Model([x], loss=F.mean(h ** 2))
    assert len(toposort([model.loss])) > 10_000
    prog = compile(model, dtype="float64")
    params = {"w": np.array(0.9)}
    batch = {"x": np.array([0.3, -0.2])}
    loss, grads = prog.loss_and_grad(params, batch)
    eps = 1e-6
    fd = (prog.loss({"w": np.array(0.9 + eps)}, batch)
          - prog.loss({"w": np.array(0.9 - eps)}, batch)) / (2 * eps)
    assert abs(grads["w"] - fd) <= 1e-6 * max(1.0, abs(fd))
