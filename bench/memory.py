"""`python -m bench.memory`: the service's RSS as a curve over requests, not just its two ends.

`python -m bench` reports RSS growth as one number (after warm-up → after `--memory-requests`). Whether
that growth is paid once (a compilation or a pool touched late, memory that plateaus) or keeps coming
(a leak, a fragmenting heap) only shows in the curve: here the service is started as the bench starts it
(`petseg serve`, same photos, same warm-up), then loaded in steps of `--step` requests, and after each
step its RSS is printed with where it lives (glibc's main heap, other anonymous memory: arenas, mmapped
buffers, OpenVINO's and TensorFlow's own; file-backed pages). At the end the mappings that grew most.

    python -m bench.memory --requests 2000 --step 250
    python -m bench.memory --env PETSEG_MODEL_STREAMS=1 --output json
    python -m bench.memory --preload /usr/lib/x86_64-linux-gnu/libjemalloc.so.2
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections import Counter
from pathlib import Path

from bench.load import multipart_post, run_load
from bench.photos import DEFAULT_DATA_DIR, choose_photos
from bench.server import resolve_model
from petseg_harness.server import start_service


def mappings_rss(pid: int) -> Counter[str]:
    """Resident kB of `pid` per kind of mapping: "[heap]", "[anon]" (nameless), "[stack]"…, or the file."""
    kb: Counter[str] = Counter()
    name = "[anon]"
    try:
        lines = Path(f"/proc/{pid}/smaps").read_text().splitlines()
    except OSError:
        return kb
    for line in lines:
        fields = line.split()
        if not fields:
            continue
        if "-" in fields[0] and not fields[0].endswith(":"):  # a mapping's header line
            name = fields[5] if len(fields) > 5 else "[anon]"
        elif fields[0] == "Rss:":
            kb[name] += int(fields[1])
    return kb


def summary(kb: Counter[str]) -> dict[str, float]:
    """MB in glibc's main heap, in other anonymous mappings, in files (libraries, the model), and all."""
    heap = kb["[heap]"]
    anon = sum(v for k, v in kb.items() if k.startswith("[") and k != "[heap]")
    files = sum(v for k, v in kb.items() if not k.startswith("["))
    return {
        "rss": (heap + anon + files) / 1024,
        "heap": heap / 1024,
        "anon": anon / 1024,
        "files": files / 1024,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.memory", description=__doc__)
    parser.add_argument("--model-dir", type=Path, default=None)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--requests", type=int, default=2000, help="after the warm-up")
    parser.add_argument("--step", type=int, default=250, help="requests between two RSS readings")
    parser.add_argument(
        "--concurrency", default="16", help="clients per step; a list cycles step by step, e.g. 1,4,16,64"
    )
    parser.add_argument("--warm-up-concurrency", type=int, default=64, help="the bench's: its top level")
    parser.add_argument("--output", default="mask", help="mask|overlay|cutout|alpha|json")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="for the service")
    parser.add_argument("--preload", default="", help="LD_PRELOAD for the service (an allocator)")
    parser.add_argument("--json", type=Path, default=None, help="also write the curve here")
    args = parser.parse_args(argv)

    scratch = Path(tempfile.mkdtemp(prefix="petseg-memory-"))
    model_dir, note = resolve_model(args.model_dir, scratch)
    photos = choose_photos(args.data_dir, None)
    requests = [multipart_post(f"/segment?output={args.output}", f"{p.name}.jpg", p.data) for p in photos]
    env = dict(item.split("=", 1) for item in args.env)
    if args.preload:
        env |= {"LD_PRELOAD": args.preload, "TBB_ENABLE_SANITIZERS": "1"}  # as bench: oneTBB issue 1636
    levels = [int(c) for c in args.concurrency.split(",")]
    print(f"model {model_dir} ({note}); output={args.output}; env {env or 'defaults'}", flush=True)
    server = start_service(model_dir, scratch / "service.log", env=env)
    curve: list[dict] = []
    try:
        ready_s = server.wait_ready()
        ready = summary(mappings_rss(server.pid))
        top = args.warm_up_concurrency
        statuses: Counter[str] = Counter()
        warm = asyncio.run(run_load(server.url, requests, concurrency=top, total=max(256, 4 * top)))
        statuses.update(warm.summary()["statuses"])
        first = mappings_rss(server.pid)
        base = summary(first)
        print(f"ready in {ready_s:.1f} s at {ready['rss']:.0f} MB; after the warm-up {base['rss']:.0f} MB")
        columns = (
            ("requests", 8),
            ("c", 3),
            ("RSS MB", 8),
            ("growth", 7),
            ("heap", 7),
            ("anon", 7),
            ("files", 7),
        )
        print(" ".join(f"{name:>{width}}" for name, width in columns) + f" {'s':>6}")
        sent = 0
        began = time.perf_counter()
        step = 0
        while sent < args.requests:
            level = levels[step % len(levels)]
            count = min(args.step, args.requests - sent)
            run = asyncio.run(run_load(server.url, requests, concurrency=level, total=count))
            statuses.update(run.summary()["statuses"])
            sent += count
            step += 1
            now = summary(mappings_rss(server.pid))
            growth = (now["rss"] / base["rss"] - 1) * 100
            curve.append({"requests": sent, "concurrency": level, **now, "growth_pct": growth})
            print(
                f"{sent:>8} {level:>3} {now['rss']:>8.1f} {growth:>+6.2f}% {now['heap']:>7.1f} "
                f"{now['anon']:>7.1f} {now['files']:>7.1f} {time.perf_counter() - began:>6.0f}",
                flush=True,
            )
        last = mappings_rss(server.pid)
        grew = sorted(((last[k] - first[k], k) for k in set(first) | set(last)), reverse=True)[:6]
        print("grew most since the warm-up: " + ", ".join(f"{k} {kb / 1024:+.1f} MB" for kb, k in grew))
        print(f"statuses: {dict(statuses)}")
    finally:
        exit_code = server.terminate()
    if args.json:
        args.json.write_text(json.dumps({"env": env, "output": args.output, "warm": base, "curve": curve}))
    print(f"exit code {exit_code}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
