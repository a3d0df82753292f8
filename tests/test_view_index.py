"""Index arithmetic through views (compiler.view_index) against numpy: the index the
device code computes for every element of a view is the element numpy's reshape,
transpose and broadcast put there.  And the convolution it serves: on Triton, a matmul
that reads a convolution's windows computes them as it loads them (implicit GEMM)."""
import itertools
from pathlib import Path

import numpy as np
import pytest
import sympy

from compiler import Input, Param, ops as F
from compiler.view_index import Axis, operand_chain, operand_index, reshape_index, source_index

B = sympy.Symbol("B")

RESHAPES = [  # (source shape, view shape, the batch B's value): both ways round
    ((B * 64, 9), (B, 8, 8, 1, 3, 3), 2),
    ((6, 4), (2, 3, 2, 2), None),
    ((2, 3, 4), (3, 8), None),
    ((1, 12, 1), (3, 1, 4), None),
    ((B, 6), (B * 2, 3), 3),
    ((2, 28, 18), (2, 7, 2, 4, 3, 3), None),  # one group across every axis
]


def _values(index, names):
    """Evaluate each axis's device code for every combination of the loop variables."""
    return [eval(a.code, {}, names) for a in index]  # noqa: S307 (our own generated code)


@pytest.mark.parametrize("src,dst,b", RESHAPES + [(d, s, b) for s, d, b in RESHAPES])
def test_reshape_index_names_the_element_numpy_reshape_puts_there(src, dst, b):
    subs = {B: b} if b is not None else {}
    size = lambda shape: tuple(int(sympy.sympify(d).subs(subs)) for d in shape)  # noqa: E731
    s, d = size(src), size(dst)
    names = [f"a{i}" for i in range(len(s))]
    index = reshape_index([Axis(n, frozenset("m")) for n in names], src, dst)
    data = np.arange(np.prod(s)).reshape(s)
    view = data.reshape(d)
    for at in itertools.product(*map(range, s)):
        got = tuple(_values(index, dict(zip(names, at))))
        assert view[got] == data[at], (at, got)


def test_a_reshape_that_mixes_two_loop_variables_or_needs_an_unknown_size_is_refused():
    rows, cols = Axis("rm", frozenset("m")), Axis("ka", frozenset("k"))
    assert reshape_index([rows, cols], (4, 6), (2, 12)) is None  # 12 = half a row twice
    assert reshape_index([rows, cols], (B, 6), (B * 6,)) is None  # rows and columns mixed
    assert reshape_index([Axis("r", frozenset("m"))], (B * 6,), (6, B)) is None  # // B


def test_operands_of_a_grouped_convolution_index_the_image_as_numpy_does():
    """A grouped convolution's operand: the windows reshaped, transposed into (groups,
    rows, K); the index computed from (group, row, column) names the same window element."""
    x, w = Input("x", (2, 4, 7, 5)), Input("w", (6, 2, 3, 3))
    y = F.conv2d(x, w, stride=(1, 2), padding=(2, 1), dilation=2, groups=2)
    mm = next(n for n in _nodes(y) if n.op == "matmul")
    members = _nodes(mm)
    chain, under = operand_chain(mm, 0, members)
    assert under.op == "patches"
    index = operand_index(mm, 0, chain)
    windows = np.arange(np.prod(under.shape)).reshape(under.shape)
    operand = windows
    for v in reversed(chain):
        operand = (operand.reshape(v.shape) if v.op == "reshape"
                   else operand.transpose(v.attr("perm")))
    for z, r, c in itertools.product(*map(range, operand.shape)):
        got = tuple(_values(index, {"i_Z0": z, "rm": r, "ka": c}))
        assert windows[got] == operand[z, r, c]


def _nodes(root):
    seen, stack, out = set(), [root], []
    while stack:
        n = stack.pop()
        if id(n) in seen:
            continue
        seen.add(id(n))
        out.append(n)
        stack.extend(n.inputs)
    return out


def test_convolution_windows_are_computed_in_the_matmul_that_reads_them(monkeypatch):
    """In the digits ConvNet, no kernel stores a convolution's windows: the forward
    matmul and the weight gradient's compute them from the image (the Triton source says
    implicit GEMM), so the step moves fewer bytes than with the windows stored."""
    from compiler import compile, fusion
    from compiler.inspection import traffic
    from compiler.modelfile import load
    from compiler.ops.registry import OPS
    from compiler.pipeline import kernels_of, training_graph
    from compiler.shapes import symbol

    model = load(str(Path(__file__).resolve().parent.parent / "examples" / "cnn_digits.py"))["model"]
    graph = training_graph(model)
    kernels = kernels_of(model, graph)
    gathers = [k for k in kernels if any(OPS[m.op].by_index for m in k.members)]
    in_matmuls = [k for k in gathers if any(OPS[m.op].kind == "contraction" for m in k.members)]
    assert len(in_matmuls) == 4, [k.name for k in gathers]  # 2 convolutions x (forward, dW)
    for k in gathers:
        if k not in in_matmuls:  # windows read by something else: pooling, col2im
            assert all(OPS[m.op].kind != "contraction" for c in kernels for m in c.members
                       if any(i is k.root for i in m.inputs)), k.name
    source = compile(model, backend="triton").source
    assert source.count("(implicit GEMM)") == 4
    fused = traffic(model)[0]
    monkeypatch.setattr(fusion, "free_gathers", lambda kernels, outputs: kernels)
    stored = traffic(model)[0]
    assert fused.coeff(symbol("B")) < stored.coeff(symbol("B")), (fused, stored)


def test_numpy_copies_each_convolutions_windows_once_for_both_matmuls():
    """numpy has no implicit GEMM: there a reshape of the windows (im2col) is a copy, so
    it is a kernel of its own, stored, and read by both the forward matmul and the weight
    gradient's (not copied again in each)."""
    from compiler import compile
    from compiler.modelfile import load
    from compiler.ops.registry import OPS
    from compiler.pipeline import kernels_of, training_graph

    example = Path(__file__).resolve().parent.parent / "examples" / "cnn_digits.py"
    model = load(str(example))["model"]
    kernels = kernels_of(model, training_graph(model), "numpy")
    im2col = [k for k in kernels if OPS[k.root.op].view == "relabel"
              and OPS[k.root.inputs[0].op].by_index]
    assert len(im2col) == 2, [k.name for k in kernels]
    for k in im2col:
        readers = [c for c in kernels if any(i is k.root for i in c.inputs)]
        assert len(readers) == 2 and all(
            any(OPS[m.op].kind == "contraction" for m in c.members) for c in readers)
        assert not any(OPS[m.op].by_index for c in readers for m in c.members)
    assert compile(model).source.count("_rt.windows_reshape(") == 2


def test_only_windows_are_copied_offset_by_offset_on_numpy():
    """``windows_reshape`` copies one window offset at a time: right for a convolution's
    windows, 35x slower than a plain copy for a 1-D convolution's input gradient (an image
    whose last two axes are 1 x L), which ``reshape`` copies."""
    from compiler import Model, compile

    x = Param("x", (2, 4, 64))  # a parameter: its gradient is the convolution's col2im
    y = F.conv1d(x, Param("w", (3, 4, 5)), padding=2)
    source = compile(Model([], {"y": y}, F.sum(y * y))).source
    assert source.count("_rt.windows_reshape(") == 1  # the forward's im2col, stored once
    assert source.count("_rt.patches_adjoint(") == 1


def _nhwc_conv(x):  # images stored channels-last, convolved as NCHW: a transpose read in place
    return F.conv2d(F.transpose(x, (0, 3, 1, 2)), Param("w", (4, 3, 3, 2)), padding=1)


def _pool_of_view(x):  # windows of a transposed tensor, read by a max and its tie mask
    return F.max_pool2d(F.transpose(x, (0, 3, 1, 2)), 2)


def _conv_after_pool(x):  # the digits ConvNet's second convolution reads the pooled windows' max
    h = F.max_pool2d(F.relu(F.transpose(x, (0, 3, 1, 2))), 2, stride=1)
    return F.conv2d(h, Param("w", (4, 3, 2, 2)), stride=(2, 1))


@pytest.mark.parametrize("build", [_nhwc_conv, _pool_of_view, _conv_after_pool])
def test_gathers_read_views_of_buffers_by_index_on_both_backends(build):
    """A gather (windows, and a convolution's windows computed in its matmul) reads a
    view of a buffer through the view's index arithmetic, with no copy of the view:
    Triton's loss and gradients equal numpy's (float64), and no kernel is a lone view."""
    from compiler import Model, compile
    from compiler.ops.registry import OPS
    from compiler.pipeline import kernels_of, training_graph
    from oplib import rel_err

    x = Input("x", ("B", 7, 5, 3))
    y = build(x)
    model = Model([x], {"y": y}, F.sum(y * y))
    prog = compile(model, dtype="float64")
    rng = np.random.default_rng(5)
    params = {k: rng.normal(size=v.shape) for k, v in prog.init_params(0).items()}
    batch = {"x": rng.normal(size=(2, 7, 5, 3))}
    loss, grads = prog.loss_and_grad(params, batch)
    triton = compile(model, backend="triton", dtype="float64")
    t_loss, t_grads = triton.loss_and_grad(params, batch)
    assert rel_err(loss, t_loss) <= 1e-10
    for name, g in grads.items():
        assert rel_err(g, t_grads[name]) <= 1e-10, name
    graph = training_graph(model)
    outputs = list(graph.outputs.values())
    lone_views = [k.name for k in kernels_of(model, graph) if k.phase == "forward"
                  and all(OPS[m.op].view for m in k.members)
                  and not any(k.root is o for o in outputs)]
    assert not lone_views


def test_a_convolutions_activation_runs_in_its_matmuls_epilogue():
    """``relu`` of a convolution's NCHW output (a transpose of the matmul's rows) moves
    under the transpose, so it joins the matmul: the digits ConvNet's forward pass is
    one kernel per convolution (windows, matmul, bias, relu), and no kernel of its own
    computes the activation."""
    from compiler.modelfile import load
    from compiler.ops.registry import OPS
    from compiler.pipeline import kernels_of, training_graph

    relu = F.relu(Input("t", (2,))).op
    model = load(str(Path(__file__).resolve().parent.parent / "examples" / "cnn_digits.py"))["model"]
    forward = [k for k in kernels_of(model, training_graph(model)) if k.phase == "forward"]
    convs = [k for k in forward if any(OPS[m.op].by_index for m in k.members)
             and any(OPS[m.op].kind == "contraction" for m in k.members)]
    assert len(convs) == 2
    assert all(any(m.op == relu for m in k.members) for k in convs)
    assert [k for k in forward if any(m.op == relu for m in k.members)] == convs
    assert len(forward) == 8, [k.name for k in forward]  # with 2 pools and the dense layer


def _inf_pad(x):  # a padding value that must stay off the matmul tile's spare slots
    return F.pad(x, (1, 1), value=float("inf")) @ Input("W", (5, 2))


def _padded_gram(x):  # the same padded tensor as both operands, each computed by index
    p = F.pad(x, (1, 1), value=0.5)
    return F.transpose(p) @ p


def _exact_pad(x):  # a pad value float32 cannot hold, in a float64 kernel
    return F.pad(x, (1, 0), value=0.3) * 2.0


def _gram_of_computed(x):  # a computed buffer times its own transpose; the loss seeds a constant
    a = x * Param("s", (3,), init="ones")
    return F.transpose(a) @ a


@pytest.mark.parametrize("build", [_inf_pad, _padded_gram, _exact_pad, _gram_of_computed])
def test_padded_and_shared_operands_give_numpys_values_on_triton(build):
    """Found by a review: a padding value other than 0 in a computed matmul operand, a
    float64 padding value, and a matmul of a buffer with its own transpose."""
    from compiler import Model, compile

    x = Input("x", ("B", 3))
    y = build(x)
    inputs = [x] + ([Input("W", (5, 2))] if build is _inf_pad else [])
    model = Model(inputs, {"y": y}, F.sum(y))
    rng = np.random.default_rng(6)
    batch = {"x": rng.normal(size=(4, 3)), "W": np.ones((5, 2))}
    batch = {i.name: batch[i.name] for i in inputs}
    results = []
    for backend in ("numpy", "triton"):
        prog = compile(model, backend=backend, dtype="float64")
        results.append(prog.predict(prog.init_params(0), batch)["y"])
    np.testing.assert_allclose(results[1], results[0], rtol=1e-12, atol=0)
    if build is _inf_pad:
        assert np.all(results[1] == np.inf)
    if build is _exact_pad:
        assert np.all(results[1][:, 0] == 0.6)
