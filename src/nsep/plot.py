"""Pictures a person can read: spectrograms, confusion matrices, learning curves (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

from nsep.spectrogram import SpectrogramResult  # noqa: E402

DPI = 100


def _hz_label(hz: float) -> str:
    return f"{hz / 1000:g}k" if hz >= 1000 else f"{hz:g}"


def spectrogram_png(result: SpectrogramResult, title: str, out: Path, size: tuple[int, int]) -> None:
    """Time in seconds, frequency in Hz (mel and log scales get Hz ticks), a dB colour bar."""
    spec = result.spec
    fig, ax = plt.subplots(figsize=(size[0] / DPI, size[1] / DPI), dpi=DPI, layout="constrained")
    freqs = result.frequencies
    extent_t = result.db.shape[1] * result.seconds_per_column
    if spec.scale == "linear":
        image = ax.imshow(result.db, origin="lower", aspect="auto", cmap="magma",
                          extent=(0, extent_t, 0, spec.sample_rate / 2), interpolation="nearest")
        lo = spec.fmin
        ax.set_ylim(lo, spec.upper)
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: _hz_label(v)))
    else:
        n = len(freqs)
        image = ax.imshow(result.db, origin="lower", aspect="auto", cmap="magma",
                          extent=(0, extent_t, -0.5, n - 0.5), interpolation="nearest")
        candidates = [f for f in (31.25, 62.5, 125, 250, 500, 1000, 2000, 4000, 8000, 16000, 32000)
                      if freqs[0] <= f <= freqs[-1]]
        ticks: list[tuple[float, float]] = []
        for f in candidates:  # keep ticks at least 1/20 of the axis apart
            position = float(np.interp(f, freqs, np.arange(n)))
            if not ticks or position - ticks[-1][1] >= n / 20:
                ticks.append((f, position))
        ax.set_yticks([p for _, p in ticks])
        ax.set_yticklabels([_hz_label(f) for f, _ in ticks])
    ax.set_xlabel("Time (s)")
    ax.set_ylabel(f"Frequency (Hz, {spec.scale} scale)")
    ax.set_xlim(0, min(extent_t, max(result.duration, 1e-3)))
    ax.set_title(title)
    bar = fig.colorbar(image, ax=ax, pad=0.01)
    bar.set_label("dB")
    fig.savefig(out, format="png")
    plt.close(fig)


def confusion_png(matrix: np.ndarray, labels: list[str], title: str, out: Path) -> None:
    """Row-normalised confusion matrix with counts in each cell."""
    rows = matrix.sum(axis=1, keepdims=True)
    share = np.divide(matrix, rows, out=np.zeros_like(matrix, dtype=float), where=rows > 0)
    size = 1.0 + 0.6 * len(labels)
    fig, ax = plt.subplots(figsize=(size + 1.5, size), dpi=DPI, layout="constrained")
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("Predicted")
    ax.set_ylabel("True")
    for i in range(len(labels)):
        for j in range(len(labels)):
            if matrix[i, j]:
                ax.text(j, i, int(matrix[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if share[i, j] > 0.5 else "black")
    fig.colorbar(image, ax=ax, label="share of row")
    ax.set_title(title)
    fig.savefig(out, format="png")
    plt.close(fig)


def curves_png(history: list[dict], out: Path, title: str) -> None:
    """Training loss and validation metrics by epoch."""
    epochs = [h["epoch"] for h in history]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4), dpi=DPI, layout="constrained")
    for key in ("train_loss", "valid_loss"):
        if all(key in h for h in history):
            left.plot(epochs, [h[key] for h in history], marker="o", label=key.replace("_", " "))
    left.set_xlabel("epoch")
    left.set_ylabel("loss")
    left.legend()
    metric_keys = [k for k in history[-1] if k.startswith("valid_") and k != "valid_loss"]
    for key in metric_keys:
        right.plot(epochs, [h.get(key) for h in history], marker="o", label=key.replace("_", " "))
    right.set_xlabel("epoch")
    values = [h.get(k) for h in history for k in metric_keys if h.get(k) is not None]
    if values and 0 <= min(values) and max(values) <= 1:
        right.set_ylim(0, 1)
    right.legend()
    fig.suptitle(title)
    fig.savefig(out, format="png")
    plt.close(fig)
