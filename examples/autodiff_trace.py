"""Seed 003's autodiff example: the forward primal and reverse adjoint traces of

    y = f(x1, x2) = ln(x1) + x1*x2 - sin(x2)      at (x1, x2) = (2, 5)

Run it:  gradc trace examples/autodiff_trace.py --at x1=2,x2=5
(y = 11.652, bar x1 = 5.5, bar x2 = 1.716, as in the seed's table.)
"""
from compiler import Model, Param, ops as F

x1, x2 = Param("x1", ()), Param("x2", ())
y = F.log(x1) + x1 * x2 - F.sin(x2)
model = Model(inputs=[], outputs={"y": y}, loss=y)
