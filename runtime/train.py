"""``train``: minibatch training of a compiled ``Program``.

>>> hist = train(prog, {"x": X, "y": Y}, lr=1e-3, epochs=100, batch_size=1)  # doctest: +SKIP
>>> hist.epoch_losses[-1] < hist.epoch_losses[0]                              # doctest: +SKIP
True
"""
import math
from dataclasses import dataclass, field

import numpy as np

from runtime.errors import DataError, GradcError, TrainingError


@dataclass
class History:
    """What a training run produced: final parameters and the losses along the way.

    ``initial_loss`` is the loss over all the data before the first step;
    ``epoch_losses[i]`` the mean minibatch loss of epoch ``i`` (as in the seed's
    Flux loop); ``step_losses`` every minibatch loss.
    """

    params: dict
    initial_loss: float = math.nan
    epoch_losses: list = field(default_factory=list)
    step_losses: list = field(default_factory=list)

    def to_json(self):
        return {"initial_loss": self.initial_loss, "epoch_losses": self.epoch_losses,
                "step_losses": self.step_losses}


def check_data(prog, data):
    """The data as arrays of the program's dtype, all with one leading length N; returns (data, N)."""
    if not isinstance(data, dict):
        raise DataError(f"data must be a dict of arrays, got {type(data).__name__}")
    arrays = prog.check_batch(data)
    lengths = {name: (a.shape[0] if a.ndim else None) for name, a in arrays.items()}
    if any(n is None for n in lengths.values()):
        bad = next(k for k, n in lengths.items() if n is None)
        raise DataError(f"input {bad!r} has no batch axis to split into minibatches")
    if len(set(lengths.values())) > 1:
        desc = ", ".join(f"{k}: {n}" for k, n in lengths.items())
        raise DataError(f"inputs have different numbers of examples ({desc})")
    n = next(iter(lengths.values()), 0)
    if n == 0:
        raise DataError("data is empty (0 examples)")
    for name, a in arrays.items():
        if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
            raise DataError(f"input {name!r} holds non-finite values (NaN or inf)")
    return arrays, n


def train(prog, data, optimizer="sgd", lr=1e-3, epochs=100, batch_size=32, shuffle=True,
          seed=0, params=None, quiet=False):
    """Train ``prog`` on ``data`` (dict input name -> array with examples along axis 0).

    Returns a ``History``; ``params`` (default ``prog.init_params(seed)``) is
    copied, never changed in place.  The last minibatch of an epoch may be
    smaller, as with PyTorch's ``DataLoader``.
    """
    if optimizer not in prog.optimizers:
        raise GradcError(f"unknown optimizer {optimizer!r}; available: {', '.join(prog.optimizers)}")
    if not (isinstance(batch_size, int) and batch_size >= 1):
        raise GradcError(f"batch size must be a positive integer, got {batch_size!r}")
    if not (isinstance(epochs, int) and epochs >= 0):
        raise GradcError(f"epochs must be a non-negative integer, got {epochs!r}")
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise GradcError(f"learning rate must be a positive number, got {lr!r}")
    arrays, n = check_data(prog, data)
    if batch_size > n:
        raise DataError(f"batch size {batch_size} is larger than the data ({n} examples)")
    params = prog.check_params(prog.init_params(seed) if params is None else params)
    params = {k: np.array(v, dtype=prog.dtype, copy=True) for k, v in params.items()}
    module = prog.module
    update = getattr(module, f"update_{optimizer}")
    hist = History(params=params, initial_loss=module.loss(params, arrays))
    rng = np.random.default_rng(seed)
    starts = range(0, n, batch_size)
    step = 0
    with _progress(epochs, quiet) as bar, np.errstate(over="ignore", invalid="ignore"):
        for epoch in range(epochs):  # overflow is not an error here: a non-finite loss is
            order = rng.permutation(n) if shuffle else slice(None)
            epoch_data = {k: v[order] for k, v in arrays.items()}
            total = 0.0
            for start in starts:
                batch = {k: v[start:start + batch_size] for k, v in epoch_data.items()}
                loss, grads = module.loss_and_grad(params, batch)
                if not math.isfinite(loss):
                    raise TrainingError(f"loss became {loss} at step {step} "
                                        f"(epoch {epoch + 1}); try a smaller learning rate")
                update(params, grads, None, lr)
                hist.step_losses.append(loss)
                total += loss
                step += 1
            hist.epoch_losses.append(total / len(starts))
            bar.set_postfix(loss=f"{hist.epoch_losses[-1]:.4g}", refresh=False)
            bar.update(1)
    return hist


def _progress(epochs, quiet):
    from tqdm import tqdm

    return tqdm(total=epochs, desc="train", unit="epoch", disable=quiet, dynamic_ncols=True,
                mininterval=0.2)
