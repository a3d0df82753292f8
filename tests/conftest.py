"""Test setup: a private cache directory for generated modules, and shared helpers."""
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

_cache = tempfile.mkdtemp(prefix="gradc-test-cache-")
os.environ["GRADC_CACHE_DIR"] = _cache
# No GPU here: Triton kernels run in Triton's CPU interpreter (set before triton is imported).
os.environ.setdefault("TRITON_INTERPRET", "1")
# A helper that imports triton (run as a script by test_jit_compile.py): no doctests to collect
collect_ignore = ["jitdriver.py"]
