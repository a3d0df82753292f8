"""Gradient descent, momentum, RMSProp and Adam on the Rosenbrock function (seed 000, fig. 5.5).

    f(x, y) = (1 - x)^2 + b (y - x^2)^2,  b = 100,  minimum at (1, 1)

The model has no data: the parameters are the point (x, y), and every optimizer is
gradc's compiled update kernel, stepped by hand with ``Program.update``.

Run it:  python examples/optimizers.py
"""
import numpy as np

from compiler import Model, Param, compile
from runtime import optim

px, py = Param("x", ()), Param("y", ())
rosenbrock = (1 - px) ** 2 + 100.0 * (py - px ** 2) ** 2
model = Model(inputs=[], outputs={"f": rosenbrock}, loss=rosenbrock)
START = (-1.5, 2.0)

OPTIMIZERS = {
    "gradient descent, lr 1e-3": optim.SGD(lr=1e-3),
    "momentum 0.9, lr 1e-4": optim.SGD(lr=1e-4, momentum=0.9),
    "RMSProp, lr 1e-2": optim.RMSprop(lr=1e-2),
    "Adam, lr 5e-2 (seed defaults otherwise)": optim.Adam(lr=5e-2),
}


def run(prog, opt, steps):
    params = {"x": np.array(START[0]), "y": np.array(START[1])}
    state = opt.init_state(params)
    path = [START]
    for step in range(1, steps + 1):
        _, grads = prog.loss_and_grad(params, {})
        prog.update(params, grads, state, opt, step)
        path.append((float(params["x"]), float(params["y"])))
    return np.array(path)


def main(argv=None):
    from common import parse_args, pyplot, save

    args = parse_args(__doc__, argv)
    prog = compile(model, dtype="float64")
    steps = 1000 if args.fast else 3000
    paths = {name: run(prog, opt, steps) for name, opt in OPTIMIZERS.items()}
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 5.5))
    gx, gy = np.meshgrid(np.linspace(-2, 2, 300), np.linspace(-1, 3, 300))
    ax.contour(gx, gy, np.log10((1 - gx) ** 2 + 100 * (gy - gx ** 2) ** 2 + 1e-3), levels=25,
               cmap="Greys", linewidths=0.7)
    distances = {}
    for i, (name, path) in enumerate(paths.items()):
        distances[name] = float(np.hypot(*(path[-1] - 1.0)))
        ax.plot(path[:, 0], path[:, 1], lw=3.2 - 0.7 * i, ls=("-", "--", "-.", ":")[i], color=f"C{i}",
                label=f"{name}: ends {distances[name]:.3f} from (1, 1)")
        ax.plot(*path[-1], "o", color=f"C{i}", mec="k")
    ax.plot(*START, "ks", label=f"start {START}")
    ax.plot(1, 1, "r*", ms=14, label="minimum (1, 1)")
    ax.set(xlabel="x", ylabel="y", xlim=(-2, 2), ylim=(-1, 3),
           title=f"Rosenbrock (b = 100), {steps} steps each")
    ax.legend(fontsize=8, loc="lower right")
    save(fig, args, "optimizers")
    for name, dist in distances.items():
        print(f"{name:<42} distance to (1, 1) after {steps} steps: {dist:.4f}")
    return distances


if __name__ == "__main__":
    main()
