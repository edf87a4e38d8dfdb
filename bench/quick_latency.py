"""Quick service benchmark, kept for the command the README used to give: now a short `python -m bench`.

    python bench/quick_latency.py [--photo some_500x375.jpg] [--model-dir models/pet-unet] [--seconds 10]

Latency at concurrency 1 and throughput at 16 against a real uvicorn server, next to the raw
SavedModel, on the benchmark's real photos; the full suite is `python -m bench` (see README).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.__main__ import main

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--photo",
        action="append",
        metavar="FILE",
        help="measure on this photo (repeatable); default: the dataset's",
    )
    parser.add_argument("--model-dir", default=None)
    parser.add_argument("--seconds", default="10")
    args = parser.parse_args()  # an unknown option is an error, not silently ignored
    argv = ["--concurrency", "1,16", "--seconds", args.seconds, "--memory-requests", "0", "--skip-naive"]
    argv += ["--model-dir", args.model_dir] if args.model_dir else []
    argv += [arg for photo in args.photo or [] for arg in ("--photo", photo)]
    raise SystemExit(main(argv))
