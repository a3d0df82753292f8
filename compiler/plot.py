"""Pictures of a training run (matplotlib is an optional extra: ``pip install gradc[plot]``)."""
import io
from pathlib import Path

import numpy as np

from runtime.checkpoint import check_writable, write_atomic
from runtime.errors import GradcError


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend, or a one-line error."""
    try:
        import matplotlib
    except ImportError:
        raise GradcError("plotting needs matplotlib: pip install 'gradc[plot]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def check_output(path):
    """A one-line error, before any training, unless a plot can be written to ``path``:
    matplotlib installed, a file format it writes (.png, .pdf, .svg, ...), a writable place."""
    pyplot()
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fmt = Path(path).suffix[1:].lower()
    formats = FigureCanvasAgg.get_supported_filetypes()
    if fmt not in formats:
        kind = Path(path).suffix or "a file without an extension"
        others = ", ".join("." + f for f in sorted(formats) if f != "png")
        raise GradcError(f"cannot write a plot as {kind} ({path}); use .png or another format "
                         f"matplotlib writes ({others})")
    check_writable(path, "plot")
    return fmt


def loss_curves(hist, path, title="training"):
    """Step losses, epoch losses and validation losses on a log scale; metrics on the right."""
    plt = pyplot()
    has_metrics = bool(hist.metrics)
    fig, axes = plt.subplots(1, 2 if has_metrics else 1, figsize=(11 if has_metrics else 6.5, 4.2),
                             squeeze=False)
    ax = axes[0, 0]
    steps_per_epoch = max(len(hist.step_losses) // max(len(hist.epoch_losses), 1), 1)
    steps = np.arange(1, len(hist.step_losses) + 1) / steps_per_epoch
    if len(hist.step_losses) > len(hist.epoch_losses):
        ax.plot(steps, hist.step_losses, color="0.75", lw=0.6, label="minibatch loss")
    epochs = np.arange(1, len(hist.epoch_losses) + 1)
    ax.plot(epochs, hist.epoch_losses, color="C0", lw=1.8, label="epoch loss (train)")
    if hist.val_losses:
        ax.plot(epochs[:len(hist.val_losses)], hist.val_losses, color="C1", lw=1.8,
                label="validation loss")
    if hist.best_epoch:
        ax.axvline(hist.best_epoch, color="C3", ls="--", lw=1, label=f"best epoch {hist.best_epoch}")
    ax.semilogy()  # a logarithmic loss axis
    main = [v for v in hist.epoch_losses + hist.val_losses if v > 0]
    if main:  # minibatch losses are noisy: keep the epoch curves in view
        ax.set_ylim(min(main) / 4, max(main) * 3)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_title(f"{title}: loss")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    if has_metrics:
        mx = axes[0, 1]
        for name, values in hist.metrics.items():
            mx.plot(np.arange(1, len(values) + 1), values, lw=1.8, label=name)
        mx.set_xlabel("epoch")
        mx.set_ylabel("value")
        mx.set_title(f"{title}: metrics")
        mx.grid(True, alpha=0.3)
        mx.legend()
    fig.tight_layout()
    blob = io.BytesIO()
    fig.savefig(blob, format=check_output(path), dpi=110)
    plt.close(fig)
    write_atomic(path, blob.getvalue())
    return path
