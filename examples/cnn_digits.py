"""A small ConvNet on scikit-learn's bundled 8x8 digits (no download).

Two blocks of 3x3 convolution (padding 1), ReLU and 2x2 max pooling (1x8x8 -> 16x4x4
-> 32x2x2), then a dense layer to 10 classes; softmax cross-entropy, Adam.  The same
75/25 split as digits.py (the MLP).  The script plots the first layer's learned
filters and the test images it gets wrong.

Run it:  gradc train examples/cnn_digits.py   or   python examples/cnn_digits.py
(needs scikit-learn: pip install scikit-learn)
"""
import numpy as np

import digits  # the data: the same images and split as the MLP's
from compiler import Input, Model, nn, ops as F

x, label = Input("x", ("B", 1, 8, 8)), Input("label", ("B",), dtype="int64")
net = nn.Sequential(
    nn.Conv2d(1, 16, 3, padding=1), F.relu, nn.MaxPool2d(2),
    nn.Conv2d(16, 32, 3, padding=1), F.relu, nn.MaxPool2d(2),
    nn.Flatten(), nn.Dense(32 * 2 * 2, 10),
)
logits = net(x)
model = Model(inputs=[x, label], outputs={"logits": logits}, loss=F.cross_entropy(logits, label))
training = {"optimizer": "adam", "lr": 2e-3, "batch_size": 32, "epochs": 30}


def load(seed=0):
    """``(train, test)``: digits.py's split, each image as 1x8x8."""
    return tuple({"x": part["x"].reshape(-1, 1, 8, 8), "label": part["label"]}
                 for part in digits.load(seed))


def data(seed=0):
    return load(seed)[0]


def main(argv=None):
    from common import parse_args, pyplot, save

    from compiler import compile
    from runtime import train

    args = parse_args(__doc__, argv)
    train_set, test_set = load()
    prog = compile(model)
    hist = train(prog, train_set, quiet=True, **{**training, "epochs": 8 if args.fast else 30})
    predicted = np.argmax(prog.predict(hist.params, test_set)["logits"], axis=1)
    truth = test_set["label"]
    accuracy = float(np.mean(predicted == truth))
    plt = pyplot()
    fig = plt.figure(figsize=(13, 4.4))
    grid = fig.add_gridspec(4, 13, wspace=0.15, hspace=0.35)
    filters = hist.params["conv0.W"][:, 0]
    scale = np.abs(filters).max()
    for i, f in enumerate(filters):
        sub = fig.add_subplot(grid[i // 4, i % 4])
        sub.imshow(f, cmap="RdBu_r", vmin=-scale, vmax=scale)
        sub.set(xticks=[], yticks=[])
        if i == 0:
            sub.set_title("first layer's 16 learned 3x3 filters", loc="left", fontsize=10)
    ax = fig.add_subplot(grid[:, 5:8])
    ax.plot(range(1, len(hist.epoch_losses) + 1), hist.epoch_losses, "o-", ms=3)
    ax.set(yscale="log", xlabel="epoch", ylabel="training loss (mean over the epoch)",
           title=f"test accuracy {accuracy:.1%} on {len(truth)} images")
    ax.grid(True, alpha=0.3)
    wrong = np.flatnonzero(predicted != truth)[:8]
    for i, idx in enumerate(wrong):
        sub = fig.add_subplot(grid[2 * (i // 4):2 * (i // 4) + 2, 9 + i % 4])
        sub.imshow(test_set["x"][idx, 0], cmap="gray_r")
        sub.set_title(f"{truth[idx]} as {predicted[idx]}", fontsize=9)
        if i == 0:
            sub.text(0, -3.2, "test mistakes (truth as prediction)", fontsize=10)
        sub.axis("off")
    save(fig, args, "cnn_digits")
    print(f"test accuracy {accuracy:.4f} ({len(wrong)} shown of {int(np.sum(predicted != truth))} "
          "mistakes)")
    return {"accuracy": accuracy, "losses": hist.epoch_losses}


if __name__ == "__main__":
    main()
