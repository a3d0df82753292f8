"""``train``: minibatch training of a compiled ``Program``.

Optimizers (``runtime.optim``) are compiled update kernels; schedules
(``runtime.schedules``) set the learning rate per epoch; validation, early
stopping and checkpoints (``runtime.checkpoint``) are handled here.

>>> hist = train(prog, {"x": X, "y": Y}, optimizer="adam", epochs=100)  # doctest: +SKIP
>>> hist.epoch_losses[-1] < hist.initial_loss                             # doctest: +SKIP
True
"""
import contextlib
import math
import os
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from runtime import checkpoint as ckpt
from runtime import distributed as dist
from runtime import optim, schedules
from runtime.errors import CheckpointError, DataError, GradcError, TrainingError, data_errors


@dataclass
class History:
    """What a training run produced: final parameters and the numbers along the way.

    ``initial_loss`` is the loss over all training data before the first step;
    ``epoch_losses[i]`` the mean minibatch loss of epoch ``i`` (the seed's Flux
    loop); ``step_losses`` every minibatch loss; ``metrics`` per-epoch values of
    the model's metrics: on the training data the mean over the epoch's
    minibatches (as for the loss, and as Keras reports them), ``val_<name>`` on the
    validation data after the epoch; ``lrs`` the learning rate of each epoch.
    ``params`` are views into one flat buffer.
    """

    params: dict
    initial_loss: float = math.nan
    epoch_losses: list = field(default_factory=list)
    step_losses: list = field(default_factory=list)
    val_losses: list = field(default_factory=list)
    metrics: dict = field(default_factory=dict)
    lrs: list = field(default_factory=list)
    best_epoch: int = None
    stopped_epoch: int = None
    start_epoch: int = 0  # the epoch this run started from (> 0 when resumed)

    def to_json(self):
        return {"initial_loss": self.initial_loss, "epoch_losses": self.epoch_losses,
                "step_losses": self.step_losses, "val_losses": self.val_losses,
                "metrics": self.metrics, "lrs": self.lrs, "best_epoch": self.best_epoch,
                "stopped_epoch": self.stopped_epoch}


def check_data(prog, data, what="data"):
    """The data as arrays of the program's dtype, all with one leading length N; ``(data, N)``."""
    if not isinstance(data, dict):
        raise DataError(f"{what} must be a dict of arrays, got {type(data).__name__}")
    arrays = prog.check_batch(data)  # missing inputs, shapes and dtypes first
    extra = sorted(k for k in data if k not in prog.inputs)
    if extra:
        raise DataError(f"{what} has {', '.join(repr(k) for k in extra)}, which "
                        f"{'is' if len(extra) == 1 else 'are'} not a model input "
                        f"(model inputs: {', '.join(prog.inputs) or 'none'})")
    lengths = {name: (a.shape[0] if a.ndim else None) for name, a in arrays.items()}
    if any(n is None for n in lengths.values()):
        bad = next(k for k, n in lengths.items() if n is None)
        raise DataError(f"input {bad!r} has no batch axis to split into minibatches")
    if len(set(lengths.values())) > 1:
        desc = ", ".join(f"{k}: {n}" for k, n in lengths.items())
        raise DataError(f"inputs have different numbers of examples ({desc})")
    n = next(iter(lengths.values()), 0)
    if not arrays:  # a model without inputs (a function of its parameters alone)
        return arrays, 1
    if n == 0:
        raise DataError(f"{what} is empty (0 examples)")
    for name, a in arrays.items():
        if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
            raise DataError(f"input {name!r} holds non-finite values (NaN or inf)")
    return arrays, n


def split(arrays, n, fraction, seed):
    """``(train, validation)``: a seeded random ``fraction`` of the examples held out."""
    if not 0 < fraction < 1:
        raise GradcError(f"validation fraction must be between 0 and 1, got {fraction!r}")
    n_val = int(round(n * fraction))
    if n_val < 1 or n_val >= n:
        raise DataError(f"validation fraction {fraction} of {n} examples leaves an empty split")
    order = np.random.default_rng([seed, 1]).permutation(n)
    val, tr = order[:n_val], order[n_val:]
    return {k: v[tr] for k, v in arrays.items()}, {k: v[val] for k, v in arrays.items()}


def signature(prog, opt):
    """What a checkpoint must match to be resumed by this program and optimizer."""
    return {"params": {k: list(shape) for k, (shape, _) in prog.param_specs.items()},
            "inputs": {k: list(shape) for k, (shape, _) in prog.inputs.items()},
            "rule": opt.rule}


def train(prog, data, optimizer="sgd", lr=None, epochs=100, batch_size=32, shuffle=True, seed=0,
          params=None, quiet=False, schedule=None, weight_decay=None, val_fraction=0.0,
          val_data=None, early_stopping=None, checkpoint=None, checkpoint_every=None, resume=False,
          distributed=False):
    """Train ``prog`` on ``data`` (dict input name -> array, examples along axis 0).

    ``optimizer`` is a name (``sgd momentum nesterov adagrad rmsprop adam adamw``)
    or a ``runtime.optim`` object; ``lr``/``weight_decay`` override its own.
    ``schedule``: a ``runtime.schedules`` object or spelling (``cosine``, ``step:10:0.5``).
    ``val_fraction`` holds out part of the data (or pass ``val_data``);
    ``early_stopping=P`` stops after P epochs without a better validation loss and
    returns the best parameters.  ``checkpoint=PATH`` saves after the first epoch,
    then every ``checkpoint_every`` epochs or, by default, once ``CHECKPOINT_SECONDS``
    have passed (and 50 times what the last save took), and at the end;
    ``resume=True`` continues from it, giving the same losses as an uninterrupted
    run.  A batch size larger than the data gives one short batch per epoch
    (PyTorch's ``DataLoader``).  ``params`` (default ``prog.init_params(seed)``)
    is copied, never changed.  Returns a ``History``.

    ``distributed=True`` trains data-parallel in every process of a torch.distributed
    run (``runtime.distributed``): ``batch_size`` is per process, gradients are averaged
    every step, losses and metrics are averaged over the processes, and only rank 0
    shows progress and writes the checkpoint.
    """
    group = dist.join(prog.backend == "triton") if distributed else None
    rank, procs = (group.rank, group.size) if group else (0, 1)
    with dist.agreeing(group):  # bad input on any rank stops every rank, before training
        opt = optim.make(optimizer, lr, weight_decay)
        sched = schedules.parse(schedule, epochs)
        _check_int("batch size", batch_size, 1)
        _check_int("epochs", epochs, 0)
        if checkpoint_every is not None:
            _check_int("checkpoint interval", checkpoint_every, 1)
        if getattr(prog.module, f"update_{opt.rule}", None) is None:
            raise GradcError(f"this module has no compiled {opt.rule!r} update; recompile it")
        arrays, n = check_data(prog, data)
        if val_data is not None:
            val, _ = check_data(prog, val_data, "validation data")
        elif val_fraction:
            arrays, val = split(arrays, n, val_fraction, seed)
            n = next(iter(arrays.values())).shape[0]
        else:
            val = None
        if early_stopping is not None:
            _check_int("early-stopping patience", early_stopping, 1)
            if val is None:
                raise GradcError("early stopping needs validation data (val_fraction or val_data)")
        if resume and checkpoint is None:
            raise GradcError("resume needs a checkpoint path")
        if procs > -(-n // batch_size):
            k = -(-n // batch_size)
            raise GradcError(f"{procs} processes, but {n} examples make only {k} "
                             f"minibatch{'es' if k > 1 else ''} of {batch_size}: use at most {k} "
                             f"process{'es' if k > 1 else ''} or a smaller batch size")
        if checkpoint is not None and rank == 0:  # before any work, so that none is lost
            ckpt.check_writable(checkpoint)

        params = prog.check_params(prog.init_params(seed) if params is None else params)
        on_device = prog.backend == "triton"  # buffers as torch tensors on the GPU (or interpreter)
        flat, params = flat_parameters(prog, params, on_device)
        # distributed: one more element, the stop flag reduced with the gradients
        flat_grads, grads = flat_parameters(prog, None, on_device, spare=int(group is not None))
        state = opt.init_state(flat)
        rng = np.random.default_rng(seed)
        run = _Run(step=0, epoch=0, best_loss=math.inf, best=None, since_best=0, shards=None)
        hist, log = History(params=params), None
        if resume and rank == 0:
            log = _restore(checkpoint, prog, opt, params, state, rng, hist, run)
            if run.epoch > epochs:
                raise GradcError(f"checkpoint {checkpoint} has already trained {run.epoch} "
                                 f"epochs, more than the {epochs} asked for; ask for more "
                                 "epochs to continue")
            hist.start_epoch = run.epoch
        elif rank == 0:
            hist.initial_loss = prog.evaluate(params if on_device else _host(params), arrays)["loss"]
            log = ckpt.HistoryLog(checkpoint) if checkpoint is not None else None
    if group:  # every rank starts from rank 0's parameters, state, generator and history
        group.agree(None, {"seed": seed, "batch_size": batch_size, "epochs": epochs,
                           "examples": n, "shuffle": shuffle, "optimizer": repr(opt),
                           "schedule": str(schedule), "resume": resume, **signature(prog, opt)})
        buffers = [params[name] for name in prog.buffers]  # running statistics
        _share(group, flat, buffers, state, rng, run, hist)
    shards = dist.shards_for(run.shards, procs)
    if run.shards is not None and shards != run.shards and rank == 0:
        print(f"gradc: note: the checkpoint's data order has {run.shards} "
              f"shard{'s' if run.shards > 1 else ''}, which {procs} processes cannot share "
              f"evenly; from epoch {run.epoch + 1} on it has {procs} (one per process), so the "
              "minibatches differ from the checkpointed run's", file=sys.stderr)
    run.shards = shards
    local_batch = batch_size * shards // procs  # each process trains shards // procs shards
    reduce = group.reducer(flat_grads) if group else None
    update_grads = flat_grads[:flat.shape[0]]
    saver = _Saver(checkpoint_every, epochs)
    device_arrays = _to_device(arrays) if on_device else arrays
    if on_device and val is not None:  # uploaded once: validation reads the device's parameters
        val = _to_device(val)
    dropout_seed = dist.process_seed(seed, rank)

    update = getattr(prog.module, f"update_{opt.rule}")
    # the Triton backend on one process: losses, metrics and hyperparameters on the device
    epochs_on_device = _device_epochs(prog, opt, flat, update_grads, state, params, grads,
                                      local_batch, dropout_seed) if on_device and not group else None
    quiet_numpy = np.errstate(over="ignore", invalid="ignore", divide="ignore")
    with _progress(epochs, run.epoch, quiet or rank != 0) as bar, quiet_numpy, \
            _blas_threads(prog, arrays, local_batch, n):
        for epoch in range(run.epoch, epochs):  # overflow is no error: a non-finite loss is
            lr_now = sched(epoch, opt.lr)

            def step_update(step, lr_now=lr_now):
                if reduce is not None:
                    reduce(step)  # the gradients averaged over the processes, in place
                update(flat, update_grads, state, **opt.hyper(step, lr_now))

            if shuffle or shards > 1:
                order = rng.permutation(n) if shuffle else np.arange(n)
                if shards > 1:
                    order = dist.epoch_rows(order, shards, procs, rank)
                if on_device:
                    order = _to_device(order)
                data_now = {k: v[order] for k, v in device_arrays.items()}
            else:
                data_now = device_arrays
            try:
                with data_errors():
                    if epochs_on_device is not None:
                        losses, sums = epochs_on_device.run(data_now, run.step, lr_now)
                    else:
                        losses, sums = prog.module.train_epoch(params, data_now, local_batch, grads,
                                                               step_update, dropout_seed, run.step)
            except dist.Stopped:  # another rank's loss was not finite: no rank updated
                losses = None
            failure = _nonfinite(losses, run, epoch) if losses is not None else None
            if group:
                if failure is not None:
                    group.stop(flat_grads, run.step + len(losses))
                if failure is not None or losses is None:
                    group.agree(failure, when=f"in epoch {epoch + 1}")
                values = group.average(losses + list(sums.values()), f"in epoch {epoch + 1}")
                losses, sums = values[:len(losses)], dict(zip(sums, values[len(losses):]))
                if buffers:  # rank 0's running statistics, as DistributedDataParallel keeps
                    group.share(buffers, when=f"in epoch {epoch + 1}")
            elif failure is not None:
                raise failure
            hist.step_losses.extend(losses)
            run.step += len(losses)
            hist.epoch_losses.append(sum(losses) / len(losses))
            hist.lrs.append(lr_now)
            for name, total in sums.items():
                hist.metrics.setdefault(name, []).append(total / len(losses))
            run.epoch = epoch + 1
            postfix = {"loss": f"{hist.epoch_losses[-1]:.4g}"}
            stop = False
            if val is not None:  # every rank: the same parameters give the same decision
                _record_validation(prog, params if on_device else _host(params), val, hist)
                postfix["val"] = f"{hist.val_losses[-1]:.4g}"
                stop = _early_stopping(hist, params, run, early_stopping)
            bar.set_postfix(postfix, refresh=False)
            bar.update(1)
            if log is not None:
                log.add(_epoch_entry(hist, losses, val is not None))
                if saver.due(run.epoch, stop):
                    with saver.timed():
                        _save(checkpoint, prog, opt, params, state, rng, hist, run, seed, log)
            if stop:
                hist.stopped_epoch = run.epoch
                break
    if early_stopping is not None and run.best is not None:
        for k, v in run.best.items():
            _assign(params[k], v)
    if on_device:
        hist.params = _host(params)
    return hist


def _device_epochs(prog, opt, flat, flat_grads, state, params, grads, batch_size, seed):
    """``runtime.tkernels.Epochs``: how the Triton backend's epochs run; GRADC_CUDA_GRAPH=1
    on a GPU captures the step in a CUDA graph (not for dropout, whose masks change every
    step, nor for a model without inputs)."""
    from runtime import tkernels

    graph = os.environ.get(tkernels.GRAPH_SWITCH) == "1" and tkernels.device().type == "cuda" \
        and bool(prog.inputs) and not tkernels.draws_masks(prog.module)
    return tkernels.Epochs(prog.module, opt, flat, flat_grads, state, params, grads, batch_size,
                           seed, graph)


def _to_device(value):
    from runtime.tkernels import to_device

    return to_device(value)


def _host(arrays):
    """numpy arrays (views for the numpy backend, copies of device tensors otherwise)."""
    return {k: v if isinstance(v, np.ndarray) else v.detach().cpu().numpy() for k, v in arrays.items()}


def _assign(dst, src):
    if isinstance(dst, np.ndarray):
        dst[...] = src
    elif isinstance(src, np.ndarray) or not hasattr(src, "data_ptr"):
        dst.copy_(_to_device(np.asarray(src)))
    else:  # a device tensor: copied on the device
        dst.copy_(src)


def flat_parameters(prog, params, on_device=False, spare=0):
    """One flat buffer holding every trained parameter, and a dict of views into it (PARAM_NAMES
    order), with each buffer (running statistics) as an array of its own.

    With ``params`` None the buffer is left uninitialised (for gradients); with
    ``on_device`` it is a torch tensor for the Triton backend; ``spare`` elements follow
    the parameters."""
    specs = [(name, prog.param_specs[name][0]) for name in prog.trainable]
    sizes = [int(np.prod(shape)) for _, shape in specs]
    flat = np.empty(sum(sizes) + spare, dtype=prog.dtype)
    if on_device:
        flat = _to_device(flat)
    views, offset = {}, 0
    for (name, shape), size in zip(specs, sizes):
        views[name] = flat[offset:offset + size].reshape(tuple(shape))
        if params is not None:
            _assign(views[name], params[name])
        offset += size
    if params is not None:  # buffers (running statistics): arrays of their own, not trained
        for name in prog.buffers:
            views[name] = np.array(params[name], dtype=prog.dtype)
            if on_device:
                views[name] = _to_device(views[name])
    return flat, views


@dataclass
class _Run:
    step: int
    epoch: int
    best_loss: float
    best: dict
    since_best: int
    shards: int  # how each epoch's minibatches are split (runtime.distributed); None: not yet set


def _nonfinite(losses, run, epoch):
    """The ``TrainingError`` for an epoch whose last loss is NaN or infinite, else None."""
    if math.isfinite(losses[-1]):
        return None
    if not math.isfinite(losses[0]) and run.step == 0:  # before any update
        return TrainingError(f"the loss is {losses[0]} at the first step, before any update: "
                             "check the model and the data")
    return TrainingError(f"loss became {losses[-1]} at step {run.step + len(losses) - 1} "
                         f"(epoch {epoch + 1}); try a smaller learning rate")


def _share(group, flat, buffers, state, rng, run, hist):
    """Rank 0's parameters, buffers, optimizer state, generator, run and history on every rank."""
    kept = {k: v for k, v in vars(hist).items() if k != "params"}
    shared = group.share([flat, *buffers, *state.values()],
                         (rng.bit_generator.state, vars(run), kept))
    rng.bit_generator.state = shared[0]
    vars(run).update(shared[1])
    vars(hist).update(shared[2])


def _record_validation(prog, params, val, hist):
    result = prog.evaluate(params, val)
    hist.val_losses.append(result.pop("loss"))
    for k, v in result.items():
        hist.metrics.setdefault(f"val_{k}", []).append(v)


def _early_stopping(hist, params, run, patience):
    if hist.val_losses[-1] < run.best_loss:
        run.best_loss, run.since_best = hist.val_losses[-1], 0
        run.best = {k: v.copy() if isinstance(v, np.ndarray) else v.clone() for k, v in params.items()}
        hist.best_epoch = run.epoch
    else:
        run.since_best += 1
    return patience is not None and run.since_best >= patience


CHECKPOINT_SECONDS = 30.0  # the default cadence: at most one checkpoint per this many seconds


class _Saver:
    """When to checkpoint: after the first epoch, at the end, on early stopping, and every
    ``every`` epochs or (``every`` None) once ``CHECKPOINT_SECONDS`` and 50 times the last
    save's duration have passed, so saving costs at most about 2% of training."""

    def __init__(self, every, epochs):
        self.every, self.epochs = every, epochs
        self.last, self.cost = None, 0.0

    def due(self, epoch, stop):
        if stop or epoch == self.epochs or self.last is None:
            return True
        if self.every is not None:
            return epoch % self.every == 0
        return time.monotonic() - self.last >= max(CHECKPOINT_SECONDS, 50 * self.cost)

    @contextlib.contextmanager
    def timed(self):
        start = time.monotonic()
        yield
        self.last = time.monotonic()
        self.cost = self.last - start


def _epoch_entry(hist, losses, validated):
    """One epoch of the history, as a line of the checkpoint's history file."""
    entry = {"step_losses": losses, "epoch_loss": hist.epoch_losses[-1], "lr": hist.lrs[-1],
             "metrics": {k: v[-1] for k, v in hist.metrics.items()}}
    if validated:
        entry["val_loss"] = hist.val_losses[-1]
    return entry


def _save(path, prog, opt, params, state, rng, hist, run, seed, log):
    record = {"signature": signature(prog, opt), "epoch": run.epoch, "step": run.step,
              "seed": seed, "rng": rng.bit_generator.state, "shards": run.shards,
              "history": {"initial_loss": hist.initial_loss, "best_epoch": hist.best_epoch,
                          "history_file": log.flush()},
              "best_loss": run.best_loss if math.isfinite(run.best_loss) else None,
              "since_best": run.since_best, "optimizer": repr(opt)}
    extra = {"__best__": _host(run.best)} if run.best is not None else {}
    ckpt.save(path, _host(params), {"__optimizer__": _host(state), **extra}, record)


def _restore(path, prog, opt, params, state, rng, hist, run):
    """Load checkpoint ``path`` into the buffers, ``rng``, ``hist`` and ``run``; return its
    ``HistoryLog``, which appends after the epochs the checkpoint covers."""
    saved_params, saved_state, record = ckpt.load(path)
    if record.get("signature") != signature(prog, opt):
        raise CheckpointError(f"checkpoint {path} belongs to a different model or optimizer")
    saved = record["history"]
    if "history_file" not in saved:
        raise CheckpointError(f"checkpoint {path} was written by an older gradc; start a new run")
    log, entries = ckpt.HistoryLog.resume(path, saved["history_file"])
    if len(entries) != record["epoch"]:
        raise CheckpointError(f"history file of checkpoint {path} holds {len(entries)} epochs, "
                              f"not {record['epoch']}")
    for k, v in saved_params.items():
        _assign(params[k], v)
    run.best = saved_state.pop("__best__", None)
    for name, buffer in saved_state.get("__optimizer__", {}).items():
        _assign(state[name], buffer)
    rng.bit_generator.state = record["rng"]
    run.step, run.epoch = record["step"], record["epoch"]
    run.best_loss = record["best_loss"] if record["best_loss"] is not None else math.inf
    run.since_best = record["since_best"]
    run.shards = record.get("shards", 1)  # checkpoints from before data-parallel training: 1
    hist.initial_loss = saved["initial_loss"]
    hist.best_epoch = saved["best_epoch"]
    for entry in entries:
        hist.step_losses.extend(entry["step_losses"])
        hist.epoch_losses.append(entry["epoch_loss"])
        hist.lrs.append(entry["lr"])
        if "val_loss" in entry:
            hist.val_losses.append(entry["val_loss"])
        for k, v in entry["metrics"].items():
            hist.metrics.setdefault(k, []).append(v)
    return log


# BLAS threads (benchmarks/NOTES.md, "BLAS threads"): a step whose largest matmul is below
# this many flops runs BLAS on one thread (a second thread saves tens of microseconds per
# matmul there, and costs 2-8x when other work holds a core); so does any step while every
# core is already busy (the 1-minute load average, this process included, >= the cores).
ONE_THREAD_FLOPS = 1e7
_blas = None  # threadpoolctl's controller, made once (450 us; a limit then costs 15 us)


def blas_threads(prog, arrays, batch_size, n):
    """1 when a training step's BLAS calls should run on one thread, else None (BLAS's own)."""
    if prog.backend != "numpy":
        return None
    flops = largest_matmul(prog, arrays, batch_size, n)
    if flops is not None and flops < ONE_THREAD_FLOPS:
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if hasattr(os, "getloadavg") and os.getloadavg()[0] >= (cores or 1):
        return 1
    return None


def largest_matmul(prog, arrays, batch_size, n):
    """The flops of the largest matmul kernel of one training step, from the module's
    KERNELS table at the data's sizes (a minibatch of ``min(batch_size, n)``); None when
    a formula cannot be evaluated."""
    sizes = {}
    for name, (shape, _) in prog.inputs.items():
        for axis, dim in enumerate(shape):
            if not dim.isdigit() and name in arrays:
                sizes[dim] = min(batch_size, n) if axis == 0 else arrays[name].shape[axis]
    largest = 0
    for k in prog.module.KERNELS:
        if any(" matmul " in node for node in k["nodes"]):
            try:
                largest = max(largest, eval(k["flops"], {"__builtins__": {}}, sizes))
            except Exception:  # a size the data does not give: leave BLAS alone
                return None
    return largest


def _blas_threads(prog, arrays, batch_size, n):
    """A context that holds BLAS to ``blas_threads(...)`` threads while training."""
    global _blas
    if blas_threads(prog, arrays, batch_size, n) is None:
        return contextlib.nullcontext()
    if _blas is None:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:
            return contextlib.nullcontext()
        _blas = ThreadpoolController()
    return _blas.limit(limits=1, user_api="blas")


def _check_int(what, value, low):
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
        raise GradcError(f"{what} must be an integer >= {low}, got {value!r}")


def _progress(epochs, done, quiet):
    from tqdm import tqdm

    return tqdm(total=epochs, initial=done, desc="train", unit="epoch", disable=quiet,
                dynamic_ncols=True, mininterval=0.2)
