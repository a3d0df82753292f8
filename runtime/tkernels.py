"""Host-side helpers for generated Triton modules (torch tensors; imported only by them)."""
import os
import sys

import numpy as np
import torch


def interpreting():
    return os.environ.get("TRITON_INTERPRET") == "1"


def runnable():
    """Whether Triton kernels can run here: a CUDA GPU, or Triton's CPU interpreter."""
    return interpreting() or torch.cuda.is_available()


def device():
    """Where tensors live: the GPU, or the CPU under Triton's interpreter."""
    if torch.cuda.is_available() and not interpreting():
        return torch.device("cuda")
    return torch.device("cpu")


def expand(t, shape):
    """``t`` viewed with numpy broadcasting as ``shape`` (stride 0 on broadcast axes)."""
    t = torch.as_tensor(t, device=device())
    while t.dim() < len(shape):
        t = t.unsqueeze(0)
    return t.expand(tuple(int(d) for d in shape))


def output(out, shape, dtype):
    if out is not None:
        return out
    return torch.empty(tuple(int(d) for d in shape), dtype=dtype, device=device())


def zeros(out, shape, dtype):
    """A zero-filled result (``out`` itself, zeroed, when given): atomics add into it."""
    if out is not None:
        return out.zero_()
    return torch.zeros(tuple(int(d) for d in shape), dtype=dtype, device=device())


def constant(value, dtype):
    return torch.tensor(float(value), dtype=dtype, device=device())


def materialize(x, dtype):
    return x.contiguous() if x.dtype == dtype else x.to(dtype).contiguous()


def into(out, value):
    if out is None:
        return value
    out.copy_(value)
    return out


LIMIT = 2**31 - 1  # the largest int32: past it, index arithmetic needs 64 bits


def wide(*tensors):
    """Whether a kernel over ``tensors`` needs 64-bit index arithmetic: some element lies
    more than ``LIMIT`` elements from the start of its tensor (decided at each launch;
    Triton compiles the 64-bit kernel as a separate specialization)."""
    for t in tensors:
        if t.dim() and t.numel() and sum((n - 1) * abs(s) for n, s in zip(t.shape, t.stride())) \
                + t.numel() > LIMIT:
            return True
    return False


def strides(t):
    return tuple(int(s) for s in t.stride())


def dropout_key(seed, step, salt):
    """The 32-bit key of one dropout call (the same as runtime.npkernels.dropout_keep's)."""
    from runtime.npkernels import _mix32

    with np.errstate(over="ignore"):
        key = _mix32(np.array([seed & 0xFFFFFFFF], dtype=np.uint32)
                     ^ _mix32(np.array([(step * 0x9E3779B1 + salt) & 0xFFFFFFFF], dtype=np.uint32)))
    return int(key[0])


def threshold(rate):
    return min(int(rate * 2**32), 2**32 - 1)


def to_device(value):
    """numpy arrays (in dicts, lists, tuples) as torch tensors on ``device()``."""
    if isinstance(value, dict):
        return {k: to_device(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(to_device(v) for v in value)
    if isinstance(value, np.ndarray):  # (np.ascontiguousarray would make 0-d arrays 1-d)
        return torch.from_numpy(value if value.flags.c_contiguous else value.copy()).to(device())
    return value


def from_device(value):
    """torch tensors (in dicts, lists, tuples) back as numpy arrays."""
    if isinstance(value, dict):
        return {k: from_device(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(from_device(v) for v in value)
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return value


def self_check(namespace, batch_size=3, seed=0):
    """The numpy modules' self-check (``npkernels.self_check``: a directional derivative
    from ``loss_and_grad`` against central differences of ``loss``, on random data) run on
    this module's kernels, with inputs and parameters in its dtype.  Exits with status 1
    when the relative error is above the dtype's tolerance; without a GPU and without
    ``TRITON_INTERPRET=1`` it says so in one line and exits with status 2."""
    if not runnable():
        print("self-check not run: no CUDA GPU, and TRITON_INTERPRET=1 (Triton's CPU "
              "interpreter) is not set", file=sys.stderr)
        raise SystemExit(2)
    from runtime.npkernels import self_check as check

    dtype = namespace["DTYPE"]

    def on_device(entry):
        def run(params, batch):
            arrays = to_device([{k: np.asarray(v) for k, v in a.items()} for a in (params, batch)])
            args = [{k: v.to(dtype) if v.is_floating_point() else v for k, v in a.items()}
                    for a in arrays]
            return from_device(namespace[entry](*args))
        return run

    wide = dtype == torch.float64
    # float32: a step of 1e-3 along the direction scaled to unit length (its elements are
    # normal, so its length is about the square root of the parameter count)
    count = sum(int(np.prod(shape)) for shape, _ in namespace["PARAMS"].values())
    h = 1e-6 if wide else 1e-3 / max(count, 1) ** 0.5
    err = check({"INPUTS": namespace["INPUTS"], "PARAMS": namespace["PARAMS"],
                 "loss": on_device("loss"), "loss_and_grad": on_device("loss_and_grad")},
                batch_size, seed, h=h)
    tolerance = 1e-6 if wide else 1e-2
    if not err <= tolerance:
        print(f"self-check failed: relative error {err:.2e} is above {tolerance:g} for "
              f"{str(dtype).replace('torch.', '')} (a model that stops a gradient, as "
              "semi-gradient TD does, differs from finite differences by design)", file=sys.stderr)
        raise SystemExit(1)
    return err
