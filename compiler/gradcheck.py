"""Gradient checking: compiled gradients against central finite differences in float64.

An entry passes when ``|analytic - numeric| <= atol + rtol * |numeric| + noise``:
``atol`` and ``rtol`` as in ``torch.autograd.gradcheck``, and (unless the caller sets
``atol`` exactly, ``with_noise=False``) ``noise`` the rounding error the differences
themselves carry, which grows with the size of what is differenced
(``10 * eps * |loss| / h`` for gradients: 2e-9 for a loss of 1 with h = 1e-6, but 0.01
for a loss of 5e6, where a fixed ``atol`` would fail correct gradients).

>>> report = check_gradients(model, data)            # doctest: +SKIP
>>> report.ok(ATOL, RTOL), report.failures(ATOL, RTOL)[:1]   # doctest: +SKIP
(True, [])
"""
from dataclasses import dataclass, field

import numpy as np

from compiler.pipeline import compile
from runtime.errors import GradcError

# Below this size (relative to the loss) a gradient is indistinguishable from
# finite-difference rounding noise, about eps / h = 1e-10.
NOISE_FLOOR = 1e-7
EPS = float(np.finfo(np.float64).eps)
# Central differences in float64 with h = 1e-6 are good to about 1e-10 * |loss| (rounding)
# plus 1e-13 * |third derivative| (truncation); these leave room for losses up to ~1e3.
ATOL = 1e-6
RTOL = 1e-5


@dataclass
class Entry:
    name: str           # parameter
    index: tuple        # position in the parameter
    analytic: float
    numeric: float
    noise: float = 0.0  # the rounding error of the difference itself

    @property
    def label(self):
        return self.name + (f"[{', '.join(map(str, self.index))}]" if self.index else "")

    def allowed(self, atol, rtol, with_noise=True):
        return atol + rtol * abs(self.numeric) + (self.noise if with_noise else 0.0)

    def passes(self, atol, rtol, with_noise=True):
        return bool(abs(self.analytic - self.numeric) <= self.allowed(atol, rtol, with_noise))


@dataclass
class GradReport:
    rows: list          # (parameter name, relative error, entries checked)
    loss: float
    entries: list = field(default_factory=list)   # every checked Entry

    @property
    def worst(self):
        """The largest relative error of an entry, ``|a - n| / max(|a|, |n|)`` (an overview;
        pass or fail is decided entry by entry with the tolerances, see ``failures``)."""
        return max((err for _, err, _ in self.rows), default=0.0)

    def failures(self, atol=ATOL, rtol=RTOL, with_noise=True):
        """The entries with ``|analytic - numeric| > atol + rtol * |numeric| (+ noise)``."""
        return [e for e in self.entries if not e.passes(atol, rtol, with_noise)]

    def ok(self, atol=ATOL, rtol=RTOL, with_noise=True):
        return not self.failures(atol, rtol, with_noise)

    def difference(self, name):
        """The largest ``|analytic - numeric|`` over the checked entries of parameter ``name``."""
        return max((abs(e.analytic - e.numeric) for e in self.entries if e.name == name),
                   default=0.0)


def _entries(name, shape, picks, analytic, numeric, noise):
    return [Entry(name, tuple(int(i) for i in np.unravel_index(p, shape)), float(a), float(n),
                  noise) for p, a, n in zip(picks, analytic, numeric)]


def random_batch(prog, batch_size, seed):
    rng = np.random.default_rng(seed)
    sizes, batch = {}, {}
    for name, (shape, dtype) in prog.inputs.items():
        dims = tuple(int(d) if d.isdigit() else sizes.setdefault(d, batch_size) for d in shape)
        batch[name] = rng.integers(0, 2, size=dims) if dtype.startswith("int") else rng.normal(size=dims)
    return batch


def batched_inputs(model):
    """The names of ``model``'s inputs whose first axis is the batch (a symbol)."""
    return {x.name for x in model.inputs if x.ndim and not isinstance(x.shape[0], int)}


def _setup(model, data, batch_size, seed):
    prog = compile(model, dtype="float64")
    if data is None:
        batch = random_batch(prog, batch_size, seed)
    else:
        batched = batched_inputs(model)  # an input of fixed shape is given whole
        batch = {k: np.asarray(v)[:batch_size] if k in batched else np.asarray(v)
                 for k, v in data.items() if k in prog.inputs}
    batch = prog.check_batch(batch)
    if not prog.param_specs:
        raise GradcError("the model has no parameters: there is no gradient to check")
    rng = np.random.default_rng(seed)
    params = prog.init_params(seed)
    for k in params:  # move off zero-initialised values so every derivative path is exercised
        # (np.array: for a 0-d parameter the sum is a numpy scalar, which cannot be perturbed
        # in place below)
        params[k] = np.array(params[k] + 0.1 * rng.normal(size=params[k].shape))
    return prog, batch, params, rng


def _relative(analytic, numeric, loss):
    """The largest relative error of one entry, ``|a - n| / max(|a|, |n|)`` (entries below
    the noise floor measured against it)."""
    scale = np.maximum(np.maximum(np.abs(analytic), np.abs(numeric)),
                       NOISE_FLOOR * max(1.0, abs(loss)))
    return float(np.max(np.abs(analytic - numeric) / scale, initial=0.0))


def check_hessian(model, data=None, batch_size=4, seed=0, h=1e-5):
    """Compare Hessian-vector products with central differences of gradients; a ``GradReport``.

    For a random direction ``v``: ``H v`` against ``(g(p + h v) - g(p - h v)) / 2h``.
    """
    prog, batch, params, rng = _setup(model, data, batch_size, seed)
    vector = {k: rng.normal(size=params[k].shape) for k in prog.trainable}
    loss, _ = prog.loss_and_grad(params, batch)
    hv = prog.hvp(params, batch, vector)
    _, up = prog.loss_and_grad({**params, **{k: params[k] + h * v for k, v in vector.items()}},
                               batch)
    _, down = prog.loss_and_grad({**params, **{k: params[k] - h * v for k, v in vector.items()}},
                                 batch)
    rows, entries = [], []
    for k in prog.trainable:
        v = params[k]
        numeric = (up[k] - down[k]) / (2 * h)
        rows.append((k, _relative(hv[k], numeric, loss), v.size))
        noise = 10 * EPS * max(1.0, np.max(np.abs(up[k]), initial=0.0)) / h
        entries += _entries(k, v.shape, np.arange(v.size), np.reshape(hv[k], -1),
                            np.reshape(numeric, -1), noise)
    return GradReport(rows, loss, entries)


def check_gradients(model, data=None, batch_size=4, seed=0, h=1e-6, max_entries=32):
    """Compare every parameter gradient with central differences; a ``GradReport``.

    Up to ``max_entries`` entries of each parameter are drawn at random (all of them for
    small tensors); each is an ``Entry`` of the report.  Each parameter's row holds the
    largest relative error of its entries, ``|g - fd| / max(|g|, |fd|, 1e-7 * max(1, |loss|))``.
    """
    prog, batch, params, rng = _setup(model, data, batch_size, seed)
    loss, grads = prog.loss_and_grad(params, batch)
    rows, entries = [], []
    for name in prog.trainable:  # (buffers are state, not trained: no gradient)
        value = params[name]
        flat = value.reshape(-1)
        picks = np.arange(flat.size)
        if flat.size > max_entries:
            picks = np.sort(rng.choice(flat.size, max_entries, replace=False))
        analytic = grads[name].reshape(-1)[picks]
        numeric = np.empty(len(picks))
        for j, idx in enumerate(picks):
            old = flat[idx]
            flat[idx] = old + h
            up = prog.module.loss(params, batch)
            flat[idx] = old - h
            down = prog.module.loss(params, batch)
            flat[idx] = old
            numeric[j] = (up - down) / (2 * h)
        rows.append((name, _relative(analytic, numeric, loss), len(picks)))
        noise = 10 * EPS * max(1.0, abs(loss)) / h
        entries += _entries(name, value.shape, picks, analytic, numeric, noise)
    return GradReport(rows, loss, entries)
