"""Checkpoints: everything needed to resume training exactly, written atomically.

A checkpoint file is one header line ``GRADC-CHECKPOINT 1 <sha256>`` followed by
an ``.npz`` archive of the parameters, the optimizer state and a JSON record
(epoch, step, RNG state, history, settings, model signature).  It is written
to a temporary file, fsynced and renamed, so the previous checkpoint stays
whole until the new one is complete; on reading, the checksum catches a
truncated or altered file.
"""
import hashlib
import io
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from runtime.errors import CheckpointError

MAGIC = b"GRADC-CHECKPOINT 1 "


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
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(header + payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


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
