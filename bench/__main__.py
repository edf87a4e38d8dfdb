"""`python -m bench`: the service vs the raw SavedModel vs a naive FastAPI server, one session, one table.

Everything runs on the same photos in the same session, and the headline numbers are ratios, because
these machines are noisy. The raw model is measured on both runtimes (TensorFlow, and the same graph
compiled by OpenVINO); the service with the backend it chose (PETSEG_BACKEND, reported). Then a 12 MP
phone photo as mask/overlay/cut-out at concurrency 1, and a burst of clients uploading it (statuses,
peak RSS). Every part has a size option, so `--seconds 2 --raw-seconds 0.5 --phone-requests 2
--burst-seconds 2 --memory-requests 0` proves the whole run works in a few minutes (docs/runtime.md).
Results go to bench/results/bench-<time>.json (git-ignored).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import importlib.util
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from bench.load import multipart_post, run_load
from bench.photos import DEFAULT_DATA_DIR, BenchPhoto, choose_photos, describe
from bench.server import resolve_model, start_naive
from petseg_harness.server import REPO, ServerProcess, start_service

TARGETS = {
    "service_vs_raw_b16_at_c16": 1.2,  # raw TensorFlow
    "service_vs_raw_openvino_b16_at_c16": 0.75,
    "p50_c1_minus_raw_openvino_b1_ms": 5.0,
    "phone_mask_p50_ms": 150.0,
    "phone_overlay_p50_ms": 300.0,
    "phone_cutout_p50_ms": 300.0,
    "burst_errors_other_than_503": 0,
    "ready_s": 10.0,
    "rss_growth_pct": 5.0,
}
PHONE_SIZE = (4032, 3024)


def training_running() -> bool:
    found = subprocess.run(["pgrep", "-f", "training train"], capture_output=True, text=True)
    return bool(found.stdout.strip())


def measure_raw(
    model_dir: Path,
    data_dir: Path,
    seconds: float,
    photo_files: list[Path] | None,
    backend: str = "tensorflow",
    batch_sizes: str | None = None,
) -> dict:
    """`bench.raw_model` in its own process; `batch_sizes` (e.g. "1,16") or its default set."""
    photo_args = [arg for path in photo_files or [] for arg in ("--photo", str(path))]
    size_args = ["--batch-sizes", batch_sizes] if batch_sizes else []
    proc = subprocess.run(
        [sys.executable, "-m", "bench.raw_model", "--model-dir", str(model_dir), "--seconds", str(seconds),
         "--data-dir", str(data_dir), "--backend", backend, *size_args, *photo_args],
        cwd=REPO, capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )  # fmt: skip
    if proc.returncode != 0:
        raise SystemExit(f"raw model benchmark failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def measure_server(
    server: ServerProcess,
    requests: list[bytes],
    levels: list[int],
    seconds: float,
    memory_requests: int,
    after_levels: Callable[[], None] | None = None,
) -> dict:
    """Cold start, a warm-up at the highest concurrency, each level, `after_levels()` (the server idle),
    then top up to `memory_requests`."""
    result: dict = {}
    try:
        result["ready_s"] = round(server.wait_ready(), 2)
        result["backend"] = served_backend(server.url)
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
        if after_levels is not None:
            after_levels()
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


def served_backend(url: str) -> str | None:
    """The inference runtime the service says it uses (/v1/model); None for a server without one."""
    try:
        with urllib.request.urlopen(url + "/v1/model", timeout=5) as response:
            return json.loads(response.read()).get("backend")
    except (OSError, ValueError):
        return None


def peak_rss_bytes(pid: int) -> int:
    """The process's high-water resident set size so far (Linux VmHWM), 0 once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def phone_photo(photos: list[BenchPhoto]) -> bytes:
    """A 12 MP (4032x3024) JPEG of about 2 MB, as a phone takes: the largest benchmark photo upscaled."""
    largest = max(photos, key=lambda p: p.width * p.height)
    image = Image.open(io.BytesIO(largest.data)).convert("RGB").resize(PHONE_SIZE, Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=92)
    return buffer.getvalue()


def measure_phone(
    server: ServerProcess, photo: bytes, requests: int, burst_clients: int, burst_seconds: float
) -> dict:
    """The 12 MP photo as mask, overlay and cut-out, `requests` each at concurrency 1 after one
    warm-up; then `burst_clients` clients
    uploading it for `burst_seconds` (every status, errors other than 503, peak RSS)."""
    result: dict = {"photo_bytes": len(photo), "size": list(PHONE_SIZE)}
    try:
        server.wait_ready()
        result["backend"] = served_backend(server.url)
        for mode in ("mask", "overlay", "cutout"):
            request = multipart_post(f"/segment?output={mode}", "phone.jpg", photo)
            asyncio.run(run_load(server.url, [request], concurrency=1, total=1))  # warm-up
            # By count, not by time: at several hundred ms a request, a short window would hold none.
            run = asyncio.run(run_load(server.url, [request], concurrency=1, total=requests))
            result[mode] = run.summary()
            print(f"  12 MP {mode:<8} c=1  {_level_line(result[mode])}", flush=True)
        rss_before = server.rss()
        request = multipart_post("/segment?output=mask", "phone.jpg", photo)
        burst = asyncio.run(
            run_load(
                server.url, [request], concurrency=burst_clients, duration_s=burst_seconds, timeout_s=120
            )
        )
        summary = burst.summary()
        summary["errors_other_than_503"] = sum(1 for o in burst.outcomes if o.status not in (200, 503))
        summary["rss_before_mb"] = round(rss_before / 2**20, 1)
        summary["peak_rss_mb"] = round(peak_rss_bytes(server.pid) / 2**20, 1)
        summary["rss_after_mb"] = round(server.rss() / 2**20, 1)
        result["burst"] = summary
        print(
            f"  12 MP burst c={burst_clients}: {summary['statuses']}, peak RSS {summary['peak_rss_mb']} MB",
            flush=True,
        )
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


# Raw batch sizes measured a second time right after the service's levels: the targets' baselines.
BRACKETED_BATCH_SIZES = "1,16"
BRACKETED_KEYS = ("images_per_s", "median_call_ms", "cpu_ms_per_image")


def bracket(before: dict, after: dict | None) -> dict:
    """`before` with each batch size that `after` measured again replaced by the mean of both runs.

    The raw runs come first and the service's levels a few minutes later; on a shared VM the machine's
    speed drifts by tens of percent between them. Measuring the baselines again right after the
    levels and taking the mean compares the service with the machine it ran on, whichever way the
    drift went; each batch keeps both runs (`before`, `after`) so the drift shows."""
    if after is None:
        return before
    batches = dict(before["batches"])
    for size, again in after["batches"].items():
        if size not in batches:
            continue
        first = batches[size]
        keys = [key for key in BRACKETED_KEYS if key in first and key in again]
        batches[size] = {
            **first,
            **{key: round((first[key] + again[key]) / 2, 2) for key in keys},
            "before": {key: first[key] for key in keys},
            "after": {key: again[key] for key in keys},
        }
    return {**before, "batches": batches}


def ratios(
    raw: dict,
    service: dict,
    naive: dict | None,
    raw_openvino: dict | None = None,
    phone: dict | None = None,
    raw_openvino_served: dict | None = None,
) -> dict:
    batches = {int(k): v for k, v in raw["batches"].items()}
    levels = service["levels"]
    out: dict = {"service_backend": service.get("backend")}
    if raw_openvino is not None:
        ov = {int(k): v for k, v in raw_openvino["batches"].items()}
        if "16" in levels and 16 in ov:
            out["service_vs_raw_openvino_b16_at_c16"] = round(
                levels["16"]["throughput_rps"] / ov[16]["images_per_s"], 3
            )
        if "1" in levels and 1 in ov and levels["1"]["p50_ms"] is not None:
            out["p50_c1_minus_raw_openvino_b1_ms"] = round(levels["1"]["p50_ms"] - ov[1]["median_call_ms"], 2)
            stages = levels["1"].get("stages_p50_ms")
            if stages and "inference" in stages:
                out["c1_over_raw_openvino_b1_by_stage_ms"] = over_raw_call(stages, ov[1]["median_call_ms"])
        if 16 in ov and 16 in batches:
            out["raw_openvino_vs_raw_tensorflow_b16"] = round(
                ov[16]["images_per_s"] / batches[16]["images_per_s"], 3
            )
    if raw_openvino_served is not None and "16" in levels:
        served = {int(k): v for k, v in raw_openvino_served["batches"].items()}
        if 16 in served:  # beside the targets: how close the service gets to its own compilation
            out["service_vs_raw_openvino_served_b16_at_c16"] = round(
                levels["16"]["throughput_rps"] / served[16]["images_per_s"], 3
            )
            best = served[int(raw_openvino_served["best_batch_size"])]["images_per_s"]
            out["service_vs_raw_openvino_served_best_at_c16"] = round(
                levels["16"]["throughput_rps"] / best, 3
            )
    if phone is not None:
        for mode in ("mask", "overlay", "cutout"):
            out[f"phone_{mode}_p50_ms"] = phone[mode]["p50_ms"]
        out["burst_errors_other_than_503"] = phone["burst"]["errors_other_than_503"]
        out["burst_peak_rss_mb"] = phone["burst"]["peak_rss_mb"]
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


def over_raw_call(stages: dict[str, float], raw_call_ms: float) -> dict[str, float]:
    """Where a lone request's time goes beyond the raw model call (issue 11's c=1 target), from the
    service's Server-Timing medians: every stage but the model's, the model call's own excess over the
    raw call (a negative one is a faster call), and `outside` (HTTP, event loop, client). Medians, so
    they add up to the p50 difference only roughly."""
    parts = {name: ms for name, ms in stages.items() if name not in ("total", "inference")}
    parts["inference_beyond_raw_call"] = round(stages["inference"] - raw_call_ms, 2)
    return parts


def print_report(report: dict) -> None:
    raw, service, naive, r = report["raw"], report["service"], report.get("naive"), report["ratios"]
    print()
    print(f"PetSeg benchmark  {report['when']}  model: {report['model_dir']} ({report['model_note']})")
    print(f"photos: {report['photos']}  host: {report['host']}")
    if report["training_running"]:
        print("WARNING: background training was running; every number below was taken under that load")
    print()
    for name, measured in (
        ("TensorFlow", raw),
        ("OpenVINO", report.get("raw_openvino")),
        (
            "OpenVINO as the service compiles it (class softmax per channel)",
            report.get("raw_openvino_served"),
        ),
    ):
        if measured is None:
            continue
        print(f"raw SavedModel on {name} (signature called directly on pre-resized photos)")
        for batch, v in measured["batches"].items():
            print(
                f"  batch {batch:>3}: {v['images_per_s']:8.1f} images/s   {v['median_call_ms']:8.2f} ms/call"
                f"   {v['cpu_ms_per_image']:6.2f} ms CPU/image"
            )
    for name, again in (
        ("TensorFlow", report.get("raw_after")),
        ("OpenVINO", report.get("raw_openvino_after")),
    ):
        if again is not None:
            runs = "   ".join(
                f"batch {batch} {v['images_per_s']:.1f} images/s {v['median_call_ms']:.2f} ms/call"
                for batch, v in again["batches"].items()
            )
            print(f"raw {name} again after the service's levels: {runs}")
    if report.get("raw_after") is not None:
        print("  (the ratios below take the mean of both runs of these batch sizes)")
    print(f"service backend: {service.get('backend')}  allocator: {report.get('allocator')}")
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
    for level, v in service["levels"].items():
        if v.get("stages_p50_ms"):
            stages = "  ".join(f"{stage} {ms}" for stage, ms in v["stages_p50_ms"].items())
            print(f"service c={level} Server-Timing p50 ms: {stages}")
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
    parser.add_argument(
        "--memory-requests", type=int, default=10000, help="RSS growth measured over this many requests"
    )
    parser.add_argument(
        "--preload",
        default="",
        help="LD_PRELOAD for the service, e.g. /usr/lib/x86_64-linux-gnu/libjemalloc.so.2 (docs/runtime.md)",
    )
    parser.add_argument("--backend", default=None, help="PETSEG_BACKEND for the service (default: its own)")
    parser.add_argument("--skip-naive", action="store_true")
    parser.add_argument("--skip-openvino", action="store_true", help="no raw OpenVINO measurement")
    parser.add_argument("--skip-phone", action="store_true", help="no 12 MP photo and burst")
    parser.add_argument("--phone-requests", type=int, default=30, help="12 MP requests per output mode")
    parser.add_argument("--burst-clients", type=int, default=64)
    parser.add_argument("--burst-seconds", type=float, default=60.0)
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
    report["raw_openvino"] = report["raw_openvino_served"] = None
    if not args.skip_openvino and importlib.util.find_spec("openvino") is not None:
        print("raw model on OpenVINO ...", flush=True)
        report["raw_openvino"] = measure_raw(
            model_dir, args.data_dir, args.raw_seconds, args.photo, "openvino"
        )
        print("raw model on OpenVINO as the service compiles it ...", flush=True)
        report["raw_openvino_served"] = measure_raw(
            model_dir, args.data_dir, args.raw_seconds, args.photo, "openvino-served"
        )
    # oneTBB loads its topology library with RTLD_DEEPBIND, which frees a preloaded allocator's memory
    # with glibc's free: OpenVINO then aborts while compiling (oneTBB issue 1636) unless told not to.
    service_env = {"LD_PRELOAD": args.preload, "TBB_ENABLE_SANITIZERS": "1"} if args.preload else {}
    if args.backend:
        service_env["PETSEG_BACKEND"] = args.backend
    report["allocator"] = args.preload or "glibc (petseg serve's mallopt tuning)"
    service_requests = [multipart_post("/segment?output=mask", f"{p.name}.jpg", p.data) for p in photos]
    print("service ...", flush=True)
    service = start_service(model_dir, scratch / "service.log", env=service_env)
    report["raw_after"] = report["raw_openvino_after"] = None

    def raw_again() -> None:
        print("raw model again, the service idle ...", flush=True)
        report["raw_after"] = measure_raw(
            model_dir, args.data_dir, args.raw_seconds, args.photo, batch_sizes=BRACKETED_BATCH_SIZES
        )
        if report["raw_openvino"] is not None:
            report["raw_openvino_after"] = measure_raw(
                model_dir, args.data_dir, args.raw_seconds, args.photo, "openvino", BRACKETED_BATCH_SIZES
            )

    report["service"] = measure_server(
        service, service_requests, levels, args.seconds, args.memory_requests, after_levels=raw_again
    )
    report["phone"] = None
    if not args.skip_phone:
        print("12 MP photo ...", flush=True)
        phone_service = start_service(model_dir, scratch / "phone.log", env=service_env)
        report["phone"] = measure_phone(
            phone_service,
            phone_photo(photos),
            args.phone_requests,
            args.burst_clients,
            args.burst_seconds,
        )
    report["naive"] = None
    if not args.skip_naive:
        print("naive ...", flush=True)
        naive_requests = [multipart_post("/segment", f"{p.name}.jpg", p.data) for p in photos]
        naive = start_naive(model_dir, scratch / "naive.log")
        report["naive"] = measure_server(naive, naive_requests, levels, args.seconds, 0)
    report["ratios"] = ratios(
        bracket(report["raw"], report["raw_after"]),
        report["service"],
        report["naive"],
        None
        if report["raw_openvino"] is None
        else bracket(report["raw_openvino"], report["raw_openvino_after"]),
        report["phone"],
        report["raw_openvino_served"],
    )
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
