"""`python -m bench.ab`: service settings compared in alternating rounds, each on a fresh server.

On a noisy machine one run of a setting says little: the same c=16 measurement moved from 40 to 61
req/s between identical runs minutes apart here. This starts `petseg serve` once per setting per round,
alternating (A B A B ...), so slow minutes fall on every setting alike, and prints per run: c=16
requests/s, the server's CPU milliseconds and minor page faults per request (both far steadier than
requests/s), p50 at c=1, and RSS once ready and after the load. Then the median of each over the rounds.

    python -m bench.ab --setting default= --setting b2=PETSEG_MAX_BATCH_SIZE=2 --rounds 3
    python -m bench.ab --setting old=MALLOC_MMAP_THRESHOLD_=262144,MALLOC_TRIM_THRESHOLD_=131072 \\
        --setting new= --output mask
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
from pathlib import Path

from bench.load import multipart_post, run_load
from bench.photos import DEFAULT_DATA_DIR, choose_photos
from bench.server import resolve_model
from petseg_harness.server import running_service


def minor_faults(pid: int) -> int:
    """Minor page faults of `pid` so far (/proc/PID/stat field 10)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rindex(")") + 2 :].split()[7])


def parse_setting(text: str) -> tuple[str, dict[str, str]]:
    """`NAME=VAR=VALUE,VAR=VALUE` (or `NAME=` for the defaults) → (NAME, {VAR: VALUE})."""
    name, _, assignments = text.partition("=")
    env = {}
    for assignment in filter(None, assignments.split(",")):
        variable, equals, value = assignment.partition("=")
        if not equals:
            raise argparse.ArgumentTypeError(f"{assignment!r} is not VAR=VALUE")
        env[variable] = value
    if not name:
        raise argparse.ArgumentTypeError(f"{text!r} has no name")
    return name, env


def measure(model_dir: Path, env: dict[str, str], requests: list[bytes], seconds: float, log: Path) -> dict:
    with running_service(model_dir, log, env) as server:
        asyncio.run(run_load(server.url, requests, concurrency=16, total=400))  # warm-up
        rss_ready = server.rss()
        cpu, faults = server.cpu(), minor_faults(server.pid)
        loaded = asyncio.run(run_load(server.url, requests, concurrency=16, duration_s=seconds, warmup_s=1))
        count = len(loaded.outcomes)
        row = {
            "c16_rps": loaded.summary()["throughput_rps"],
            "cpu_ms_per_request": (server.cpu() - cpu) * 1e3 / count,
            "faults_per_request": (minor_faults(server.pid) - faults) / count,
            "non_200": loaded.summary()["non_200"],
        }
        one = asyncio.run(run_load(server.url, requests, concurrency=1, duration_s=seconds / 2, warmup_s=1))
        row["c1_p50_ms"] = one.summary()["p50_ms"]
        row["rss_ready_mb"] = rss_ready / 2**20
        row["rss_after_mb"] = server.rss() / 2**20
    return row


def line(name: str, row: dict) -> str:
    return (
        f"{name:<12} c16 {row['c16_rps']:6.1f} req/s  {row['cpu_ms_per_request']:5.2f} CPU-ms/req  "
        f"{row['faults_per_request']:6.0f} faults/req  c1 p50 {row['c1_p50_ms']:6.2f} ms  "
        f"RSS {row['rss_ready_mb']:5.0f} -> {row['rss_after_mb']:5.0f} MB"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--setting",
        type=parse_setting,
        action="append",
        required=True,
        metavar="NAME=VAR=VALUE,...",
        help="a named set of environment variables for the server (repeat; NAME= for the defaults)",
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0, help="c=16 per run (c=1: half)")
    parser.add_argument("--output", default="mask", help="the /segment output asked for")
    parser.add_argument("--model-dir", type=Path, default=None, help="default: the bundled model")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    args = parser.parse_args(argv)
    photos = choose_photos(args.data_dir, None)
    requests = [multipart_post(f"/segment?output={args.output}", p.name + ".jpg", p.data) for p in photos]
    with tempfile.TemporaryDirectory() as scratch:
        model_dir, note = resolve_model(args.model_dir, Path(scratch))
        print(f"model: {model_dir} ({note}); {len(photos)} photos; output={args.output}", flush=True)
        rows: dict[str, list[dict]] = {name: [] for name, _ in args.setting}
        for round_index in range(args.rounds):
            for name, env in args.setting:
                row = measure(model_dir, env, requests, args.seconds, Path(scratch) / f"{name}.log")
                rows[name].append(row)
                print(f"round {round_index}  {line(name, row)}", flush=True)
    print(f"medians of {args.rounds} rounds")
    for name, runs in rows.items():
        print(f"         {line(name, {key: statistics.median(r[key] for r in runs) for key in runs[0]})}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
