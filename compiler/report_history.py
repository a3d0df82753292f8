"""The training history shown by ``gradc report --history PATH.history``.

``gradc train --checkpoint PATH`` appends one JSON line per epoch to ``PATH.history``;
the checkpoint ``PATH`` beside it records the model's parameter and input shapes and
how many bytes of the history it covers, with their sha256.  A history is shown only
when that checkpoint is there, belongs to the model, and matches the history: that is
how a history from another model, another run or a damaged file is told apart, each
in one line.  Epochs appended after the last checkpoint (a run that was killed) are
left out, as resuming would leave them out.
"""
from pathlib import Path

from runtime import checkpoint as ckpt
from runtime.errors import GradcError

SUFFIX = ".history"


def _shapes(table):
    return {name: [str(d) for d in shape] for name, shape in table.items()}


def _difference(saved, model):
    """The first difference between the checkpoint's and the model's shapes, in words."""
    for kind in ("params", "inputs"):
        ours, theirs = _shapes(model[kind]), _shapes(saved.get(kind, {}))
        word = "parameter" if kind == "params" else "data input"
        for name in list(ours) + [n for n in theirs if n not in ours]:
            if name not in theirs:
                return f"it has no {word} {name}"
            if name not in ours:
                return f"it has a {word} {name} that the model does not have"
            if ours[name] != theirs[name]:
                return (f"its {word} {name} has shape ({', '.join(theirs[name])}), the model's "
                        f"({', '.join(ours[name])})")
    return None


def read(path, model_file, signature):
    """The history at ``path`` as a dict (``epoch_losses``, ``step_losses``, ``val_losses``,
    ``metrics``, ``lrs``, ``initial_loss``, ``best_epoch``), checked against the model
    (``signature``: its ``params`` and ``inputs`` shapes, as a checkpoint records them)."""
    path = Path(path)
    if not path.name.endswith(SUFFIX) or path.name == SUFFIX:
        raise GradcError(f"--history expects the PATH{SUFFIX} file that `gradc train "
                         f"--checkpoint PATH` writes, got {path}")
    if not path.is_file():
        raise GradcError(f"no such history file: {path}")
    checkpoint = path.with_name(path.name[:-len(SUFFIX)])
    if not checkpoint.is_file():
        raise GradcError(f"history {path} has no checkpoint {checkpoint} beside it (the "
                         "checkpoint tells which model the history belongs to)")
    _, _, record = ckpt.load(checkpoint)
    problem = _difference(record.get("signature", {}), signature)
    if problem:
        raise GradcError(f"history {path} does not belong to {model_file}: {problem} "
                         f"(checkpoint {checkpoint})")
    saved = record.get("history", {})
    if "history_file" not in saved:
        raise GradcError(f"checkpoint {checkpoint} was written by an older gradc; its history "
                         "cannot be read")
    _, entries = ckpt.HistoryLog.resume(checkpoint, saved["history_file"])
    out = {"epoch_losses": [], "step_losses": [], "val_losses": [], "lrs": [], "metrics": {},
           "initial_loss": saved.get("initial_loss"), "best_epoch": saved.get("best_epoch")}
    for entry in entries:
        out["step_losses"].extend(entry["step_losses"])
        out["epoch_losses"].append(entry["epoch_loss"])
        out["lrs"].append(entry["lr"])
        if "val_loss" in entry:
            out["val_losses"].append(entry["val_loss"])
        for name, value in entry["metrics"].items():
            out["metrics"].setdefault(name, []).append(value)
    return out
