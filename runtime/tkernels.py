"""Host-side helpers for generated Triton modules (torch tensors; imported only by them)."""
import atexit
import inspect
import json
import os
import sys
from pathlib import Path

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
    """``t`` viewed with numpy broadcasting as ``shape`` (stride 0 on broadcast axes).  A
    ``t`` of as many elements in a shape that does not broadcast to ``shape`` is a reshape
    of the kernel's iteration space (a kernel storing both a value and a reshape of it):
    it is relabelled, in row-major order, as the kernel writes its results."""
    t = torch.as_tensor(t, device=device())
    shape = tuple(int(d) for d in shape)
    if tuple(t.shape) != shape and t.numel() == numel(shape) and not _broadcasts(t.shape, shape):
        return t.reshape(shape)
    while t.dim() < len(shape):
        t = t.unsqueeze(0)
    return t.expand(shape)


def _broadcasts(shape, to):
    """Whether ``shape`` broadcasts to ``to``."""
    if len(shape) > len(to):
        return False
    return all(a in (1, b) for a, b in zip(reversed(tuple(shape)), reversed(to)))


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
    """A result handed to the caller: a contiguous copy (kernels write their results into
    buffers that the next call at the same shapes overwrites: see ``Plan``)."""
    return x.to(dtype=dtype, memory_format=torch.contiguous_format, copy=True)


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


PLANS_PER_KERNEL = 16  # shapes remembered per host wrapper (past it, the plans start over)


def numel(shape):
    n = 1
    for d in shape:
        n *= int(d)
    return n


class Plan:
    """One host wrapper's launch at one set of argument shapes and strides, worked out by
    its first call at them and reused by every later call: what ``expand``, ``output``,
    ``strides``, ``wide`` and the grid cost once, not on every call.

    ``launch`` is the device kernel with its grid.  Its pointers are the arguments
    themselves (``bases``), each read through the strides of its view (broadcast, permuted,
    reshaped: ``views``), which ``args`` carry after the pointers; ``meta`` are the
    constexprs (``WIDE`` decided here from the views and the results).  A view that had to
    copy (a reshape of a non-contiguous tensor) makes a plan of one call that passes the
    copies (``views``) and is not kept.  The results (``outs``: shape and dtype of each)
    are the plan's own buffers, made on first need, unless the caller gives ``out``: a
    call overwrites what the last call at the same shapes returned (entry points hand out
    copies: ``materialize``)."""

    __slots__ = ("launch", "args", "meta", "views", "outs", "specs")

    def __init__(self, plans, key, launch, bases, views, args, outs, **meta):
        self.launch, self.args, self.specs = launch, args, outs
        self.outs = [None] * len(outs)
        big = any(2 * numel(shape) - 1 > LIMIT for shape, _ in outs)  # contiguous results
        self.meta = {**meta, "WIDE": wide(*views) or big}
        own = all(v.data_ptr() == b.data_ptr() and v.dtype == b.dtype for v, b in zip(views, bases))
        self.views = None if own else tuple(views)
        if own:
            if len(plans) >= PLANS_PER_KERNEL:
                plans.clear()
            plans[key] = self

    def result(self, out, j=0):
        """``out`` when given, else the plan's result ``j`` (made on first need)."""
        if out is not None:
            return out
        if self.outs[j] is None:
            self.outs[j] = output(None, *self.specs[j])
        return self.outs[j]

    def results(self, *given):
        return [out if out is not None else self.result(None, j) for j, out in enumerate(given)]


class Tally:
    """Each step's loss and metrics of one ``train_epoch``, in one of two ways.

    On the host (no ``steps``): ``add`` reads the loss at once and is True when it is NaN
    or infinite (the loop stops before that step's update), as the numpy backend does.
    On the device (``steps``: the epoch's minibatches): ``add`` stacks the loss and
    metrics into a row of one device table, without waiting for the device; nothing is
    read until ``result``, once.  The update kernel then keeps training from going past
    a NaN or infinite loss: given ``loss`` (the last one added) and the flag ``stop``, it
    changes nothing when the loss is not finite or the flag is set, and sets the flag
    (``update_<rule>_from``); ``keep`` writes a buffer's new value unless the flag is set.
    Either way ``result`` gives what the host loop gave: the losses up to the first NaN
    or infinite one, and each metric summed over the steps before it."""

    def __init__(self, names, steps=None, dtype=None):
        self.names, self.loss, self.count = list(names), None, 0
        self.losses, self.sums = [], dict.fromkeys(self.names, 0.0)
        self.rows = None
        if steps is not None:
            self.table = torch.zeros((steps, 1 + len(self.names)), dtype=dtype, device=device())
            self.rows = self.table.unbind(0)
            self.stop = torch.zeros(1, dtype=dtype, device=device())

    def add(self, loss, *metrics):
        self.loss = loss
        if self.rows is not None:
            torch.stack((loss, *metrics), out=self.rows[self.count])
            self.count += 1
            return False
        value = float(loss)
        self.losses.append(value)
        if value - value != 0:
            return True
        for name, m in zip(self.names, metrics):
            self.sums[name] += float(m)
        return False

    def keep(self, target, value):
        """``target[...] = value``, unless (on the device) a loss was NaN or infinite."""
        if self.rows is None:
            target.copy_(value)
        else:
            target.copy_(torch.where(self.stop != 0, target, value))

    def result(self):
        """``(losses, {metric: sum})`` as the host loop gives them (one read of the device)."""
        if self.rows is not None:
            for row in self.table[:self.count].tolist():
                self.losses.append(row[0])
                if row[0] - row[0] != 0:
                    break
                for name, value in zip(self.names, row[1:]):
                    self.sums[name] += value
            self.count = 0
        return self.losses, self.sums


GRAPH_SWITCH = "GRADC_CUDA_GRAPH"  # =1: capture each full minibatch's step in a CUDA graph


class Epochs:
    """``train_epoch`` as ``runtime.train`` runs it on the Triton backend: the losses and
    metrics stay on the device (a device ``Tally``, read once per epoch), the
    hyperparameters of all the epoch's steps are uploaded at once (a float64 row per step:
    no tensor is made, and nothing waits, per step), and the update checks the loss on
    the device (``update_<rule>_from``).

    With ``graph`` (``GRADC_CUDA_GRAPH=1`` on a GPU, for models without dropout), the
    step of a full minibatch (every kernel, the tally and the update) is captured once in
    a ``torch.cuda.CUDAGraph`` and then replayed after copying the minibatch and the
    step's hyperparameters into the graph's own buffers; the first step, which compiles
    and autotunes, and a short last minibatch run as they are."""

    def __init__(self, module, opt, flat, flat_grads, state, params, grads, batch_size, seed,
                 graph=False):
        self.module, self.opt, self.batch_size, self.seed = module, opt, batch_size, seed
        self.params, self.grads, self.buffers = params, grads, (flat, flat_grads, state)
        self.update = getattr(module, f"update_{opt.rule}_from")
        self.order = list(inspect.signature(getattr(module, f"update_{opt.rule}")).parameters)[3:]
        self.stop = torch.zeros(1, dtype=flat.dtype, device=flat.device)  # set by a NaN loss
        self.tally = self.hyper = None  # the step's: what step_update reads
        self.graph = _Graph() if graph else None

    def step_update(self, step):
        flat, flat_grads, state = self.buffers
        self.update(flat, flat_grads, state, self.hyper(step), self.tally.loss, self.stop)

    def run(self, data, step, lr):
        """One epoch over ``data`` from step ``step`` at learning rate ``lr``: ``(losses, sums)``."""
        n = next(iter(data.values())).shape[0] if data else 1
        steps = -(-n // self.batch_size)
        table = np.array([[h[k] for k in self.order] for h in
                          (self.opt.hyper(s, lr) for s in range(step + 1, step + steps + 1))],
                         dtype=np.float64).reshape(steps, len(self.order))
        rows = torch.from_numpy(table).to(device()).unbind(0)
        self.tally = Tally(self.module.METRICS, steps, self.module.DTYPE)
        self.tally.stop = self.stop
        if self.graph is None:
            self.hyper = lambda s: rows[s - step - 1]
            return self.module.train_epoch(self.params, data, self.batch_size, self.grads,
                                           self.step_update, self.seed, step, losses=self.tally)
        return self.graph.run(self, data, step, rows)

    def one_step(self, batch, step):
        self.module.train_epoch(self.params, batch, self.batch_size, self.grads,
                                self.step_update, None, step, losses=self.tally)


class _Graph:
    """The CUDA graph of one full minibatch's step, and the static buffers it reads."""

    def __init__(self):
        self.cuda = self.batch = self.hyper = self.tally = None
        self.warm = False

    def run(self, epochs, data, step, rows):
        tally, size = epochs.tally, epochs.batch_size
        if self.hyper is None:
            self.hyper = rows[0].clone()
        epochs.hyper = lambda s: self.hyper
        for i in range(len(rows)):
            batch = {k: v[i * size:(i + 1) * size] for k, v in data.items()}
            self.hyper.copy_(rows[i])
            short = len(next(iter(batch.values()))) < size
            if short or not self.warm:  # a short minibatch, or the first (it compiles, autotunes)
                epochs.one_step(batch, step + i)
                self.warm = self.warm or not short
                continue
            if self.cuda is None:  # capture: the kernels are recorded, not run
                self.batch = {k: v.clone() for k, v in batch.items()}
                self.tally = epochs.tally = Tally(tally.names, 1, tally.table.dtype)
                self.cuda = torch.cuda.CUDAGraph()
                with torch.cuda.graph(self.cuda):
                    epochs.one_step(self.batch, step + i)
                epochs.tally = tally
            for k, v in batch.items():
                self.batch[k].copy_(v)
            self.cuda.replay()
            tally.rows[tally.count].copy_(self.tally.rows[0])
            tally.count += 1
        return tally.result()


def tuning_path(module_file):
    """Where a generated module's autotuning choices are kept: next to it."""
    return Path(module_file).with_suffix(".autotune.json")


def gpu_name():
    return torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"


def remembered_choice(known, key):
    """The config (its text) chosen for tuning key ``key`` (sizes, then dtypes) among
    ``known`` (``[key, config]`` pairs): its own, else that of the smallest known key
    with the same dtypes whose every size is at least as large, so that a short last
    minibatch (or a smaller evaluation chunk) takes the full minibatch's choice; None."""
    exact = [c for k, c in known if list(k) == list(key)]
    if exact:
        return exact[0]
    sizes, kinds = [v for v in key if not isinstance(v, str)], [v for v in key if isinstance(v, str)]
    larger = [(numel(k_sizes), c) for k, c in known
              for k_sizes in [[v for v in k if not isinstance(v, str)]]
              if [v for v in k if isinstance(v, str)] == kinds and len(k_sizes) == len(sizes)
              and all(a <= b for a, b in zip(sizes, k_sizes))]
    return min(larger, key=lambda pair: pair[0])[1] if larger else None


class Tuning:
    """``triton.autotune``'s choices for one generated module, kept on disk next to it
    (``tuning_path``), per GPU (its name) and tuning key (the sizes the kernel is tuned
    on, and the arguments' dtypes, as Triton's own key): a new process, a new batch size
    or a short last minibatch does not benchmark every config again.  Each kernel's
    ``early_config_prune`` (``prune``) is asked only when Triton has no choice for a key:
    a remembered one (``remembered_choice``) leaves one config, which Triton takes
    without benchmarking; otherwise Triton benchmarks, and its choice is written down at
    the next such question and when the process ends.  (Triton's own
    ``cache_results=True`` keeps timings in its cache directory, keyed on the GPU's
    architecture rather than the GPU, and on the exact sizes.)"""

    def __init__(self, module_file, namespace):
        self.path, self.namespace, self.known = tuning_path(module_file), namespace, None
        self.kernels = {}  # device kernel name -> names of its tuning key's arguments

    def prune(self, name):
        """``prune_configs_by`` of the autotuned device kernel ``name`` (a module global)."""
        self.kernels[name] = None

        def early_config_prune(configs, named_args, **kwargs):
            self.write()
            key = [named_args[k] for k in self.namespace[name].keys]
            key += [str(v.dtype) for v in named_args.values() if hasattr(v, "dtype")]
            choice = remembered_choice(self.load().get(name, []), key)
            chosen = [c for c in configs if str(c) == choice]
            return chosen or configs

        return {"early_config_prune": early_config_prune}

    def load(self):
        if self.known is None:
            try:
                self.known = json.loads(self.path.read_text()).get(gpu_name(), {})
            except (OSError, ValueError):
                self.known = {}
            atexit.register(self.write)
        return self.known

    def write(self):
        """Add Triton's choices made since the last write to the file (atomically)."""
        known, new = self.load(), False
        for name in self.kernels:
            tuner = self.namespace.get(name)
            for key, config in dict(getattr(tuner, "cache", {})).items():
                if [list(key), str(config)] not in known.setdefault(name, []):
                    known[name].append([list(key), str(config)])
                    new = True
        if not new:
            return
        try:
            everything = json.loads(self.path.read_text()) if self.path.exists() else {}
            everything[gpu_name()] = known
            tmp = self.path.with_suffix(f".tmp{os.getpid()}")
            tmp.write_text(json.dumps(everything, indent=1, sort_keys=True))
            os.replace(tmp, self.path)
        except (OSError, ValueError):
            pass  # a module where nothing may be written: the choices stay in this process


def draws_masks(module):
    """Whether a kernel of ``module`` draws dropout masks (it takes ``rng``, which changes
    every step: such a step cannot be replayed from a CUDA graph)."""
    return any("rng" in inspect.signature(getattr(module, k["name"])).parameters
               for k in module.KERNELS)


_FINE = {}  # (device, dtype) -> a finite loss and a clear flag, for updates that check none


def never_stop(like):
    """A loss of 0 and a clear flag: what an update that checks no loss reads."""
    key = (like.device, like.dtype)
    if key not in _FINE:
        _FINE[key] = (torch.zeros((), dtype=like.dtype, device=like.device),
                      torch.zeros(1, dtype=like.dtype, device=like.device))
    return _FINE[key]


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
