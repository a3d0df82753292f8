"""Shallow vs deep (seed 001): networks of 1 to 4 hidden layers with about equal parameter counts.

Like the seed's MNIST-1D figure (1, 2, 3, 4 layers of 298, 100, 75, 63 units, about
15,200 parameters each), here on a 1-D regression target with about 1,200 parameters
each, trained by full-batch gradient descent (Adam) from He initialisation.

Run it:  python examples/shallow_vs_deep.py
"""
import numpy as np

from compiler import Input, Model, compile, nn, ops as F
from runtime import train

BUDGET = 1200


def n_params(layers, width):
    sizes = [1] + [width] * layers + [1]
    return sum(a * b + b for a, b in zip(sizes, sizes[1:]))


def width_for(layers):
    return min(range(1, 2000), key=lambda w: abs(n_params(layers, w) - BUDGET))


def network(layers):
    width = width_for(layers)
    x, y = Input("x", ("B", 1)), Input("y", ("B", 1))
    net = nn.Chain(*[nn.Dense(1 if i == 0 else width, width, act="relu", init="he")
                     for i in range(layers)], nn.Dense(width, 1), name=f"deep{layers}")
    return Model([x, y], {"y_hat": net(x)}, F.mse(net(x), y)), width


def truth(x):
    return np.sin(6 * x) * np.cos(14 * x) + 0.3 * np.sign(np.sin(9 * x))


def main(argv=None):
    from common import parse_args, pyplot, save

    args = parse_args(__doc__, argv)
    xs = np.linspace(-1, 1, 400)[:, None]
    data = {"x": xs, "y": truth(xs)}
    epochs = 300 if args.fast else 1500
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.3))
    left.plot(xs, data["y"], "k--", lw=1.2, label="target")
    result = {}
    for layers in (1, 2, 3, 4):
        model, width = network(layers)
        prog = compile(model)
        hist = train(prog, data, optimizer="adam", lr=3e-3, epochs=epochs, batch_size=400,
                     quiet=True, seed=layers)
        count = sum(int(np.prod(shape)) for shape, _ in prog.param_specs.values())
        label = f"{layers} layer{'s' if layers > 1 else ''} x {width} units ({count} params)"
        right.plot(np.arange(1, epochs + 1), hist.epoch_losses, lw=2, label=label)
        left.plot(xs, prog.predict(hist.params, data)["y_hat"], lw=1.5, label=label)
        result[layers] = {"params": count, "width": width, "initial": hist.initial_loss,
                          "final": hist.epoch_losses[-1]}
    right.set(xlabel="epoch (full batch)", ylabel="MSE", yscale="log", title="training loss")
    left.set(xlabel="x", ylabel="y", title=f"fits after {epochs} epochs")
    for ax in (left, right):
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    save(fig, args, "shallow_vs_deep")
    for layers, r in result.items():
        print(f"{layers} layers x {r['width']:>3} units, {r['params']} params: "
              f"loss {r['initial']:.3f} -> {r['final']:.4f}")
    return result


if __name__ == "__main__":
    main()
