"""Regularization (seeds 002, 004): L2 weight decay, dropout and early stopping.

A wide network fitted to 30 noisy points memorises the noise: its training loss keeps
falling while its test loss rises.  Each regulariser trades some training loss for a
lower test loss:

    weight decay     L(w) + lambda ||w||^2        (optimizer weight_decay)
    dropout          v = m * sigma(u), m in {0, 1} (F.dropout while training)
    early stopping   keep the parameters of the best validation epoch

Run it:  python examples/regularization.py
"""
import numpy as np

from compiler import Input, Model, compile, nn, ops as F
from runtime import optim, train


def truth(x):
    return np.sin(3 * x)


def sample(n, seed):
    rng = np.random.default_rng(seed)
    xs = rng.uniform(-1, 1, size=(n, 1))
    return {"x": xs, "y": truth(xs) + 0.3 * rng.normal(size=xs.shape)}


def network(dropout=0.0):
    x, y = Input("x", ("B", 1)), Input("y", ("B", 1))
    h = nn.Dense(1, 256, act="tanh", name="hidden")(x)
    h2 = nn.Dense(256, 256, act="tanh", name="hidden2")(F.dropout(h, dropout) if dropout else h)
    out = nn.Dense(256, 1, name="out")(F.dropout(h2, dropout) if dropout else h2)
    return Model([x, y], {"y_hat": out}, F.mse(out, y))


def main(argv=None):
    from common import parse_args, pyplot, save

    args = parse_args(__doc__, argv)
    train_set, val_set, test_set = sample(30, 0), sample(30, 1), sample(500, 2)
    epochs = 1200 if args.fast else 1500
    plain, dropped = compile(network()), compile(network(dropout=0.3))
    runs = {  # the first three watch the test set only to draw its curve
        "no regularization": (plain, dict(optimizer=optim.Adam(lr=3e-3), val_data=test_set)),
        "weight decay 1.0 (AdamW)": (plain, dict(optimizer=optim.AdamW(lr=3e-3, weight_decay=1.0),
                                                    val_data=test_set)),
        "dropout 0.3": (dropped, dict(optimizer=optim.Adam(lr=3e-3), val_data=test_set)),
        "early stopping, patience 300": (plain, dict(optimizer=optim.Adam(lr=3e-3), val_data=val_set,
                                                     early_stopping=300)),
    }
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    grid = np.linspace(-1, 1, 300)[:, None]
    left.scatter(train_set["x"], train_set["y"], s=18, color="k", zorder=3, label="training data")
    left.plot(grid, truth(grid), "k--", lw=1, label="truth")
    result = {}
    for i, (name, (prog, kw)) in enumerate(runs.items()):
        hist = train(prog, train_set, epochs=epochs, batch_size=30, quiet=True, seed=0, **kw)
        test = prog.evaluate(hist.params, test_set)["loss"]
        result[name] = {"train": prog.evaluate(hist.params, train_set)["loss"], "test": test}
        held_out = "validation" if hist.stopped_epoch or "early" in name else "test"
        right.plot(np.arange(1, len(hist.val_losses) + 1), hist.val_losses, lw=1.8, color=f"C{i}",
                   label=f"{name} ({held_out} curve); final test {test:.3f}")
        if hist.best_epoch and "early" in name:
            right.axvline(hist.best_epoch, color=f"C{i}", ls=":", lw=1)
        left.plot(grid, prog.predict(hist.params, {"x": grid})["y_hat"], lw=1.8, color=f"C{i}",
                  label=name)
    left.set(xlabel="x", ylabel="y", ylim=(-2, 2), title="fits to 30 noisy points")
    right.set(xlabel="epoch", ylabel="held-out MSE", yscale="log",
              title="held-out loss while training (dotted: best epoch)")
    for ax in (left, right):
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    save(fig, args, "regularization")
    for name, r in result.items():
        print(f"{name:<30} train {r['train']:.4f}  test {r['test']:.4f}")
    return result


if __name__ == "__main__":
    main()
