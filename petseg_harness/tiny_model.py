"""The tiny real model the tests (and a bench/stress run without a released model) serve.

Small but real: MobileNetV2 at alpha 0.35 with a slim decoder, random init, two epochs on the synthetic
data set, trained and exported by the real training CLI in subprocesses, as a user would run it. It
carries the species/breed heads, so the service's tests see a model with every contract output.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from petseg_harness.server import REPO

TINY_MODEL_NAME = "tiny-pet"
TINY_INPUT_SIZE = 64
TINY_TRAIN_ARGS = [
    "--epochs", "2",
    "--input-size", str(TINY_INPUT_SIZE),
    "--batch-size", "8",
    "--encoder-weights", "none",
    "--alpha", "0.35",
    "--decoder-scale", "0.125",
    "--heads", "species-breed",
]  # fmt: skip


def write_tiny_dataset(root: Path) -> Path:
    """A tiny Oxford-IIIT Pet in the official layout, defects included (see training.synthetic)."""
    from training.synthetic import write_synthetic_dataset

    return write_synthetic_dataset(root, n_trainval=40, n_test=12, seed=1)


def training_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """`python -m training ARGS` from the repository root, output captured; the caller judges the exit."""
    return subprocess.run(
        [sys.executable, "-m", "training", *args], cwd=REPO, capture_output=True, text=True, timeout=timeout
    )


def export_tiny_model(scratch: Path) -> Path:
    """Train and export the tiny model under `scratch` (about a minute), once; returns its version dir."""
    target = scratch / "tiny-model" / "1"
    if (target / "saved_model.pb").is_file():
        return target
    data = write_tiny_dataset(scratch / "tiny-data")
    run = scratch / "tiny-run"
    for args in (
        ["train", "--data-dir", str(data), "--run-dir", str(run), *TINY_TRAIN_ARGS],
        ["export", "--run-dir", str(run), "--output", str(target), "--evaluate", "validation"],
    ):
        proc = training_cli(*args)
        if proc.returncode != 0:
            raise RuntimeError(
                f"python -m training {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}"
            )
    return target
