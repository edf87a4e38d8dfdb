"""Server processes for benchmarks and stress runs: start, time until ready, resident memory, stop."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_MODEL_BASE = REPO / "models" / "pet-unet"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rss_bytes(pid: int) -> int:
    """Resident set size of `pid` (Linux /proc), 0 once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time `pid` has used so far, over all its threads (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class ServerProcess:
    """One HTTP server in its own process group; `wait_ready` measures process start → /readyz 200."""

    def __init__(self, argv: list[str], env: dict[str, str], log_path: Path, port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = log_path.open("w")
        self.started = time.perf_counter()
        self.process = subprocess.Popen(
            argv,
            cwd=REPO,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def rss(self) -> int:
        return rss_bytes(self.pid)

    def cpu(self) -> float:
        return cpu_seconds(self.pid)

    def wait_ready(self, limit_s: float = 300.0, path: str = "/readyz") -> float:
        """Seconds from process start until `path` answered 200; raises with the log when it never does."""
        deadline = time.perf_counter() + limit_s
        while time.perf_counter() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited {self.process.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url + path, timeout=2) as response:
                    if response.status == 200:
                        return time.perf_counter() - self.started
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            time.sleep(0.05)
        raise RuntimeError(f"server not ready after {limit_s}s:\n{self.log_tail()}")

    def log_tail(self, chars: int = 4000) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-chars:]

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM, wait, SIGKILL if it hangs; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.terminate()


def start_service(
    model_dir: Path, log_path: Path, env: dict[str, str] | None = None, port: int | None = None
) -> ServerProcess:
    """The service as `petseg serve` runs it (uvicorn, default settings unless `env` overrides them)."""
    port = port or free_port()
    argv = [sys.executable, "-m", "app", "serve", "--host", "127.0.0.1", "--port", str(port)]
    env = {"PETSEG_MODEL_DIR": str(model_dir), **(env or {})}
    return ServerProcess(argv, env, log_path, port)


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


def export_tiny_model(scratch: Path) -> Path:
    """Train and export the tests' tiny model with the real training CLI (about a minute)."""
    from training.synthetic import write_synthetic_dataset

    scratch.mkdir(parents=True, exist_ok=True)
    target = scratch / "tiny-model" / "1"
    if (target / "saved_model.pb").is_file():
        return target
    data = write_synthetic_dataset(scratch / "tiny-data", n_trainval=40, n_test=12, seed=1)
    run = scratch / "tiny-run"
    common = [sys.executable, "-m", "training"]
    subprocess.run(
        [*common, "train", "--data-dir", str(data), "--run-dir", str(run), "--epochs", "1",
         "--input-size", "64", "--batch-size", "8", "--encoder-weights", "none", "--alpha", "0.35",
         "--decoder-scale", "0.125"],
        cwd=REPO, check=True, capture_output=True,
    )  # fmt: skip
    subprocess.run(
        [*common, "export", "--run-dir", str(run), "--output", str(target), "--evaluate", "validation"],
        cwd=REPO, check=True, capture_output=True,
    )  # fmt: skip
    return target
