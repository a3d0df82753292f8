"""A tiny GPT learns to sort: a decoder-only transformer trained on sequences of 8 digits.

Each example is 8 random digits, a separator, then the same digits sorted; the model
reads the sequence left to right (causal attention) and learns to predict each next
token.  Only the sorted half is scored: the loss is the cross-entropy of the 8 sorted
digits given everything before them (the other positions' targets are -100, which
``F.cross_entropy`` ignores, as PyTorch's ``ignore_index``).  Token and position embeddings, 2 pre-norm
transformer blocks (4 heads, width 64, GELU MLP), a dense layer to the 11 tokens; Adam
with a cosine learning-rate schedule.
It is checked the honest way: on held-out sequences it writes the sorted half itself,
one token at a time (greedy decoding), and a sequence counts only when all 8 are right.

Run it:  python examples/tiny_gpt.py   or   gradc train examples/tiny_gpt.py
"""
import numpy as np

from compiler import Input, Model, Param, nn, ops as F

DIGITS, SEP = 10, 10             # tokens 0-9 are digits, 10 separates input from output
N, VOCAB, WIDTH, HEADS = 8, 11, 64, 4
T = 2 * N                        # the model reads tokens 0..15 and predicts tokens 1..16

tokens = Input("tokens", ("B", T), dtype="int64")
targets = Input("targets", ("B", T), dtype="int64")   # -100 (ignored), then the sorted digits
x = nn.Embedding(VOCAB, WIDTH)(tokens) + Param("pos", (T, WIDTH), init="normal(0.02)")
for _ in range(2):
    x = nn.TransformerBlock(WIDTH, HEADS, causal=True)(x)
logits = nn.Dense(WIDTH, VOCAB)(nn.LayerNorm(WIDTH)(x))           # (B, T, VOCAB)
model = Model(inputs=[tokens, targets], outputs={"logits": logits},
              loss=F.cross_entropy(logits, targets))                # classes on the last axis
training = {"optimizer": "adam", "lr": 3e-3, "batch_size": 64, "epochs": 6, "schedule": "cosine"}


def sequences(n, seed):
    """``n`` examples: model inputs (digits, separator, sorted digits but the last) and targets."""
    digits = np.random.default_rng(seed).integers(0, DIGITS, size=(n, N))
    ordered = np.sort(digits, axis=1)
    tokens = np.concatenate([digits, np.full((n, 1), SEP), ordered[:, :-1]], axis=1)
    targets = np.concatenate([np.full((n, N), -100), ordered], axis=1)  # N + i: the i-th
    return {"tokens": tokens, "targets": targets}


def data(seed=0):
    return sequences(20_000, seed)


def generate(prog, params, digits):
    """The sorted half written by the model itself, one token at a time (greedy)."""
    n = len(digits)
    tokens = np.concatenate([digits, np.full((n, 1), SEP), np.zeros((n, N - 1), int)], axis=1)
    out = np.zeros((n, N), dtype=int)
    for i in range(N):  # position N + i predicts output token i; later tokens are unseen
        out[:, i] = prog.predict(params, {"tokens": tokens})["logits"][:, N + i].argmax(-1)
        if i < N - 1:
            tokens[:, N + 1 + i] = out[:, i]
    return out


def main(argv=None):
    from common import parse_args, pyplot, save

    from compiler import compile
    from runtime import train

    args = parse_args(__doc__, argv)
    train_set, test = data(), sequences(1000, seed=1)
    epochs = 1 if args.fast else training["epochs"]
    if args.fast:
        train_set = {k: v[:4000] for k, v in train_set.items()}
    prog = compile(model)
    hist = train(prog, train_set, quiet=True, **{**training, "epochs": epochs})
    written = generate(prog, hist.params, test["tokens"][:, :N])
    truth = test["targets"][:, N:]
    exact = float(np.mean(np.all(written == truth, axis=1)))
    per_token = float(np.mean(written == truth))
    plt = pyplot()
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.2))
    steps = np.arange(1, len(hist.step_losses) + 1)
    ax.plot(steps, hist.step_losses, lw=0.6, alpha=0.5)
    smooth = np.convolve(hist.step_losses, np.ones(25) / 25, mode="valid")
    ax.plot(steps[24:], smooth, lw=1.5, color="C0")
    ax.set(yscale="log", xlabel="step (batch of 64)", ylabel="cross-entropy of the sorted half",
           title=f"held-out: {exact:.1%} of sequences sorted exactly")
    ax.grid(True, alpha=0.3)
    weights = attention_pattern(prog, hist.params, test["tokens"][:1])
    bx.imshow(weights, cmap="viridis")
    labels = [str(t) if t < DIGITS else "|" for t in test["tokens"][0]]
    bx.set(xticks=range(T), yticks=range(T), xticklabels=labels, yticklabels=labels,
           xlabel="attends to (key)", ylabel="position (query)",
           title="attention of block 2, head 1 (a held-out sequence)")
    save(fig, args, "tiny_gpt")
    print(f"exact-sequence accuracy {exact:.4f}, per-token {per_token:.4f} on {len(written)} "
          f"held-out sequences ({len(hist.step_losses)} steps)")
    return {"exact": exact, "per_token": per_token, "losses": hist.epoch_losses}


def attention_pattern(prog, params, tokens):
    """The attention weights (T, T) of the second block's first head for one sequence: a
    model of the same layers that outputs them, compiled and fed the trained parameters."""
    from compiler import compile

    x_in = Input("tokens", ("B", T), dtype="int64")
    h = nn.Embedding(VOCAB, WIDTH)(x_in) + Param("pos", (T, WIDTH), init="normal(0.02)")
    first, second = (nn.TransformerBlock(WIDTH, HEADS, causal=True) for _ in range(2))
    h = first(h)
    weights, _ = second.attn.weights(second.ln1(h))
    probe = compile(Model([x_in], {"weights": weights[0, 0]}, F.sum(weights)))
    named = {k: v for k, v in params.items() if k in probe.param_specs}
    return probe.predict(named, {"tokens": tokens})["weights"]


if __name__ == "__main__":
    main()
