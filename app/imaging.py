"""Pure image functions: per-pixel classes → PNG renderings, class counts and boxes.

Decoding an upload into the model's input lives in `petseg_contract.photos`, shared with the
evaluation.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

# PNG compression level 1: several times faster than the default for a few percent larger masks.
_PNG_COMPRESS_LEVEL = 1


def encode_png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=_PNG_COMPRESS_LEVEL)
    return buffer.getvalue()


def render_mask(labels: np.ndarray, colors: list[tuple[int, int, int]]) -> bytes:
    """Palette PNG whose pixel values are class indices and whose palette holds the class colours."""
    height, width = labels.shape
    image = Image.frombytes("P", (width, height), np.ascontiguousarray(labels, dtype=np.uint8).tobytes())
    image.putpalette([channel for color in colors for channel in color])
    return encode_png(image)


def render_overlay(
    rgb: np.ndarray, labels: np.ndarray, colors: list[tuple[int, int, int]], opacity: float
) -> bytes:
    """The photo with each pixel's class colour blended in at `opacity` (0 photo only, 1 colours only)."""
    palette = np.asarray(colors, dtype=np.float32)
    blended = rgb.astype(np.float32) * (1.0 - opacity) + palette[labels] * opacity
    return encode_png(Image.fromarray(np.clip(blended + 0.5, 0, 255).astype(np.uint8)))


def render_cutout(rgb: np.ndarray, alpha: np.ndarray, background: tuple[int, int, int] | None) -> bytes:
    """The pet on a transparent background (RGBA), or composited onto a solid `background` colour (RGB)."""
    if background is None:
        return encode_png(Image.fromarray(np.dstack([rgb, alpha])))
    weight = alpha.astype(np.float32)[..., None] / 255.0
    solid = np.asarray(background, dtype=np.float32)
    composed = rgb.astype(np.float32) * weight + solid * (1.0 - weight)
    return encode_png(Image.fromarray(np.clip(composed + 0.5, 0, 255).astype(np.uint8)))


def class_fractions(labels: np.ndarray, num_classes: int) -> list[float]:
    """Share of the photo's pixels in each class."""
    counts = np.bincount(labels.ravel(), minlength=num_classes)[:num_classes]
    return (counts / max(labels.size, 1)).tolist()


def bounding_box(labels: np.ndarray, class_index: int) -> dict[str, int] | None:
    """Smallest box holding every pixel of `class_index` (x1/y1 exclusive), or None when there is none."""
    rows = np.flatnonzero((labels == class_index).any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero((labels[rows[0] : rows[-1] + 1] == class_index).any(axis=0))
    return {"x0": int(cols[0]), "y0": int(rows[0]), "x1": int(cols[-1]) + 1, "y1": int(rows[-1]) + 1}


def render_alpha(alpha: np.ndarray) -> bytes:
    """8-bit greyscale PNG of the soft pet matte (255 = surely pet), for callers who composite themselves."""
    return encode_png(Image.fromarray(np.ascontiguousarray(alpha, dtype=np.uint8)))
