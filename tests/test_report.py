"""``gradc report``: the page of every example opens in headless Chromium without console
errors and links its panes both ways; it holds the numbers of ``gradc flops``, ``gradc
inspect`` and ``gradc trace`` and a run's history; it is the same bytes for the same model;
bad input is one line and exit status 2.

The oracles are the generated modules' own ``KERNELS`` tables and sources, ``inspect_model``,
the history file itself, and the course's published numbers.
"""
import ast
import html
import json
import re
import sys
import textwrap
import time
from pathlib import Path

import pytest
from browser import browser, click, errors, marked  # noqa: E402
from runner import gradc  # noqa: E402

from compiler import cli, modelfile
from compiler.inspection import inspect_model
from compiler.ops.leaf import is_const
from compiler.pipeline import kernels_of, module_path, training_graph
from compiler.report_graph import NODE_LIMIT, graph_pane
from runtime.loader import load_module
from runtime.program import kernel_source

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted(p for p in (ROOT / "examples").glob("*.py")
                  if re.search(r"^model\s*=", p.read_text(), re.M))
SEED = ROOT / "examples" / "seed_regression.py"

TINY = """\
    import numpy as np
    from compiler import Input, Model, nn, ops as F
    x, y = Input("x", ("B", 2)), Input("y", ("B", 1))
    net = nn.Chain(nn.Dense(2, 24, act="tanh"), nn.Dense(24, 24, act="tanh"), nn.Dense(24, 1))
    model = Model([x, y], {"y_hat": net(x)}, F.mse(net(x), y))
    training = {"batch_size": 8}
    def data(seed=0):
        rng = np.random.default_rng(seed)
        xs = rng.normal(size=(32, 2))
        return {"x": xs, "y": xs[:, :1] * xs[:, 1:]}
"""


def report(*args):
    """Run ``gradc report ARGS`` in this process; ``(status, stdout, stderr)``."""
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = cli.main(["report", *map(str, args)])
    return status, out.getvalue(), err.getvalue()


def module_rows(path):
    """The ``KERNELS`` table of the model's generated numpy module (read, not imported)."""
    model = modelfile.load(path)["model"]
    text = module_path(model, "training", "numpy", "float32").read_text()
    for node in ast.parse(text).body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "KERNELS":
            return ast.literal_eval(node.value)
    raise AssertionError("no KERNELS table")


def parse_nodes(row, model_file):
    """``[(index, line or None)]`` of a ``KERNELS`` row's nodes (``%5 tanh m.py:22``)."""
    out = []
    for text in row["nodes"]:
        index, _, where = text.split(" ", 2)
        file, _, line = where.rpartition(":")
        out.append((index[1:], line if file == Path(model_file).name else None))
    return out


@pytest.fixture(scope="module")
def driver():
    d, reason = browser()
    if d is None:
        pytest.skip(f"no headless Chromium: {reason}")
    yield d
    d.quit()


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """The tiny model trained 3 epochs with a checkpoint: ``(model file, history file)``."""
    folder = tmp_path_factory.mktemp("run")
    model = folder / "tiny.py"
    model.write_text(textwrap.dedent(TINY))
    out = gradc("train", model, "--epochs", "3", "--checkpoint", folder / "ckpt", "--quiet")
    assert out.returncode == 0, out.stderr
    return model, folder / "ckpt.history"


def test_every_example_model_is_found():
    assert len(EXAMPLES) >= 10 and SEED in EXAMPLES


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_the_report_of_every_example_links_its_panes_in_chromium(example, driver, tmp_path):
    page = tmp_path / "report.html"
    status, out, err = report(example, "-o", page)
    assert status == 0, err
    driver.get(page.as_uri())
    assert errors(driver) == []
    rows = [r for r in module_rows(example) if r["nodes"]]

    # a node: its kernel (from the module's KERNELS table) and its model-file line light up
    first = next((r, i, line) for r in rows for i, line in parse_nodes(r, example) if line)
    row, node, line = first
    click(driver, f'.gnode[data-node="{node}"]')
    assert [m["kernel"] for m in marked(driver, ".kcard", "hl")] == [row["name"]]
    assert [m["line"] for m in marked(driver, ".src-line", "sel")] == [line]
    assert [m["node"] for m in marked(driver, ".gnode", "sel")] == [node]
    code = driver.find_element("css selector", f'.kcode[data-kernel="{row["name"]}"]')
    assert code.is_displayed()

    # a kernel (the last of the step): exactly its nodes and their lines
    last = rows[-1]
    click(driver, f'.kcard[data-kernel="{last["name"]}"]')
    nodes = parse_nodes(last, example)
    assert sorted(m["node"] for m in marked(driver, ".gnode", "hl")) == sorted(i for i, _ in nodes)
    assert sorted(m["line"] for m in marked(driver, ".src-line", "hl")) == \
        sorted({line for _, line in nodes if line})

    # a model-file line: every kernel with a node built there
    lines = {line: [r["name"] for r in rows if any(l == line for _, l in parse_nodes(r, example))]
             for r in rows for _, line in parse_nodes(r, example) if line}
    line, kernels = max(lines.items(), key=lambda item: (len(item[1]), item[0]))
    click(driver, f'.src-line[data-line="{line}"]')
    assert sorted(m["kernel"] for m in marked(driver, ".kcard", "hl")) == sorted(kernels)

    assert errors(driver) == []
    shot = tmp_path / "report.png"
    driver.save_screenshot(str(shot))
    assert shot.stat().st_size > 20_000


def _pre_blocks(page, kernel):
    """The text of each source column of ``kernel``'s code block in ``page``."""
    start = page.index(f'<div class="kcode" data-kernel="{kernel}"')
    end = page.find('<div class="kcode"', start + 10)
    block = page[start:end if end > 0 else page.index("</section>", start)]
    return [html.unescape(re.sub(r"<[^>]+>", "", pre))
            for pre in re.findall(r'<pre class="code">(.*?)</pre>', block, re.S)]


def test_kernel_source_and_costs_are_the_modules(tmp_path):
    page = tmp_path / "seed.html"
    assert report(SEED, "-o", page, "--batch", "128", "--gpu", "h100")[0] == 0
    text = page.read_text()
    model = modelfile.load(SEED)["model"]
    module = load_module(module_path(model, "training", "numpy", "float32"))
    inspected = inspect_model(model, batch=128, gpu="h100")
    for k in inspected["kernels"]:
        numpy_code, triton_code = _pre_blocks(text, k["name"])
        assert numpy_code.rstrip("\n") == kernel_source(module, k["name"]).rstrip("\n")
        assert f"def {k['name']}(" in triton_code and "@triton.jit" in triton_code
        card = re.search(rf'data-kernel="{k["name"]}" data-lines.*?</div>\n</div>', text, re.S)[0]
        assert f"<b>{k['flops']:,}</b>" in card or f"flops {k['flops']:,};" in card
        assert f"H100 model {k['roofline_us']:.3g} &micro;s" in card
    fused = inspected["bytes_fused"]
    assert f"<td>{fused:,}</td>" in text


def test_a_convnets_rows_show_each_backends_kernel_for_the_same_nodes(tmp_path):
    """The backends' partitions of a ConvNet differ (numpy stores the windows that Triton's
    matmuls compute): each row, a numpy kernel, shows the Triton kernel with the same root
    node, here the implicit-GEMM convolution; a stored-windows kernel names the Triton
    kernels that compute its windows where they read them."""
    page = tmp_path / "cnn.html"
    assert report(ROOT / "examples" / "cnn_digits.py", "-o", page)[0] == 0
    text = page.read_text()
    model = modelfile.load(ROOT / "examples" / "cnn_digits.py")["model"]
    names = {b: [k.name for k in kernels_of(model, training_graph(model), b)]
             for b in ("numpy", "triton")}
    assert names["numpy"] != names["triton"]
    assert names["numpy"][:3] == ["k0_patches", "k1_reshape", "k2_matmul_add_relu"]
    numpy_code, triton_code = _pre_blocks(text, "k2_matmul_add_relu")
    assert "def k2_matmul_add_relu(" in numpy_code
    assert "def k0_patches_matmul_add_relu(" in triton_code and "implicit GEMM" in triton_code
    note = "".join(_pre_blocks(text, "k1_reshape")[1:])
    assert "no kernel of its own: k0_patches_matmul_add_relu" in note, note
    page = tmp_path / "cnn_triton.html"  # one backend: its own kernels are the rows
    assert report(ROOT / "examples" / "cnn_digits.py", "-o", page, "--backend", "triton")[0] == 0
    text = page.read_text()
    assert 'data-kernel="k0_patches_matmul_add_relu"' in text
    assert 'data-kernel="k1_reshape"' not in text


def test_backend_flag_shows_one_source(tmp_path):
    page = tmp_path / "numpy.html"
    assert report(SEED, "-o", page, "--backend", "numpy")[0] == 0
    text = page.read_text()
    assert "<h4>numpy</h4>" in text and "<h4>triton</h4>" not in text
    assert "@triton.jit" not in text


def test_flops_and_trace_hold_the_course_numbers(tmp_path):
    page = tmp_path / "sqrt.html"
    assert report(ROOT / "examples" / "flops_sqrt_exp.py", "-o", page)[0] == 0
    table = re.search(r'<table class="numbers" id="flops">(.*?)</table>', page.read_text(), re.S)[1]
    rows = re.findall(r"<tr><td>([^<]+)</td><td>(\d+)</td><td>([\d.]+)</td></tr>", table)
    # the course: forward 4 with CSE, naive 5 + 10, naive + CSE 7, forward 10, reverse 9
    assert [(name, int(flops)) for name, flops, _ in rows] == [
        ("forward", 4), ("naive", 15), ("naive + CSE", 7), ("forward mode", 10),
        ("reverse mode", 9)]
    assert 'class="chart bars"' in page.read_text()  # the naive rows ran: their chart is there

    page = tmp_path / "trace.html"
    assert report(ROOT / "examples" / "autodiff_trace.py", "-o", page, "--at", "x1=2,x2=5")[0] == 0
    values = dict(re.findall(r'<tr><td>([^<]+)</td><td>[^<]*</td><td class="value">([^<]+)</td>',
                             page.read_text()))
    # the course's table for ln(x1) + x1*x2 - sin(x2) at (2, 5)
    assert (values["y"], values["bar x1"], values["bar x2"]) == ("11.652", "5.500", "1.716")


def test_the_page_is_the_same_bytes_with_no_path_and_no_network(run, tmp_path):
    model, history = run
    pages = []
    for i, seed in enumerate(("0", "12345")):
        where = tmp_path / f"out{i}"
        out = gradc("report", model, "-o", where / "page.html", "--history", history, "--gpu",
                    "h100", env={"PYTHONHASHSEED": seed, "GRADC_CACHE_DIR": str(tmp_path / f"c{i}")})
        assert out.returncode == 0, out.stderr
        pages.append((where / "page.html").read_bytes())
    assert pages[0] == pages[1]
    text = pages[0].decode()
    for path in (str(tmp_path), str(ROOT), str(Path.home()), "/tmp/"):
        assert path not in text
    assert set(re.findall(r"https?://[^\"' )]+", text)) == {"http://www.w3.org/2000/svg"}
    assert not re.search(r"<(script|img|iframe)[^>]*\bsrc=|<link[^>]*stylesheet|@import", text)


def test_history_curves_are_the_history_files(run, tmp_path):
    model, history = run
    page = tmp_path / "page.html"
    assert report(model, "-o", page, "--history", history)[0] == 0
    text = page.read_text()
    entries = [json.loads(line) for line in history.read_text().splitlines()]
    assert len(entries) == 3
    assert f"epoch 3: loss {entries[-1]['epoch_loss']:.6g}" in text
    train = re.search(r'<polyline class="series train" points="([^"]+)"', text)[1].split()
    assert len(train) == 3
    ys = [float(p.split(",")[1]) for p in train]  # a falling loss is drawn lower each epoch
    losses = [e["epoch_loss"] for e in entries]
    assert [a < b for a, b in zip(ys, ys[1:])] == [a > b for a, b in zip(losses, losses[1:])]
    steps = re.search(r'<polyline class="series steps" points="([^"]+)"', text)[1].split()
    assert len(steps) == sum(len(e["step_losses"]) for e in entries)


def _bad(tmp_path, run, case):
    model, history = run
    other = tmp_path / "other"  # the same model file, trained, then its history altered
    if case == "not a model file":
        return [tmp_path / "missing.py"], "no such model file"
    if case == "-o under a file":
        (tmp_path / "file").write_text("x")
        return [model, "-o", tmp_path / "file" / "page.html"], "is a file, not a directory"
    if case == "-o is a directory":
        return [model, "-o", tmp_path], "it is a directory"
    if case == "history of another model":
        return [SEED, "--history", history], "does not belong to seed_regression.py: its " \
            "parameter dense0.W has shape (2, 24), the model's (1, 32)"
    if case == "history without its checkpoint":
        lone = tmp_path / "lone.history"
        lone.write_bytes(history.read_bytes())
        return [model, "--history", lone], "has no checkpoint"
    if case == "history altered":
        other.mkdir()
        (other / "ckpt").write_bytes(history.with_suffix("").read_bytes())
        (other / "ckpt.history").write_text(history.read_text().replace("epoch_loss", "epoch_loss "))
        return [model, "--history", other / "ckpt.history"], "does not match checkpoint"
    if case == "not a history file":
        return [model, "--history", history.with_suffix("")], "expects the PATH.history file"
    raise AssertionError(case)


BAD = ["not a model file", "-o under a file", "-o is a directory", "history of another model",
       "history without its checkpoint", "history altered", "not a history file"]


@pytest.mark.parametrize("case", BAD)
def test_bad_input_is_one_line_and_exit_2_with_nothing_written(case, run, tmp_path):
    args, message = _bad(tmp_path, run, case)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    out = tmp_path / "page.html"
    status, stdout, err = report(*args, *(["-o", out] if "-o" not in args else []))
    assert status == 2
    assert err.count("\n") == 1 and err.startswith("gradc: error: ") and message in err, err
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_bad_input_end_to_end_has_no_traceback(tmp_path):
    out = gradc("report", tmp_path / "missing.py", "-o", tmp_path / "page.html")
    assert out.returncode == 2
    assert out.stderr == f"gradc: error: no such model file: {tmp_path / 'missing.py'}\n"


def test_a_three_layer_mlp_reads_top_to_bottom():
    model = modelfile.load(SEED)["model"]
    graph = training_graph(model)
    kernels = kernels_of(model, graph)
    pane = graph_pane(graph, kernels, "update_sgd", str(SEED))
    phase = {k.name: k.phase for k in kernels}
    y = {b.node or b.kernel: b.y for b in pane.boxes}
    forward = [b.y for b in pane.boxes if phase.get(b.kernel) == "forward"]
    backward = [b.y for b in pane.boxes if phase.get(b.kernel) == "backward"]
    assert len(forward) == sum(len(k.members) for k in kernels if k.phase == "forward") == 8
    assert len(backward) == sum(len(k.members) for k in kernels if k.phase == "backward")
    assert max(forward) < min(backward)
    for e in pane.edges:  # every edge points down the page
        assert y[e.target or e.kernel_to] > y[e.source or e.kernel_from]
    assert max(y.values()) == y["update_sgd"]
    spots = [(b.x, b.y) for b in pane.boxes]
    assert len(set(spots)) == len(spots)
    assert len([b for b in pane.boxes if b.node]) == len([n for n in graph.nodes
                                                           if not is_const(n)])


def _deep(layers):
    from compiler import Input, Model, nn, ops as F

    x, y = Input("x", ("B", 4)), Input("y", ("B", 4))
    net = nn.Chain(*[nn.Dense(4, 4, act="tanh") for _ in range(layers)])
    return Model(inputs=[x, y], outputs={"y_hat": net(x)}, loss=F.mse(net(x), y))


def test_a_10000_node_graph_collapses_to_one_box_per_kernel():
    model = _deep(700)
    graph = training_graph(model)
    kernels = kernels_of(model, graph)
    assert len(graph.nodes) > 9_500 > NODE_LIMIT
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(300)  # the layout is loops, not recursion
    try:
        start = time.perf_counter()
        pane = graph_pane(graph, kernels, "update_sgd", "model.py")
        took = time.perf_counter() - start
    finally:
        sys.setrecursionlimit(limit)
    assert pane.collapsed and len(pane.boxes) == len(kernels) + 1
    assert took < 5
    y = {b.kernel: b.y for b in pane.boxes}
    assert all(y[e.kernel_to] > y[e.kernel_from] for e in pane.edges)
    assert pane.width < 2_000  # a chain stays narrow: gradients do not pile up above the update


@pytest.mark.slow
def test_the_page_of_a_10000_node_graph_renders_in_chromium(driver, tmp_path):
    path = tmp_path / "deep.py"
    path.write_text("from compiler import Input, Model, nn, ops as F\n"
                    "x, y = Input('x', ('B', 4)), Input('y', ('B', 4))\n"
                    "net = nn.Chain(*[nn.Dense(4, 4, act='tanh') for _ in range(700)])\n"
                    "model = Model(inputs=[x, y], outputs={'y_hat': net(x)}, "
                    "loss=F.mse(net(x), y))\n")
    page = tmp_path / "deep.html"
    assert report(path, "-o", page)[0] == 0
    start = time.perf_counter()
    driver.get(page.as_uri())
    assert time.perf_counter() - start < 30
    assert errors(driver) == []
    rows = module_rows(path)
    click(driver, f'.kcard[data-kernel="{rows[1000]["name"]}"]')
    assert [m["kernel"] for m in marked(driver, ".gkernel", "sel")] == [rows[1000]["name"]]
    assert errors(driver) == []
