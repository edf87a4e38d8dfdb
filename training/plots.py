"""PNG figures for a run: loss/metric curves, and photo | true mask | predicted mask grids."""

from __future__ import annotations

import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from training import CLASS_COLORS

CURVES = (
    "loss",
    "mean_iou",
    "foreground_iou",
    "iou_border",
    "pixel_accuracy",
    "species_accuracy",
    "breed_accuracy",
)
# A model with the species/breed heads logs its segmentation metrics as "segmentation_<name>".
PREFIXES = ("", "segmentation_")


def colorize(mask: np.ndarray) -> np.ndarray:
    """Class indices -> RGB with the classes' display colours."""
    return np.asarray(CLASS_COLORS, dtype=np.uint8)[np.clip(mask, 0, len(CLASS_COLORS) - 1)]


def plot_history(history: Path | list[dict], out: Path) -> Path:
    """One panel per quantity, train and validation per epoch; `history` is a run's history.csv or its
    rows (as an export's metadata.json keeps them)."""
    if isinstance(history, list):
        rows = history
    else:
        with Path(history).open() as f:
            rows = list(csv.DictReader(f))
    epochs = [int(r["epoch"]) + 1 for r in rows]
    columns = [p + n for n in CURVES for p in PREFIXES if rows and p + n in rows[0]]
    fig, axes = plt.subplots(1, len(columns), figsize=(4 * len(columns), 3.2), squeeze=False)
    for ax, name in zip(axes[0], columns, strict=True):
        ax.plot(epochs, [float(r[name]) for r in rows], label="train")
        if f"val_{name}" in rows[0]:
            ax.plot(epochs, [float(r[f"val_{name}"]) for r in rows], label="validation")
        ax.set_title(name.removeprefix("segmentation_"))
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[0][0].legend()
    fig.tight_layout()
    fig.savefig(out, dpi=80)
    plt.close(fig)
    return out


def plot_grid(rows, out: Path) -> Path:
    """A grid of titled images: `rows` is a list of rows, each a list of (image, title)."""
    ncols = max(len(r) for r in rows)
    fig, axes = plt.subplots(len(rows), ncols, figsize=(2.5 * ncols, 2.5 * len(rows)), squeeze=False)
    for ax_row, row in zip(axes, rows, strict=True):
        for ax, (img, title) in zip(ax_row, row, strict=False):
            ax.imshow(np.asarray(img).astype(np.uint8))
            ax.set_title(title, fontsize=8)
        for ax in ax_row:
            ax.axis("off")
    fig.tight_layout()
    fig.savefig(out, dpi=80)
    plt.close(fig)
    return out


def plot_predictions(images, true_masks, pred_masks, titles, out: Path) -> Path:
    """Rows of photo | true mask | predicted mask, as the seed's `display`."""
    rows = [
        [(img, title), (colorize(t), "true mask"), (colorize(p), "predicted mask")]
        for img, t, p, title in zip(images, true_masks, pred_masks, titles, strict=True)
    ]
    return plot_grid(rows, out)
