"""A tiny synthetic Oxford-IIIT Pet on disk, in the official layout: drawn "pets" on noise.

Used by the tests and by `--data-dir synthetic`, so the whole chain runs in seconds without photos.
It carries the real dataset's defects on purpose: a listed stem without a photo, a corrupt file, a
PNG (with alpha) under a .jpg name, and one photo that annotations/list.txt does not label (so its
species and breed are unknown). Every other stem gets a random breed and that breed's species,
written in the official `<stem> <CLASS-ID> <SPECIES> <BREED ID>` form.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

import petseg_contract as contract

MISSING_STEM = "ghost_1"
CORRUPT_STEM = "broken_1"
PNG_AS_JPG_STEM = "Pngcat_1"
# Bump when the generator's output changes, so cached copies of the old one are not reused.
GENERATOR_VERSION = 2
UNLABELLED_STEM = "synthpet_trainval_0"  # has a photo and trimap but no line in list.txt


def list_line(stem: str, breed: int) -> str:
    """An official list line: CLASS-ID = breed + 1, SPECIES 1 cat / 2 dog, BREED ID within the species."""
    species = contract.BREED_SPECIES[breed]
    within = contract.BREED_SPECIES[: breed + 1].count(species)
    return f"{stem} {breed + 1} {species + 1} {within}"


def draw_pet(rng: np.random.Generator, size: tuple[int, int]) -> tuple[Image.Image, np.ndarray]:
    """One photo and its trimap (1 pet, 2 background, 3 border band around the pet's outline)."""
    w, h = size
    noise = rng.integers(0, 256, (h // 4 + 1, w // 4 + 1, 3), dtype=np.uint8)
    photo = Image.fromarray(noise).resize((w, h), Image.Resampling.BILINEAR)
    photo = photo.filter(ImageFilter.GaussianBlur(2))
    shape = Image.new("L", (w, h), 0)
    d = ImageDraw.Draw(shape)
    cx, cy = rng.uniform(0.35, 0.65) * w, rng.uniform(0.4, 0.65) * h
    bw, bh = rng.uniform(0.18, 0.3) * w, rng.uniform(0.12, 0.22) * h
    d.ellipse([cx - bw, cy - bh, cx + bw, cy + bh], fill=255)  # body
    r = rng.uniform(0.09, 0.14) * min(w, h)
    hx, hy = cx + rng.choice([-1, 1]) * bw * 0.9, cy - bh * 0.9
    d.ellipse([hx - r, hy - r, hx + r, hy + r], fill=255)  # head
    colour = tuple(int(c) for c in rng.integers(0, 256, 3))
    fur = Image.new("RGB", (w, h), colour)
    photo.paste(fur, (0, 0), shape)
    inside = np.asarray(shape) > 0
    band = max(2, min(w, h) // 40)
    grown = np.asarray(shape.filter(ImageFilter.MaxFilter(2 * band + 1))) > 0
    shrunk = np.asarray(shape.filter(ImageFilter.MinFilter(2 * band + 1))) > 0
    trimap = np.full((h, w), 2, np.uint8)
    trimap[inside] = 1
    trimap[grown & ~shrunk] = 3
    return photo, trimap


def write_synthetic_dataset(
    root: str | Path, n_trainval: int = 48, n_test: int = 16, seed: int = 0, defects: bool = True
) -> Path:
    """Write images/, annotations/trimaps/ and the official list files under `root`."""
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "annotations" / "trimaps").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    label_rng = np.random.default_rng([seed, 1])  # separate stream: labels do not change the photos
    lists: dict[str, list[str]] = {"trainval": [], "test": []}
    for split, n in (("trainval", n_trainval), ("test", n_test)):
        for i in range(n):
            stem = f"synthpet_{split}_{i}"
            size = (int(rng.integers(96, 200)), int(rng.integers(96, 200)))
            photo, trimap = draw_pet(rng, size)
            photo.save(root / "images" / f"{stem}.jpg", quality=90)
            Image.fromarray(trimap).save(root / "annotations" / "trimaps" / f"{stem}.png")
            lists[split].append(stem)
    if defects:
        photo, trimap = draw_pet(rng, (120, 100))
        # PNG with an alpha channel under a .jpg name, like Abyssinian_5 in the real release.
        photo.convert("RGBA").save(root / "images" / f"{PNG_AS_JPG_STEM}.jpg", format="PNG")
        Image.fromarray(trimap).save(root / "annotations" / "trimaps" / f"{PNG_AS_JPG_STEM}.png")
        (root / "images" / f"{CORRUPT_STEM}.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
        Image.fromarray(trimap).save(root / "annotations" / "trimaps" / f"{CORRUPT_STEM}.png")
        lists["trainval"] += [PNG_AS_JPG_STEM, CORRUPT_STEM, MISSING_STEM]
    breeds = {
        stem: int(label_rng.integers(len(contract.BREEDS))) for stems in lists.values() for stem in stems
    }
    if PNG_AS_JPG_STEM in breeds:
        breeds[PNG_AS_JPG_STEM] = contract.BREED_KEYS.index("Abyssinian")  # as its real counterpart
    for split, stems in lists.items():
        lines = [list_line(s, breeds[s]) for s in stems]
        (root / "annotations" / f"{split}.txt").write_text("\n".join(lines) + "\n")
    everything = [list_line(s, breeds[s]) for stems in lists.values() for s in stems if s != UNLABELLED_STEM]
    header = "#Image CLASS-ID SPECIES BREED ID\n#SPECIES: 1:Cat 2:Dog\n"
    (root / "annotations" / "list.txt").write_text(header + "\n".join(everything) + "\n")
    return root


def cached_synthetic_dataset(seed: int = 0, cache_dir: str | Path | None = None) -> Path:
    """The default synthetic set for `seed`, written once and reused (`--data-dir synthetic`).

    The set is a pure function of the seed and GENERATOR_VERSION, so every call can share one copy
    under the temporary directory instead of leaving a new one behind each time. It is written
    beside its final name and renamed into place, so concurrent callers never see half a set.
    """
    base = Path(cache_dir) if cache_dir is not None else Path(tempfile.gettempdir())
    root = base / f"petseg-synthetic-v{GENERATOR_VERSION}-seed{seed}-uid{os.getuid()}"
    if (root / "annotations" / "list.txt").exists():
        return root
    staging = Path(tempfile.mkdtemp(prefix=f".{root.name}-", dir=base))
    try:
        write_synthetic_dataset(staging, seed=seed)
        staging.rename(root)
    except OSError:
        if not (root / "annotations" / "list.txt").exists():  # not simply beaten to it by another caller
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return root
