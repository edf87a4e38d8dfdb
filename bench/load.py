"""Closed-loop HTTP load: N clients, each with one keep-alive connection, sending prebuilt requests.

A minimal HTTP/1.1 client on asyncio streams rather than a full client library: on 2 cores the load
generator competes with the server for CPU, and this one costs a few microseconds per request, so the
numbers describe the server. Every request's start, end and outcome is kept for the caller to slice.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import statistics
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Outcome:
    started: float
    ended: float
    status: int  # 0 when the request failed below HTTP
    error: str = ""
    retry_after: str | None = None
    # The service's own `Server-Timing` (upload, decode, queue, inference, render, total), ms per stage.
    stages_ms: dict[str, float] | None = None

    @property
    def latency_s(self) -> float:
        return self.ended - self.started


def parse_server_timing(header: str | None) -> dict[str, float] | None:
    """`decode;dur=3.2, inference;dur=9.9` -> {"decode": 3.2, "inference": 9.9}; None without durations."""
    stages = {}
    for metric in (header or "").split(","):
        name, *params = (part.strip() for part in metric.split(";"))
        for param in params:
            key, _, value = param.partition("=")
            if key.strip() == "dur" and name:
                with contextlib.suppress(ValueError):  # a malformed duration is left out
                    stages[name] = float(value)
    return stages or None


def stage_medians(outcomes: Sequence[Outcome]) -> dict[str, float] | None:
    """Median ms of each Server-Timing stage over `outcomes`, and `outside`: the median of each request's
    client latency minus the service's `total` (HTTP, the event loop, the client). None when no outcome
    carried a Server-Timing with a total."""
    timed = [o for o in outcomes if o.stages_ms and "total" in o.stages_ms]
    if not timed:
        return None
    names = dict.fromkeys(name for o in timed for name in o.stages_ms)
    medians = {name: statistics.median(o.stages_ms.get(name, 0.0) for o in timed) for name in names}
    medians["outside"] = statistics.median(o.latency_s * 1e3 - o.stages_ms["total"] for o in timed)
    return {name: round(ms, 2) for name, ms in medians.items()}


@dataclass
class LoadRun:
    concurrency: int
    outcomes: list[Outcome] = field(default_factory=list)
    window: tuple[float, float] = (0.0, 0.0)

    def measured(self) -> list[Outcome]:
        start, end = self.window
        return [o for o in self.outcomes if o.started >= start and o.ended <= end]

    def summary(self) -> dict:
        """Throughput of 200s and latency percentiles over the measurement window, and every other status."""
        measured = self.measured()
        ok = sorted(o.latency_s for o in measured if o.status == 200)
        seconds = self.window[1] - self.window[0]
        statuses = Counter(str(o.status) if o.status else f"error:{o.error}" for o in self.outcomes)
        return {
            "concurrency": self.concurrency,
            "seconds": round(seconds, 2),
            "requests": len(self.outcomes),
            "ok_in_window": len(ok),
            "throughput_rps": round(len(ok) / seconds, 2) if seconds > 0 else 0.0,
            "p50_ms": _ms(percentile(ok, 50)),
            "p95_ms": _ms(percentile(ok, 95)),
            "p99_ms": _ms(percentile(ok, 99)),
            "mean_ms": _ms(statistics.fmean(ok) if ok else None),
            "statuses": dict(statuses),
            "non_200": sum(1 for o in self.outcomes if o.status != 200),
            "retry_after_503": sum(1 for o in self.outcomes if o.status == 503 and o.retry_after is not None),
            "stages_p50_ms": stage_medians([o for o in measured if o.status == 200]),
        }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1e3, 2)


def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return None
    rank = max(0, min(len(sorted_values) - 1, round(q / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[rank]


def multipart_post(path: str, filename: str, data: bytes, content_type: str = "image/jpeg") -> bytes:
    """The bytes of a complete keep-alive POST of one file as multipart field `file`."""
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
            f"Content-Type: {content_type}\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    head = (
        f"POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    return head + body


class HttpConnection:
    """One keep-alive HTTP/1.1 connection; `send` writes a prebuilt request and reads the whole response."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def send(self, request: bytes) -> tuple[int, dict[str, str], bytes]:
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        assert self._reader is not None
        self._writer.write(request)
        await self._writer.drain()
        head = await self._reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            body = await self._reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            body = await self._read_chunked()
        else:
            body = await self._reader.read()
            headers["connection"] = "close"
        if headers.get("connection", "").lower() == "close":
            await self.close()
        return status, headers, body

    async def _read_chunked(self) -> bytes:
        assert self._reader is not None
        parts = []
        while True:
            size = int((await self._reader.readline()).split(b";")[0].strip(), 16)
            if size == 0:
                await self._reader.readline()
                return b"".join(parts)
            parts.append(await self._reader.readexactly(size))
            await self._reader.readline()

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError):
                await self._writer.wait_closed()
        self._reader = self._writer = None


async def run_load(
    url: str,
    requests: Sequence[bytes],
    *,
    concurrency: int,
    duration_s: float | None = None,
    total: int | None = None,
    warmup_s: float = 0.0,
    timeout_s: float = 60.0,
    stop: asyncio.Event | None = None,
) -> LoadRun:
    """`concurrency` clients cycling through `requests` for `warmup_s + duration_s`, or until `total` sent.

    The window measured starts after the warm-up; requests still running when it ends are let finish but
    are not counted in it.
    """
    host, port = url.removeprefix("http://").rstrip("/").split(":")
    run = LoadRun(concurrency)
    counter = itertools.count()
    began = time.perf_counter()
    window_start = began + warmup_s
    window_end = window_start + duration_s if duration_s is not None else float("inf")
    run.window = (window_start, window_end)

    async def client() -> None:
        connection = HttpConnection(host, int(port))
        try:
            while time.perf_counter() < window_end and not (stop is not None and stop.is_set()):
                index = next(counter)
                if total is not None and index >= total:
                    return
                started = time.perf_counter()
                try:
                    status, headers, _ = await asyncio.wait_for(
                        connection.send(requests[index % len(requests)]), timeout_s
                    )
                    outcome = Outcome(
                        started,
                        time.perf_counter(),
                        status,
                        "",
                        headers.get("retry-after"),
                        parse_server_timing(headers.get("server-timing")),
                    )
                except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError) as exc:
                    await connection.close()
                    outcome = Outcome(started, time.perf_counter(), 0, type(exc).__name__)
                    await asyncio.sleep(0.01)  # a refused connection would otherwise spin
                run.outcomes.append(outcome)
        finally:
            await connection.close()

    await asyncio.gather(*(client() for _ in range(concurrency)))
    if duration_s is None:
        run.window = (window_start, time.perf_counter())
    return run
