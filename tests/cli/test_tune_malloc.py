"""`petseg serve`'s glibc tuning: a request's 600 KB buffers come back from the heap, not fresh pages.

Each case runs in its own interpreter, since mallopt settings last for the life of a process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# Allocate, touch and free a buffer the size of one photo's float32 [224, 224, 3] probabilities, as
# every /segment request does several times, and count the minor page faults of 50 rounds.
PROBE = """
import resource, numpy as np
from app.cli import tune_malloc
tune_malloc()
def round_trip():
    buffer = np.ones(224 * 224 * 3, dtype=np.float32)
    del buffer
for _ in range(3):
    round_trip()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(50):
    round_trip()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""
PAGES_PER_BUFFER = 224 * 224 * 3 * 4 // 4096  # 147


def faults_of_50_round_trips(env: dict[str, str]) -> int:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    proc = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=REPO,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return int(proc.stdout.strip())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_photo_sized_buffers_are_reused_without_page_faults() -> None:
    assert faults_of_50_round_trips({}) < 5 * PAGES_PER_BUFFER  # not one buffer's pages per round


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_the_environment_wins_over_the_tuning() -> None:
    # The old 256 KB threshold: every round maps the buffer afresh and faults in all its pages.
    assert faults_of_50_round_trips({"MALLOC_MMAP_THRESHOLD_": str(256 * 1024)}) >= 40 * PAGES_PER_BUFFER
