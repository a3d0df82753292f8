"""Learning-rate schedules, stepped once per epoch as ``torch.optim.lr_scheduler`` is.

Each is a callable ``schedule(epoch, base_lr) -> lr`` (epoch counts from 0).
``parse("cosine", epochs)`` reads the CLI spelling.

>>> StepLR(step_size=2, gamma=0.5)(epoch=3, base_lr=1.0)
0.5
"""
import math

from runtime.errors import GradcError


class Constant:
    def __call__(self, epoch, base_lr):
        return base_lr

    def __repr__(self):
        return "constant"


class StepLR:
    """``lr * gamma ** (epoch // step_size)``."""

    def __init__(self, step_size, gamma=0.1):
        self.step_size, self.gamma = int(step_size), float(gamma)

    def __call__(self, epoch, base_lr):
        return base_lr * self.gamma ** (epoch // self.step_size)

    def __repr__(self):
        return f"step:{self.step_size}:{self.gamma}"


class ExponentialLR:
    """``lr * gamma ** epoch``."""

    def __init__(self, gamma):
        self.gamma = float(gamma)

    def __call__(self, epoch, base_lr):
        return base_lr * self.gamma ** epoch

    def __repr__(self):
        return f"exponential:{self.gamma}"


class CosineAnnealingLR:
    """``eta_min + (lr - eta_min) * (1 + cos(pi * epoch / T_max)) / 2``."""

    def __init__(self, T_max, eta_min=0.0):
        self.T_max, self.eta_min = int(T_max), float(eta_min)

    def __call__(self, epoch, base_lr):
        return self.eta_min + (base_lr - self.eta_min) * (1 + math.cos(math.pi * epoch / self.T_max)) / 2

    def __repr__(self):
        return f"cosine:{self.T_max}:{self.eta_min}"


class LinearWarmup:
    """``torch.optim.lr_scheduler.LinearLR``: from ``start_factor * lr`` to ``lr`` over ``total_iters``."""

    def __init__(self, total_iters=5, start_factor=1 / 3):
        self.total_iters, self.start_factor = int(total_iters), float(start_factor)

    def __call__(self, epoch, base_lr):
        frac = min(epoch, self.total_iters) / self.total_iters
        return base_lr * (self.start_factor + (1 - self.start_factor) * frac)

    def __repr__(self):
        return f"warmup:{self.total_iters}:{self.start_factor}"


def parse(spec, epochs):
    """A schedule from ``constant``, ``step:N[:GAMMA]``, ``exponential:GAMMA``,
    ``cosine[:T_MAX[:ETA_MIN]]`` (T_MAX defaults to the epochs) or ``warmup:N[:START]``."""
    if spec is None or callable(spec):
        return spec or Constant()
    name, *args = str(spec).split(":")
    try:
        values = [float(a) for a in args]
        if name == "constant" and not values:
            return Constant()
        if name == "step" and 1 <= len(values) <= 2:
            return StepLR(*values)
        if name == "exponential" and len(values) == 1:
            return ExponentialLR(*values)
        if name == "cosine" and len(values) <= 2:
            return CosineAnnealingLR(*(values or [max(epochs, 1)]))
        if name == "warmup" and 1 <= len(values) <= 2:
            return LinearWarmup(*values)
    except (TypeError, ValueError, ZeroDivisionError):
        pass
    raise GradcError(f"unknown schedule {spec!r}; use constant, step:N[:GAMMA], exponential:GAMMA, "
                     "cosine[:T_MAX[:ETA_MIN]] or warmup:N[:START]")
