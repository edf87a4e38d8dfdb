"""Real server processes: start one, wait until it is ready, read its memory and CPU, stop it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


class ServerNotReady(RuntimeError):
    """The server exited, or did not answer its readiness probe in time; the message holds its log."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
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
    """One HTTP server in its own process group, its output in `log_path`.

    `wait_ready` measures process start → readiness probe 200; `terminate` is SIGTERM, as an orchestrator
    sends it, then SIGKILL if the process hangs.
    """

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
        """Seconds from process start until `path` answered 200; raises ServerNotReady when it never does."""
        deadline = time.perf_counter() + limit_s
        while time.perf_counter() < deadline:
            if self.process.poll() is not None:
                raise ServerNotReady(f"server exited {self.process.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url + path, timeout=2) as response:
                    if response.status == 200:
                        return time.perf_counter() - self.started
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            time.sleep(0.05)
        raise ServerNotReady(f"server not ready after {limit_s}s:\n{self.log_tail()}")

    def log_tail(self, chars: int = 4000) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-chars:]

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM, wait, SIGKILL if it hangs; returns the exit code. Safe to call twice."""
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
    """The service as production runs it (`petseg serve`) on `model_dir`, configured only through PETSEG_*
    variables: defaults unless `env` overrides them; host and port are the harness's to choose."""
    port = port or free_port()
    env = {
        "PETSEG_MODEL_DIR": str(model_dir),
        **(env or {}),
        "PETSEG_HOST": "127.0.0.1",
        "PETSEG_PORT": str(port),
    }
    return ServerProcess([sys.executable, "-m", "app", "serve"], env, log_path, port)


@contextmanager
def running_service(
    model_dir: Path, log_path: Path, env: dict[str, str] | None = None, limit_s: float = 300.0
) -> Iterator[ServerProcess]:
    """`start_service`, ready to answer inside the block, stopped (SIGTERM) after it however it ends."""
    server = start_service(model_dir, log_path, env)
    try:
        server.wait_ready(limit_s)
        yield server
    finally:
        server.terminate()
