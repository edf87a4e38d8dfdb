"""The long-running parts: sustained load, SIGTERM during load, and Schemathesis against the OpenAPI."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench.load import multipart_post, run_load
from petseg_harness.server import ServerProcess
from stress.hostile import readyz


def sustained_load(
    server: ServerProcess, photos: list[tuple[str, bytes]], clients: int, seconds: float
) -> dict:
    """`clients` closed-loop clients for `seconds`; only 503 + Retry-After may differ from 200."""
    requests = [multipart_post("/segment?output=mask", name, data) for name, data in photos]
    rss_before = server.rss()
    samples: list[int] = []

    async def sample_rss(stop: asyncio.Event) -> None:
        while not stop.is_set():
            samples.append(server.rss())
            await asyncio.sleep(1.0)

    async def go() -> object:
        stop = asyncio.Event()
        sampler = asyncio.create_task(sample_rss(stop))
        run = await run_load(server.url, requests, concurrency=clients, duration_s=seconds)
        stop.set()
        await sampler
        return run

    run = asyncio.run(go())
    summary = run.summary()
    unexpected = sum(
        1 for o in run.outcomes if o.status != 200 and not (o.status == 503 and o.retry_after is not None)
    )
    return {
        **summary,
        "errors": unexpected,
        "overloaded_503_with_retry_after": summary["retry_after_503"],
        "rss_before_mb": round(rss_before / 2**20, 1),
        "rss_peak_mb": round(max(samples, default=0) / 2**20, 1),
        "rss_after_mb": round(server.rss() / 2**20, 1),
        "readyz_after": readyz(server.url),
        "passed": unexpected == 0,
    }


def sigterm_during_load(
    server: ServerProcess, photos: list[tuple[str, bytes]], clients: int = 16, before_s: float = 3.0
) -> dict:
    """SIGTERM while `clients` keep sending: requests in flight must finish 200, later ones be refused
    (connection refused/closed or 503, never another 5xx), and the process must exit 0."""
    requests = [multipart_post("/segment?output=mask", name, data) for name, data in photos]

    async def go() -> tuple[object, float, int | None]:
        stop = asyncio.Event()
        load = asyncio.create_task(
            run_load(server.url, requests, concurrency=clients, stop=stop, timeout_s=30)
        )
        await asyncio.sleep(before_s)
        signalled = time.perf_counter()
        os.kill(server.pid, signal.SIGTERM)
        deadline = signalled + 30
        while server.process.poll() is None and time.perf_counter() < deadline:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)  # let clients see refused connections after the exit
        stop.set()
        run = await load
        return run, signalled, server.process.poll()

    run, signalled, code = asyncio.run(go())
    exit_code = code if code is not None else server.terminate()
    outcomes = run.outcomes
    in_flight = [o for o in outcomes if o.started < signalled < o.ended]
    after = [o for o in outcomes if o.started >= signalled]
    in_flight_ok = sum(o.status == 200 for o in in_flight)
    refused = [o for o in after if o.status == 0 or o.status == 503]
    bad = [o for o in outcomes if o.status >= 500 and o.status != 503]
    return {
        "clients": clients,
        "completed_before_signal": sum(o.ended <= signalled and o.status == 200 for o in outcomes),
        "in_flight_at_signal": len(in_flight),
        "in_flight_completed_200": in_flight_ok,
        "in_flight_statuses": sorted({o.status or o.error for o in in_flight}, key=str),
        "sent_after_signal": len(after),
        "after_signal_refused": len(refused),
        "after_signal_answered_200": sum(o.status == 200 for o in after),
        "after_signal_how": sorted({o.error or str(o.status) for o in after}),
        "server_errors": len(bad),
        "exit_code": exit_code,
        "passed": in_flight_ok == len(in_flight) and not bad and exit_code == 0 and len(in_flight) > 0,
    }


def schemathesis_run(url: str, max_examples: int, workdir: Path) -> dict:
    """Schemathesis (CLI) over every operation of /openapi.json with the not_a_server_error check."""
    exe = shutil.which("schemathesis", path=str(Path(sys.executable).parent)) or shutil.which("schemathesis")
    if exe is None:
        return {"passed": False, "output": "schemathesis is not installed (pip install -e '.[test]')"}
    workdir.mkdir(parents=True, exist_ok=True)
    argv = [
        exe, "run", f"{url}/openapi.json", "--checks", "not_a_server_error", "--max-examples",
        str(max_examples), "--seed", "1", "--workers", "1", "--request-timeout", "60",
        "--suppress-health-check", "all", "--phases", "examples,coverage,fuzzing",
    ]  # fmt: skip
    proc = subprocess.run(
        argv, capture_output=True, text=True, cwd=workdir, env={**os.environ, "NO_COLOR": "1"}
    )
    return {
        "command": " ".join(argv[1:]),
        "exit_code": proc.returncode,
        "output": proc.stdout[-6000:] + proc.stderr[-2000:],
        "passed": proc.returncode == 0,
    }
