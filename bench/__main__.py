"""`python -m bench`: the service vs the raw SavedModel vs a naive FastAPI server, one session, one table.

Everything runs on the same photos in the same session, and the headline numbers are ratios, because
these machines are noisy. Results go to bench/results/bench-<time>.json (git-ignored).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.load import multipart_post, run_load
from bench.photos import DEFAULT_DATA_DIR, choose_photos, describe
from bench.server import resolve_model, start_naive
from petseg_harness.server import REPO, ServerProcess, start_service

TARGETS = {
    "service_vs_raw_b16_at_c16": 0.85,
    "p50_c1_minus_raw_b1_ms": 8.0,
    "ready_s": 10.0,
    "rss_growth_pct": 5.0,
}


def training_running() -> bool:
    found = subprocess.run(["pgrep", "-f", "training train"], capture_output=True, text=True)
    return bool(found.stdout.strip())


def measure_raw(model_dir: Path, data_dir: Path, seconds: float, photo_files: list[Path] | None) -> dict:
    photo_args = [arg for path in photo_files or [] for arg in ("--photo", str(path))]
    proc = subprocess.run(
        [sys.executable, "-m", "bench.raw_model", "--model-dir", str(model_dir), "--seconds", str(seconds),
         "--data-dir", str(data_dir), *photo_args],
        cwd=REPO, capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )  # fmt: skip
    if proc.returncode != 0:
        raise SystemExit(f"raw model benchmark failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def measure_server(
    server: ServerProcess, requests: list[bytes], levels: list[int], seconds: float, memory_requests: int
) -> dict:
    """Cold start, a warm-up at the highest concurrency, each level, then top up to `memory_requests`."""
    result: dict = {}
    try:
        result["ready_s"] = round(server.wait_ready(), 2)
        result["rss_ready_mb"] = round(server.rss() / 2**20, 1)
        top = max(levels)
        warm = asyncio.run(run_load(server.url, requests, concurrency=top, total=max(256, 4 * top)))
        result["warmup"] = warm.summary()["statuses"]
        rss_warm = server.rss()
        result["rss_warm_mb"] = round(rss_warm / 2**20, 1)
        result["levels"] = {}
        sent = 0
        for level in levels:
            load = run_load(
                server.url, requests, concurrency=level, duration_s=seconds, warmup_s=min(2.0, seconds)
            )
            cpu_before = server.cpu()
            run = asyncio.run(load)
            cpu_used = server.cpu() - cpu_before
            result["levels"][str(level)] = run.summary()
            # CPU per request is far less sensitive to a noisy machine than requests/s.
            result["levels"][str(level)]["cpu_ms_per_request"] = round(cpu_used * 1e3 / len(run.outcomes), 2)
            sent += len(run.outcomes)
            print(f"  c={level:<3} {_level_line(result['levels'][str(level)])}", flush=True)
        if memory_requests > sent:
            extra = asyncio.run(run_load(server.url, requests, concurrency=16, total=memory_requests - sent))
            result["memory_top_up"] = extra.summary()["statuses"]
            sent += len(extra.outcomes)
        rss_after = server.rss()
        result["requests_after_warmup"] = sent
        result["rss_after_mb"] = round(rss_after / 2**20, 1)
        result["rss_growth_pct"] = round((rss_after / rss_warm - 1) * 100, 2) if rss_warm else None
    finally:
        result["exit_code"] = server.terminate()
    return result


def _level_line(level: dict) -> str:
    return (
        f"{level['throughput_rps']:7.1f} req/s  p50 {level['p50_ms']} ms  p95 {level['p95_ms']} ms  "
        f"p99 {level['p99_ms']} ms  non-200 {level['non_200']}"
    )


def training_section(run_dir: Path | None, data_dir: Path, run_benchmark: bool) -> dict:
    section: dict = {}
    if run_dir is not None and (run_dir / "timing.json").is_file():
        epochs = json.loads((run_dir / "timing.json").read_text())
        phases: dict[str, list[float]] = {}
        for epoch in epochs:
            phases.setdefault(epoch["phase"], []).append(float(epoch["train_images_per_s"]))
        section["run_dir"] = str(run_dir)
        section["epochs"] = epochs
        section["images_per_s_by_phase"] = {
            phase: {"epochs": len(v), "mean": round(sum(v) / len(v), 2), "min": min(v), "max": max(v)}
            for phase, v in phases.items()
        }
    if run_benchmark:
        proc = subprocess.run(
            [sys.executable, "-m", "training", "benchmark", "--data-dir", str(data_dir),
             "--encoder-weights", "none", "--steps", "20"],
            cwd=REPO, capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        )  # fmt: skip
        if proc.returncode == 0:
            start = proc.stdout.index("{")
            pipeline = json.loads(proc.stdout[start:])
            pipeline["pipeline_share_of_step"] = round(
                pipeline["pipeline_adds_ms_per_step"] / pipeline["train_step_with_pipeline_ms"], 3
            )
            section["input_pipeline"] = pipeline
        else:
            section["input_pipeline_error"] = proc.stderr[-2000:]
    return section


def ratios(raw: dict, service: dict, naive: dict | None) -> dict:
    batches = {int(k): v for k, v in raw["batches"].items()}
    levels = service["levels"]
    out: dict = {}
    if "16" in levels and 16 in batches:
        out["service_vs_raw_b16_at_c16"] = round(
            levels["16"]["throughput_rps"] / batches[16]["images_per_s"], 3
        )
    best = batches[int(raw["best_batch_size"])]["images_per_s"]
    out["service_best_vs_raw_best"] = round(max(v["throughput_rps"] for v in levels.values()) / best, 3)
    if naive is not None:
        out["service_vs_naive"] = {
            level: round(v["throughput_rps"] / naive["levels"][level]["throughput_rps"], 3)
            for level, v in levels.items()
            if level in naive["levels"] and naive["levels"][level]["throughput_rps"]
        }
        if "16" in naive["levels"] and 16 in batches:
            out["naive_vs_raw_b16_at_c16"] = round(
                naive["levels"]["16"]["throughput_rps"] / batches[16]["images_per_s"], 3
            )
    if "16" in levels and 16 in batches:
        out["raw_b16_cpu_vs_service_c16_cpu"] = round(
            batches[16]["cpu_ms_per_image"] / levels["16"]["cpu_ms_per_request"], 3
        )
        if naive is not None and "16" in naive["levels"]:
            out["raw_b16_cpu_vs_naive_c16_cpu"] = round(
                batches[16]["cpu_ms_per_image"] / naive["levels"]["16"]["cpu_ms_per_request"], 3
            )
    if "1" in levels and 1 in batches and levels["1"]["p50_ms"] is not None:
        out["p50_c1_minus_raw_b1_ms"] = round(levels["1"]["p50_ms"] - batches[1]["median_call_ms"], 2)
    out["ready_s"] = service["ready_s"]
    out["rss_growth_pct"] = service.get("rss_growth_pct")
    return out


def print_report(report: dict) -> None:
    raw, service, naive, r = report["raw"], report["service"], report.get("naive"), report["ratios"]
    print()
    print(f"PetSeg benchmark  {report['when']}  model: {report['model_dir']} ({report['model_note']})")
    print(f"photos: {report['photos']}  host: {report['host']}")
    if report["training_running"]:
        print("WARNING: background training was running; every number below was taken under that load")
    print()
    print("raw SavedModel (signature called directly on pre-resized photos)")
    for batch, v in raw["batches"].items():
        print(
            f"  batch {batch:>3}: {v['images_per_s']:8.1f} images/s   {v['median_call_ms']:8.2f} ms/call"
            f"   {v['cpu_ms_per_image']:6.2f} ms CPU/image"
        )
    print()
    header = (
        f"{'server':<8}{'conc':>5}{'req/s':>9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'non-200':>9}"
        f"{'CPU ms/req':>12}"
    )
    print(header)
    print("-" * len(header))
    for name, result in (("service", service), ("naive", naive)):
        if result is None:
            continue
        for level, v in result["levels"].items():
            print(
                f"{name:<8}{level:>5}{v['throughput_rps']:>9.1f}{_f(v['p50_ms'])}{_f(v['p95_ms'])}"
                f"{_f(v['p99_ms'])}{v['non_200']:>9}{v['cpu_ms_per_request']:>12.2f}"
            )
    print()
    for name, result in (("service", service), ("naive", naive)):
        if result is None:
            continue
        print(
            f"{name:<8} ready in {result['ready_s']} s; RSS ready {result['rss_ready_mb']} MB, after warm-up "
            f"{result['rss_warm_mb']} MB, after {result['requests_after_warmup']} more requests "
            f"{result['rss_after_mb']} MB ({result['rss_growth_pct']:+} %); exit code {result['exit_code']}"
        )
    print()
    print("ratios (target)")
    for key, value in r.items():
        target = TARGETS.get(key)
        mark = ""
        if target is not None and isinstance(value, int | float):
            better = value >= target if key.startswith("service_vs_raw") else value <= target
            mark = f"  (target {'>=' if key.startswith('service_vs_raw') else '<='} {target}: "
            mark += f"{'met' if better else 'NOT met'})"
        print(f"  {key:<28} {value}{mark}")
    training = report.get("training") or {}
    if training:
        print()
        print("training throughput")
        for phase, v in training.get("images_per_s_by_phase", {}).items():
            print(
                f"  {phase:<10} {v['epochs']} epochs, mean {v['mean']} images/s "
                f"(min {v['min']}, max {v['max']})"
            )
        pipeline = training.get("input_pipeline")
        if pipeline:
            print(
                f"  input pipeline: alone {pipeline['pipeline_alone_images_per_s']} images/s; step "
                f"{pipeline['train_step_in_memory_ms']} ms in memory vs "
                f"{pipeline['train_step_with_pipeline_ms']} ms fed -> pipeline share "
                f"{pipeline['pipeline_share_of_step'] * 100:.1f} % of step time"
            )


def _f(value: float | None) -> str:
    return f"{value:>9.1f}" if value is not None else f"{'-':>9}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--model-dir", type=Path, default=None, help="default: the bundled models/pet-unet")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument(
        "--photo",
        type=Path,
        action="append",
        metavar="FILE",
        help="measure on this photo instead of the dataset's selection (repeatable)",
    )
    parser.add_argument("--concurrency", default="1,4,16,64")
    parser.add_argument("--seconds", type=float, default=15.0, help="measured per concurrency level")
    parser.add_argument("--raw-seconds", type=float, default=5.0, help="per raw batch size")
    parser.add_argument("--memory-requests", type=int, default=5000)
    parser.add_argument("--skip-naive", action="store_true")
    parser.add_argument("--training-run", type=Path, default=REPO / "runs" / "release-1")
    parser.add_argument(
        "--training-benchmark",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also time the input pipeline (python -m training benchmark; skipped while training runs)",
    )
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = parser.parse_args(argv)

    scratch = Path(tempfile.mkdtemp(prefix="petseg-bench-"))
    model_dir, note = resolve_model(args.model_dir, scratch)
    photos = choose_photos(args.data_dir, args.photo)
    levels = [int(c) for c in args.concurrency.split(",")]
    report: dict = {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "host": f"{platform.node()} {os.cpu_count()} cpus, python {platform.python_version()}",
        "model_dir": str(model_dir),
        "model_note": note,
        "photos": describe(photos),
        "training_running": training_running(),
        "settings": vars(args) | {"out": str(args.out)},
    }
    print(f"model {model_dir} ({note}); photos: {report['photos']}", flush=True)
    print("raw model ...", flush=True)
    report["raw"] = measure_raw(model_dir, args.data_dir, args.raw_seconds, args.photo)
    service_requests = [multipart_post("/segment?output=mask", f"{p.name}.jpg", p.data) for p in photos]
    print("service ...", flush=True)
    service = start_service(model_dir, scratch / "service.log")
    report["service"] = measure_server(service, service_requests, levels, args.seconds, args.memory_requests)
    report["naive"] = None
    if not args.skip_naive:
        print("naive ...", flush=True)
        naive_requests = [multipart_post("/segment", f"{p.name}.jpg", p.data) for p in photos]
        naive = start_naive(model_dir, scratch / "naive.log")
        report["naive"] = measure_server(naive, naive_requests, levels, args.seconds, 0)
    report["ratios"] = ratios(report["raw"], report["service"], report["naive"])
    report["training"] = training_section(
        args.training_run, args.data_dir, args.training_benchmark and not training_running()
    )
    print_report(report)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(report, indent=1, default=str))
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
