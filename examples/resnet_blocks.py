"""Plain vs residual: two 20-convolution networks on the 8x8 digits, trained alike.

Both start with a 3x3 convolution to 8 channels and end with a 1x1 convolution to 16
channels, 2x2 max pooling and a dense layer; in between, 18 3x3 convolutions with ReLU.  The plain network
stacks them; the residual one groups them in pairs, each pair added to its input
(``nn.Residual``: x + block(x)), as in a ResNet.  With PyTorch's default
initialisation each plain layer shrinks the signal, and after 19 of them almost
nothing of the image (or of the gradient) gets through: the plain network barely
trains, the residual one does.  Same data, optimizer, initialisation and steps.

Run it:  python examples/resnet_blocks.py   (needs scikit-learn)
"""
import numpy as np

from compiler import Input, Model, nn, ops as F

WIDTH, PAIRS = 8, 9  # channels; pairs of convolutions between the stem and the head


def network(residual):
    """The stem, 9 pairs of 3x3 convolutions (each pair inside ``nn.Residual`` or not), the
    head: 1 + 18 + 1 = 20 convolutions with the head's 1x1 convolution to 16 channels."""
    layers = [nn.Conv2d(1, WIDTH, 3, padding=1), F.relu]
    for _ in range(PAIRS):
        pair = nn.Sequential(nn.Conv2d(WIDTH, WIDTH, 3, padding=1), F.relu,
                             nn.Conv2d(WIDTH, WIDTH, 3, padding=1))
        layers += [nn.Residual(pair) if residual else pair, F.relu]
    layers += [nn.Conv2d(WIDTH, 16, 1), F.relu, nn.MaxPool2d(2), nn.Flatten(),
               nn.Dense(16 * 4 * 4, 10)]
    return nn.Sequential(*layers)


def model(residual):
    x, label = Input("x", ("B", 1, 8, 8)), Input("label", ("B",), dtype="int64")
    logits = network(residual)(x)
    return Model(inputs=[x, label], outputs={"logits": logits},
                 loss=F.cross_entropy(logits, label), name="residual" if residual else "plain")


def main(argv=None):
    from common import parse_args, pyplot, save
    from cnn_digits import load

    from compiler import compile
    from runtime import train

    args = parse_args(__doc__, argv)
    train_set, test_set = load()
    if args.fast:
        train_set = {k: v[:400] for k, v in train_set.items()}
    epochs = 4 if args.fast else 20
    results = {}
    for residual in (False, True):
        prog = compile(model(residual))
        hist = train(prog, train_set, optimizer="sgd", lr=0.05, epochs=epochs, batch_size=32,
                     quiet=True, val_data=test_set)
        results["residual" if residual else "plain"] = {
            "losses": [hist.initial_loss] + hist.epoch_losses,
            "test_accuracy": hist.metrics["val_accuracy"]}
    plt = pyplot()
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4))
    for name, r in results.items():
        ax.plot(range(len(r["losses"])), r["losses"], "o-", ms=3, label=f"{name} (20 conv layers)")
        bx.plot(range(1, len(r["test_accuracy"]) + 1), r["test_accuracy"], "o-", ms=3, label=name)
    ax.set(xlabel="epoch", ylabel="training loss", yscale="log",
           title="the same 20 convolutions, stacked or in residual pairs")
    bx.set(xlabel="epoch", ylabel="test accuracy", ylim=(0, 1), title="held-out digits")
    for a in (ax, bx):
        a.grid(True, alpha=0.3)
        a.legend()
    save(fig, args, "resnet_blocks")
    for name, r in results.items():
        print(f"{name:9s} loss {r['losses'][0]:.3f} -> {r['losses'][-1]:.3f}, "
              f"test accuracy {r['test_accuracy'][-1]:.3f}")
    return results


if __name__ == "__main__":
    main()
