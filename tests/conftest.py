"""Session fixtures shared by every test package: a synthetic dataset and a tiny real SavedModel.

The model is trained and exported by the real training CLI (subprocesses, like a user would run it),
so the service's tests load exactly what the export contract produces, never a mock.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from petseg_harness.tiny_model import TINY_MODEL_NAME, TINY_TRAIN_ARGS, training_cli, write_tiny_dataset

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def run_cli(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run `python -m training ...` and fail the test with its output when it exits non-zero."""
    proc = training_cli(*args, timeout=timeout)
    if proc.returncode != 0:
        pytest.fail(
            f"python -m training {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory) -> Path:
    """A tiny Oxford-IIIT Pet in the official layout, defects included (see training.synthetic)."""
    return write_tiny_dataset(tmp_path_factory.mktemp("pets"))


@pytest.fixture(scope="session")
def tiny_run_dir(tmp_path_factory, synthetic_root) -> Path:
    """A finished training run on the synthetic set (the real CLI, a few seconds)."""
    run = tmp_path_factory.mktemp("runs") / "tiny"
    run_cli("train", "--data-dir", str(synthetic_root), "--run-dir", str(run), *TINY_TRAIN_ARGS)
    return run


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tiny_run_dir) -> Path:
    """A model base directory (TF Serving layout) holding version 1 of the tiny exported model."""
    base = tmp_path_factory.mktemp("models") / TINY_MODEL_NAME
    run_cli(
        "export", "--run-dir", str(tiny_run_dir), "--output", str(base / "1"), "--evaluate", "validation,test"
    )
    return base
