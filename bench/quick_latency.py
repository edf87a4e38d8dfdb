"""Quick service benchmark: latency at concurrency 1 and throughput at concurrency 16 against a real
uvicorn server, next to the raw SavedModel's batch-1 and batch-16 images/s.

    python bench/quick_latency.py --model-dir models/pet-unet --photo PATH/TO/500x375.jpg
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def raw_model(model_dir: Path, seconds: float) -> dict[int, float]:
    """Images/s of the bare SavedModel signature at batch 1 and 16 (no HTTP, no decode)."""
    sys.path.insert(0, str(REPO))
    from app.segmenter import Segmenter
    from app.settings import resolve_model_version_dir

    segmenter = Segmenter.load(resolve_model_version_dir(model_dir))
    size = segmenter.input_size
    rates = {}
    for batch in (1, 16):
        images = np.random.default_rng(0).integers(0, 255, (batch, size, size, 3), dtype=np.uint8)
        segmenter.predict(images)
        count, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            segmenter.predict(images)
            count += batch
        rates[batch] = count / (time.perf_counter() - started)
    return rates


async def service(url: str, photo: bytes, seconds: float) -> tuple[list[float], float]:
    """Latencies of sequential requests, then requests/s with 16 clients in parallel."""
    files = {"file": ("photo.jpg", photo, "image/jpeg")}
    async with httpx.AsyncClient(base_url=url, timeout=120) as http:
        for _ in range(3):
            (await http.post("/segment", files=files)).raise_for_status()
        latencies = []
        started = time.perf_counter()
        while time.perf_counter() - started < seconds:
            t = time.perf_counter()
            (await http.post("/segment", files=files)).raise_for_status()
            latencies.append(time.perf_counter() - t)

        done = 0
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                (await http.post("/segment", files=files)).raise_for_status()
                done += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(16)))
        return latencies, done / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=REPO / "models" / "pet-unet")
    parser.add_argument("--photo", type=Path, required=True, help="a JPEG of about 500x375")
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of each measurement")
    args = parser.parse_args()

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "PETSEG_MODEL_DIR": str(args.model_dir), "PETSEG_LOG_LEVEL": "warning"}
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "app.main:app", "--port", str(port), "--log-level", "warning"],
        cwd=REPO,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        while True:
            if server.poll() is not None:
                raise SystemExit("server exited during startup")
            try:
                if httpx.get(f"{url}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        latencies, throughput = asyncio.run(service(url, args.photo.read_bytes(), args.seconds))
    finally:
        server.terminate()
        server.wait()
    rates = raw_model(args.model_dir, args.seconds)

    ms = sorted(x * 1e3 for x in latencies)
    p50, p95 = statistics.median(ms), ms[int(0.95 * (len(ms) - 1))]
    print(f"photo {args.photo.name}, model {args.model_dir}, {os.cpu_count()} cores")
    print(f"service  concurrency 1 : p50 {p50:.1f} ms, p95 {p95:.1f} ms ({1e3 / p50:.1f} req/s)")
    print(f"service  concurrency 16: {throughput:.1f} req/s")
    print(f"raw model batch 1      : {rates[1]:.1f} img/s ({1e3 / rates[1]:.1f} ms/img)")
    print(f"raw model batch 16     : {rates[16]:.1f} img/s")
    print(
        f"ratios: service c1 / raw b1 = {(1e3 / p50) / rates[1]:.2f}; "
        f"service c16 / raw b16 = {throughput / rates[16]:.2f}"
    )


if __name__ == "__main__":
    main()
