"""Optimizer update rules as sympy expressions, compiled into the generated module.

A rule maps the parameter ``p``, its gradient ``g``, its state buffers and
run-time hyperparameters to new values.  The codegen prints each assignment
with the backend's printer into one update kernel over all parameters, so
changing a hyperparameter (or the step count, which enters through the
bias corrections the runtime computes) never recompiles.  Assignments run in
order, in place: later ones see the new values of earlier ones.

The rules follow ``torch.optim`` exactly (``runtime.optim`` computes the
per-step hyperparameters, e.g. Adam's bias corrections ``bc1 = 1 - beta1**t``).

>>> RULES["sgd"].assignments
(('p', -lr*(g + p*wd) + p),)
"""
from dataclasses import dataclass

import sympy

p, g = sympy.symbols("p g", real=True)
lr, wd, dwd, eps = sympy.symbols("lr wd dwd eps", real=True)
mu, c, nesterov = sympy.symbols("mu c nesterov", real=True)
b1, b2, bc1, bc2, alpha, centered = sympy.symbols("b1 b2 bc1 bc2 alpha centered", real=True)
v, m, s, buf, gavg = sympy.symbols("v m s buf gavg", real=True)


@dataclass(frozen=True)
class UpdateRule:
    name: str
    hyper: tuple          # run-time hyperparameter names, in call order
    state: tuple          # per-parameter state buffers
    assignments: tuple    # (target, sympy expression), applied in order, in place
    doc: tuple            # the rule in words, one line each


def _rule(name, hyper, state, assignments, doc):
    return UpdateRule(name, tuple(str(h) for h in hyper), tuple(str(x) for x in state),
                      tuple((str(t), e) for t, e in assignments), tuple(doc))


G = g + wd * p  # the gradient with L2 weight decay folded in, as torch.optim does

RULES = {r.name: r for r in (
    _rule("sgd", (lr, wd), (), [(p, p - lr * G)],
          ["p <- p - lr * (g + wd*p)"]),
    _rule("momentum", (lr, wd, mu, c, nesterov), (v,),
          [(v, mu * v + c * G),
           (p, p - lr * (nesterov * (G + mu * v) + (1 - nesterov) * v))],
          ["v <- mu*v + c*(g + wd*p)       (c = 1, or 1 - dampening after the first step)",
           "p <- p - lr*v                  (nesterov: p - lr*(g + wd*p + mu*v))"]),
    _rule("adagrad", (lr, wd, eps), (s,),
          [(s, s + G**2), (p, p - lr * G / (sympy.sqrt(s) + eps))],
          ["s <- s + (g + wd*p)**2",
           "p <- p - lr*(g + wd*p)/(sqrt(s) + eps)   (lr already decayed by lr_decay)"]),
    _rule("rmsprop", (lr, wd, eps, alpha, mu, centered), (s, gavg, buf),
          [(s, alpha * s + (1 - alpha) * G**2),
           (gavg, alpha * gavg + (1 - alpha) * G),
           (buf, mu * buf + G / (sympy.sqrt(s - centered * gavg**2) + eps)),
           (p, p - lr * buf)],
          ["s <- alpha*s + (1 - alpha)*(g + wd*p)**2;  gavg likewise (centered only)",
           "buf <- mu*buf + (g + wd*p)/(sqrt(s - centered*gavg**2) + eps)",
           "p <- p - lr*buf"]),
    _rule("adam", (lr, wd, dwd, eps, b1, b2, bc1, bc2), (m, v),
          [(m, b1 * m + (1 - b1) * G),
           (v, b2 * v + (1 - b2) * G**2),
           (p, p * (1 - lr * dwd) - lr / bc1 * m / (sympy.sqrt(v) / sympy.sqrt(bc2) + eps))],
          ["m <- b1*m + (1 - b1)*(g + wd*p);  v <- b2*v + (1 - b2)*(g + wd*p)**2",
           "p <- p*(1 - lr*dwd) - lr/bc1 * m/(sqrt(v)/sqrt(bc2) + eps)",
           "(bc1 = 1 - b1**t, bc2 = 1 - b2**t; adamw decays with dwd, adam with wd)"]),
)}
