"""Loading a user's model file: a Python file defining ``model`` (and maybe ``data``).

Every failure becomes a one-line ``GradcError`` naming the file and line it
comes from: a missing file, a syntax error, an exception while building the
graph, a missing or wrong ``model``.
"""
import os
import sys
import traceback
from pathlib import Path

from compiler.model import Model
from runtime.data import read as read_data
from runtime.errors import DataError, GradcError


def load(path):
    """Run the model file at ``path``; return its namespace (with ``model`` checked)."""
    path = Path(path)
    if not path.is_file():
        raise GradcError(f"no such model file: {path}")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise GradcError(f"cannot read model file {path}: {e}") from None
    try:
        code = compile(text, str(path), "exec")
    except SyntaxError as e:
        raise GradcError(f"syntax error: {e.msg}", where=f"{path}:{e.lineno}") from None
    namespace = {"__name__": "__gradc_model__", "__file__": str(path)}
    sys.path.insert(0, str(path.parent.resolve()))
    try:
        exec(code, namespace)
    except GradcError:
        raise
    except Exception as e:  # a bug in the user's file: name it and its line, no traceback
        raise GradcError(f"{type(e).__name__}: {e}", where=_innermost(e, path)) from None
    except SystemExit as e:  # sys.exit("message") in the file: its message, one line
        raise GradcError(f"the model file exited: {e}", where=_innermost(e, path)) from None
    finally:
        sys.path.remove(str(path.parent.resolve()))
    model = namespace.get("model")
    if model is None:
        raise GradcError("the model file defines no `model` (a compiler.Model)", where=str(path))
    if not isinstance(model, Model):
        raise GradcError(f"`model` must be a compiler.Model, got {type(model).__name__}",
                         where=str(path))
    if model.name is None:
        model.name = path.stem
    return namespace


def _innermost(exc, path):
    target = os.path.abspath(path)
    where = str(path)
    for frame in traceback.extract_tb(exc.__traceback__):
        if os.path.abspath(frame.filename) == target:
            where = f"{path}:{frame.lineno}"
    return where


def load_data(namespace, path, inputs, data_file=None, seed=0):
    """Training data: from ``data_file`` (.npz or .csv, by input name) or the file's ``data(seed)``."""
    if data_file is not None:
        return read_data(data_file, inputs)
    fn = namespace.get("data")
    if fn is None:
        raise GradcError("no data: the model file defines no data() and no --data file was given",
                         where=str(path))
    try:
        data = fn(seed=seed)
    except Exception as e:
        raise GradcError(f"data() failed: {type(e).__name__}: {e}", where=_innermost(e, path)) from None
    except SystemExit as e:  # a data() that exits with a message (a missing optional package)
        raise GradcError(f"data() failed: {e}", where=_innermost(e, path)) from None
    if not isinstance(data, dict):
        raise DataError(f"data() must return a dict of arrays, got {type(data).__name__}",
                        where=str(path))
    return data
