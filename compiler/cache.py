"""The on-disk cache of generated modules, keyed by a content hash.

The key covers the compiler version and source, every template's contents, the
options and the full text of the optimised graph (with source lines), so anything
that could change the generated source changes the key.  Files are written atomically (a
temporary file in the same directory, fsync, rename), so processes compiling the
same model at once each leave the one complete file.  Each module's first line
carries the sha256 of the rest: a truncated or altered module is detected on the
next compile and regenerated.  A cache directory that cannot be written falls
back to a private temporary one, with a warning.
"""
import functools
import hashlib
import os
import sys
import tempfile
from pathlib import Path

from compiler.codegen.templates import templates_digest
from compiler.config import VERSION, cache_dir

CHECKSUM = "# gradc-sha256: "


@functools.lru_cache(maxsize=None)
def compiler_digest():
    """A hash of the compiler's own source, so a changed compiler never reuses old modules."""
    root = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(path.read_bytes())
    return h.hexdigest()


def cache_key(graph_text, options):
    h = hashlib.sha256()
    for part in (VERSION, compiler_digest(), templates_digest(), repr(sorted(options.items())),
                 graph_text):
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
        mask = os.umask(0o022)  # mkstemp makes 0600; the file follows the umask, as open() does
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def with_checksum(source):
    return f"{CHECKSUM}{hashlib.sha256(source.encode()).hexdigest()}\n{source}"


def is_intact(path):
    """True when the module at ``path`` still matches the checksum on its first line."""
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError):
        return False
    first, _, rest = text.partition("\n")
    return first == f"{CHECKSUM}{hashlib.sha256(rest.encode()).hexdigest()}"


def writable_cache():
    """The cache directory, or a private temporary one when it cannot be written."""
    directory = cache_dir()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".probe."):
            pass
        return directory
    except OSError as e:
        fallback = Path(tempfile.gettempdir()) / f"gradc-cache-{os.getuid()}"
        fallback.mkdir(parents=True, exist_ok=True)
        print(f"gradc: warning: cache directory {directory} is not writable "
              f"({e.strerror or e}); using {fallback}", file=sys.stderr)
        return fallback


def cached_module(key, backend, generate):
    """The path of the module for ``key``: reused when intact, else generated and written."""
    path = writable_cache() / f"gradc_{backend}_{key[:24]}.py"
    if path.exists():
        if is_intact(path):
            return path
        print(f"gradc: warning: cached module {path} is damaged; regenerating it", file=sys.stderr)
    return write_atomic(path, with_checksum(generate()))
