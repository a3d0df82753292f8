"""Training data from files, mapped onto a program's inputs by name.

``.npz``: one array per input, by key.  ``.csv``: a header row names the
columns; a column named like an input fills it (as ``(N,)`` or ``(N, 1)``), and
columns ``x[0], x[1], ...`` fill the features of input ``x`` of shape ``(B, k)``.
"""
from pathlib import Path

import numpy as np

from runtime.errors import DataError


def read(path, inputs):
    """A dict of arrays for ``inputs`` (``Program.inputs``) from an .npz or .csv file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no such data file: {path}")
    if path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except Exception as e:  # numpy raises many types for a damaged archive
            raise DataError(f"cannot read {path}: {e}") from None
    if path.suffix == ".csv":
        return _read_csv(path, inputs)
    raise DataError(f"data file {path} must end in .npz or .csv")


def _read_csv(path, inputs):
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read {path}: {e}") from None
    rows = [line for line in lines if line.strip()]
    if not rows:
        raise DataError(f"{path} is empty")
    header = [h.strip() for h in rows[0].split(",")]
    try:
        table = np.array([[float(v) for v in row.split(",")] for row in rows[1:]], dtype=float)
    except ValueError as e:
        raise DataError(f"{path}: a value is not a number ({e})") from None
    if table.size == 0:
        raise DataError(f"{path} has a header but no rows")
    if table.ndim != 2 or table.shape[1] != len(header):
        raise DataError(f"{path}: rows do not all have {len(header)} values")
    columns = {h: table[:, i] for i, h in enumerate(header)}
    used = set()
    data = {}
    for name, (shape, dtype) in inputs.items():
        if name in columns:
            col = columns[name]
            used.add(name)
            data[name] = col if len(shape) == 1 else col[:, None]
        else:
            parts = sorted((int(h[len(name) + 1:-1]), h) for h in columns
                           if h.startswith(name + "[") and h.endswith("]")
                           and h[len(name) + 1:-1].isdigit())
            if parts:
                used.update(h for _, h in parts)
                data[name] = np.stack([columns[h] for _, h in parts], axis=1)
        if name in data and dtype.startswith("int"):
            data[name] = data[name].astype(np.int64)
    unused = [h for h in header if h not in used]
    if unused:
        raise DataError(f"{path}: column {unused[0]!r} matches no model input "
                        f"(inputs: {', '.join(inputs)})")
    return data
