"""Data-parallel training on ``torch.distributed``: each process trains on its shard of
every epoch, and one ``all_reduce`` per step averages the flat gradient buffer before the
update, so every process applies the same update and the parameters stay identical.

How an epoch is split (PyTorch's ``DistributedSampler`` with ``drop_last=False``): the
epoch's order (the same permutation on every process, from the seed) is padded with its
own first rows to a multiple of the number of *shards*; shard ``s`` takes every
``shards``-th row from row ``s``, and step ``k`` trains minibatch ``k`` of every shard.  A
run's shards are its processes.  A run that resumes a checkpoint keeps the checkpoint's
shards when its number of processes divides them: each process then trains, in one step,
the union of the minibatches of ``shards / processes`` consecutive shards, so the steps
(and, for a loss that is a mean over examples, the losses) are the uninterrupted run's.

Errors are agreed: a rank that meets bad input tells the others, and every rank stops with
the same one-line error.  A rank that dies or stops answering for ``TIMEOUT_SECONDS``
makes the others stop with a one-line error naming it.  torch is imported only when a
distributed run starts.
"""
import atexit
import contextlib
import datetime
import logging
import os
import sys
import time

import numpy as np

from runtime import errors
from runtime.errors import GradcError

TIMEOUT_SECONDS = 300  # a rank silent this long inside one collective is taken for dead
CENSUS_SECONDS = 2.0   # after a failed collective, how long the ranks wait to see who is left


class Stopped(Exception):
    """Raised by the gradient reduction when another rank stopped before its update."""


def launched():
    """Whether this process was started by ``torchrun`` (or another launcher that sets
    ``RANK`` and ``WORLD_SIZE``)."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def epoch_rows(order, shards, procs=1, rank=0):
    """The rows process ``rank`` of ``procs`` trains on in one epoch, in order.

    ``order`` (the epoch's permutation) is padded to a multiple of ``shards`` and dealt
    out row by row; the process takes shards ``rank*m .. rank*m + m - 1`` (``m = shards //
    procs``), interleaved so that each of its minibatches of ``m * batch_size`` rows is
    the union of those shards' minibatches.

    >>> epoch_rows(np.arange(5), shards=2, procs=2, rank=1)
    array([1, 3, 0])
    >>> epoch_rows(np.arange(5), shards=2)
    array([0, 1, 2, 3, 4, 0])
    """
    m = shards // procs
    padded = np.resize(order, -(-len(order) // shards) * shards)
    return padded.reshape(-1, shards)[:, rank * m:(rank + 1) * m].reshape(-1)


def shards_for(saved, procs):
    """A run's shards: the checkpoint's ``saved`` when ``procs`` divides it, else ``procs``."""
    return saved if saved is not None and saved % procs == 0 else procs


def process_seed(seed, rank):
    """The dropout seed of ``rank``: the seed itself on rank 0, its own stream elsewhere."""
    if rank == 0 or seed is None:
        return seed
    return int(np.random.SeedSequence([seed & 0xFFFFFFFF, rank]).generate_state(1)[0])


def _torch():
    if "torch" not in sys.modules:  # torch's C++ warnings would bury the one-line errors
        os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "ERROR")
    try:
        import torch
        import torch.distributed as dist
    except ImportError:
        raise GradcError("distributed training needs PyTorch (pip install torch)") from None
    if not dist.is_available():
        raise GradcError("this PyTorch build has no torch.distributed")
    return torch, dist


def launch(nproc, module, args):
    """Run ``python -m module ARGS`` in ``nproc`` processes on this machine through
    ``torch.distributed.run`` (torchrun's standalone mode); the exit status.

    Workers that stop on an error print it themselves (status 2); a worker that dies
    otherwise is named here in one line."""
    _torch()
    from torch.distributed import run as torchrun
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    os.environ.setdefault("OMP_NUM_THREADS", "1")  # torchrun's default, without its banner
    settings = torchrun.parse_args(["--standalone", f"--nproc-per-node={nproc}", "-m", module])
    settings.training_script_args = list(args)
    logging.disable(logging.CRITICAL)  # the launcher's own log lines: one line is ours to print
    try:
        torchrun.run(settings)
    except ChildFailedError as e:  # the launcher stops the others with SIGTERM after a failure
        failed = {r: f for r, f in e.failures.items() if f.signal_name() != "SIGTERM"} or e.failures
        died = {r: f for r, f in failed.items() if f.exitcode != 2}
        if not died:  # each printed its error
            return 2
        rank, f = min(died.items())
        how = (f"was killed by {f.signal_name()}" if f.exitcode < 0
               else f"exited with status {f.exitcode}")
        raise GradcError(f"rank {rank} {how}; the other processes were stopped") from None
    except SignalException:
        raise KeyboardInterrupt from None
    finally:
        logging.disable(logging.NOTSET)
    return 0


def join(on_device=False):
    """The ``Group`` of this process: the process group torch.distributed already has, or one
    started from torchrun's environment (gloo, or NCCL for tensors on a GPU) with a
    timeout of ``TIMEOUT_SECONDS``."""
    torch, dist = _torch()
    if not dist.is_initialized():
        if not launched():
            raise GradcError("distributed training needs the environment torchrun sets (RANK, "
                             "WORLD_SIZE, MASTER_ADDR, MASTER_PORT) or a process group from "
                             "torch.distributed.init_process_group")
        backend = "gloo"
        if on_device:
            from runtime.tkernels import device

            if device().type == "cuda":
                backend = "nccl"
                torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        try:
            dist.init_process_group(backend, timeout=datetime.timedelta(seconds=TIMEOUT_SECONDS))
        except Exception as e:  # the rendezvous timed out or the address is wrong
            raise GradcError(f"could not start the process group: {_first_sentence(e)}") from None
        atexit.register(dist.destroy_process_group)  # else gloo's threads may abort the exit
    return Group(torch, dist)


class Group:
    """The processes of one data-parallel run: rank, size, and the collectives training uses."""

    def __init__(self, torch, dist):
        self.torch, self.dist = torch, dist
        self.rank, self.size = dist.get_rank(), dist.get_world_size()
        self.local_rank = int(os.environ.get("LOCAL_RANK", self.rank))
        self.device = "cuda" if dist.get_backend() == "nccl" else "cpu"

    def agree(self, error=None, settings=None, when="before training"):
        """Every rank learns whether any rank met an error; then every rank raises the first
        one (prefixed with its rank when the ranks disagree).  ``settings`` (a dict) must be
        rank 0's on every rank."""
        mine = (type(error).__name__, str(error)) if error is not None else None
        everyone = [None] * self.size
        self._collective(when, lambda: self.dist.all_gather_object(everyone, (mine, settings)))
        failed = [(r, e) for r, (e, _) in enumerate(everyone) if e is not None]
        if failed:
            rank, (kind, message) = failed[0]
            same = len(failed) == self.size and all(e == failed[0][1] for _, e in failed)
            error_type = getattr(errors, kind, GradcError)
            agreed = error_type(message if same else f"rank {rank}: {message}")
        elif settings is not None and any(s != everyone[0][1] for _, s in everyone):
            rank = next(r for r, (_, s) in enumerate(everyone) if s != everyone[0][1])
            agreed = GradcError(_difference(rank, everyone[rank][1], everyone[0][1]))
        else:
            return
        agreed.echo = self.local_rank == 0  # one copy of the line per machine
        raise agreed

    def share(self, arrays, obj=None, when="before training"):
        """Rank 0's ``arrays`` (in place) and ``obj`` (picklable), on every rank."""
        def send():
            for t in arrays:
                self.dist.broadcast(self._tensor(t), src=0)
            if obj is None:
                return None
            box = [obj]
            self.dist.broadcast_object_list(box, src=0)
            return box[0]

        return self._collective(when, send)

    def reducer(self, flat_grads):
        """A function of the step that sums ``flat_grads`` over the ranks in one all_reduce
        and divides by their number.  Its last element is a flag: a rank that stopped
        (``stop``) sets it, and then every other rank raises ``Stopped``, without updating."""
        t = self._tensor(flat_grads)

        def reduce(step):
            t[-1] = 0
            self._collective(f"at step {step}", lambda: self.dist.all_reduce(t))
            if t[-1].item() != 0:
                raise Stopped(step)
            t.div_(self.size)

        return reduce

    def stop(self, flat_grads, step):
        """This rank's part of step ``step``'s reduction when it stops before its update."""
        t = self._tensor(flat_grads)
        t[-1] = 1
        self._collective(f"at step {step}", lambda: self.dist.all_reduce(t))

    def average(self, values, when):
        """The mean over the ranks of a list of floats (one all_reduce)."""
        t = self.torch.tensor(values, dtype=self.torch.float64, device=self.device)
        self._collective(when, lambda: self.dist.all_reduce(t))
        return (t / self.size).tolist()

    def _tensor(self, buffer):
        return self.torch.from_numpy(buffer) if isinstance(buffer, np.ndarray) else buffer

    def _collective(self, when, fn):
        try:
            return fn()
        except Exception as e:  # a rank died (connection closed) or did not answer in time
            missing = self._missing()
            reason = _first_sentence(e)
            if not missing:
                raise GradcError(f"a collective operation failed {when}: {reason}") from None
            who = f"rank{'s' if len(missing) > 1 else ''} {', '.join(map(str, missing))}"
            raise GradcError(f"{who} stopped responding {when} ({reason}); stopping") from None

    def _missing(self):
        """The ranks that do not check in on the rendezvous store within ``CENSUS_SECONDS``
        (the store is torchrun's, or rank 0's without torchrun: then it names rank 0)."""
        here = None
        try:
            store = self.dist.distributed_c10d._get_default_store()
            store.set_timeout(datetime.timedelta(seconds=CENSUS_SECONDS))
            store.set(f"gradc/alive/{self.rank}", "1")
            deadline = time.monotonic() + CENSUS_SECONDS
            while True:
                here = [r for r in range(self.size) if store.check([f"gradc/alive/{r}"])]
                if len(here) == self.size or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
        except Exception:  # the store went away (with rank 0, or with torchrun's agent)
            if here is None:
                return [] if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True" else [0]
        return [r for r in range(self.size) if r not in here]


@contextlib.contextmanager
def agreeing(group):
    """Checks before training: a ``GradcError`` on one rank stops every rank (``Group.agree``).
    Ranks that pass agree at the end of ``runtime.train``'s own checks."""
    try:
        yield
    except GradcError as e:
        if group is not None:
            group.agree(e)
        raise


def _difference(rank, settings, reference):
    key = next(k for k in reference if settings.get(k) != reference[k])
    return (f"rank {rank} has {key} {settings.get(key)!r} but rank 0 has {reference[key]!r}: "
            "every process needs the same settings and data")


def _first_sentence(error):
    """The first sentence of a torch/gloo error, without its ``[file:line]`` prefix."""
    text = " ".join(str(error).split())
    if text.startswith("[") and "] " in text:
        text = text.split("] ", 1)[1]
    return text.split(". ")[0].rstrip(".") or type(error).__name__
