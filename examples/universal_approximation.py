"""Universal approximation (seed 001): shallow ReLU networks with 3, 10 and 100 hidden units.

y = phi_0 + sum_d phi_d * relu(theta_d0 + theta_d1 * x) is piecewise linear with a joint
where each hidden unit switches on (x = -theta_d0 / theta_d1).  More units, more joints,
a closer fit.  The joints start spread over [0, 1]; Adam moves them.

Run it:  python examples/universal_approximation.py
"""
import numpy as np

from compiler import Input, Model, compile, nn, ops as F
from runtime import train


def truth(x):
    return np.sin(2 * np.pi * x) + 0.3 * np.cos(5 * np.pi * x)


def spread_joints(prog, units, seed=0):
    """Initial parameters with the hidden units' joints spread evenly over [0, 1]."""
    rng = np.random.default_rng(seed)
    params = prog.init_params(seed)
    slope = rng.choice([-1.0, 1.0], size=units) * rng.uniform(1.0, 3.0, size=units)
    joint = (np.arange(units) + 0.5) / units
    params[f"relu{units}.dense0.W"] = slope[None, :].astype(np.float32)
    params[f"relu{units}.dense0.b"] = (-slope * joint).astype(np.float32)
    return params


def shallow(units):
    x, y = Input("x", ("B", 1)), Input("y", ("B", 1))
    net = nn.Chain(nn.Dense(1, units, act="relu", init="he"), nn.Dense(units, 1), name=f"relu{units}")
    return Model([x, y], {"y_hat": net(x)}, F.mse(net(x), y))


def main(argv=None):
    from common import parse_args, pyplot, save

    args = parse_args(__doc__, argv)
    xs = np.linspace(0, 1, 256)[:, None]
    data = {"x": xs, "y": truth(xs)}
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), sharey=True)
    result = {}
    for ax, units in zip(axes, (3, 10, 100)):
        prog = compile(shallow(units))
        hist = train(prog, data, optimizer="adam", lr=0.01, epochs=300 if args.fast else 1500,
                     batch_size=64, quiet=True, seed=1, params=spread_joints(prog, units))
        fit = prog.predict(hist.params, data)["y_hat"]
        W, b = hist.params[f"relu{units}.dense0.W"][0], hist.params[f"relu{units}.dense0.b"]
        joints = -b / np.where(W == 0, np.inf, W)
        joints = np.sort(joints[(joints > 0) & (joints < 1)])
        jy = prog.predict(hist.params, {"x": joints[:, None]})["y_hat"][:, 0] if len(joints) else []
        ax.plot(xs, data["y"], "k--", lw=1.2, label="target")
        ax.plot(xs, fit, lw=2, label="network")
        ax.plot(joints, jy, "o", ms=4, color="C3", label=f"{len(joints)} joints in [0, 1]")
        ax.set(title=f"{units} hidden ReLU units, MSE {hist.epoch_losses[-1]:.1e}", xlabel="x")
        ax.grid(True, alpha=0.3)
        ax.legend(loc="lower left", fontsize=8)
        result[units] = hist.epoch_losses[-1]
    axes[0].set_ylabel("y")
    save(fig, args, "universal_approximation")
    for units, loss in result.items():
        print(f"{units:>4} hidden units: final MSE {loss:.5f}")
    return result


if __name__ == "__main__":
    main()
