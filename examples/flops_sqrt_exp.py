"""Counting flops, seed 004: f(x) = sqrt(x^2 + exp(x^2)) and its derivative.

The seed counts 5 flops for f "in a naive force way" (x*x twice), 4 with the common
subexpression a = x^2, and 10 for the hand-written derivative
x (1 + exp(x^2)) / sqrt(x^2 + exp(x^2)).  gradc counts the same things from its IR.

Run it:  python examples/flops_sqrt_exp.py      (or: gradc flops examples/flops_sqrt_exp.py)
"""
import sympy

from compiler import Model, Param, ops as F
from compiler.flops import LABELS, compare
from compiler.naive import tree_flops

x = Param("x", ())
f = F.sqrt(x ** 2 + F.exp(x ** 2))
model = Model(inputs=[], outputs={"f": f}, loss=f)


def main(argv=None):
    from common import parse_args, pyplot, save

    args = parse_args(__doc__, argv)
    s = sympy.Symbol("x", real=True)
    fs = sympy.sqrt(s ** 2 + sympy.exp(s ** 2))
    by_hand = s * (1 + sympy.exp(s ** 2)) / sympy.sqrt(s ** 2 + sympy.exp(s ** 2))
    seed = {"f, naive (seed: 5)": tree_flops([fs]),
            "df/dx by hand (seed: 10)": tree_flops([by_hand]),
            "df/dx by sympy.diff": tree_flops([sympy.diff(fs, s)])}
    rows = {LABELS[k]: int(v["flops"]) for k, v in compare(model).items()}
    print("flops, counted from the expressions:")
    for name, n in seed.items():
        print(f"  {name:<28} {n}")
    print("flops to produce f and df/dx, counted by gradc (gradc flops):")
    for name, n in rows.items():
        print(f"  {name:<28} {n}")
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 3.8))
    names = list(rows)
    ax.barh(names, [rows[n] for n in names], color=["C7", "C1", "C2", "C3", "C0"])
    for i, n in enumerate(names):
        ax.text(rows[n] + 0.2, i, str(rows[n]), va="center")
    ax.invert_yaxis()
    ax.set(xlabel="flops for f and df/dx", title="f(x) = sqrt(x^2 + exp(x^2)), seed 004")
    ax.grid(True, axis="x", alpha=0.3)
    save(fig, args, "flops_sqrt_exp")
    return {"seed": seed, "gradc": rows}


if __name__ == "__main__":
    main()
