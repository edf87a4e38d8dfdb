"""Fixtures for the service: real `petseg serve` processes on the tiny exported model."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from petseg_harness.server import ServerProcess, running_service

API_KEY = "test-key-123"


@pytest.fixture(scope="session")
def model_dir(tiny_model_dir: Path) -> Path:
    """The tiny model exported by the real training package (tests/conftest.py)."""
    return tiny_model_dir


@pytest.fixture(scope="session")
def server(tmp_path_factory, model_dir: Path) -> Iterator[ServerProcess]:
    """The service with defaults except a longer batch wait, so concurrent requests share batches."""
    env = {
        "PETSEG_MAX_BATCH_WAIT_MS": "50",
        "PETSEG_MAX_UPLOAD_BYTES": str(2 * 1024 * 1024),
        "PETSEG_MAX_PIXELS": str(4_000_000),
    }
    with running_service(model_dir, tmp_path_factory.mktemp("logs") / "open.log", env) as running:
        yield running


@pytest.fixture(scope="session")
def guarded_server(tmp_path_factory, model_dir: Path) -> Iterator[ServerProcess]:
    """The service with an API key (and a one-photo queue), to see 401 on /segment and open probes."""
    env = {
        "PETSEG_API_KEY": API_KEY,
        "PETSEG_QUEUE_CAPACITY": "1",
        "PETSEG_MAX_BATCH_SIZE": "1",
        "PETSEG_MAX_BATCH_WAIT_MS": "0",
    }
    # A version directory, not the base: both forms of PETSEG_MODEL_DIR are served.
    with running_service(model_dir / "1", tmp_path_factory.mktemp("logs") / "guarded.log", env) as running:
        yield running


@pytest.fixture
def client(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=60) as http:
        yield http


def decode_png(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG"
    image.load()
    return image
