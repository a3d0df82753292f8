"""Every op, as one row of the op table, against numpy, PyTorch and finite differences."""
import pytest

from compiler.ops.registry import OPS, missing_rules
from oplib import ROWS, check_row, check_row_higher_order

CASES = [(row, shapes) for row in ROWS for shapes in row.shapes]


@pytest.mark.parametrize("row,shapes", CASES,
                         ids=[f"{r.name}-{'x'.join(map(str, s))}" for r, s in CASES])
def test_op_row(row, shapes):
    check_row(row, shapes)


@pytest.mark.parametrize("row,shapes", CASES,
                         ids=[f"{r.name}-{'x'.join(map(str, s))}" for r, s in CASES])
def test_op_row_jvp_and_hvp(row, shapes):
    check_row_higher_order(row, shapes)


def test_every_registered_op_has_a_row():
    covered = set()
    for row in ROWS:
        covered.update(row.ops or (row.name,))
    # (a "mode" op never reaches a backend: Model resolves it; test_convnets.py checks it)
    untested = sorted(name for name, op in OPS.items()
                      if op.kind not in ("leaf", "mode") and not op.user_defined
                      and name not in covered)
    assert untested == []


def test_registry_is_complete():
    assert missing_rules() == []
