"""Host-side helpers for generated Triton modules (torch tensors; imported only by them)."""
import os

import numpy as np
import torch


def interpreting():
    return os.environ.get("TRITON_INTERPRET") == "1"


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
