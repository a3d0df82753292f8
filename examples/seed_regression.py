"""The Flux training loop of seed 000, in gradc.

    model = Chain(Dense(1=>32, tanh), Dense(32=>32, tanh), Dense(32=>1))
    opt_state = Flux.setup(Descent(learning_rate), model)     # plain SGD, lr 1e-3
    minibatch_size = 1

Run it:  gradc train examples/seed_regression.py
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

# The seed's settings: Descent(1e-3), minibatches of one example.
training = {"optimizer": "sgd", "lr": 1e-3, "batch_size": 1, "epochs": 1000}


def truth(x):
    """The function the network learns."""
    return 2 * np.sin(3 * x) + x


def data(seed=0):
    """100 noisy samples of ``truth`` on [-1.5, 1.5]."""
    rng = np.random.default_rng(seed)
    xs = rng.uniform(-1.5, 1.5, size=(100, 1))
    return {"x": xs, "y": truth(xs) + 0.05 * rng.normal(size=xs.shape)}
