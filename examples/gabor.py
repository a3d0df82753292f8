"""The Gabor model of seed 001: a non-convex loss, gradient descent vs SGD.

    f[x, phi] = sin(phi0 + 0.06 * phi1 * x) * exp(-(phi0 + 0.06 * phi1 * x)^2 / 8)
    L[phi] = sum_i (f[x_i, phi] - y_i)^2

From some starting points gradient descent slides into the global minimum; from
others it stops in a local minimum.  SGD (minibatches of 4, its step scaled to match)
follows a noisy version of the same paths; on this data its noise is too small to
leave those local minima.

Run it:  python examples/gabor.py
"""
import numpy as np

from compiler import Input, Model, Param, compile, ops as F
from runtime import optim

x, y = Input("x", ("B",)), Input("y", ("B",))
phi0, phi1 = Param("phi0", ()), Param("phi1", ())
z = phi0 + 0.06 * phi1 * x
f = F.sin(z) * F.exp(-z ** 2 / 8.0)
model = Model(inputs=[x, y], outputs={"f": f}, loss=F.sum((f - y) ** 2))

TRUE = (0.0, 16.6)
STARTS = [(-2.0, 19.0), (1.8, 13.0), (1.2, 30.0), (1.5, 8.0)]


def data(seed=0):
    rng = np.random.default_rng(seed)
    xs = rng.uniform(-15, 15, size=28)
    zs = TRUE[0] + 0.06 * TRUE[1] * xs
    return {"x": xs, "y": np.sin(zs) * np.exp(-zs ** 2 / 8) + 0.05 * rng.normal(size=xs.shape)}


def descend(prog, start, d, steps, batch=None, lr=0.01, seed=0):
    """Gradient descent (all data each step) or SGD (``batch`` examples); the path taken."""
    rng = np.random.default_rng(seed)
    params = {"phi0": np.array(start[0]), "phi1": np.array(start[1])}
    opt = optim.SGD(lr=lr)
    state = opt.init_state(params)
    path = [start]
    for step in range(1, steps + 1):
        pick = rng.choice(len(d["x"]), batch, replace=False) if batch else slice(None)
        _, grads = prog.loss_and_grad(params, {k: v[pick] for k, v in d.items()})
        prog.update(params, grads, state, opt, step)
        path.append((float(params["phi0"]), float(params["phi1"])))
    return np.array(path), prog.loss(params, d)


def main(argv=None):
    from common import parse_args, pyplot, save

    args = parse_args(__doc__, argv)
    prog = compile(model, dtype="float64")
    d = data()
    steps = 800 if args.fast else 1500
    runs = {}
    for i, start in enumerate(STARTS):
        runs[("GD", start)] = descend(prog, start, d, steps)
        # minibatch sums are 4/28 of the full sum: scale the step so both move alike
        runs[("SGD", start)] = descend(prog, start, d, steps, batch=4, lr=0.07, seed=i)
    p0, p1 = np.meshgrid(np.linspace(-2.5, 2.5, 81), np.linspace(2.5, 40, 81))
    surface = np.array([[prog.loss({"phi0": np.array(a), "phi1": np.array(b)}, d)
                         for a, b in zip(ra, rb)] for ra, rb in zip(p0, p1)])
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), sharey=True)
    for ax, method in zip(axes, ("GD", "SGD")):
        ax.contourf(p0, p1, np.log(surface + 1e-3), levels=30, cmap="viridis")
        for i, start in enumerate(STARTS):
            path, final = runs[(method, start)]
            ax.plot(path[:, 0], path[:, 1], "-", color=f"C{i + 1}", lw=1.5,
                    label=f"from {start}: L = {final:.2f}")
            ax.plot(*path[0], "o", color=f"C{i + 1}")
            ax.plot(*path[-1], "*", ms=12, color=f"C{i + 1}", mec="k")
        ax.plot(*TRUE, "x", color="w", ms=10, mew=2, label="true parameters")
        ax.set(xlabel="phi0 (offset)", title=f"{'gradient descent' if method == 'GD' else 'SGD, minibatch 4'}, "
               f"{steps} steps on log L", xlim=(-2.5, 2.5), ylim=(2.5, 40))
        ax.legend(fontsize=7, loc="upper right")
    axes[0].set_ylabel("phi1 (frequency)")
    save(fig, args, "gabor")
    finals = {f"{m} from {s}": runs[(m, s)][1] for m, s in runs}
    best = prog.loss({"phi0": np.array(TRUE[0]), "phi1": np.array(TRUE[1])}, d)
    for name, loss in finals.items():
        print(f"{name:<24} final loss {loss:.3f}")
    print(f"loss at the true parameters {best:.3f}")
    return {"finals": finals, "true_loss": best,
            "initial": {s: prog.loss({"phi0": np.array(s[0]), "phi1": np.array(s[1])}, d)
                        for s in STARTS}}


if __name__ == "__main__":
    main()
