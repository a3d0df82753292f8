"""The on-disk cache of generated modules, keyed by a content hash.

The key covers the compiler version, every template's contents, the options
and the full text of the optimised graph (with source lines), so anything that
could change the generated source changes the key.  Files are written
atomically: a temporary file in the same directory, fsync, rename.
"""
import hashlib
import os
import tempfile
from pathlib import Path

from compiler.codegen.templates import templates_digest
from compiler.config import VERSION, cache_dir


def cache_key(graph_text, options):
    h = hashlib.sha256()
    for part in (VERSION, templates_digest(), repr(sorted(options.items())), graph_text):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()


def write_atomic(path, text):
    """Write ``text`` to ``path`` so that readers see the old file or the whole new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def cached_module(key, backend, generate):
    """The path of the module for ``key``, generating and writing it on a miss."""
    path = cache_dir() / f"gradc_{backend}_{key[:24]}.py"
    if path.exists():
        return path
    return write_atomic(path, generate())
