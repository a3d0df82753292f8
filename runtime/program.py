"""``Program``: a compiled model loaded from its generated module.

The runtime never imports the compiler: a ``Program`` needs only the module
file (and numpy), so a compiled model trains where sympy and jinja2 are absent.

>>> prog = Program.load("model.py")                      # doctest: +SKIP
>>> params = prog.init_params(seed=0)                    # doctest: +SKIP
>>> loss, grads = prog.loss_and_grad(params, {"x": X, "y": Y})  # doctest: +SKIP
"""
import inspect
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from runtime.errors import DataError, GradcError, data_errors
from runtime.init import initial_value
from runtime.loader import load_module


def kernel_source(module, name):
    """The source of kernel ``name`` of a generated module: for Triton, the device
    kernel it launches (with its decorators; several kernels may launch the same one)
    and then its host wrapper."""
    host = inspect.getsource(getattr(module, name))
    row = next((k for k in module.KERNELS if k["name"] == name), {})
    device = getattr(module, row.get("device", f"{name}_kernel"), None)
    if device is None:
        return host
    while not inspect.isfunction(device):  # through triton.autotune and triton.jit
        device = device.fn
    return inspect.getsource(device) + "\n\n" + host


@dataclass(frozen=True)
class KernelInfo:
    """One generated kernel: name, phase, fused graph nodes, flops and bytes (formulas), source."""

    name: str
    phase: str
    nodes: list
    flops: str
    bytes: str
    source: str = field(repr=False)


def _check_classes(name, labels, count, none):
    """Class indices must be in ``[0, count)`` or be ``none`` (an ignored row), as PyTorch's
    cross-entropy and one-hot require: another value would add nothing to the loss."""
    bad = (labels < 0) | (labels >= count)
    if none is not None:
        bad &= labels != none
    if bad.any():
        value = labels[bad].flat[0]
        allowed = f"0 to {count - 1}" + (f" or {none} (ignore_index)" if none is not None else "")
        raise DataError(f"input {name!r} holds class {value}; the model has {count} classes "
                        f"({allowed})")


def _check_indices(name, indices, size):
    """Indices into an axis of ``size`` elements must be in ``[-size, size)``, as numpy's
    take requires (on Triton another value would read zeros and add nothing)."""
    bad = (indices < -size) | (indices >= size)
    if bad.any():
        raise DataError(f"input {name!r} holds index {indices[bad].flat[0]}, outside an axis "
                        f"of {size} elements (-{size} to {size - 1})")


class Program:
    """Forward, loss, gradient and update functions of one compiled model."""

    def __init__(self, module, path, derive=None):
        self.module = module
        self.path = Path(path)
        self._derive = derive  # makes the jvp/hvp module on first use (given by the compiler)
        self._derivatives = None
        dtype = module.DTYPE  # a numpy type, or a torch dtype for the Triton backend
        self.dtype = np.dtype(dtype if isinstance(dtype, type) else str(dtype).replace("torch.", ""))
        self.inputs = module.INPUTS
        self.class_inputs = getattr(module, "CLASS_INPUTS", {})
        self.index_inputs = getattr(module, "INDEX_INPUTS", {})
        self.param_specs = module.PARAMS  # parameters and buffers (trained or not)
        self.buffers = tuple(getattr(module, "BUFFERS", ()))
        self.trainable = [name for name in self.param_specs if name not in self.buffers]
        self.outputs = module.OUTPUTS
        self.metrics = module.METRICS
        self.optimizers = module.OPTIMIZERS
        self.backend = "triton" if "torch" in vars(module) else "numpy"

    @classmethod
    def load(cls, path, derive=None):
        """The Program of the generated module file at ``path``."""
        return cls(load_module(path), path, derive)

    @property
    def source(self):
        return self.path.read_text()

    @property
    def kernels(self):
        out = []
        for k in self.module.KERNELS:
            out.append(KernelInfo(k["name"], k["phase"], list(k["nodes"]), k["flops"], k["bytes"],
                                  kernel_source(self.module, k["name"])))
        return out

    def init_params(self, seed=0):
        """Fresh parameters and buffers: a dict name -> array, drawn reproducibly from ``seed``."""
        return {name: initial_value(init, shape, name, seed, self.dtype)
                for name, (shape, init) in self.param_specs.items()}

    # -- checking what the user passes ---------------------------------------
    def check_params(self, params, names=None):
        names = list(self.param_specs) if names is None else names
        missing = [n for n in names if n not in params]
        if missing:
            raise DataError(f"missing parameters: {', '.join(missing)}")
        out = {}
        for name in names:
            shape = self.param_specs[name][0]
            value = params[name]
            if not _on_device(value):
                value = np.asarray(value)
            if tuple(value.shape) != tuple(shape):
                raise DataError(f"parameter {name!r} has shape {tuple(value.shape)}, "
                                f"expected {tuple(shape)}")
            out[name] = _as_dtype(value, self.dtype)
        return out

    def check_batch(self, batch, names=None):
        """The batch as arrays of the right dtype; raises ``DataError`` naming any mismatch."""
        names = list(self.inputs) if names is None else names
        missing = [n for n in names if n not in batch]
        if missing:
            known = ", ".join(sorted(batch)) or "none"
            raise DataError(f"data has no {', '.join(repr(m) for m in missing)} "
                            f"(model inputs: {', '.join(self.inputs)}; data keys: {known})")
        sizes, out = {}, {}
        for name in names:
            shape, dtype = self.inputs[name]
            value = batch[name]
            if _on_device(value):  # a torch tensor (the Triton backend's): checked where it is
                out[name] = self._check_tensor(name, value, shape, dtype, sizes)
                continue
            value = np.asarray(value)
            if value.ndim != len(shape):
                raise DataError(f"input {name!r} has shape {value.shape}, expected ({', '.join(shape)})")
            for axis, (want, got) in enumerate(zip(shape, value.shape)):
                if want.isdigit():
                    if int(want) != got:
                        raise DataError(f"input {name!r} has shape {value.shape}, "
                                        f"expected ({', '.join(shape)})")
                elif sizes.setdefault(want, (got, name))[0] != got:
                    first = sizes[want]
                    raise DataError(f"size {want} is {first[0]} in input {first[1]!r} "
                                    f"but {got} in input {name!r}")
            if dtype.startswith("float"):
                if value.dtype.kind not in "fiub":
                    raise DataError(f"input {name!r} must be numeric, got dtype {value.dtype}")
                value = value.astype(self.dtype, copy=False)
            elif dtype.startswith("int"):
                if value.dtype.kind not in "iu":
                    if value.dtype.kind == "f" and np.all(np.isfinite(value)) \
                            and np.all(value == np.round(value)):
                        value = value.astype(np.int64)
                    else:
                        raise DataError(f"input {name!r} must hold integers, got dtype {value.dtype}")
                if name in self.class_inputs:
                    _check_classes(name, value, *self.class_inputs[name])
                if name in self.index_inputs:
                    _check_indices(name, value, self.index_inputs[name])
            out[name] = value
        return out

    def _check_tensor(self, name, value, shape, dtype, sizes):
        """An input given as a torch tensor: its shape checked as ``check_batch`` checks an
        array's, its dtype made the module's (on its device: nothing is downloaded)."""
        got = tuple(value.shape)
        if len(got) != len(shape) or any(want.isdigit() and int(want) != n
                                         for want, n in zip(shape, got)):
            raise DataError(f"input {name!r} has shape {got}, expected ({', '.join(shape)})")
        for want, n in zip(shape, got):
            if not want.isdigit() and sizes.setdefault(want, (n, name))[0] != n:
                first = sizes[want]
                raise DataError(f"size {want} is {first[0]} in input {first[1]!r} "
                                f"but {n} in input {name!r}")
        if dtype.startswith("int"):
            if value.is_floating_point() or value.is_complex():
                raise DataError(f"input {name!r} must hold integers, got dtype {value.dtype}")
            return value if str(value.dtype) == "torch.int64" else value.long()
        if not dtype.startswith("float"):
            return value
        if value.is_complex():
            raise DataError(f"input {name!r} must be numeric, got dtype {value.dtype}")
        return _as_dtype(value, self.dtype)

    # -- running -------------------------------------------------------------
    def _run(self, entry, params, batch, rng=None, module=None, extra=()):
        module = module or self.module
        names = module.ENTRY_INPUTS[entry]
        args = [self.check_params(params), self.check_batch(batch, names), *extra]
        # inf and NaN are values here, as in PyTorch (0**-0.5 is inf): no RuntimeWarnings
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"), data_errors():
            if self.backend == "triton":
                from runtime.tkernels import from_device, to_device

                # tensors already on the device stay there, and so do the results then
                on_device = all(_on_device(v) for a in args for v in a.values())
                result = getattr(module, entry)(*to_device(args), rng)
                return result if on_device else from_device(result)
            return getattr(module, entry)(*args, rng)

    def loss(self, params, batch, rng=None):
        """The loss (a float) on one batch; ``rng=(seed, step)`` turns dropout on."""
        return self._run("loss", params, batch, rng)

    def loss_and_grad(self, params, batch, rng=None):
        """``(loss, {param name: gradient})`` on one batch; ``rng=(seed, step)`` turns dropout on."""
        return self._run("loss_and_grad", params, batch, rng)

    def predict(self, params, batch):
        """The model's named outputs on one batch (only the inputs they need are required)."""
        return self._run("predict", params, batch)

    def evaluate(self, params, data, batch_size=4096):
        """The loss and every metric over ``data`` (means over examples, in chunks; a mean
        over counted targets, as cross-entropy with ``ignore_index``, weighs each chunk by
        its counted targets)."""
        params = self.check_params(params)
        data = self.check_batch(data, self.module.ENTRY_INPUTS["evaluate"])
        if self.backend == "triton" and not all(_on_device(v) for v in params.values()):
            from runtime.tkernels import to_device

            params = to_device(params)  # once, not once per chunk
            if n_rows(data) > batch_size:
                data = to_device(data)
        n = next((v.shape[0] for v in data.values() if v.ndim), None)
        if n is None or n <= batch_size:
            return self._run("evaluate", params, data)
        counted = getattr(self.module, "COUNTED_BY", {})
        totals, weights = {}, {}
        for start in range(0, n, batch_size):
            chunk = {k: v[start:start + batch_size] for k, v in data.items()}
            size = next(iter(chunk.values())).shape[0]
            for k, v in self._run("evaluate", params, chunk).items():
                weight = size
                if k in counted:  # (a chunk whose targets are all ignored adds nothing)
                    labels, none = counted[k]
                    weight = int((chunk[labels] != none).sum())
                totals[k] = totals.get(k, 0.0) + (v * weight if weight else 0.0)
                weights[k] = weights.get(k, 0) + weight
        return {k: v / weights[k] if weights[k] else float("nan") for k, v in totals.items()}

    def update(self, params, grads, state, optimizer, step, lr=None):
        """One compiled optimizer step on ``params`` in place (``step`` counts from 1).

        ``state`` comes from ``optimizer.init_state(params)``; ``lr`` defaults to the
        optimizer's own.
        """
        kernel = getattr(self.module, f"update_{optimizer.rule}")
        hyper = optimizer.hyper(step, optimizer.lr if lr is None else lr)
        for name in self.trainable:
            p, g, s = params[name], grads[name], state[name]
            if self.backend == "triton" and not _on_device(p):
                # numpy arrays: run on the device, then copy the results back
                from runtime.tkernels import to_device

                p, g, s = to_device((p, g, s))
                kernel(p, g, s, **hyper)
                params[name][...] = p.cpu().numpy()
                for key, buffer in s.items():
                    state[name][key][...] = buffer.cpu().numpy()
            else:  # in place where they are (device tensors: a kernel on each, nothing copied)
                kernel(p, g, s, **hyper)

    def derivatives(self):
        """The module with ``jvp`` and ``hvp`` (generated on first use)."""
        if self._derivatives is None:
            if self._derive is None:
                raise GradcError("jvp and hvp need the compiler: get this Program from "
                                 "compiler.compile(model)")
            self._derivatives = load_module(self._derive())
        return self._derivatives

    def check_tangents(self, tangents, what="tangents"):
        if not isinstance(tangents, dict):
            raise DataError(f"{what} must be a dict parameter name -> array")
        return self.check_params(tangents, self.trainable)

    def jvp(self, params, batch, tangents, rng=None):
        """``(loss, directional derivative)`` of the loss along ``tangents`` (forward mode)."""
        return self._run("jvp", params, batch, rng, self.derivatives(),
                         [self.check_tangents(tangents)])

    def hvp(self, params, batch, vector, rng=None):
        """The Hessian of the loss in the parameters times ``vector`` (a dict like the params)."""
        return self._run("hvp", params, batch, rng, self.derivatives(),
                         [self.check_tangents(vector, "vector")])

    def __repr__(self):
        return f"Program({self.path.name}, params={list(self.param_specs)})"


def _on_device(value):
    """Whether ``value`` is a torch tensor (the Triton backend keeps it where it is)."""
    return type(value).__module__.startswith("torch") and hasattr(value, "data_ptr")


def _as_dtype(value, dtype):
    """``value`` (an array or a torch tensor) in the float ``dtype`` (a numpy dtype)."""
    if _on_device(value):
        import torch

        wanted = getattr(torch, str(dtype))
        return value if value.dtype == wanted else value.to(wanted)
    return value if value.dtype == dtype else value.astype(dtype)


def n_rows(data):
    return next((v.shape[0] for v in data.values() if v.ndim), 0)
