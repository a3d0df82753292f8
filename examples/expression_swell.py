"""Expression swell (seeds 001 and 004): what "just differentiate the formula" costs.

Networks of 1 to 6 hidden layers of 3 tanh units (seed 001's "Big deal?" slide), on
one example.  For each depth, the flops to produce the loss and all parameter
gradients, four ways: naive symbolic differentiation (each derivative a tree),
naive after sympy.cse, forward mode (one jvp per parameter) and reverse mode (the
graph gradc generates).  Writes a log-scale chart.

Run it:  python examples/expression_swell.py [--plots DIR] [--max-depth 6]
"""
import argparse
from pathlib import Path

from compiler import Input, Model, nn, ops as F
from compiler.flops import compare

METHODS = ("naive", "naive_cse", "forward_mode", "reverse_mode")
LABELS = {"naive": "naive symbolic", "naive_cse": "naive + CSE", "forward_mode": "forward mode",
          "reverse_mode": "reverse mode (gradc)", "forward": "forward pass"}


def network(depth):
    """1 input -> depth hidden layers of 3 tanh units -> 1 output, squared loss."""
    x, y = Input("x", (1, 1)), Input("y", (1, 1))
    layers = [nn.Dense(1, 3, act="tanh")] + [nn.Dense(3, 3, act="tanh") for _ in range(depth - 1)]
    net = nn.Chain(*layers, nn.Dense(3, 1))
    return Model([x, y], loss=F.sum((net(x) - y) ** 2))


def swell_table(depths=range(1, 7)):
    """One row per depth: flops of each method (and the forward pass)."""
    table = []
    for depth in depths:
        rows = compare(network(depth), budget={"max_params": 1000, "max_seconds": 120})
        table.append({"depth": depth, **{k: int(v["flops"]) for k, v in rows.items()
                                         if v["flops"] is not None}})
    return table


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plots", default="plots", help="directory for the PNG (default plots/)")
    parser.add_argument("--max-depth", type=int, default=6)
    args = parser.parse_args()
    table = swell_table(range(1, args.max_depth + 1))
    columns = ("forward",) + METHODS
    print(f"{'depth':>5} " + " ".join(f"{LABELS[m]:>22}" for m in columns))
    for row in table:
        cells = (f"{row[m]:>22,}" if m in row else f"{'skipped':>22}" for m in columns)
        print(f"{row['depth']:>5} " + " ".join(cells))

    from compiler.plot import pyplot

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for method, marker in zip(("forward",) + METHODS, "xosd^"):
        points = [(r["depth"], r[method]) for r in table if method in r]
        ax.plot(*zip(*points), marker=marker, label=LABELS[method])
    ax.set_yscale("log")
    ax.set_xlabel("hidden layers (3 tanh units each)")
    ax.set_ylabel("flops for loss + all gradients")
    ax.set_title("Expression swell: naive symbolic differentiation vs autodiff")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    out = Path(args.plots) / "expression_swell.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
