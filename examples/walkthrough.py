"""gradc in one file: from a model to a training step, printing every stage.

In the spirit of JAX's "autodidax": build a tiny model, look at its graph,
differentiate it (graph in, graph out), see which derivative rules sympy produced,
look at the fused kernels and the numpy and Triton code they become, count what it costs,
check it against finite differences, and train.

Run it:  python examples/walkthrough.py
"""
from pathlib import Path

import numpy as np

from compiler import Graph, Input, Model, compile, nn, ops as F
from compiler.autodiff import gradient_graph
from compiler.flops import LABELS, compare, evaluate
from compiler.fusion import report
from compiler.passes import optimize
from compiler.pipeline import kernels_of
from compiler.symbolic import partials


def section(title):
    print(f"\n{'=' * 78}\n{title}\n{'=' * 78}")


def main(argv=None):
    from common import parse_args

    parse_args(__doc__, argv)

    section("1. A model is a graph of hash-consed nodes with symbolic shapes")
    x, y = Input("x", ("B", 2)), Input("y", ("B", 1))
    net = nn.Chain(nn.Dense(2, 3, act="tanh"), nn.Dense(3, 1))
    model = Model([x, y], {"y_hat": net(x)}, F.mse(net(x), y))
    print("net(x) is net(x):", net(x) is net(x), "(building the same thing twice is free CSE)")
    print(Graph({"loss": model.loss}).format())

    section("2. Elementwise derivatives come from sympy, rewritten with the op's output y")
    for op in ("tanh", "sigmoid", "exp", "sqrt"):
        print(f"  d {op}(a0) / d a0 = {partials(op, 1, (), ())[2][0]}")

    section("3. Reverse mode maps the graph to a bigger graph: loss and every gradient")
    graph = optimize(gradient_graph(model.loss, model.params, model.outputs))
    print(graph.format(locations=False))

    section("4. Fusion groups the nodes into kernels")
    kernels = kernels_of(model, graph)
    index = {n: i for i, n in enumerate(graph.nodes)}
    print(report(kernels, index))

    section("5. Each kernel becomes a function of a readable numpy module on disk")
    prog = compile(model, dtype="float64")
    print(f"  {prog.path}")
    print(prog.kernels[0].source)
    print(next(k for k in prog.kernels if k.phase == "backward").source)

    section("5b. The same kernel for the GPU: a Triton kernel printed from the same sympy body")
    from compiler.pipeline import module_path

    # generating the Triton module needs neither triton nor torch; read it from disk
    text = Path(module_path(model, "training", "triton", "float32")).read_text()
    device = text.index("def k0_matmul_add_tanh_kernel(")
    start = text.rindex("\n\n\n", 0, device) + 3  # with its decorators
    end = text.index("\n\n\n", text.index("def k0_matmul_add_tanh(", device))
    print(text[start:end])

    section("6. What it costs: gradc flops")
    rows = evaluate(compare(model), batch=32)
    for key, row in rows.items():
        flops = row["flops"] if row["flops"] is not None else row.get("reason")
        print(f"  {LABELS[key]:<14} {flops!s:>12}  x{row['ratio'] or 0:.2f} of forward")

    section("7. Check the gradient against central finite differences")
    rng = np.random.default_rng(0)
    batch = {"x": rng.normal(size=(32, 2)), "y": rng.normal(size=(32, 1))}
    params = prog.init_params(seed=0)
    loss, grads = prog.loss_and_grad(params, batch)
    w, h = params["dense0.W"], 1e-6
    w[0, 1] += h
    up = prog.loss(params, batch)
    w[0, 1] -= 2 * h
    down = prog.loss(params, batch)
    w[0, 1] += h
    fd = (up - down) / (2 * h)
    print(f"  dL/dW[0,1]: reverse mode {grads['dense0.W'][0, 1]:.10f}, finite differences {fd:.10f}")

    section("8. Train: the compiled update kernel does the optimizer step")
    from runtime import train

    data = {"x": rng.normal(size=(256, 2))}
    data["y"] = np.sin(data["x"][:, :1]) * data["x"][:, 1:]
    hist = train(prog, data, optimizer="adam", lr=0.05, epochs=60, batch_size=32, quiet=True)
    print(f"  loss {hist.initial_loss:.4f} -> {hist.epoch_losses[-1]:.4f} in 60 epochs")
    return {"reverse": float(grads["dense0.W"][0, 1]), "fd": fd,
            "initial": hist.initial_loss, "final": hist.epoch_losses[-1]}


if __name__ == "__main__":
    main()
