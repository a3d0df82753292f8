"""Every kernel of the examples compiles as Triton's JIT compiles it on a GPU (sm_90).

On a GPU the JIT specializes arguments: an integer equal to 1 becomes a constant,
integers and pointers divisible by 16 get an alignment hint; each specialization and
each autotune config is a separate compile.  ``jitdriver`` replaces Triton's driver by
one that reports an H100 and compiles instead of launching, and makes the calls the
runtime makes (every entry point, ``train_epoch`` with its minibatch views, the updates)
at several batch sizes.  It runs in a subprocess: Triton must be imported without
``TRITON_INTERPRET=1``, which the other tests set.
"""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch", reason="the Triton backend needs torch")
pytest.importorskip("triton", reason="triton is not installed: the Triton backend is not checked")

from compiler import compile, modelfile  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
MODEL_FILES = sorted(p.stem for p in (ROOT / "examples").glob("*.py")
                     if re.search(r"^model = ", p.read_text(), re.M))


def compile_as_the_jit_does(example, dtypes, sizes):
    """The failures (and kernels never launched) of ``example``'s Triton modules, one
    subprocess per dtype (they run side by side)."""
    model = modelfile.load(ROOT / "examples" / f"{example}.py")["model"]
    paths = [str(compile(model, backend="triton", dtype=d).path) for d in dtypes]
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    runs = [subprocess.Popen([sys.executable, str(ROOT / "tests" / "jitdriver.py"),
                              ",".join(map(str, sizes)), path], env=env, cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for path in paths]
    problems = []
    for dtype, path, run in zip(dtypes, paths, runs):
        out, err = run.communicate()
        assert run.returncode == 0, err[-3000:]
        report = json.loads(out)[path]
        problems += [f"{dtype}: {f}" for f in report["failures"]]
        problems += [f"{dtype}: {k} never launched" for k in report["not_launched"]]
        assert report["launches"] > 0
    return problems


def test_the_example_list_is_complete():
    assert {"digits", "seed_regression", "logistic_binary", "toy_composite"} <= set(MODEL_FILES)


@pytest.mark.parametrize("example", ["digits", "seed_regression"])
def test_kernels_compile_at_batch_sizes_1_and_7(example):
    problems = compile_as_the_jit_does(example, ["float32", "float64"], [1, 7])
    assert not problems, "\n".join(problems)


@pytest.mark.slow
@pytest.mark.parametrize("example", MODEL_FILES)
def test_every_kernel_compiles_at_batch_sizes_1_7_and_32(example):
    problems = compile_as_the_jit_does(example, ["float32", "float64"], [1, 7, 32])
    assert not problems, "\n".join(problems)


def test_a_whole_tensor_reduction_split_over_programs_compiles():
    """At batch 40,000 the regression's mean squared error adds 40,000 values: its first
    pass runs on 3 programs (``RED_SPLIT`` = 16,384 values each) and its second pass adds
    their results; both specializations compile as the JIT compiles them."""
    problems = compile_as_the_jit_does("seed_regression", ["float32"], [40_000])
    assert not problems, "\n".join(problems)
