"""Property-based fuzzing: random graphs of primitives against finite differences.

Random DAGs over shapes that broadcast against (m, n): reverse-mode gradients must
equal central finite differences in float64, forward mode must equal reverse mode
(the jvp along v is the dot product of the gradient with v), and the Triton backend
(in its CPU interpreter) must compute what the numpy backend computes.  A modest number of
examples runs by default; ``pytest -m slow`` runs thousands.
"""
import importlib.util

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compiler import Input, Model, Param, compile, ops as F
from compiler.graph import toposort
from runtime.errors import GradcError

TRITON = importlib.util.find_spec("triton") is not None  # without it, the numpy checks still run

# Smooth ops only: finite differences cannot be trusted at kinks (relu, abs, max).
UNARY = {
    "tanh": F.tanh, "sin": F.sin, "cos": F.cos, "sigmoid": F.sigmoid, "softplus": F.softplus,
    "exp_tanh": lambda a: F.exp(F.tanh(a)), "log1p_sq": lambda a: F.log(1.0 + a * a),
    "sqrt1p_sq": lambda a: F.sqrt(1.0 + a * a), "square": lambda a: a ** 2, "neg": lambda a: -a,
    "scale": lambda a: 0.7 * a + 0.2, "stop": lambda a: F.stop_gradient(a) * 0.5 + a,
}
BINARY = {
    "add": F.add, "sub": F.sub, "mul": F.mul, "div": lambda a, b: a / (1.5 + F.sin(b)),
    "pow": lambda a, b: (1.2 + F.sigmoid(a)) ** F.tanh(b),
    # a @ (b.T @ b), of a's shape, where the shapes allow (weight-gradient-like products
    # over rows, and column sums beside them), else a product
    "matmul": lambda a, b: (F.matmul(a, F.matmul(F.transpose(b), b)) if a.ndim == b.ndim == 2
                            and a.shape[1] == b.shape[1] else a * b),
}


def reduce_ops(m, n):
    return {
        "sum0": lambda a: F.sum(a, axis=0, keepdims=True) if a.ndim == 2 else a,
        "mean_last": lambda a: F.mean(a, axis=-1, keepdims=True) if a.ndim else a,
        "lse": lambda a: F.logsumexp(a, axis=-1, keepdims=True) if a.ndim else a,
        "softmax": lambda a: F.softmax(a) if a.ndim else a,
        # softmax cross-entropy of the rows against labels k (one input, of m rows)
        "xent": lambda a: F.cross_entropy(a, Input("k", (m,), dtype="int64"))
        if a.ndim == 2 and a.shape[0] == m else a,
    }


def view_ops(m, n):
    """Shape ops between the others, so that kernels read their operands through views:
    broadcasts (also straight into a matmul), reversed slices, a transposed and a
    flattened intermediate, a concatenation sliced back to the operand's shape, a batched
    matmul over a broadcast batch; and row-wise kernels (a layer norm, a variance)."""
    def bcast_matmul(a):
        b = F.broadcast_to(a, (m, n))
        return (b @ F.transpose(b)) @ b  # (m, m) @ (m, n): a matmul reading broadcasts

    def concat_slice(a):
        width = a.shape[-1]
        return F.concat([a, 2.0 * a], axis=-1)[..., width // 2: width // 2 + width]

    def batched(a):  # (2, m, n) @ (2, n, m) with a broadcast batch, summed over it: (m, m)
        b = F.broadcast_to(F.reshape(F.broadcast_to(a, (m, n)), (1, m, n)), (2, m, n))
        t = F.stack([F.transpose(F.broadcast_to(a, (m, n))), F.cos(F.transpose(F.broadcast_to(a, (m, n))))])
        return F.sum(b @ t, axis=0) @ F.broadcast_to(a, (m, n))

    def layer_norm(a):  # a row-wise kernel of two reductions
        centred = a - F.mean(a, axis=-1, keepdims=True)
        return centred / F.sqrt(F.mean(centred * centred, axis=-1, keepdims=True) + 0.5)

    return {
        "broadcast": lambda a: F.broadcast_to(a, (m, n)),
        "flip_rows": lambda a: a[::-1] if a.ndim == 2 else a,
        "flip_last": lambda a: a[..., ::-1] if a.ndim else a,
        "transposed": lambda a: F.transpose(F.tanh(F.transpose(a))) if a.ndim == 2 else a,
        "flattened": lambda a: F.reshape(F.sin(F.reshape(a, (-1,))), a.shape) if a.ndim else a,
        "concat_slice": lambda a: concat_slice(a) if a.ndim else a,
        "bcast_matmul": bcast_matmul,
        "batched": batched,
        "layer_norm": lambda a: layer_norm(a) if a.ndim else a,
        "var_rows": lambda a: F.var(a, axis=-1, keepdims=True) if a.ndim and a.shape[-1] > 1 else a,
    }


@st.composite
def graphs(draw):
    m, n = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    shapes = [(), (n,), (1, n), (m, 1), (m, n)]
    leaves = draw(st.lists(st.sampled_from(shapes), min_size=1, max_size=3))
    steps = draw(st.lists(st.tuples(st.sampled_from(["unary", "binary", "reduce", "view"]),
                                    st.integers(0, 99), st.integers(0, 99), st.integers(0, 99)),
                          min_size=1, max_size=8))
    seed = draw(st.integers(0, 2**16))
    return m, n, leaves, steps, seed


def build(m, n, leaves, steps):
    params = [Param(f"p{i}", shape) for i, shape in enumerate(leaves)]
    pool = list(params)
    reductions, views = reduce_ops(m, n), view_ops(m, n)
    for kind, a, b, c in steps:
        x, y = pool[a % len(pool)], pool[b % len(pool)]
        if kind == "unary":
            pool.append(list(UNARY.values())[c % len(UNARY)](x))
        elif kind == "binary":
            pool.append(list(BINARY.values())[c % len(BINARY)](x, y))
        elif kind == "view":
            pool.append(list(views.values())[c % len(views)](x))
        else:
            pool.append(list(reductions.values())[c % len(reductions)](x))
    out = pool[-1]
    r = Input("r", out.shape, dtype="float64")
    loss = F.sum(out * r) + 0.01 * F.sum(pool[0] ** 2)
    labels = [n for n in toposort([loss]) if n.op == "input" and n.name == "k"]
    return Model([r] + labels[:1], {"out": out}, loss)


def check(case):
    m, n, leaves, steps, seed = case
    model = build(m, n, leaves, steps)
    prog = compile(model, dtype="float64")
    rng = np.random.default_rng(seed)
    params = {p.name: rng.normal(size=p.shape) for p in model.params}
    out_shape = tuple(int(d) for d in model.outputs["out"].shape)
    batch = {"r": rng.normal(size=out_shape)}
    for x in model.inputs:
        if x.name == "k":  # labels; one row ignore_index (-100), picking no class, when
            classes = prog.class_inputs["k"][0]  # others count
            labels = rng.integers(0, classes, size=tuple(int(d) for d in x.shape))
            if labels.size > 1:
                labels.flat[rng.integers(labels.size)] = -100
            batch["k"] = labels
    loss, grads = prog.loss_and_grad(params, batch)
    h = 1e-6
    for name, value in params.items():
        flat = value.reshape(-1)
        for j in range(flat.size):
            old = flat[j]
            flat[j] = old + h
            up = prog.loss(params, batch)
            flat[j] = old - h
            down = prog.loss(params, batch)
            flat[j] = old
            fd = (up - down) / (2 * h)
            g = grads[name].reshape(-1)[j]
            # stop_gradient makes reverse mode differ from finite differences by design
            if not any(s[0] == "unary" and list(UNARY)[s[3] % len(UNARY)] == "stop" for s in steps):
                assert abs(g - fd) <= 1e-5 * max(1.0, abs(fd)), (name, j, g, fd)
    vector = {k: rng.normal(size=np.shape(v)) for k, v in params.items()}
    _, directional = prog.jvp(params, batch, vector)
    dot = sum(float(np.sum(grads[k] * vector[k])) for k in params)
    assert abs(directional - dot) <= 1e-9 * max(1.0, abs(dot))
    if TRITON:  # the Triton backend, in its CPU interpreter, computes the same
        t_loss, t_grads = compile(model, backend="triton", dtype="float64").loss_and_grad(params, batch)
        assert abs(t_loss - loss) <= 1e-9 * max(1.0, abs(loss))
        for k in grads:
            scale = max(1.0, float(np.max(np.abs(grads[k]), initial=0.0)))
            assert float(np.max(np.abs(t_grads[k] - grads[k]), initial=0.0)) <= 1e-9 * scale, k


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graphs())
def test_random_graphs_against_finite_differences(case):
    check(case)


@pytest.mark.slow
@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graphs())
def test_random_graphs_against_finite_differences_thoroughly(case):
    check(case)


def test_regression_reduction_of_an_expression_sympy_cancels_to_a_constant():
    """Found by the fuzzer: sympy folded an elementwise kernel body to the constant 0
    (``-(a - a)``), and the fused ``sum(axis=0)`` then reduced a 0-d array.  The body is
    now broadcast back to its node's shape first."""
    check((1, 1, [(), (), (1, 1)],
           [("unary", 0, 0, 0), ("unary", 0, 0, 0), ("binary", 72, 97, 1), ("unary", 0, 0, 0),
            ("unary", 0, 0, 0), ("unary", 0, 0, 0), ("unary", 14, 0, 9), ("reduce", 9, 0, 0)], 0))
    a = Param("a", (2, 3))
    model = Model([], loss=F.sum(F.sum(-(a - a), axis=0)) + F.sum(a ** 2))
    prog = compile(model, dtype="float64")
    loss, grads = prog.loss_and_grad({"a": np.ones((2, 3))}, {})
    assert loss == 6.0 and grads["a"].tolist() == [[2.0] * 3] * 2


def test_regression_cross_entropy_of_a_row_whose_label_is_not_a_class():
    """Found by the fuzzer: for a row whose label is outside [0, C) the fused loss kernels
    disagreed with each other and with the gradient (one_hot gives such a row no class).
    Such labels are now refused with the data, as PyTorch refuses them; the generated
    kernels, called directly, still agree with the composite definition on such rows (the
    row adds nothing and gets no gradient), and ignored rows pass ``check`` on both
    backends."""
    check((1, 1, [(1, 1)], [("reduce", 0, 0, 24)], 0))
    z, k = Param("z", (4, 3)), Input("k", (4,), dtype="int64")
    fused = compile(Model([k], loss=F.cross_entropy(z, k)), dtype="float64")
    composite = compile(Model([k], loss=-F.mean(F.sum(F.one_hot(k, 3) * F.log_softmax(z, 1), axis=1))),
                        dtype="float64")
    params, batch = {"z": np.arange(12.0).reshape(4, 3) * 0.7}, {"k": np.array([0, -1, 3, 2])}
    with pytest.raises(GradcError, match="holds class -1; the model has 3 classes"):
        fused.loss(params, batch)
    a, b = fused.module, composite.module  # the kernels themselves, without the data check
    assert abs(a.loss(params, batch) - b.loss(params, batch)) <= 1e-12
    np.testing.assert_allclose(a.loss_and_grad(params, batch)[1]["z"],
                               b.loss_and_grad(params, batch)[1]["z"], atol=1e-12)


def test_regression_a_number_in_a_row_kernel_keeps_the_kernels_float_type():
    """Found by the fuzzer: ``logsumexp(p - p)`` (sympy folds ``p - p`` to 0) made a row
    kernel's temporary the bare literal ``0.0``, a float32 in Triton, so a float64 kernel
    computed ``log(2)`` in float32 (2.7e-9 off numpy)."""
    check((1, 2, [(2,)], [("binary", 0, 0, 1), ("reduce", 1, 0, 82)], 0))


def test_regression_an_elementwise_kernel_that_is_a_number_keeps_its_float_type():
    """Found by the fuzzer once Triton recomputed values: ``tanh(softplus(p - p))`` folds to
    a number, which an elementwise kernel filled in as float32 (``tanh(1.0)`` of a float32
    literal), 5e-9 off numpy in float64, and a power of such a number failed to print;
    ``stop_gradient`` of a sum, scaled, printed without
    its parentheses; a value read after a reduction was recomputed where only reduced
    values exist."""
    check((1, 1, [()], [("binary", 0, 0, 1), ("unary", 1, 0, 26), ("unary", 2, 0, 0)], 0))
    check((1, 1, [()], [("unary", 0, 0, 0), ("unary", 0, 0, 58), ("unary", 0, 0, 0),
                        ("unary", 0, 0, 0), ("unary", 92, 0, 11)], 0))
    check((1, 1, [(1,)], [("unary", 0, 0, 0), ("reduce", 1, 0, 53)], 0))
    check((1, 1, [(), ()], [("unary", 0, 0, 0), ("unary", 0, 0, 0), ("binary", 0, 0, 1),
                            ("binary", 4, 0, 52)], 0))  # (1.2 + sigmoid(0)) ** x: no float()
    check((1, 2, [(), (2,)], [("unary", 1, 0, 0), ("unary", 0, 0, 0), ("binary", 2, 2, 1),
                              ("unary", 4, 0, 51)], 0))  # the same in a row-wise kernel


def test_regression_a_broadcast_read_by_a_matmul():
    """Found by the fuzzer: a matmul kernel read a broadcast operand as the smaller buffer
    under it (``mean(p @ (p.T @ p))``: wrong gradients; and a crash where the epilogue's
    shape came from that operand)."""
    check((1, 2, [(1, 2)], [("unary", 0, 0, 0), ("binary", 0, 0, 41), ("reduce", 2, 0, 1)], 0))
    check((3, 3, [(3, 3)], [("unary", 87, 0, 95), ("binary", 23, 18, 41), ("unary", 94, 80, 82),
                            ("unary", 87, 0, 95), ("unary", 89, 60, 33), ("unary", 87, 0, 94),
                            ("unary", 75, 18, 31), ("reduce", 82, 32, 0)], 0))


def test_regression_a_view_read_before_and_after_a_reduction():
    """Found by the fuzzer once it drew shape ops: a Triton kernel reading a transposed
    buffer both in its reduction loop and in the epilogue after it crashed (KeyError) in
    code generation; the epilogue now reads views of buffers as the loop does.  And a
    stored reshape of a broadcast (below)."""
    check((2, 1, [(1, 1), (2, 1)], [("view", 0, 0, 3), ("view", 38, 0, 3), ("binary", 1, 3, 94)], 0))
    # a Triton kernel storing a broadcast and a reshape of it read the reshape as an
    # operand of another rank than its iteration space (expand failed)
    check((1, 2, [()], [("unary", 0, 0, 0), ("view", 1, 0, 7)], 0))
