"""The Flux training loop of seed 000, in gradc: a 1-32-32-1 tanh network fitted by SGD.

    model = Chain(Dense(1=>32, tanh), Dense(32=>32, tanh), Dense(32=>1))
    opt_state = Flux.setup(Descent(learning_rate), model)     # plain SGD, lr 1e-3
    minibatch_size = 1

Train it as a model file:   gradc train examples/seed_regression.py
Compare SGD with Adam and draw the fit:   python examples/seed_regression.py
"""
import numpy as np

from compiler import Input, Model, nn, ops as F

x = Input("x", ("B", 1))
y = Input("y", ("B", 1))

net = nn.Chain(
    nn.Dense(1, 32, act="tanh"),
    nn.Dense(32, 32, act="tanh"),
    nn.Dense(32, 1),
)
y_hat = net(x)
model = Model(inputs=[x, y], outputs={"y_hat": y_hat}, loss=F.mse(y_hat, y))

# The seed's settings: Descent(1e-3), minibatches of one example, 1,000 epochs.
training = {"optimizer": "sgd", "lr": 1e-3, "batch_size": 1, "epochs": 1000}


def truth(x):
    """The function the network learns."""
    return 2 * np.sin(3 * x) + x


def data(seed=0):
    """100 noisy samples of ``truth`` on [-1.5, 1.5]."""
    rng = np.random.default_rng(seed)
    xs = rng.uniform(-1.5, 1.5, size=(100, 1))
    return {"x": xs, "y": truth(xs) + 0.05 * rng.normal(size=xs.shape)}


def main(argv=None):
    from common import parse_args, pyplot, save

    from compiler import compile
    from runtime import train

    args = parse_args(__doc__, argv)
    epochs = 60 if args.fast else 300
    prog = compile(model)
    runs = {"SGD, lr 1e-3 (the seed)": train(prog, data(), optimizer="sgd", lr=1e-3, epochs=epochs,
                                             batch_size=1, quiet=True),
            "Adam, lr 1e-3": train(prog, data(), optimizer="adam", lr=1e-3, epochs=epochs,
                                   batch_size=1, quiet=True)}
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    grid = np.linspace(-1.5, 1.5, 200)[:, None]
    d = data()
    left.scatter(d["x"], d["y"], s=10, color="0.6", label="data")
    left.plot(grid, truth(grid), "k--", lw=1.5, label="truth")
    for name, hist in runs.items():
        left.plot(grid, prog.predict(hist.params, {"x": grid})["y_hat"], lw=2, label=name)
        right.plot(np.arange(1, epochs + 1), hist.epoch_losses, lw=2, label=name)
    left.set(xlabel="x", ylabel="y", title=f"fit after {epochs} epochs")
    right.set(xlabel="epoch", ylabel="mean minibatch loss (MSE)", yscale="log",
              title="training loss, batch size 1")
    for ax in (left, right):
        ax.grid(True, alpha=0.3)
        ax.legend()
    save(fig, args, "seed_regression")
    result = {name: (h.initial_loss, h.epoch_losses[-1]) for name, h in runs.items()}
    for name, (first, last) in result.items():
        print(f"{name:<28} loss {first:.4f} -> {last:.4f}")
    return result


if __name__ == "__main__":
    main()
