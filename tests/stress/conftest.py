"""A real `petseg serve` process on the tiny exported model, for the quick part of the stress suite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from petseg_harness.photos import make_photo
from petseg_harness.server import ServerProcess, running_service

MAX_UPLOAD_BYTES = 2 * 1024 * 1024  # small, so over-limit uploads are quick to send


@pytest.fixture(scope="module")
def stress_server(tiny_model_dir: Path, tmp_path_factory) -> Iterator[ServerProcess]:
    log = tmp_path_factory.mktemp("stress") / "server.log"
    with running_service(tiny_model_dir, log, {"PETSEG_MAX_UPLOAD_BYTES": str(MAX_UPLOAD_BYTES)}) as server:
        yield server


@pytest.fixture(scope="session")
def load_photos() -> list[tuple[str, bytes]]:
    """Synthetic photos of a few typical sizes (CI has no pet photos)."""
    sizes = [(500, 375), (375, 500), (640, 480), (300, 225)]
    return [(f"p{i}.jpg", make_photo(w, h)) for i, (w, h) in enumerate(sizes)]
