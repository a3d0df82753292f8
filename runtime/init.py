"""Parameter initialisers, seeded per parameter so that runs are reproducible.

Each parameter draws from its own stream derived from ``(seed, name)``, so
adding a parameter never changes how the others start.  Variances follow the
seeds: Xavier/Glorot ``2 / (n_in + n_out)``, He ``2 / n_in``.

>>> import numpy as np
>>> w = initial_value("xavier", (64, 32), "dense0.W", seed=0)
>>> bool(abs(w.var() - 2 / (64 + 32)) < 0.003)
True
>>> float(initial_value("normal(0.5)", (4000,), "b").std().round(1))
0.5
"""
import re
import zlib

import numpy as np


def _fans(shape):
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    return shape[0] * receptive, shape[1] * receptive


def _uniform(rng, shape, var):
    bound = np.sqrt(3.0 * var)
    return rng.uniform(-bound, bound, size=shape)


def _conv_fan_in(shape):
    return int(np.prod(shape[1:])) if len(shape) > 1 else max(int(np.prod(shape)), 1)


def _xavier_var(shape):
    n_in, n_out = _fans(shape)
    return 2.0 / (n_in + n_out)


def _he_var(shape):
    return 2.0 / _fans(shape)[0]


INITIALIZERS = {
    "xavier": lambda rng, shape: _uniform(rng, shape, _xavier_var(shape)),
    "xavier_uniform": lambda rng, shape: _uniform(rng, shape, _xavier_var(shape)),
    "xavier_normal": lambda rng, shape: rng.normal(0.0, np.sqrt(_xavier_var(shape)), size=shape),
    "glorot": lambda rng, shape: _uniform(rng, shape, _xavier_var(shape)),
    "he": lambda rng, shape: rng.normal(0.0, np.sqrt(_he_var(shape)), size=shape),
    "he_normal": lambda rng, shape: rng.normal(0.0, np.sqrt(_he_var(shape)), size=shape),
    "he_uniform": lambda rng, shape: _uniform(rng, shape, _he_var(shape)),
    "kaiming": lambda rng, shape: rng.normal(0.0, np.sqrt(_he_var(shape)), size=shape),
    # PyTorch's default for Conv2d weights (out, in / groups, kH, kW): kaiming_uniform_ with
    # a = sqrt(5), i.e. uniform in +-1/sqrt(fan_in), fan_in = in / groups * kH * kW
    "kaiming_uniform": lambda rng, shape: _uniform(rng, shape, 1.0 / (3.0 * _conv_fan_in(shape))),
    "normal": lambda rng, shape: rng.normal(0.0, 0.01, size=shape),
    "uniform": lambda rng, shape: rng.uniform(-1.0, 1.0, size=shape),
    "zeros": lambda rng, shape: np.zeros(shape),
    "ones": lambda rng, shape: np.ones(shape),
}


_NORMAL = re.compile(r"^normal\((?P<std>[0-9.eE+-]+)\)$")
_UNIFORM = re.compile(r"^uniform\((?P<bound>[0-9.eE+-]+)\)$")


def resolve(init):
    """The draw function for an initialiser name, ``normal(STD)`` or ``uniform(BOUND)``;
    ``None`` if unknown."""
    if init in INITIALIZERS:
        return INITIALIZERS[init]
    match = _NORMAL.match(str(init))
    if match:
        try:
            std = float(match["std"])
        except ValueError:
            return None
        if std >= 0:
            return lambda rng, shape: rng.normal(0.0, std, size=shape)
    match = _UNIFORM.match(str(init))
    if match:  # uniform(B): uniform in [-B, B] (PyTorch's default for biases)
        try:
            bound = float(match["bound"])
        except ValueError:
            return None
        if bound >= 0:
            return lambda rng, shape: rng.uniform(-bound, bound, size=shape)
    return None


def initial_value(init, shape, name, seed=0, dtype=np.float64):
    """The starting value of parameter ``name`` (float64 draws, cast to ``dtype``)."""
    rng = np.random.default_rng([int(seed), zlib.crc32(name.encode())])
    return np.asarray(resolve(init)(rng, tuple(shape)), dtype=dtype)
