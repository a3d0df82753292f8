"""Indexing, gathers and the layers built on them, beyond the op table: every shape of the
table's indexing rows on Triton, symbolic sizes on both backends, nn.Embedding and
nn.LayerNorm against PyTorch's modules, and bad indices."""
import importlib.util
import re
import sys
import textwrap

import numpy as np
import pytest
import torch

from compiler import Input, Model, Param, compile, nn, ops as F
from oplib import ROWS, build, rel_err
from runner import gradc
from runtime.errors import GradcError

NEW_ROWS = ("getitem", "take", "concat", "stack", "split", "tril", "triu", "argmax",
            "min_ties", "var", "std", "layer_norm", "softmax_axis0", "log_softmax_axis1")
LATER_SHAPES = [(row, shapes) for row in ROWS if row.name.startswith(NEW_ROWS)
                for shapes in row.shapes[1:]]  # test_triton.py runs each row's first shapes


needs_triton = pytest.mark.skipif(importlib.util.find_spec("triton") is None,
                                  reason="triton is not installed")


@needs_triton
@pytest.mark.parametrize("row,shapes", LATER_SHAPES,
                         ids=[f"{r.name}-{'x'.join(map(str, s))}" for r, s in LATER_SHAPES])
def test_row_shapes_on_triton_match_numpy(row, shapes):
    from test_triton import prog_model

    prog, params, batch, _ = build(row, shapes)
    tprog = compile(prog_model(row, shapes), backend="triton", dtype="float64")
    assert rel_err(prog.predict(params, batch)["out"], tprog.predict(params, batch)["out"]) <= 1e-12
    _, grads = prog.loss_and_grad(params, batch)
    _, t_grads = tprog.loss_and_grad(params, batch)
    for k in grads:
        assert rel_err(grads[k], t_grads[k]) <= 1e-10, k


def _backends():
    return ["numpy", pytest.param("triton", marks=needs_triton)]


@pytest.mark.parametrize("backend", _backends())
def test_symbolic_sizes(backend):
    """Slices, integers, reversal, concat and gathers along an axis whose size is ``B``."""
    x, k = Param("x", (6, 3)), Input("k", ("B",), dtype="int64")
    rows = F.take(x, k, axis=0)                                   # (B, 3)
    parts = [rows[1:], rows[:-1] * 2.0, rows[::-1], rows[-1:], rows[-1][None]]
    joined = F.concat(parts + [F.concat([rows, rows], axis=0)[1:-1]], axis=0)
    out = F.take_along_axis(joined, F.argmax(joined, axis=1, keepdims=True), axis=1)
    r = Input("r", out.shape, dtype="float64")
    model = Model([k, r], {"out": out}, F.sum(out * r))
    prog = compile(model, backend=backend, dtype="float64")
    rng = np.random.default_rng(0)
    params = {"x": rng.normal(size=(6, 3))}
    for n in (1, 4):
        batch = {"k": rng.integers(0, 6, size=n)}
        xt = torch.tensor(params["x"], requires_grad=True)
        rt = xt[torch.tensor(batch["k"])]
        pieces = [rt[1:], rt[:-1] * 2.0, rt.flip(0), rt[-1:], rt[-1][None]]
        jt = torch.cat(pieces + [torch.cat([rt, rt])[1:-1]])
        ot = torch.take_along_dim(jt, jt.argmax(1, keepdim=True), 1)
        batch["r"] = rng.normal(size=tuple(ot.shape))
        (ot * torch.tensor(batch["r"])).sum().backward()
        assert rel_err(prog.predict(params, batch)["out"], ot.detach().numpy()) <= 1e-12
        _, grads = prog.loss_and_grad(params, batch)
        assert rel_err(grads["x"], xt.grad.numpy()) <= 1e-10


@pytest.mark.parametrize("backend", _backends())
def test_embedding_and_layer_norm_equal_torch_modules(backend):
    rng = np.random.default_rng(3)
    k = Input("k", ("B", 5), dtype="int64")
    emb, norm = nn.Embedding(7, 4), nn.LayerNorm(4)
    out = norm(emb(k) * 3.0 + 1.0)
    r = Input("r", out.shape, dtype="float64")
    model = Model([k, r], {"out": out}, F.sum(out * r))
    prog = compile(model, backend=backend, dtype="float64")
    assert [p.name for p in model.params] == ["embedding0.weight", "layernorm0.weight",
                                              "layernorm0.bias"]
    params = prog.init_params(seed=0)
    assert np.all(params["layernorm0.weight"] == 1) and np.all(params["layernorm0.bias"] == 0)
    params = {"embedding0.weight": rng.normal(size=(7, 4)),
              "layernorm0.weight": rng.normal(size=4), "layernorm0.bias": rng.normal(size=4)}
    batch = {"k": rng.integers(0, 7, size=(3, 5)), "r": rng.normal(size=(3, 5, 4))}

    t_emb, t_norm = torch.nn.Embedding(7, 4).double(), torch.nn.LayerNorm(4).double()
    with torch.no_grad():
        t_emb.weight.copy_(torch.tensor(params["embedding0.weight"]))
        t_norm.weight.copy_(torch.tensor(params["layernorm0.weight"]))
        t_norm.bias.copy_(torch.tensor(params["layernorm0.bias"]))
    t_out = t_norm(t_emb(torch.tensor(batch["k"])) * 3.0 + 1.0)
    (t_out * torch.tensor(batch["r"])).sum().backward()

    assert rel_err(prog.predict(params, batch)["out"], t_out.detach().numpy()) <= 1e-10
    _, grads = prog.loss_and_grad(params, batch)
    for name, t in (("embedding0.weight", t_emb.weight), ("layernorm0.weight", t_norm.weight),
                    ("layernorm0.bias", t_norm.bias)):
        assert rel_err(grads[name], t.grad.numpy()) <= 1e-10, name


def test_embedding_starts_standard_normal_as_torch():
    k = Input("k", ("B",), dtype="int64")
    model = Model([k], loss=F.sum(nn.Embedding(500, 40, name="tok")(k)))
    weight = compile(model).init_params(seed=0)["tok.weight"]
    assert abs(weight.mean()) < 0.02 and abs(weight.std() - 1.0) < 0.02


def test_an_index_out_of_range_is_an_error_at_the_users_line():
    x = Input("x", ("B", 3))
    with pytest.raises(GradcError) as e:
        x[:, 3]
    assert "index 3 is out of range for axis 1 of size 3" in e.value.message
    assert e.value.where == f"{__file__}:{sys._getframe().f_lineno - 2}"
    for bad, message in ((lambda: x[0, 0, 0], "too many indices"),
                         (lambda: x[:, -4], "index -4 is out of range"),
                         (lambda: x[..., ...], "at most one ..."),
                         (lambda: x[::2], "needs a known size"),
                         (lambda: x[[0, 1]], "use F.take"),
                         (lambda: F.take(x, x), "integer index tensor")):
        with pytest.raises(GradcError, match=message):
            bad()


@pytest.mark.parametrize("backend", _backends())
def test_index_data_outside_the_axis_is_refused_on_both_backends(backend):
    """Data holding an index outside the axis it indexes is a data error on both backends
    (Triton read zeros for it and dropped its gradient, silently); negative indices count
    from the end, as in numpy, and give the same values on both."""
    from runtime.errors import DataError

    ids, col = Input("ids", ("B",), dtype="int64"), Input("col", ("B", 1), dtype="int64")
    table = nn.Embedding(5, 3, name="E")
    picked = F.take_along_axis(table(ids), col, axis=1)
    prog = compile(Model([ids, col], loss=F.sum(picked ** 2)), backend=backend, dtype="float64")
    params = {"E.weight": np.arange(15.0).reshape(5, 3)}
    for bad, message in ((([1, 7], [[0], [2]]), "input 'ids' holds index 7, outside an axis of 5 elements (-5 to 4)"),
                         (([1, -6], [[0], [2]]), "input 'ids' holds index -6"),
                         (([1, 2], [[0], [3]]), "input 'col' holds index 3, outside an axis of 3 elements")):
        with pytest.raises(DataError, match=re.escape(message)):
            prog.loss_and_grad(params, {"ids": np.array(bad[0]), "col": np.array(bad[1])})
    loss, grads = prog.loss_and_grad(params, {"ids": np.array([-1, 0]), "col": np.array([[-1], [1]])})
    assert loss == 14.0 ** 2 + 1.0 ** 2
    assert grads["E.weight"][4, 2] == 28.0 and grads["E.weight"][0, 1] == 2.0


def test_bad_index_in_a_model_file_is_one_line_and_exit_2(tmp_path):
    model = tmp_path / "model.py"
    model.write_text(textwrap.dedent("""\
        from compiler import Input, Model, ops as F
        x = Input("x", ("B", 3))
        model = Model([x], loss=F.sum(x[:, 5]))
    """))
    out = gradc("compile", model, "--out", tmp_path / "out", cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "model.py:3: index 5 is out of range for axis 1 of size 3" in lines[0]


def _small_model():
    """Tokens -> Embedding -> LayerNorm -> gelu (tanh) -> last position, min over a split."""
    k = Input("k", ("B", 4), dtype="int64")
    h = F.gelu(nn.LayerNorm(3, name="ln")(nn.Embedding(5, 3, name="tok")(k)), approximate="tanh")
    first, rest = F.split(h[:, ::-1], [1, 3], axis=1)
    out = F.std(first[:, 0], axis=-1) + F.min(F.tril(rest), axis=(1, 2))
    return k, out


def _small_torch(p, k):
    e = torch.nn.functional.embedding(k, p["tok.weight"])
    h = torch.nn.functional.gelu(torch.nn.functional.layer_norm(
        e, (3,), p["ln.weight"], p["ln.bias"]), approximate="tanh")
    first, rest = torch.split(h.flip(1), [1, 3], dim=1)
    return first[:, 0].std(-1) + torch.amin(torch.tril(rest), (1, 2))


@pytest.mark.parametrize("backend", ["numpy", pytest.param("triton", marks=needs_triton)])
def test_jvp_and_hvp_match_torch_func(backend):
    k, out = _small_model()
    model = Model([k], {"out": out}, F.sum(out ** 2))
    prog = compile(model, backend=backend, dtype="float64")
    rng = np.random.default_rng(4)
    params = {name: v + 0.3 * rng.normal(size=v.shape) for name, v in prog.init_params(0).items()}
    vector = {name: rng.normal(size=v.shape) for name, v in params.items()}
    batch = {"k": rng.integers(0, 5, size=(3, 4))}
    names = list(params)

    def f(*ps):
        return (_small_torch(dict(zip(names, ps)), torch.tensor(batch["k"])) ** 2).sum()

    ps = tuple(torch.tensor(params[n]) for n in names)
    vs = tuple(torch.tensor(vector[n]) for n in names)
    _, ref_jvp = torch.func.jvp(f, ps, vs)
    _, ref_hvp = torch.func.jvp(torch.func.grad(f, argnums=tuple(range(len(ps)))), ps, vs)
    assert rel_err(prog.jvp(params, batch, vector)[1], ref_jvp.item()) <= 1e-9
    hv = prog.hvp(params, batch, vector)
    for name, ref in zip(names, ref_hvp):
        assert rel_err(hv[name], ref.numpy()) <= 1e-8, name


def test_grad_of_grad_matches_torch():
    from compiler.autodiff import grad

    k, out = _small_model()
    loss = F.sum(out ** 2)
    model = Model([k], loss=loss)
    w = next(p for p in model.params if p.name == "tok.weight")
    (g,) = grad(model.loss, [w])
    v = Input("v", w.shape, dtype="float64")
    (gg,) = grad(F.sum(g * v), [w])
    prog = compile(Model([k, v], {"gg": gg}, model.loss), dtype="float64")
    rng = np.random.default_rng(8)
    params = {name: v0 + 0.3 * rng.normal(size=v0.shape)
              for name, v0 in prog.init_params(0).items()}
    batch = {"k": rng.integers(0, 5, size=(3, 4)), "v": rng.normal(size=(5, 3))}
    tp = {name: torch.tensor(a, requires_grad=True) for name, a in params.items()}
    t_loss = (_small_torch(tp, torch.tensor(batch["k"])) ** 2).sum()
    (tg,) = torch.autograd.grad(t_loss, tp["tok.weight"], create_graph=True)
    (tgg,) = torch.autograd.grad((tg * torch.tensor(batch["v"])).sum(), tp["tok.weight"])
    assert rel_err(prog.predict(params, batch)["gg"], tgg.numpy()) <= 1e-10
