"""A tiny synthetic Oxford-IIIT Pet on disk, in the official layout: drawn "pets" on noise.

Used by the tests and by `--data-dir synthetic`, so the whole chain runs in seconds without photos.
It carries the real dataset's defects on purpose: a listed stem without a photo, a corrupt file, and a
PNG (with alpha) under a .jpg name.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

MISSING_STEM = "ghost_1"
CORRUPT_STEM = "broken_1"
PNG_AS_JPG_STEM = "Pngcat_1"


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
    for split, stems in lists.items():
        lines = [f"{s} 1 1 1" for s in stems]
        (root / "annotations" / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return root
