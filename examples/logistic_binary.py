"""Binary logistic regression with a hidden layer (seed 003): sigmoid output, cross-entropy loss.

    a2 = relu(Theta1 x),  y_hat = g(Theta2 a2) with g(z) = 1/(1 + e^-z),
    L = -[y log y_hat + (1 - y) log(1 - y_hat)]      (written as bce_with_logits: stable)

Run it:  gradc train examples/logistic_binary.py   or   python examples/logistic_binary.py
"""
import numpy as np

from compiler import Input, Model, nn, ops as F

x, y = Input("x", ("B", 2)), Input("y", ("B", 1))
net = nn.Chain(nn.Dense(2, 16, act="relu", init="he"), nn.Dense(16, 1))
logits = net(x)
model = Model(inputs=[x, y], outputs={"p": F.sigmoid(logits)}, loss=F.bce_with_logits(logits, y))
training = {"optimizer": "adam", "lr": 0.02, "batch_size": 32, "epochs": 200}


def data(seed=0, n=400):
    """Two interleaved half-moons."""
    rng = np.random.default_rng(seed)
    t = rng.uniform(0, np.pi, size=n)
    label = rng.integers(0, 2, size=n)
    xs = np.where(label[:, None] == 0, np.c_[np.cos(t), np.sin(t)],
                  np.c_[1 - np.cos(t), 0.5 - np.sin(t)])
    return {"x": xs + 0.12 * rng.normal(size=(n, 2)), "y": label[:, None].astype(float)}


def main(argv=None):
    from common import parse_args, pyplot, save

    from compiler import compile
    from runtime import train

    args = parse_args(__doc__, argv)
    prog = compile(model)
    hist = train(prog, data(), val_fraction=0.25, quiet=True,
                 **{**training, "epochs": 60 if args.fast else 200})
    test = data(seed=1)
    accuracy = prog.evaluate(hist.params, test)["accuracy"]
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 5))
    g0, g1 = np.meshgrid(np.linspace(-1.6, 2.6, 200), np.linspace(-1.1, 1.6, 200))
    grid = np.c_[g0.ravel(), g1.ravel()]
    p = prog.predict(hist.params, {"x": grid})["p"].reshape(g0.shape)
    ax.contourf(g0, g1, p, levels=np.linspace(0, 1, 11), cmap="RdBu_r", alpha=0.6)
    ax.contour(g0, g1, p, levels=[0.5], colors="k", linewidths=2)
    for label, marker in ((0, "o"), (1, "s")):
        pick = test["y"][:, 0] == label
        ax.scatter(*test["x"][pick].T, s=12, marker=marker, edgecolor="k", linewidth=0.3,
                   label=f"class {label} (test)")
    ax.set(xlabel="x1", ylabel="x2",
           title=f"decision boundary p = 0.5; test accuracy {accuracy:.1%}")
    ax.legend(loc="lower left")
    save(fig, args, "logistic_binary")
    print(f"validation accuracy {hist.metrics['val_accuracy'][-1]:.3f}, test accuracy {accuracy:.3f}")
    return {"test_accuracy": accuracy, "val_accuracy": hist.metrics["val_accuracy"][-1]}


if __name__ == "__main__":
    main()
