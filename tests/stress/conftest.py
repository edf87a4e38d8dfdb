"""Real `petseg serve` processes on the tiny exported model, for the quick part of the stress suite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.server import ServerProcess, start_service
from stress.corpus import photo

MAX_UPLOAD_BYTES = 2 * 1024 * 1024  # small, so over-limit uploads are quick to send


def serve(model_dir: Path, log_dir: Path, **env: str) -> ServerProcess:
    server = start_service(model_dir, log_dir / "server.log", env={k.upper(): v for k, v in env.items()})
    try:
        server.wait_ready(limit_s=180)
    except RuntimeError as exc:
        server.terminate()
        pytest.fail(str(exc))
    return server


@pytest.fixture(scope="module")
def stress_server(tiny_model_dir: Path, tmp_path_factory) -> Iterator[ServerProcess]:
    server = serve(
        tiny_model_dir, tmp_path_factory.mktemp("stress"), petseg_max_upload_bytes=str(MAX_UPLOAD_BYTES)
    )
    yield server
    server.terminate()


@pytest.fixture(scope="session")
def load_photos() -> list[tuple[str, bytes]]:
    """Synthetic photos of a few typical sizes (CI has no pet photos)."""
    sizes = [(500, 375), (375, 500), (640, 480), (300, 225)]
    return [(f"p{i}.jpg", photo(w, h)) for i, (w, h) in enumerate(sizes)]
