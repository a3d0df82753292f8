"""Handwritten digits: a softmax MLP on scikit-learn's bundled 8x8 digits (no download).

1,797 images of 64 pixels, 10 classes; 64 -> 128 (ReLU) -> 10, softmax cross-entropy,
Adam.  A quarter of the images is held out as a test set.

Run it:  gradc train examples/digits.py   or   python examples/digits.py
(needs scikit-learn: pip install scikit-learn)
"""
import numpy as np

from compiler import Input, Model, nn, ops as F

x, label = Input("x", ("B", 64)), Input("label", ("B",), dtype="int64")
net = nn.Chain(nn.Dense(64, 128, act="relu", init="he"), nn.Dense(128, 10))
logits = net(x)
model = Model(inputs=[x, label], outputs={"logits": logits}, loss=F.cross_entropy(logits, label))
training = {"optimizer": "adam", "lr": 1e-3, "batch_size": 32, "epochs": 40}


def load(seed=0):
    """``(train, test)``: pixels scaled to [0, 1], a seeded 75/25 split."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise SystemExit("digits.py needs scikit-learn: pip install scikit-learn") from None
    digits = load_digits()
    order = np.random.default_rng(seed).permutation(len(digits.target))
    xs, ys = digits.data[order] / 16.0, digits.target[order]
    cut = int(0.75 * len(ys))
    return {"x": xs[:cut], "label": ys[:cut]}, {"x": xs[cut:], "label": ys[cut:]}


def data(seed=0):
    return load(seed)[0]


def main(argv=None):
    from common import parse_args, pyplot, save

    from compiler import compile
    from runtime import train

    args = parse_args(__doc__, argv)
    train_set, test_set = load()
    prog = compile(model)
    hist = train(prog, train_set, quiet=True, **{**training, "epochs": 15 if args.fast else 40})
    predicted = np.argmax(prog.predict(hist.params, test_set)["logits"], axis=1)
    truth = test_set["label"]
    accuracy = float(np.mean(predicted == truth))
    per_class = [float(np.mean(predicted[truth == c] == c)) for c in range(10)]
    plt = pyplot()
    fig = plt.figure(figsize=(12, 4.2))
    ax = fig.add_subplot(1, 2, 1)
    ax.bar(range(10), per_class, color="C0")
    ax.set(xticks=range(10), ylim=(0.8, 1.0), xlabel="digit", ylabel="test accuracy",
           title=f"per-class accuracy (overall {accuracy:.1%} on {len(truth)} test images)")
    ax.grid(True, axis="y", alpha=0.3)
    wrong = np.flatnonzero(predicted != truth)[:8]
    for i, idx in enumerate(wrong):
        sub = fig.add_subplot(2, 8, 8 * (i // 4) + 5 + i % 4)
        sub.imshow(test_set["x"][idx].reshape(8, 8), cmap="gray_r")
        sub.set_title(f"{truth[idx]} as {predicted[idx]}", fontsize=9)
        sub.axis("off")
    save(fig, args, "digits")
    print(f"test accuracy {accuracy:.4f}; per class: " + " ".join(f"{c}:{a:.2f}" for c, a in enumerate(per_class)))
    return {"accuracy": accuracy, "per_class": per_class}


if __name__ == "__main__":
    main()
