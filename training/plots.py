"""PNG figures for a run: loss/metric curves, and photo | true mask | predicted mask grids."""

from __future__ import annotations

import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from training import CLASS_COLORS

CURVES = ("loss", "mean_iou", "foreground_iou", "iou_border", "pixel_accuracy")


def colorize(mask: np.ndarray) -> np.ndarray:
    """Class indices -> RGB with the classes' display colours."""
    return np.asarray(CLASS_COLORS, dtype=np.uint8)[np.clip(mask, 0, len(CLASS_COLORS) - 1)]


def plot_history(history_csv: Path, out: Path) -> Path:
    """One panel per quantity, train and validation per epoch."""
    with Path(history_csv).open() as f:
        rows = list(csv.DictReader(f))
    epochs = [int(r["epoch"]) + 1 for r in rows]
    names = [n for n in CURVES if rows and n in rows[0]]
    fig, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 3.2), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        ax.plot(epochs, [float(r[name]) for r in rows], label="train")
        if f"val_{name}" in rows[0]:
            ax.plot(epochs, [float(r[f"val_{name}"]) for r in rows], label="validation")
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[0][0].legend()
    fig.tight_layout()
    fig.savefig(out, dpi=80)
    plt.close(fig)
    return out


def plot_predictions(images, true_masks, pred_masks, titles, out: Path) -> Path:
    """Rows of photo | true mask | predicted mask, as the seed's `display`."""
    n = len(images)
    fig, axes = plt.subplots(n, 3, figsize=(7.5, 2.5 * n), squeeze=False)
    for i in range(n):
        for j, (img, label) in enumerate(
            (
                (images[i], titles[i]),
                (colorize(true_masks[i]), "true mask"),
                (colorize(pred_masks[i]), "predicted"),
            )
        ):
            axes[i][j].imshow(np.asarray(img).astype(np.uint8))
            axes[i][j].set_title(label, fontsize=8)
            axes[i][j].axis("off")
    fig.tight_layout()
    fig.savefig(out, dpi=80)
    plt.close(fig)
    return out
