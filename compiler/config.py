"""Every setting of gradc, read from the environment in one place.

``GRADC_DEBUG`` (0-5): 1 graph summary, 2 per-kernel list, 3 simplified sympy
bodies, 4 generated source, 5 the graph as text.  ``GRADC_CACHE_DIR``: where
generated modules are written (default ``~/.cache/gradc``).
"""
import os
from pathlib import Path

VERSION = "0.1.0"


def debug_level():
    """The ``GRADC_DEBUG`` level as an int (0 when unset or not a number)."""
    try:
        return int(os.environ.get("GRADC_DEBUG", "0"))
    except ValueError:
        return 0


def cache_dir():
    """The directory generated modules are written to."""
    return Path(os.environ.get("GRADC_CACHE_DIR") or Path.home() / ".cache" / "gradc")


def templates_dir():
    """The jinja2 templates: inside the installed package, or the source tree's."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "templates", here.parent / "templates"):
        if (candidate / "numpy").is_dir():
            return candidate
    raise FileNotFoundError("gradc templates not found next to the compiler package")
