"""Optimizer update rules as sympy expressions, compiled into the generated module.

A rule maps the parameter ``p``, its gradient ``g``, its state (e.g. a
velocity) and run-time hyperparameters (``lr``, ...) to new values.  The
codegen prints each assignment with the backend's sympy printer into one
update kernel over all parameters, so changing the learning rate never
recompiles.

>>> RULES["sgd"].assignments
(('p', -g*lr + p),)
"""
from dataclasses import dataclass

import sympy

p, g, lr = sympy.symbols("p g lr", real=True)


@dataclass(frozen=True)
class UpdateRule:
    name: str
    hyper: tuple          # run-time hyperparameter names, in call order
    state: tuple          # per-parameter state buffers (zeros at the start)
    assignments: tuple    # (target, sympy expression), applied in order, in place
    doc: str


RULES = {
    "sgd": UpdateRule("sgd", ("lr",), (), (("p", p - lr * g),), "p <- p - lr * g"),
}
