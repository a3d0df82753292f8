"""Linear function approximation of seed 000: f(x) = theta . beta(x), beta_i(x) = sin(i*pi*x).

The weights theta are the only parameters; the features beta(x) are fixed.  Training
is a linear least-squares problem, so full-batch gradient descent reaches the theta of
numpy's lstsq.

Run it:  gradc train examples/linear_features.py     or     python examples/linear_features.py
"""
import numpy as np

from compiler import Input, Model, Param, ops as F

K = 8  # number of features

beta = Input("beta", ("B", K))          # beta_i(x) = sin(i*pi*x), computed in data()
y = Input("y", ("B", 1))
theta = Param("theta", (K, 1), init="zeros")
f = beta @ theta
model = Model(inputs=[beta, y], outputs={"f": f}, loss=F.mse(f, y))
training = {"optimizer": "sgd", "lr": 1.0, "batch_size": 200, "epochs": 3000}  # full-batch GD


def features(x):
    return np.sin(np.pi * x * np.arange(1, K + 1))


def truth(x):
    return np.where(x < 0.5, 4 * x * (1 - 2 * x) + 1, 0.5) - 0.75


def sample(seed=0):
    """200 noisy points ``(x, y)`` of ``truth`` on [0, 1]."""
    rng = np.random.default_rng(seed)
    xs = np.sort(rng.uniform(0, 1, size=(200, 1)), axis=0)
    return xs, truth(xs) + 0.02 * rng.normal(size=xs.shape)


def data(seed=0):
    xs, ys = sample(seed)
    return {"beta": features(xs), "y": ys}


def main(argv=None):
    from common import parse_args, pyplot, save

    from compiler import compile
    from runtime import train

    args = parse_args(__doc__, argv)
    d = data()
    xs, _ = sample()
    prog = compile(model, dtype="float64")
    hist = train(prog, d, quiet=True, **training)
    best, *_ = np.linalg.lstsq(d["beta"], d["y"], rcond=None)
    gap = float(np.max(np.abs(hist.params["theta"] - best)))
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    grid = np.linspace(0, 1, 300)[:, None]
    left.scatter(xs, d["y"], s=8, color="0.6", label="data")
    left.plot(grid, truth(grid), "k--", lw=1.2, label="truth")
    left.plot(grid, features(grid) @ hist.params["theta"], lw=2, label="theta . beta(x), gradient descent")
    left.plot(grid, features(grid) @ best, ":", lw=2, label="least squares (numpy)")
    left.set(xlabel="x", ylabel="y", title=f"linear fit with {K} sine features")
    right.bar(np.arange(1, K + 1) - 0.2, hist.params["theta"][:, 0], width=0.4, label="gradc")
    right.bar(np.arange(1, K + 1) + 0.2, best[:, 0], width=0.4, label="lstsq")
    right.set(xlabel="feature i (sin(i pi x))", ylabel="theta_i", title="learned weights")
    for ax, where in ((left, "lower left"), (right, "upper right")):
        ax.grid(True, alpha=0.3)
        ax.legend(loc=where)
    save(fig, args, "linear_features")
    print(f"loss {hist.initial_loss:.4f} -> {hist.epoch_losses[-1]:.4f}; "
          f"max |theta - lstsq| = {gap:.2e}")
    return {"gap": gap, "initial": hist.initial_loss, "final": hist.epoch_losses[-1]}


if __name__ == "__main__":
    main()
