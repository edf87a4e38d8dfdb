"""`python -m stress`: hostile corpus, Schemathesis, 64 clients for 60 s, and SIGTERM during load.

Each part gets a fresh server (`petseg serve`, default settings) on the bundled release model, or on
`--model-dir`. Prints each result and writes JSON to bench/results/stress-<time>.json (git-ignored).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from bench.photos import DEFAULT_DATA_DIR, load_photos
from bench.server import resolve_model
from petseg_harness.server import REPO, start_service
from stress.hostile import readyz, report, run_corpus, server_errors_counted
from stress.runs import schemathesis_run, sigterm_during_load, sustained_load

PARTS = ("hostile", "schemathesis", "load", "sigterm")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stress", description=__doc__)
    parser.add_argument("parts", nargs="*", default=list(PARTS), help=f"any of {', '.join(PARTS)}")
    parser.add_argument("--model-dir", type=Path, default=None, help="default: the bundled models/pet-unet")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=60.0, help="sustained load duration")
    parser.add_argument("--max-examples", type=int, default=100, help="Schemathesis examples per operation")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = parser.parse_args(argv)
    unknown = set(args.parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown parts: {', '.join(sorted(unknown))}")

    scratch = Path(tempfile.mkdtemp(prefix="petseg-stress-"))
    model_dir, note = resolve_model(args.model_dir, scratch)
    photos = [(f"{p.name}.jpg", p.data) for p in load_photos(args.data_dir)]
    print(f"model {model_dir} ({note}); {len(photos)} photos", flush=True)
    results: dict = {"model_dir": str(model_dir), "model_note": note}
    for part in args.parts:
        server = start_service(model_dir, scratch / f"{part}.log")
        try:
            results.setdefault("ready_s", {})[part] = round(server.wait_ready(), 2)
            if part == "hostile":
                verdicts = run_corpus(server.url)
                print(report(verdicts))
                results[part] = {
                    "cases": len(verdicts),
                    "wrong": [f"{v.case.name}: {v.problem}" for v in verdicts if not v.ok],
                    "server_errors": sum(v.status >= 500 for v in verdicts),
                    "readyz_after": readyz(server.url),
                    "server_counted_5xx": server_errors_counted(server.url),
                }
                results[part]["passed"] = (
                    not results[part]["wrong"]
                    and results[part]["readyz_after"] == 200
                    and results[part]["server_counted_5xx"] == 0
                )
            elif part == "schemathesis":
                results[part] = schemathesis_run(server.url, args.max_examples, scratch / "schemathesis")
                results[part]["readyz_after"] = readyz(server.url)
                print(results[part]["output"])
            elif part == "load":
                results[part] = sustained_load(server, photos, args.clients, args.seconds)
            elif part == "sigterm":
                results[part] = sigterm_during_load(server, photos)
        finally:
            exit_code = server.terminate()
        if part != "sigterm":
            results[part]["exit_code_after_sigterm"] = exit_code
        shown = {k: v for k, v in results[part].items() if k != "output"}
        print(f"== {part}: {'PASSED' if results[part]['passed'] else 'FAILED'}")
        print(json.dumps(shown, indent=1, default=str), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"stress-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(results, indent=1, default=str))
    print(f"\nwrote {path}")
    passed = all(results[p]["passed"] for p in args.parts)
    print("ALL PASSED" if passed else "SOME PARTS FAILED")
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
