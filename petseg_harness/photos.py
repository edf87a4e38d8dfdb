"""Synthetic photos, built in memory: CI has no pet photos, and binary fixtures would hide what they are."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


def make_photo(width: int = 120, height: int = 90, mode: str = "RGB", fmt: str = "JPEG", **save) -> bytes:
    """A warm blob on a dark ground, in any Pillow mode (including 16-bit grey, `I;16`) and format.

    `save` goes to Pillow's `Image.save` (quality, exif=..., progressive=True, ...).
    """
    image = Image.new("RGB", (width, height), (40, 60, 80))
    # The blob covers the middle half, and at least one pixel, so even a 1x1 photo has a pet in it.
    box = (
        width // 4,
        height // 4,
        max(width // 4 + 1, 3 * width // 4),
        max(height // 4 + 1, 3 * height // 4),
    )
    image.paste((220, 180, 120), box)
    if mode == "I;16":
        image = Image.fromarray(np.asarray(image.convert("L"), dtype=np.uint16) * 257)
    elif mode != "RGB":
        image = image.convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **save)
    return buffer.getvalue()
