"""Running the ``gradc`` command line in a subprocess, for the CLI tests."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def gradc(*args, cwd=None, env=None, interpret=True):
    """``python -m compiler ARGS`` from ``cwd`` (default: the repository), output captured.

    ``interpret=False`` leaves out TRITON_INTERPRET, as on a machine that did not set it."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    if not interpret:
        env.pop("TRITON_INTERPRET", None)
    return subprocess.run([sys.executable, "-m", "compiler", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd or ROOT, env=env, timeout=300)


def one_line_error(result):
    """The one line a failed ``gradc`` run printed, after checking it exited with status 2
    and printed nothing else (no traceback)."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, (result.returncode, result.stderr)
    return lines[0]


def compile_error(tmp_path, source):
    """The one-line error of ``gradc compile`` on a model file ``model.py`` of ``source``."""
    path = tmp_path / "model.py"
    path.write_text(textwrap.dedent(source))
    return one_line_error(gradc("compile", str(path)))
