"""Shared by the example scripts: the command line (--plots, --fast) and saving figures."""
import argparse
from pathlib import Path


def parse_args(doc, argv=None, **extra):
    """``--plots DIR`` (default plots/) and ``--fast`` (a quick run, used by the tests)."""
    parser = argparse.ArgumentParser(description=doc.strip().splitlines()[0])
    parser.add_argument("--plots", default="plots", help="directory for the PNGs (default plots/)")
    parser.add_argument("--fast", action="store_true", help="a short run (used by the tests)")
    for flag, kwargs in extra.items():
        parser.add_argument(flag, **kwargs)
    return parser.parse_args(argv)


def pyplot():
    """matplotlib's pyplot writing files only (the Agg backend)."""
    from compiler.plot import pyplot as get

    return get()


def save(fig, args, name):
    """Save ``fig`` as ``<plots>/<name>.png``, close it, print and return the path."""
    path = Path(args.plots) / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    pyplot().close(fig)
    print(f"wrote {path}")
    return path
