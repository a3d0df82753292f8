"""Flops and bytes as formulas, the naive baseline, and the seed 003 trace."""
import json
import sys
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from compiler import Input, Model, Param, compile, modelfile, nn, ops as F
from compiler.cost import matmul_flops, node_cost
from compiler.flops import compare, evaluate, reverse_mode_graph
from compiler.shapes import symbol
from compiler.trace import trace
from runner import gradc  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
B = symbol("B")


def mlp_784(act="relu"):
    x, k = Input("x", ("B", 784)), Input("k", ("B",), dtype="int64")
    net = nn.Chain(nn.Dense(784, 256, act=act), nn.Dense(256, 256, act=act), nn.Dense(256, 10))
    return Model([x, k], {"logits": net(x)}, F.cross_entropy(net(x), k))


def test_matmul_flops_of_the_784_mlp_equal_pytorchs_flop_counter():
    model = mlp_784()
    ours = matmul_flops(reverse_mode_graph(model).nodes).subs(B, 128)
    layers = [torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 256),
              torch.nn.ReLU(), torch.nn.Linear(256, 10)]
    net = torch.nn.Sequential(*layers)
    x = torch.randn(128, 784)  # a data input: PyTorch, like gradc, computes no gradient for it
    with FlopCounterMode(display=False) as counter:
        torch.nn.functional.cross_entropy(net(x), torch.randint(0, 10, (128,))).backward()
    assert counter.get_total_flops() == 155_058_176
    assert ours == 155_058_176


def test_reverse_mode_is_at_most_three_forward_passes_and_skips_the_data_gradient():
    for model in (mlp_784(), mlp_784("tanh")):
        rows = evaluate(compare(model, budget={"max_params": 0}), 128)
        assert 1 < rows["reverse_mode"]["ratio"] <= 3
        graph = reverse_mode_graph(model)
        x = model.inputs[0]
        # no node of the gradient graph has the data input's shape except x itself
        assert [n for n in graph.nodes if n.shape == x.shape] == [x]


def test_costs_are_formulas_in_the_batch_symbol():
    x = Input("x", ("B", 3))
    w = Param("w", (3, 2))
    assert node_cost(x @ w).flops == 12 * B
    assert node_cost(F.sum(x, axis=1)).flops == 2 * B
    assert node_cost(F.sigmoid(x)).flops == 12 * B
    assert node_cost(x ** 3).flops == 6 * B
    prog = compile(Model([x], loss=F.sum(F.tanh(x @ w))))
    k0 = prog.kernels[0]
    assert k0.name == "k0_matmul_tanh"  # tanh's output is kept for the backward pass
    assert k0.flops == "14*B"  # matmul 2*B*3*2 + tanh 2B
    assert k0.bytes == "20*B + 24"  # read x (12B) and w (24), write (8B)


def test_seed_004_counts():
    """f(x) = sqrt(x**2 + exp(x**2)), seed 004: "5 FLOPs naive, 4 with CSE (a = x**2), and
    10 for the derivative x(1 + exp(x**2)) / sqrt(x**2 + exp(x**2))".

    gradc counts the loss and its derivative together in every row:
    - naive 15 = 5 for f + 10 for sympy's df/dx = (x*exp(x**2) + x)/sqrt(x**2 + exp(x**2)),
      which sympy writes differently from the seed's x(1 + exp(x**2))/... but also costs 10;
    - naive + CSE 7: x**2, exp, add, sqrt shared between f and df (4), then the
      numerator x*exp(x**2) + x (2) and the division (1);
    - forward 4: the graph shares x**2 already (hash-consing), like the seed's CSE count;
    - reverse mode 9: the forward 4, then 5 for the backward pass
      (1/(2*sqrt) -> g*1/(2y): div, mul; exp' = exp reused: mul; x**2' = 2x: mul; add).
    """
    x = Param("x", ())
    rows = compare(Model([], loss=F.sqrt(x ** 2 + F.exp(x ** 2))))
    flops = {k: v["flops"] for k, v in rows.items()}
    assert flops == {"forward": 4, "naive": 15, "naive_cse": 7, "forward_mode": 10,
                     "reverse_mode": 9}


def test_naive_grows_much_faster_than_reverse_mode_with_depth():
    sys.path.insert(0, str(ROOT / "examples"))
    from expression_swell import swell_table

    table = swell_table(depths=(1, 2, 3, 4))
    naive = [row["naive"] for row in table]
    reverse = [row["reverse_mode"] for row in table]
    cse = [row["naive_cse"] for row in table]
    assert all(b > a for a, b in zip(naive, naive[1:]))
    assert all(b > a for a, b in zip(reverse, reverse[1:]))
    # naive's growth per layer outpaces reverse mode's, and the gap widens
    ratios = [n / r for n, r in zip(naive, reverse)]
    assert all(b > a for a, b in zip(ratios, ratios[1:])) and ratios[-1] > 10
    assert all(c <= n for c, n in zip(cse, naive))


def test_seed_003_trace_reproduces_the_table():
    ns = modelfile.load(ROOT / "examples" / "autodiff_trace.py")
    t = trace(ns["model"], {"x1": 2, "x2": 5})
    assert round(t.value, 3) == 11.652
    assert round(t.outputs["x1"], 3) == 5.5 and round(t.outputs["x2"], 3) == 1.716
    values = {name: v for name, _, v in t.primal}
    assert round(values["v_1"], 3) == 0.693 and round(values["v_2"], 3) == 10.0



def test_flops_and_trace_commands(tmp_path):
    out = gradc("flops", ROOT / "examples" / "autodiff_trace.py", "--json")
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert set(rows) == {"forward", "naive", "naive_cse", "forward_mode", "reverse_mode"}
    assert rows["forward"]["ratio"] == 1.0
    out = gradc("flops", ROOT / "examples" / "seed_regression.py", "--batch", "128", "--json")
    rows = json.loads(out.stdout)
    assert rows["naive"]["flops"] is None and "skipped" in rows["naive"]["reason"]
    assert rows["forward"]["flops"] == 2308 * 128
    out = gradc("flops", ROOT / "examples" / "seed_regression.py")
    assert "2308*B" in out.stdout and "reverse mode" in out.stdout
    out = gradc("trace", ROOT / "examples" / "autodiff_trace.py", "--at", "x1=2,x2=5")
    assert out.returncode == 0 and "= 11.652" in out.stdout and "bar x2" in out.stdout
    out = gradc("trace", ROOT / "examples" / "autodiff_trace.py", "--at", "x1=2")
    assert out.returncode == 2 and "no value for x2" in out.stderr
    out = gradc("inspect", ROOT / "examples" / "seed_regression.py", "--batch", "4", "--json")
    kernels = json.loads(out.stdout)["kernels"]
    assert kernels[0]["name"] == "k0_matmul_add_tanh" and kernels[0]["flops"] == 128 * 4


def test_a_classifier_has_naive_formulas_and_the_fused_loss_costs_its_definition():
    """Labels do not change a row's formula, so the naive counts are lines in B; the
    fused cross-entropy costs what its definition in primitives costs."""
    from compiler.graph import toposort
    from compiler.naive import naive_counts
    from compiler.ops.composite import log_softmax
    from compiler.ops.registry import OPS

    x, k = Input("x", ("B", 2)), Input("k", ("B",), dtype="int64")
    logits = nn.Dense(2, 3)(x)
    model = Model([x, k], {"logits": logits}, F.cross_entropy(logits, k))
    rows = compare(model)
    B = symbol("B")
    for key in ("naive", "naive_cse"):
        assert rows[key]["flops"] is not None
        assert rows[key]["flops"].subs(B, 2) == naive_counts(model, {"B": 2})[key]
    # the mean is over the labels that are not ignore_index (-100), as PyTorch's
    composite = (-F.sum(F.one_hot(k, 3) * log_softmax(logits, 1))
                 / F.sum(F.where(F.not_equal(k, -100), 1.0, 0.0)))
    inner = [n for n in toposort([composite], stop=[logits, k]) if OPS[n.op].kind != "leaf"]
    expected = sum((node_cost(n).flops for n in inner), 0)
    assert node_cost(model.loss).flops == expected
