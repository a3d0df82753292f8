"""Checkpoints: everything needed to resume training exactly, written atomically.

A checkpoint file is one header line ``GRADC-CHECKPOINT 1 <sha256>`` followed by
an ``.npz`` archive of the parameters, the optimizer state and a JSON record
(epoch, step, RNG state, settings, model signature).  It is written to a
temporary file, fsynced and renamed, so the previous checkpoint stays whole
until the new one is complete; on reading, the checksum catches a truncated or
altered file.

The history (every step loss, every epoch's loss, learning rate, validation
loss and metrics) grows with training, so it is not rewritten into each
checkpoint: ``HistoryLog`` appends one JSON line per epoch to ``PATH.history``
and the checkpoint records how many bytes of that file it covers and their
sha256.  A save costs the same at epoch 1000 as at epoch 1.
"""
import hashlib
import io
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from runtime.errors import CheckpointError, GradcError

MAGIC = b"GRADC-CHECKPOINT 1 "


def umask():
    """The process's umask (read by setting it and putting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomic(path, data):
    """Write ``data`` (bytes) to ``path``: a temporary file, fsync, rename, fsync the directory.

    Readers see the old file or the whole new one; the file's mode follows the
    umask, as a file created by ``open`` does (``mkstemp`` alone would leave 0600).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~umask())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _fsync_dir(directory):
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def check_writable(path, what="checkpoint"):
    """A one-line ``GradcError`` unless a file can be written at ``path`` (its directory is
    created); called before training so that no work is lost at the first save."""
    path = Path(path)
    if path.is_dir():
        raise GradcError(f"cannot write {what} {path}: it is a directory")
    blocking = next((p for p in path.parents if p.exists()), None)
    if blocking is not None and not blocking.is_dir():
        raise GradcError(f"cannot write {what} {path}: {blocking} is a file, not a directory")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".probe"):
            pass
    except OSError as e:
        raise GradcError(f"cannot write {what} {path}: {e.strerror or e}") from None
    return path


def save(path, params, state, record):
    """Write a checkpoint atomically to ``path``."""
    arrays = {f"param/{k}": v for k, v in params.items()}
    for name, buffers in state.items():
        for s, v in buffers.items():
            arrays[f"state/{name}/{s}"] = v
    arrays["record"] = np.frombuffer(json.dumps(record).encode(), dtype=np.uint8)
    blob = io.BytesIO()
    np.savez(blob, **arrays)
    payload = blob.getvalue()
    header = MAGIC + hashlib.sha256(payload).hexdigest().encode() + b"\n"
    write_atomic(path, header + payload)


def load(path):
    """``(params, state, record)`` from a checkpoint; ``CheckpointError`` naming any problem."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise CheckpointError(f"cannot read checkpoint {path}: {e.strerror or e}") from None
    header, _, payload = raw.partition(b"\n")
    if not header.startswith(MAGIC):
        raise CheckpointError(f"{path} is not a gradc checkpoint")
    if hashlib.sha256(payload).hexdigest().encode() != header[len(MAGIC):]:
        raise CheckpointError(f"checkpoint {path} is corrupt or truncated (checksum mismatch)")
    try:
        with np.load(io.BytesIO(payload), allow_pickle=False) as z:
            params, state, record = {}, {}, None
            for key in z.files:
                if key == "record":
                    record = json.loads(z[key].tobytes().decode())
                elif key.startswith("param/"):
                    params[key[6:]] = z[key]
                elif key.startswith("state/"):
                    name, _, s = key[6:].rpartition("/")
                    state.setdefault(name, {})[s] = z[key]
    except (ValueError, OSError, KeyError) as e:
        raise CheckpointError(f"checkpoint {path} cannot be read: {e}") from None
    if record is None:
        raise CheckpointError(f"checkpoint {path} has no training record")
    return params, state, record


def history_path(path):
    """The file next to checkpoint ``path`` that holds its history: ``PATH.history``."""
    path = Path(path)
    return path.with_name(path.name + ".history")


class HistoryLog:
    """The append-only history of a checkpointed run: one JSON line per epoch.

    ``add`` keeps an epoch's entry in memory; ``flush`` appends the pending
    entries (after cutting the file back to what the last checkpoint covers, so
    lines written after it by a run that was killed are dropped), fsyncs, and
    returns ``{"bytes", "sha256"}`` for the next checkpoint's record.
    """

    def __init__(self, path, size=0, digest=None):
        self.path = history_path(path)
        self.size = size
        self.digest = digest or hashlib.sha256()
        self.pending = []

    @classmethod
    def resume(cls, path, coverage):
        """``(log, entries)``: the first ``coverage["bytes"]`` bytes of the history file,
        checked against ``coverage["sha256"]``, parsed, and a log that appends after them."""
        log_path = history_path(path)
        size = coverage["bytes"]
        try:
            with open(log_path, "rb") as f:
                raw = f.read(size)
        except OSError as e:
            raise CheckpointError(f"cannot read the history of checkpoint {path}: "
                                  f"{e.strerror or e}") from None
        digest = hashlib.sha256(raw)
        if len(raw) != size or digest.hexdigest() != coverage["sha256"]:
            raise CheckpointError(f"history file {log_path} does not match checkpoint {path} "
                                  "(truncated, altered or from another run)")
        entries = [json.loads(line) for line in raw.decode().splitlines()]
        return cls(path, size, digest), entries

    def add(self, entry):
        self.pending.append(json.dumps(entry) + "\n")

    def flush(self):
        data = "".join(self.pending).encode()
        self.pending = []
        mode = "r+b" if self.path.exists() else "wb"
        with open(self.path, mode) as f:
            f.seek(self.size)
            f.truncate()
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        self.size += len(data)
        self.digest.update(data)
        return {"bytes": self.size, "sha256": self.digest.hexdigest()}
