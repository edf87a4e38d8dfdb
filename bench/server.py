"""The servers a benchmark compares: the naive baseline, and which model they all serve.

Starting, probing and stopping a server process is petseg_harness.server's job, shared with the tests.
"""

from __future__ import annotations

import sys
from pathlib import Path

from petseg_harness.server import REPO, ServerProcess, free_port
from petseg_harness.tiny_model import export_tiny_model

DEFAULT_MODEL_BASE = REPO / "models" / "pet-unet"


def start_naive(model_dir: Path, log_path: Path, port: int | None = None) -> ServerProcess:
    """The tutorial-style baseline in bench/naive_server.py under plain uvicorn."""
    port = port or free_port()
    argv = [
        sys.executable, "-m", "uvicorn", "bench.naive_server:app",
        "--host", "127.0.0.1", "--port", str(port),
    ]  # fmt: skip
    return ServerProcess(argv, {"NAIVE_MODEL_DIR": str(model_dir)}, log_path, port)


def resolve_model(model_dir: Path | None, scratch: Path) -> tuple[Path, str]:
    """The SavedModel version directory to measure, and a note on where it came from.

    Falls back to exporting a tiny model on the fly when no released model is bundled, and says so.
    """
    from app.settings import ModelDirError, resolve_model_version_dir

    candidate = model_dir or DEFAULT_MODEL_BASE
    try:
        return resolve_model_version_dir(candidate), "--model-dir" if model_dir else "bundled release model"
    except ModelDirError as exc:
        if model_dir is not None:
            raise
        note = f"NO BUNDLED MODEL ({exc}); a tiny model exported on the fly: numbers NOT representative"
    return export_tiny_model(scratch), note
