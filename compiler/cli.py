"""The ``gradc`` command line: compile, check and train model files.

Bad input prints one line, ``gradc: error: FILE:LINE: problem``, and exits 2.
"""
import argparse
import io
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from compiler import config, modelfile
from compiler.cache import write_atomic
from runtime import checkpoint as ckpt
from runtime.errors import GradcError


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise GradcError(message)


def positive_int(text):
    """argparse type: an integer >= 1 (``--batch 0`` or ``-4`` is a one-line error)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def _precision_flag(parser):
    parser.add_argument("--input-precision", dest="input_precision", default="ieee",
                        choices=["ieee", "tf32", "tf32x3"],
                        help="float32 matmuls on the Triton backend: ieee (default, as numpy), "
                        "tf32 (the fast GPU mode), tf32x3")


def _parser():
    p = _Parser(prog="gradc", description="gradc: a symbolic-to-code differentiation compiler "
                "for neural-network training.",
                epilog="Environment: GRADC_CACHE_DIR (default ~/.cache/gradc), GRADC_DEBUG=1..5.")
    p.add_argument("--version", action="version", version=f"gradc {config.VERSION}")
    sub = p.add_subparsers(dest="verb", metavar="VERB", parser_class=_Parser)
    sub.required = True

    c = sub.add_parser("compile", help="generate the training module of a model file",
                       description="Differentiate MODEL.py and write the generated module.")
    c.add_argument("model", metavar="MODEL.py")
    c.add_argument("--backend", choices=["numpy", "triton"], default="numpy",
                   help="numpy (default) or triton (a GPU, or TRITON_INTERPRET=1 on the CPU)")
    c.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    _precision_flag(c)
    c.add_argument("--out", metavar="DIR", help="also copy the module to DIR/<model>_<backend>.py")

    f = sub.add_parser("flops", help="flops of a training step: naive vs CSE vs forward vs reverse",
                       description="Flops to produce the loss and every parameter gradient, five "
                       "ways, as formulas in the shape symbols; with --batch also as numbers.")
    f.add_argument("model", metavar="MODEL.py")
    f.add_argument("--batch", type=positive_int, help="evaluate the formulas at this batch size")
    f.add_argument("--json", action="store_true", help="print JSON instead of a table")
    f.add_argument("--no-naive", dest="naive", action="store_false",
                   help="skip the naive rows (whole-network sympy differentiation)")
    f.add_argument("--naive-seconds", dest="naive_seconds", type=float,
                   metavar="S", help="time budget of the naive rows; past it they are "
                   "reported as skipped (default 20)")

    i = sub.add_parser("inspect", help="list the generated kernels with flops and bytes",
                       description="The kernels of MODEL.py's training step: fused nodes, flops "
                       "and bytes moved (formulas, or numbers with --batch).")
    i.add_argument("model", metavar="MODEL.py")
    i.add_argument("--kernel", metavar="NAME", help="only this kernel")
    i.add_argument("--source", action="store_true", help="print the kernels' source")
    i.add_argument("--batch", type=positive_int, help="evaluate the formulas at this batch size")
    i.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    i.add_argument("--backend", choices=["numpy", "triton"], default="numpy",
                   help="whose source --source prints (the kernels are the same)")
    _precision_flag(i)
    i.add_argument("--ptx", action="store_true", help="compile the Triton kernels and print PTX")
    i.add_argument("--sass", action="store_true", help="compile the Triton kernels and print SASS")
    i.add_argument("--resources", action="store_true",
                   help="compile the Triton kernels: registers, shared and local memory")
    i.add_argument("--arch", default="sm_90", choices=["sm_80", "sm_90"],
                   help="GPU to compile for ahead of time (no GPU needed; default sm_90)")
    i.add_argument("--gpu", choices=["h100"], help="add a roofline time per kernel (a model)")
    i.add_argument("--json", action="store_true", help="print JSON instead of text")

    r = sub.add_parser("trace", help="forward primal and reverse adjoint trace of a scalar model",
                       description="Print the forward primal trace and the reverse adjoint trace "
                       "(as in seed 003) of a model of scalars at the given point.")
    r.add_argument("model", metavar="MODEL.py")
    r.add_argument("--at", default="", metavar="X1=V,X2=V",
                   help="values of the model's variables (all of them)")

    k = sub.add_parser("check", help="compare gradients with finite differences (float64)",
                       description="Compare every parameter gradient of MODEL.py with central "
                       "finite differences in float64; exit 1 when an entry has "
                       "|analytic - numeric| > atol + rtol*|numeric| (as "
                       "torch.autograd.gradcheck), listing those entries.")
    k.add_argument("model", metavar="MODEL.py")
    k.add_argument("--atol", type=float, help="absolute tolerance (default 1e-6)")
    k.add_argument("--rtol", type=float, help="relative tolerance (default 1e-5)")
    k.add_argument("--tol", type=float, help="sets both --atol and --rtol (where not given)")
    k.add_argument("--order", type=int, choices=[1, 2], default=1,
                   help="1: gradients; 2: Hessian-vector products against differences of gradients")
    k.add_argument("--batch", type=positive_int, default=4,
                   help="examples in the checked batch (default 4)")
    k.add_argument("--seed", type=int, default=0)
    k.add_argument("--data", metavar="FILE", help=".npz or .csv data instead of the file's data()")

    t = sub.add_parser("train", help="train a model file and report the loss",
                       description="Train MODEL.py on its data() (or --data FILE). Settings come "
                       "from the flags, then the file's `training` dict, then gradc's defaults.")
    t.add_argument("model", metavar="MODEL.py")
    t.add_argument("--optimizer", help="sgd (default), momentum, nesterov, adagrad, rmsprop, "
                   "adam or adamw")
    t.add_argument("--lr", type=float, help="learning rate (default: the optimizer's own)")
    t.add_argument("--schedule", help="constant, step:N[:GAMMA], exponential:GAMMA, "
                   "cosine[:T_MAX[:ETA_MIN]] or warmup:N[:START] (per epoch)")
    t.add_argument("--weight-decay", type=float, dest="weight_decay",
                   help="L2 weight decay (decoupled for adamw)")
    t.add_argument("--epochs", type=int, help="passes over the data (default 100)")
    t.add_argument("--batch-size", type=int, dest="batch_size", help="minibatch size (default 32)")
    t.add_argument("--val-fraction", type=float, dest="val_fraction",
                   help="hold out this fraction of the data for validation")
    t.add_argument("--early-stopping", type=int, dest="early_stopping", metavar="PATIENCE",
                   help="stop after PATIENCE epochs without a better validation loss")
    t.add_argument("--seed", type=int, default=0, help="seed for data, init, shuffling, dropout")
    t.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    t.add_argument("--backend", choices=["numpy", "triton"], default="numpy",
                   help="numpy (default) or triton (a GPU, or TRITON_INTERPRET=1 on the CPU)")
    _precision_flag(t)
    t.add_argument("--data", metavar="FILE", help=".npz or .csv data instead of the file's data()")
    t.add_argument("--checkpoint", metavar="PATH", help="save checkpoints here (the history "
                   "goes to PATH.history): after the first epoch, then every 30 s or more, and "
                   "at the end")
    t.add_argument("--checkpoint-every", type=int, dest="checkpoint_every", metavar="N",
                   help="save every N epochs instead of by time")
    t.add_argument("--resume", action="store_true", help="continue from --checkpoint")
    t.add_argument("--out", metavar="DIR", help="write DIR/history.json and DIR/params.npz")
    t.add_argument("--plot", metavar="PNG", help="draw the loss curves to this PNG file")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.add_argument("--nproc", type=positive_int, metavar="N",
                   help="train data-parallel in N processes on this machine (torch.distributed; "
                   "--batch-size is per process); under torchrun, leave it out")

    o = sub.add_parser("report", help="the whole compilation as one self-contained web page",
                       description="Write one HTML file that works offline: the model file, the "
                       "graph of the training step coloured by kernel, the kernels with their "
                       "costs and their numpy and Triton source, linked both ways; the flop "
                       "counts, the memory traffic, the traces of a model of scalars and, with "
                       "--history, the loss curves.")
    o.add_argument("model", metavar="MODEL.py")
    o.add_argument("-o", "--out", metavar="FILE.html",
                   help="where to write the page (default: MODEL_report.html here)")
    o.add_argument("--batch", type=positive_int, help="evaluate the formulas at this batch size "
                   f"(default: the model file's batch size, else {TRAIN_DEFAULTS['batch_size']})")
    o.add_argument("--backend", choices=["numpy", "triton"],
                   help="show only this backend's source (default: both, side by side)")
    o.add_argument("--gpu", choices=["h100"], help="add a roofline time per kernel (a model)")
    o.add_argument("--history", metavar="PATH.history", help="draw the loss curves of the run "
                   "whose history `gradc train --checkpoint PATH` wrote")
    o.add_argument("--at", metavar="X1=V,X2=V", help="a model of scalars: where to trace it "
                   "(default: at its initial parameters)")
    return p


def cmd_compile(args):
    """Write the generated module.  Emitting Triton source needs no GPU (running it does),
    so the module is generated without being imported."""
    from compiler.pipeline import module_path

    ns = modelfile.load(args.model)
    out = _writable_dir(args.out) if args.out else None
    path = module_path(ns["model"], "training", args.backend, args.dtype, args.input_precision)
    source = path.read_text()
    kernels, params = _module_tables(source, "KERNELS", "PARAMS")
    print(f"{path}  ({len(kernels)} kernels, {len(params)} parameters)")
    if out:
        target = out / f"{Path(args.model).stem}_{args.backend}.py"
        write_atomic(target, source)
        print(f"wrote {target}")
    for k in kernels:
        print(f"  {k['name']:<40} {k['phase']:<8} {len(k['nodes'])} nodes")
    if args.backend == "triton":
        print("running it needs a CUDA GPU, or TRITON_INTERPRET=1 for Triton's CPU interpreter")
    return 0


def _module_tables(source, *names):
    """The literal tables (``KERNELS``, ``PARAMS``, ...) of a generated module, read without
    importing it."""
    import ast

    found = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 \
                and getattr(node.targets[0], "id", None) in names:
            found[node.targets[0].id] = ast.literal_eval(node.value)
    return [found[n] for n in names]


def cmd_check(args):
    from compiler.gradcheck import ATOL, RTOL, batched_inputs, check_gradients, check_hessian

    tols = {"atol": args.atol, "rtol": args.rtol}
    for flag, value in tols.items():
        if value is None:
            tols[flag] = args.tol if args.tol is not None else {"atol": ATOL, "rtol": RTOL}[flag]
        if not tols[flag] >= 0:
            raise GradcError(f"--{flag} must be a number >= 0, got {tols[flag]:g}")
    atol, rtol = tols["atol"], tols["rtol"]
    with_noise = args.atol is None and args.tol is None  # an atol given is taken exactly
    ns = modelfile.load(args.model)
    data = None
    if args.data or "data" in ns:
        inputs = {x.name: (tuple(str(d) for d in x.shape), x.attr("dtype"))
                  for x in ns["model"].inputs}
        data = modelfile.load_data(ns, args.model, inputs, args.data, args.seed)
    if data is not None:
        batched = batched_inputs(ns["model"])
        rows = min((len(v) for k, v in data.items() if k in batched), default=args.batch)
        if rows < args.batch:
            print(f"checking on the {rows} examples the data has (--batch {args.batch})")
    check = check_gradients if args.order == 1 else check_hessian
    report = check(ns["model"], data, batch_size=args.batch, seed=args.seed)
    what = "gradient" if args.order == 1 else "Hessian-vector product"
    noise = max((e.noise for e in report.entries), default=0.0) if with_noise else 0.0
    print(f"{what}s against central finite differences (float64), atol {atol:g}, rtol {rtol:g}"
          + (f", plus the differences' own rounding noise {noise:.1e}:" if with_noise else ":"))
    width = max((len(name) for name, _, _ in report.rows), default=10)
    failures = report.failures(atol, rtol, with_noise)
    for name, err, n in report.rows:
        bad = sum(e.name == name for e in failures)
        print(f"  {name:<{width}}  max |analytic - numeric| {report.difference(name):.2e}  "
              f"max relative error {err:.2e}  ({n} entries){f', {bad} FAILED' if bad else ''}")
    for e in failures[:CHECK_LISTED]:
        print(f"  FAILED {e.label}: analytic {e.analytic:.10g}, numeric {e.numeric:.10g}, "
              f"|difference| {abs(e.analytic - e.numeric):.2e} > "
              f"{e.allowed(atol, rtol, with_noise):.2e} allowed")
    if len(failures) > CHECK_LISTED:
        print(f"  ... and {len(failures) - CHECK_LISTED} more entries")
    rule = "atol + rtol*|numeric|" + (" + noise" if with_noise else "")
    verdict = (f"but {len(failures)} of {len(report.entries)} entries outside {rule}: FAILED"
               if failures else f"and every entry within {rule}: ok")
    print(f"worst relative error {report.worst:.2e} {verdict}")
    return 1 if failures else 0


CHECK_LISTED = 10  # failing entries printed by `gradc check`


TRAIN_SETTINGS = ("optimizer", "lr", "schedule", "weight_decay", "epochs", "batch_size",
                  "val_fraction", "early_stopping")
TRAIN_DEFAULTS = {"optimizer": "sgd", "lr": None, "schedule": None, "weight_decay": None,
                  "epochs": 100, "batch_size": 32, "val_fraction": 0.0, "early_stopping": None}


def cmd_train(args):
    from compiler.pipeline import compile
    from runtime import distributed
    from runtime.train import train

    if args.nproc is not None and not distributed.launched():
        if args.nproc > 1:  # this process starts the workers, each running this command
            return distributed.launch(args.nproc, "compiler", args.argv)
    elif args.nproc is not None and args.nproc != int(os.environ["WORLD_SIZE"]):
        raise GradcError(f"--nproc {args.nproc}, but the launcher started "
                         f"{os.environ['WORLD_SIZE']} processes: leave --nproc out under torchrun")
    group = distributed.join(args.backend == "triton") if distributed.launched() else None
    rank0 = group is None or group.rank == 0  # rank 0 alone prints and writes
    with distributed.agreeing(group):  # bad input on any rank stops every rank
        ns = modelfile.load(args.model)
        defaults = dict(TRAIN_DEFAULTS)
        file_settings = ns.get("training", {}) or {}
        unknown = sorted(set(file_settings) - set(TRAIN_SETTINGS))
        if unknown:
            raise GradcError(f"unknown setting {unknown[0]!r} in the model file's `training` dict",
                             where=str(args.model))
        defaults.update(file_settings)
        settings = {k: (getattr(args, k) if getattr(args, k) is not None else defaults[k])
                    for k in TRAIN_SETTINGS}
        if args.resume and not args.checkpoint:
            raise GradcError("--resume needs --checkpoint PATH")
        out = _writable_dir(args.out) if args.out and rank0 else None  # outputs before any work
        if args.plot and rank0:
            from compiler.plot import check_output

            check_output(args.plot)
        if args.checkpoint and rank0:
            ckpt.check_writable(args.checkpoint)
        prog = compile(ns["model"], backend=args.backend, dtype=args.dtype,
                       input_precision=args.input_precision)
        if args.backend == "triton" and rank0 and not args.quiet:
            from compiler.inspection import tf32_note

            note = tf32_note(ns["model"], settings["batch_size"], args.dtype, args.input_precision)
            if note:
                print(note, file=sys.stderr)
        if prog.inputs or args.data or "data" in ns:
            data = modelfile.load_data(ns, args.model, prog.inputs, args.data, args.seed)
        else:  # a function of its parameters alone: full-batch steps on no data
            data = {}
    hist = train(prog, data, seed=args.seed, quiet=args.quiet, checkpoint=args.checkpoint,
                 checkpoint_every=args.checkpoint_every, resume=args.resume,
                 distributed=group is not None, **settings)
    if not rank0:
        return 0
    if args.resume and hist.start_epoch == settings["epochs"]:
        print(f"nothing to train: the checkpoint is already at epoch {hist.start_epoch} of "
              f"{settings['epochs']}")
    final = hist.epoch_losses[-1] if hist.epoch_losses else hist.initial_loss
    print(f"loss {hist.initial_loss:.6g} -> {final:.6g} ({_change(hist.initial_loss, final)}) "
          f"after {len(hist.epoch_losses)} epochs, {len(hist.step_losses)} steps")
    if hist.val_losses:
        print(f"val_loss {hist.val_losses[-1]:.6g}")
    for name, values in hist.metrics.items():
        print(f"{name} {values[-1]:.4f}")
    if hist.stopped_epoch:
        best = hist.best_epoch
        print(f"early stopping at epoch {hist.stopped_epoch}; best validation loss at epoch "
              f"{best} (those parameters are kept: training loss "
              f"{hist.epoch_losses[best - 1]:.6g}, val_loss {hist.val_losses[best - 1]:.6g})")
    if out:
        record = {**hist.to_json(), "settings": settings, "seed": args.seed, "model": str(args.model)}
        blob = io.BytesIO()
        np.savez(blob, **hist.params)
        _write_output(out / "history.json", json.dumps(record, indent=1).encode())
        _write_output(out / "params.npz", blob.getvalue())
        print(f"wrote {out / 'history.json'} and {out / 'params.npz'}")
    if args.plot:
        from compiler.plot import loss_curves

        try:
            loss_curves(hist, args.plot, title=Path(args.model).stem)
        except OSError as e:  # checked before training; the disk may still fill up
            raise GradcError(f"cannot write {args.plot}: {e.strerror or e}") from None
        print(f"wrote {args.plot}")
    return 0


def _write_output(path, data):
    """Write an output file atomically; a one-line error when that fails (a full disk)."""
    try:
        ckpt.write_atomic(path, data)
    except OSError as e:
        raise GradcError(f"cannot write {path}: {e.strerror or e}") from None


def _change(before, after):
    """How the loss moved: ``12.3x lower``, ``1.5x higher``, or the difference when a loss
    is not positive."""
    if after == before:
        return "unchanged"
    direction = "lower" if after < before else "higher"
    if before > 0 and after > 0:
        return f"{max(before, after) / min(before, after):.1f}x {direction}"
    return f"{abs(after - before):.6g} {direction}"


def _writable_dir(path):
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path):
            pass
    except OSError as e:
        raise GradcError(f"cannot write to output directory {path}: {e.strerror or e}") from None
    return path


def cmd_flops(args):
    from compiler.cost import at_batch
    from compiler.flops import LABELS, compare, evaluate

    budget = {}
    if args.naive_seconds is not None:
        if not 0 < args.naive_seconds < float("inf"):
            raise GradcError(f"--naive-seconds must be a number above 0, "
                             f"got {args.naive_seconds:g}")
        budget["max_seconds"] = args.naive_seconds
    ns = modelfile.load(args.model)
    model = ns["model"]
    rows = compare(model, batch=args.batch, budget=budget, naive=args.naive)
    numbers = evaluate(rows, args.batch) if args.batch is not None else None
    if args.json:
        out = {}
        for key, row in rows.items():
            entry = {"flops": None if row["flops"] is None else
                     (at_batch(row["flops"], args.batch) if args.batch is not None
                      else str(row["flops"]))}
            if args.batch is not None:
                entry["formula"] = None if row["flops"] is None else str(row["flops"])
            ratio = (numbers or evaluate(rows))[key]["ratio"]
            entry["ratio"] = ratio if ratio is None or isinstance(ratio, float) else str(ratio)
            if "reason" in row:
                entry["reason"] = row["reason"]
            out[key] = entry
        print(json.dumps(out, indent=1))
        return 0
    ratios = evaluate(rows)
    head = f"{'':<14} {'flops (formula)':<24}"
    if args.batch is not None:
        head += f" {f'flops (B={args.batch})':>16}"
    print(f"{Path(args.model).stem}: flops for the loss and all parameter gradients")
    print(head + f" {'ratio to forward':>18}")
    for key, row in rows.items():
        if row["flops"] is None:
            print(f"{LABELS[key]:<14} {'-':<24} {row['reason']}")
            continue
        line = f"{LABELS[key]:<14} {str(row['flops']):<24}"
        ratio = (numbers or ratios)[key]["ratio"]
        if args.batch is not None:
            line += f" {numbers[key]['flops']:>16,}"
        line += f" {ratio:>18.2f}" if isinstance(ratio, float) else f" {str(ratio):>18}"
        print(line)
    return 0




def cmd_inspect(args):
    from compiler.inspection import inspect_model

    ns = modelfile.load(args.model)
    aot = [w for w in ("ptx", "sass", "resources") if getattr(args, w)]
    report = inspect_model(ns["model"], backend="triton" if aot else args.backend, dtype=args.dtype,
                           input_precision=args.input_precision,
                           batch=args.batch, aot=aot, arch=args.arch, gpu=args.gpu)
    kernels = [k for k in report["kernels"] if args.kernel in (None, k["name"])]
    if args.kernel and not kernels:
        raise GradcError(f"no kernel named {args.kernel!r}; see `gradc inspect {args.model}`")
    if args.json:
        print(json.dumps({**report, "kernels": [{k: v for k, v in kern.items()
                                                 if k not in ("source", "ptx", "sass")}
                                                for kern in kernels]}, indent=1))
        return 0
    for k in kernels:
        extra = ""
        if "registers" in k:
            extra = (f"; {args.arch}: {k['registers']} registers, {k['shared']} B shared, "
                     f"{k['local']} B local")
        if "roofline_us" in k:
            extra += f"; model H100 time {k['roofline_us']:.3g} us"
        print(f"{k['name']} ({k['phase']}): flops {k['flops']}, bytes {k['bytes']}{extra}")
        for node in k["nodes"]:
            print(f"    {node}")
        if k.get("boundary"):
            print(f"    boundary: {k['boundary']}")
        if k.get("merged"):
            print(f"    merged: {k['merged']}")
        for field in ("source", "ptx", "sass"):
            if getattr(args, field, False) and field in k:
                print(k[field])
    n_graph = sum(k["phase"] != "update" for k in report["kernels"])
    print(f"bytes per training step with SGD: {report['bytes_fused']} in {report['kernel_count']} "
          f"kernels (the {n_graph} kernels listed and update_sgd), {report['bytes_unfused']} at "
          f"one kernel per op ({report['op_count']} ops)")
    return 0


def cmd_trace(args):
    from compiler.cost import graph_cost
    from compiler.flops import reverse_mode_graph
    from compiler.graph import toposort
    from compiler.trace import format_trace, parse_at, trace

    ns = modelfile.load(args.model)
    model = ns["model"]
    t = trace(model, parse_at(args.at))
    forward = graph_cost(toposort([model.loss])).flops
    reverse = graph_cost(reverse_mode_graph(model, wrt_inputs=True).nodes).flops
    print(format_trace(t, forward, reverse))
    return 0


def cmd_report(args):
    """Write the report page: the output is checked first, the page written atomically."""
    from compiler.report import BACKENDS, build, render

    out = Path(args.out) if args.out else Path(f"{Path(args.model).stem}_report.html")
    ckpt.check_writable(out, "report")
    ns = modelfile.load(args.model)
    backends = (args.backend,) if args.backend else BACKENDS
    page = render(build(args.model, ns, batch=args.batch, backends=backends, gpu=args.gpu,
                        history=args.history, at=args.at,
                        default_batch=TRAIN_DEFAULTS["batch_size"]))
    try:
        write_atomic(out, page)
    except OSError as e:
        raise GradcError(f"cannot write {out}: {e.strerror or e}") from None
    print(f"wrote {out} ({len(page.encode()):,} bytes)")
    return 0


COMMANDS = {"compile": cmd_compile, "check": cmd_check, "train": cmd_train, "flops": cmd_flops,
            "inspect": cmd_inspect, "trace": cmd_trace, "report": cmd_report}


def main(argv=None):
    try:
        args = _parser().parse_args(argv)
        args.argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
        return COMMANDS[args.verb](args)
    except GradcError as e:
        if getattr(e, "echo", True):  # an error every rank stops on: printed once per machine
            print(f"gradc: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gradc: interrupted", file=sys.stderr)
        return 130
    except RecursionError:
        print("gradc: internal error: recursion too deep", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `gradc inspect ... | head`: the reader left; the Python docs'
        devnull = os.open(os.devnull, os.O_WRONLY)  # recipe: no flush error at exit
        os.dup2(devnull, sys.stdout.fileno())
        return 141  # what a shell reports for a writer ended by SIGPIPE (not check's 1)


if __name__ == "__main__":
    sys.exit(main())
