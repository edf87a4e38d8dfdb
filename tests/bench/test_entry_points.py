"""Every benchmark the docs name starts: its imports resolve and it describes its options.

The benchmarks are run by hand, not by CI; without this a renamed function they import goes unnoticed
until someone needs the numbers (bench.upsample once imported a name app.cli no longer had).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "module",
    [
        "bench",
        "bench.ab",
        "bench.memory",
        "bench.raw_model",
        "bench.regions",
        "bench.render",
        "bench.upsample",
    ],
)
def test_benchmark_starts_and_describes_its_options(module: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", module, "--help"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "usage:" in proc.stdout and "--" in proc.stdout
