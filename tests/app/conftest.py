"""Fixtures for the service: real uvicorn servers on the tiny exported model, and synthetic photos."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
API_KEY = "test-key-123"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """`uvicorn app.main:app` in a subprocess, as production runs it."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log = log_path.open("w")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "app.main:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            cwd=REPO,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, limit_s: float = 180.0) -> None:
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"server exited {self.process.returncode}:\n{self.log_path.read_text()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        pytest.fail(f"server not ready after {limit_s}s:\n{self.log_path.read_text()}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()


def start_server(tmp_path_factory, name: str, env: dict[str, str]) -> Iterator[Server]:
    server = Server(env, tmp_path_factory.mktemp("logs") / f"{name}.log")
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def model_dir(tiny_model_dir: Path) -> Path:
    """The tiny model exported by the real training package (tests/conftest.py)."""
    return tiny_model_dir


@pytest.fixture(scope="session")
def server(tmp_path_factory, model_dir: Path) -> Iterator[Server]:
    """The service with defaults except a longer batch wait, so concurrent requests share batches."""
    yield from start_server(
        tmp_path_factory,
        "open",
        {
            "PETSEG_MODEL_DIR": str(model_dir),
            "PETSEG_MAX_BATCH_WAIT_MS": "50",
            "PETSEG_MAX_UPLOAD_BYTES": str(2 * 1024 * 1024),
            "PETSEG_MAX_PIXELS": str(4_000_000),
        },
    )


@pytest.fixture(scope="session")
def guarded_server(tmp_path_factory, model_dir: Path) -> Iterator[Server]:
    """The service with an API key (and a one-photo queue), to see 401 on /segment and open probes."""
    yield from start_server(
        tmp_path_factory,
        "guarded",
        {
            "PETSEG_MODEL_DIR": str(model_dir / "1"),
            "PETSEG_API_KEY": API_KEY,
            "PETSEG_QUEUE_CAPACITY": "1",
            "PETSEG_MAX_BATCH_SIZE": "1",
            "PETSEG_MAX_BATCH_WAIT_MS": "0",
        },
    )


@pytest.fixture
def client(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=60) as http:
        yield http


def make_photo(width: int = 120, height: int = 90, mode: str = "RGB", fmt: str = "JPEG", **save) -> bytes:
    """A synthetic photo: a bright blob on a darker gradient, in any mode and format."""
    image = Image.new("RGB", (width, height), (40, 60, 80))
    for x in range(width // 4, 3 * width // 4):
        for y in range(height // 4, 3 * height // 4):
            image.putpixel((x, y), (220, 180, 120))
    if mode == "I;16":
        image = Image.fromarray(np.asarray(image.convert("L"), dtype=np.uint16) * 257)
    elif mode != "RGB":
        image = image.convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **save)
    return buffer.getvalue()


def decode_png(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG"
    image.load()
    return image
