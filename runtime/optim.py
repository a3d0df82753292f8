"""Optimizers: the run-time half of the compiled update rules (``compiler/optim.py``).

An optimizer object holds hyperparameters named as in ``torch.optim`` and turns
them, per step, into the arguments of the generated update kernel; its state
buffers (velocities, moment estimates) are plain arrays, one dict per parameter.

>>> opt = Adam(lr=1e-3)
>>> opt.rule, sorted(opt.hyper(step=1, lr=1e-3))
('adam', ['b1', 'b2', 'bc1', 'bc2', 'dwd', 'eps', 'lr', 'wd'])
"""
import numpy as np

from runtime.errors import GradcError


class Optimizer:
    """Base class: ``rule`` names the compiled update; ``state`` the buffers per parameter."""

    rule = "sgd"
    state = ()

    def __init__(self, lr, weight_decay=0.0):
        _check_positive("lr", lr)
        _check_nonnegative("weight_decay", weight_decay)
        self.lr = float(lr)
        self.weight_decay = float(weight_decay)

    def init_state(self, params):
        """Zeroed state buffers: a dict per parameter for a dict of parameters, or one
        dict of buffers shaped like ``params`` for a single (e.g. flat) array."""
        if isinstance(params, dict):
            return {name: self.init_state(p) for name, p in params.items()}
        return {s: self._initial(s, params) for s in self.state}

    def _initial(self, name, like):
        return np.zeros_like(like) if isinstance(like, np.ndarray) else like.new_zeros(like.shape)

    def hyper(self, step, lr):
        """Arguments of the update kernel for step ``step`` (1-based) at learning rate ``lr``."""
        return {"lr": lr, "wd": self.weight_decay}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


class SGD(Optimizer):
    """``torch.optim.SGD``: plain, with momentum, dampening and Nesterov momentum."""

    def __init__(self, lr=1e-3, momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.0):
        super().__init__(lr, weight_decay)
        _check_nonnegative("momentum", momentum)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise GradcError("Nesterov momentum requires a momentum and zero dampening")
        self.momentum, self.dampening, self.nesterov = float(momentum), float(dampening), bool(nesterov)
        if self.momentum:
            self.rule, self.state = "momentum", ("v",)

    def hyper(self, step, lr):
        h = super().hyper(step, lr)
        if self.momentum:
            h.update(mu=self.momentum, c=1.0 if step == 1 else 1.0 - self.dampening,
                     nesterov=float(self.nesterov))
        return h


class Momentum(SGD):
    """Momentum in PyTorch's form (``v <- mu*v + g``) or the seeds' (``v <- beta*v + (1-beta)*g``)."""

    def __init__(self, lr=1e-3, beta=0.9, form="torch", nesterov=False, weight_decay=0.0):
        if form not in ("torch", "seed"):
            raise GradcError(f"momentum form must be 'torch' or 'seed', got {form!r}")
        super().__init__(lr, momentum=beta, nesterov=nesterov, weight_decay=weight_decay)
        self.form = form

    def hyper(self, step, lr):
        h = super().hyper(step, lr)
        if self.form == "seed":
            h["c"] = 1.0 - self.momentum
        return h


class Adagrad(Optimizer):
    """``torch.optim.Adagrad`` (defaults lr 1e-2, eps 1e-10)."""

    rule, state = "adagrad", ("s",)

    def __init__(self, lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0,
                 eps=1e-10):
        super().__init__(lr, weight_decay)
        self.lr_decay, self.eps = float(lr_decay), float(eps)
        self.initial_accumulator_value = float(initial_accumulator_value)

    def _initial(self, name, like):
        if isinstance(like, np.ndarray):
            return np.full_like(like, self.initial_accumulator_value)
        return like.new_full(like.shape, self.initial_accumulator_value)

    def hyper(self, step, lr):
        return {"lr": lr / (1 + (step - 1) * self.lr_decay), "wd": self.weight_decay, "eps": self.eps}


class RMSprop(Optimizer):
    """``torch.optim.RMSprop`` (defaults lr 1e-2, alpha 0.99, eps 1e-8)."""

    rule, state = "rmsprop", ("s", "gavg", "buf")

    def __init__(self, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                 centered=False):
        super().__init__(lr, weight_decay)
        self.alpha, self.eps, self.momentum, self.centered = (float(alpha), float(eps),
                                                             float(momentum), bool(centered))

    def hyper(self, step, lr):
        return {"lr": lr, "wd": self.weight_decay, "eps": self.eps, "alpha": self.alpha,
                "mu": self.momentum, "centered": float(self.centered)}


class Adam(Optimizer):
    """``torch.optim.Adam`` with bias correction (defaults lr 1e-3, betas 0.9/0.999, eps 1e-8)."""

    rule, state = "adam", ("m", "v")
    decoupled = False

    def __init__(self, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(lr, weight_decay)
        self.betas, self.eps = (float(betas[0]), float(betas[1])), float(eps)

    def hyper(self, step, lr):
        b1, b2 = self.betas
        wd = self.weight_decay
        return {"lr": lr, "wd": 0.0 if self.decoupled else wd, "dwd": wd if self.decoupled else 0.0,
                "eps": self.eps, "b1": b1, "b2": b2, "bc1": 1 - b1**step, "bc2": 1 - b2**step}


class AdamW(Adam):
    """``torch.optim.AdamW``: Adam with decoupled weight decay (default 1e-2)."""

    decoupled = True

    def __init__(self, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
        super().__init__(lr, betas, eps, weight_decay)


BY_NAME = {
    "sgd": lambda **kw: SGD(**kw),
    "momentum": lambda **kw: SGD(momentum=0.9, **kw),
    "nesterov": lambda **kw: SGD(momentum=0.9, nesterov=True, **kw),
    "adagrad": lambda **kw: Adagrad(**kw),
    "rmsprop": lambda **kw: RMSprop(**kw),
    "adam": lambda **kw: Adam(**kw),
    "adamw": lambda **kw: AdamW(**kw),
}


def make(optimizer, lr=None, weight_decay=None):
    """An Optimizer from a name (with optional lr / weight decay) or an Optimizer itself."""
    if isinstance(optimizer, Optimizer):
        if lr is not None:
            _check_positive("lr", lr)
            optimizer.lr = float(lr)
        if weight_decay is not None:
            optimizer.weight_decay = float(weight_decay)
        return optimizer
    if optimizer not in BY_NAME:
        raise GradcError(f"unknown optimizer {optimizer!r}; use one of {', '.join(BY_NAME)}")
    kwargs = {}
    if lr is not None:
        kwargs["lr"] = lr
    if weight_decay is not None:
        kwargs["weight_decay"] = weight_decay
    return BY_NAME[optimizer](**kwargs)


def _check_positive(name, value):
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0 \
            or not np.isfinite(value):
        raise GradcError(f"{name} must be a positive number, got {value!r}")


def _check_nonnegative(name, value):
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not value >= 0 \
            or not np.isfinite(value):
        raise GradcError(f"{name} must be a non-negative number, got {value!r}")
