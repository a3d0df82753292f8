"""The sin/exp/cos toy network of seed 001 and its hand-derived gradient.

    f[x, phi] = b3 + w3 * cos(b2 + w2 * exp(b1 + w1 * sin(b0 + w0 * x))),  l = (f - y)^2

The seed derives dl/dw0 by hand; gradc's reverse mode must give the same number, and
the backward pass reuses the forward values exactly as the slides' "already computed!".

Run it:  python examples/toy_composite.py      or     gradc check examples/toy_composite.py
"""
import numpy as np

from compiler import Input, Model, Param, ops as F

x, y = Input("x", ("B",)), Input("y", ("B",))
b = [Param(f"beta{i}", (), init="normal(0.5)") for i in range(4)]
w = [Param(f"omega{i}", (), init="normal(0.5)") for i in range(4)]
f = b[3] + w[3] * F.cos(b[2] + w[2] * F.exp(b[1] + w[1] * F.sin(b[0] + w[0] * x)))
model = Model(inputs=[x, y], outputs={"f": f}, loss=F.sum((f - y) ** 2))
training = {"optimizer": "adam", "lr": 0.01, "batch_size": 10, "epochs": 200}


def data(seed=0):
    rng = np.random.default_rng(seed)
    xs = rng.uniform(-2, 2, size=20)
    return {"x": xs, "y": np.sin(xs)}


def by_hand(p, xi, yi):
    """Seed 001: -2 (f - y) w1 w2 w3 x cos[b0 + w0 x] exp[b1 + w1 sin[.]] sin[b2 + w2 exp[.]]."""
    f0 = p["beta0"] + p["omega0"] * xi
    f1 = p["beta1"] + p["omega1"] * np.sin(f0)
    f2 = p["beta2"] + p["omega2"] * np.exp(f1)
    f3 = p["beta3"] + p["omega3"] * np.cos(f2)
    return (-2 * (f3 - yi) * p["omega1"] * p["omega2"] * p["omega3"] * xi * np.cos(f0)
            * np.exp(f1) * np.sin(f2))


def main(argv=None):
    from common import parse_args

    from compiler import compile

    parse_args(__doc__, argv)
    prog = compile(model, dtype="float64")
    params = prog.init_params(seed=3)
    point = {"x": np.array([0.7]), "y": np.array([0.2])}
    loss, grads = prog.loss_and_grad(params, point)
    hand = float(by_hand(params, 0.7, 0.2))
    rel = abs(grads["omega0"] - hand) / abs(hand)
    print(f"l = {loss:.6f}")
    print(f"dl/dw0: gradc {float(grads['omega0']):.12f}, by hand {hand:.12f}, relative difference {rel:.1e}")
    print("\nThe backward kernel that turns dl/df3 into dl/dw0 reuses the forward values:")
    backward = [k for k in prog.kernels if k.phase == "backward"]
    print(max(backward, key=lambda k: len(k.nodes)).source)
    return {"gradc": float(grads["omega0"]), "hand": hand, "relative": rel}


if __name__ == "__main__":
    main()
