"""The benchmark's photos: real Oxford-IIIT Pet JPEGs at their original sizes, plus a few large ones."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from petseg_harness.server import REPO

DEFAULT_DATA_DIR = REPO.parent / "shared" / "data" / "oxford-iiit-pet"


@dataclass(frozen=True)
class BenchPhoto:
    name: str
    data: bytes
    width: int
    height: int


def load_photos(data_dir: Path = DEFAULT_DATA_DIR, typical: int = 60, large: int = 4) -> list[BenchPhoto]:
    """`typical` photos around 500x375 and `large` ones over 1,000 px, chosen deterministically by name."""
    rows = list(csv.DictReader((data_dir / "manifest.csv").open()))
    originals = sorted(
        (r for r in rows if r["resolution"] == "original" and not r["note"]), key=lambda r: r["stem"]
    )

    def longest(row: dict[str, str]) -> int:
        return max(int(row["width"]), int(row["height"]))

    common = [r for r in originals if 400 <= longest(r) <= 640]
    big = [r for r in originals if longest(r) >= 1000]
    # Every k-th row spreads the picks over all breeds instead of the first few alphabetically.
    picked = common[:: max(1, len(common) // typical)][:typical] + big[:: max(1, len(big) // large)][:large]
    photos = []
    for row in picked:
        data = (data_dir / "images" / f"{row['stem']}.jpg").read_bytes()
        if data[:2] != b"\xff\xd8":  # keep the benchmark about JPEG photos as cameras write them
            continue
        photos.append(BenchPhoto(row["stem"], data, int(row["width"]), int(row["height"])))
    if not photos:
        raise SystemExit(f"no photos found in {data_dir}")
    return photos


def photos_from_files(paths: list[Path]) -> list[BenchPhoto]:
    """The benchmark's photos from files the user names (`--photo`), instead of the dataset's."""
    from PIL import Image

    photos = []
    for path in paths:
        try:
            with Image.open(path) as image:
                width, height = image.size
        except OSError as exc:
            raise SystemExit(f"cannot read photo {path}: {exc}") from None
        photos.append(BenchPhoto(Path(path).stem, Path(path).read_bytes(), width, height))
    return photos


def choose_photos(data_dir: Path, files: list[Path] | None) -> list[BenchPhoto]:
    """`files` when given, else the dataset selection of `load_photos(data_dir)`."""
    return photos_from_files(files) if files else load_photos(data_dir)


def describe(photos: list[BenchPhoto]) -> str:
    sizes = sorted(p.width * p.height for p in photos)
    kb = sum(len(p.data) for p in photos) / len(photos) / 1024
    big = sum(1 for p in photos if max(p.width, p.height) >= 1000)
    median = sizes[len(sizes) // 2]
    return f"{len(photos)} JPEGs ({big} over 1000 px), median {median / 1e3:.0f} kpx, mean {kb:.0f} KiB"
