"""Compile Triton kernels as the JIT does on a GPU, without a GPU.

``compiling()`` installs ``CompileOnlyDriver`` as Triton's active driver: it reports an
H100 (``GPUTarget("cuda", 90, 32)``), and its launcher does nothing.  A kernel call
``kernel[grid](*args)`` then goes through Triton's own launch path
(``JITFunction.run``): the arguments are specialized as on a GPU (an integer equal to 1
becomes a constant, integers and pointers divisible by 16 get an alignment hint), the
kernel is compiled for sm_90 (PTX and cubin), and the launch is skipped.  Pointer
arguments may be CPU torch tensors: only their ``data_ptr()`` is read.  Under it,
``triton.autotune`` compiles every config in turn instead of benchmarking them, and a
config that fails to compile is recorded in ``driver.failures`` (the call goes on).
"""
import contextlib
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch
from triton.backends.compiler import GPUTarget
from triton.backends.driver import DriverBase
from triton.backends.nvidia.driver import ty_to_cpp
from triton.runtime import driver as _driver
from triton.runtime.autotuner import Autotuner

H100 = {"max_shared_mem": 232448, "max_num_regs": 65536, "multiprocessor_count": 132}


class _Utils:
    """The driver's device calls: an H100's properties, and no binary loaded."""

    def get_device_properties(self, device):
        return dict(H100)

    def load_binary(self, name, kernel, shared, device):
        return "not loaded", None, 0, 0, 1024  # module, function, registers, spills, max threads

    def unload_module(self, module):
        pass


class _Launcher:
    """Made for each compiled kernel; its call (the launch) only records the kernel's name."""

    def __init__(self, src, metadata):
        self.name = metadata.name

    def __call__(self, *args):
        _driver.active.launched.append(self.name)


class CompileOnlyDriver(DriverBase):
    """A CUDA driver for an sm_90 device that compiles kernels and launches none."""

    launcher_cls = _Launcher

    def __init__(self):
        super().__init__()
        self.utils = _Utils()
        self.launched = []   # the name of each kernel launched (once per autotune config)
        self.failures = []   # (kernel name, config, arguments, error) of those that failed

    @classmethod
    def is_active(cls):
        return False  # never chosen by Triton itself: only by compiling()

    def get_current_target(self):
        return GPUTarget("cuda", 90, 32)

    def get_current_device(self):
        return 0

    def set_current_device(self, device):
        pass

    def get_current_stream(self, device=None):
        return 0

    def get_active_torch_device(self):
        return torch.device("cpu")

    def get_device_capability(self, device=None):
        return (9, 0)

    def map_python_to_cpp_type(self, ty):
        return ty_to_cpp(ty)

    def get_benchmarker(self):
        raise RuntimeError("CompileOnlyDriver runs no benchmark")


def _describe(args):
    """The arguments as the JIT sees them: integers, and tensors' shapes and alignment."""
    out = []
    for a in args:
        if isinstance(a, torch.Tensor):
            out.append(str(tuple(a.shape)) + ("" if a.data_ptr() % 16 == 0 else " unaligned"))
        else:
            out.append(repr(a))
    return ", ".join(out)


def _every_config(driver):
    def run(self, *args, **kwargs):
        """Autotuner.run: compile (and not launch) the kernel for every config."""
        name = self.base_fn.__name__
        for config in self.configs:
            try:
                self.fn.run(*args, **kwargs, **config.all_kwargs())
            except Exception as e:  # noqa: BLE001 (every failure is recorded and reported)
                message = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
                driver.failures.append((name, str(config), _describe(args), message))
    return run


@contextlib.contextmanager
def compiling():
    """``CompileOnlyDriver`` as Triton's active driver (and autotuning compiling every
    config) inside the block; yields the driver.  Triton, and the kernels' module, must have
    been imported without ``TRITON_INTERPRET=1``, or the kernels are the interpreter's
    (hence ``test_jit_compile.py`` runs this file as a script, in a subprocess)."""
    driver = CompileOnlyDriver()
    saved_run, saved_interpret = Autotuner.run, os.environ.pop("TRITON_INTERPRET", None)
    saved_driver = _driver._active
    _driver.set_active(driver)
    Autotuner.run = _every_config(driver)
    try:
        yield driver
    finally:
        Autotuner.run = saved_run
        _driver._active = saved_driver  # (None: Triton chooses on first use)
        if saved_interpret is not None:
            os.environ["TRITON_INTERPRET"] = saved_interpret


def _inputs(prog, rows):
    """A batch of ``rows`` examples of every input: zeros, in the module's dtype (labels int64)."""
    from runtime.tkernels import to_device

    batch = {}
    for name, (shape, dtype) in prog.inputs.items():
        dims = tuple(int(d) if d.isdigit() else rows for d in shape)
        batch[name] = np.zeros(dims, dtype=np.int64 if dtype.startswith("int") else prog.dtype)
    return to_device(batch)


def _optimizers(rules):
    """One optimizer for each update rule the module compiled."""
    from runtime import optim

    chosen = {}
    for name in optim.BY_NAME:
        opt = optim.make(name)
        chosen.setdefault(opt.rule, opt)
    return [chosen[r] for r in rules]


def exercise(prog, sizes):
    """Make every call the runtime makes to ``prog``'s kernels, at each batch size in
    ``sizes``: each entry point on a fresh batch and on a view that starts one row into
    its array (as ``x[1:]``), ``train_epoch`` over ``size + 1`` rows in minibatches of
    ``size`` (the last one of one row, an unaligned view) with parameters and gradients
    as views of one flat buffer, each update rule on that buffer (once per step) and on
    each parameter alone (as ``Program.update``).  Errors outside autotuned kernels are
    returned as ``(call, error)``."""
    from runtime.tkernels import to_device
    from runtime.train import flat_parameters

    module, errors = prog.module, []
    opts = _optimizers(prog.optimizers)
    params = to_device(prog.init_params(0))
    flat, views = flat_parameters(prog, prog.init_params(0), on_device=True)
    flat_grads, grads = flat_parameters(prog, None, on_device=True)
    states = [opt.init_state(flat) for opt in opts]

    def step_update(step):
        for opt, state in zip(opts, states):
            update = getattr(module, f"update_{opt.rule}")
            update(flat, flat_grads, state, **opt.hyper(step, opt.lr))

    def call(what, fn, *args, **kwargs):
        try:
            fn(*args, **kwargs)
        except Exception as e:  # noqa: BLE001 (every failure is reported)
            errors.append((what, f"{type(e).__name__}: {e}".splitlines()[0]))

    for size in sizes:
        fresh = _inputs(prog, size)
        shifted = {k: v[1:] for k, v in _inputs(prog, size + 1).items()}
        for label, batch in (("", fresh), (" [1:]", shifted)):
            for entry, names in module.ENTRY_INPUTS.items():
                args = (params, {k: batch[k] for k in names})
                args += ((0, 1),) if entry in ("loss", "loss_and_grad") else ()
                call(f"{entry} at {size}{label}", getattr(module, entry), *args)
        call(f"train_epoch at {size}", module.train_epoch, views, _inputs(prog, size + 1), size,
             grads, step_update, 0, 0)
    for opt in opts:
        for name, p in params.items():
            state = opt.init_state(p)
            call(f"update_{opt.rule} of {name}", getattr(module, f"update_{opt.rule}"),
                 p.clone(), p.clone(), state, **opt.hyper(1, opt.lr))
    return errors


def check(path, sizes):
    """Compile every kernel of the generated Triton module at ``path`` as ``exercise``'s
    calls launch them.  Returns the failures (one line each) and the device kernels that
    no call launched."""
    from runtime import tkernels
    from runtime.program import Program

    # nothing runs, so results are zero-filled (train_epoch stops at a loss that is NaN)
    output, tkernels.output = tkernels.output, tkernels.zeros
    try:
        with compiling() as driver:
            prog = Program.load(path)
            errors = exercise(prog, sizes)
    finally:
        tkernels.output = output
    # a failed compile is not cached: each call of it fails again and is reported once
    failures = list(dict.fromkeys(f"{name} [{config}] ({args}): {error}"
                                  for name, config, args, error in driver.failures))
    failures += [f"{what}: {error}" for what, error in errors]
    devices = {k["device"] for k in prog.module.KERNELS}
    devices |= {f"update_{r}_kernel" for r in prog.optimizers}
    return {"failures": failures, "not_launched": sorted(devices - set(driver.launched)),
            "launches": len(driver.launched)}


if __name__ == "__main__":
    # python tests/jitdriver.py SIZES MODULE.py...: a JSON report per module
    # (run with TRITON_INTERPRET unset, before anything imports triton in interpreter mode)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    sizes = [int(s) for s in sys.argv[1].split(",")]
    print(json.dumps({path: check(path, sizes) for path in sys.argv[2:]}))
