"""bench/quick_latency.py takes the `--photo` the docs give it, and refuses options it does not know."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from PIL import Image

from bench.photos import choose_photos

REPO = Path(__file__).resolve().parents[2]


def quick_latency(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "bench/quick_latency.py", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_help_offers_the_photo_option() -> None:
    proc = quick_latency("--help")
    assert proc.returncode == 0 and "--photo FILE" in proc.stdout


def test_an_unknown_option_is_refused_not_ignored() -> None:
    proc = quick_latency("--photos", "cat.jpg")
    assert proc.returncode == 2 and "unrecognized arguments" in proc.stderr


def test_named_photos_replace_the_dataset_selection(tmp_path: Path) -> None:
    path = tmp_path / "some_500x375.jpg"
    Image.new("RGB", (500, 375), (90, 120, 60)).save(path)
    (photo,) = choose_photos(tmp_path / "no-dataset-here", [path])
    assert (photo.name, photo.width, photo.height, photo.data) == (
        "some_500x375",
        500,
        375,
        path.read_bytes(),
    )
