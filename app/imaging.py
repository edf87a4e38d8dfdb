"""Pure image functions: per-pixel classes → PNG renderings, class counts and boxes.

Decoding an upload into the model's input lives in `petseg_contract.photos`, shared with the
evaluation. Full-size renderings (overlay, cut-out, alpha) are drawn block by block inside the PNG
encoder's band threads (`app.png`): no full-size intermediate image, and both cores at work on one
photo. `workers` is the service's shared `png.Workers`; without it a rendering runs in the caller.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageColor

from app import png

# PNG compression level 1: several times faster than the default for a few percent larger masks.
_PNG_COMPRESS_LEVEL = 1


def encode_png(image: Image.Image) -> bytes:
    """Pillow's PNG, for the palette mask: 2 bits per pixel there cost less than any 8-bit encoder."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=_PNG_COMPRESS_LEVEL)
    return buffer.getvalue()


def render_mask(labels: np.ndarray, colors: list[tuple[int, int, int]]) -> bytes:
    """Palette PNG whose pixel values are class indices and whose palette holds the class colours.

    With three colours Pillow writes 2 bits per pixel, so compressing costs a quarter of 8-bit rows.
    """
    return encode_png(_palette_image(labels, colors))


def render_overlay(
    photo: Image.Image | np.ndarray,
    labels: np.ndarray,
    colors: list[tuple[int, int, int]],
    opacity: float,
    workers: png.Workers = png.SERIAL,
) -> bytes:
    """The photo with each pixel's class colour blended in at `opacity` (0 photo only, 1 colours only).

    8-bit throughout (Pillow's blend, one block of rows at a time): never float32 copies of the photo.
    """
    photo = _image(photo)
    photo.load()
    width = photo.width

    def rows(start: int, stop: int) -> np.ndarray:
        colours = _palette_image(labels[start:stop], colors).convert("RGB")
        return np.asarray(Image.blend(photo.crop((0, start, width, stop)), colours, opacity))

    return png.encode(photo.size, "RGB", rows, workers)


def render_cutout(
    photo: Image.Image | np.ndarray,
    alpha: np.ndarray,
    background: tuple[int, int, int] | None,
    workers: png.Workers = png.SERIAL,
) -> bytes:
    """The pet on a transparent background (RGBA), or composited onto a solid `background` colour (RGB)."""
    photo = _image(photo)
    photo.load()
    width = photo.width
    if background is None:

        def rgba(start: int, stop: int) -> np.ndarray:
            # Pillow's convert and putalpha: several times faster than NumPy's strided channel copies.
            block = photo.crop((0, start, width, stop)).convert("RGBA")
            block.putalpha(Image.fromarray(np.ascontiguousarray(alpha[start:stop], dtype=np.uint8), "L"))
            return np.asarray(block)

        return png.encode(photo.size, "RGBA", rgba, workers)
    fill = background

    def composited(start: int, stop: int) -> np.ndarray:
        # Pillow's composite: integer alpha blending, photo where alpha is 255, background where it is 0.
        matte = Image.fromarray(np.ascontiguousarray(alpha[start:stop], dtype=np.uint8), "L")
        solid = Image.new("RGB", matte.size, fill)
        return np.asarray(Image.composite(photo.crop((0, start, width, stop)), solid, matte))

    return png.encode(photo.size, "RGB", composited, workers)


def class_fractions(labels: np.ndarray, num_classes: int) -> list[float]:
    """Share of the photo's pixels in each class (Pillow's histogram: one pass, no int64 copy)."""
    counts = Image.fromarray(np.ascontiguousarray(labels, dtype=np.uint8), "L").histogram()[:num_classes]
    return [count / max(labels.size, 1) for count in counts]


def bounding_box(labels: np.ndarray, class_index: int) -> dict[str, int] | None:
    """Smallest box holding every pixel of `class_index` (x1/y1 exclusive), or None when there is none."""
    rows = np.flatnonzero((labels == class_index).any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero((labels[rows[0] : rows[-1] + 1] == class_index).any(axis=0))
    return {"x0": int(cols[0]), "y0": int(rows[0]), "x1": int(cols[-1]) + 1, "y1": int(rows[-1]) + 1}


def _palette_image(labels: np.ndarray, colors: list[tuple[int, int, int]]) -> Image.Image:
    image = Image.fromarray(np.ascontiguousarray(labels, dtype=np.uint8), "L")
    image.putpalette([channel for color in colors for channel in color])  # L becomes P, no copy
    return image


def _image(photo: Image.Image | np.ndarray) -> Image.Image:
    return photo if isinstance(photo, Image.Image) else Image.fromarray(np.asarray(photo, dtype=np.uint8))


def render_alpha(alpha: np.ndarray, workers: png.Workers = png.SERIAL) -> bytes:
    """8-bit greyscale PNG of the cut-out matte (255 = opaque pet), for callers who composite themselves."""
    return png.encode_array(np.ascontiguousarray(alpha, dtype=np.uint8), workers)


def parse_color(value: str) -> tuple[int, int, int]:
    """`ffffff` or `#ffffff` (any colour Pillow's ImageColor reads, e.g. `white`) → (255, 255, 255)."""
    text = value.strip()
    if len(text) == 6 and all(c in "0123456789abcdefABCDEF" for c in text):
        text = f"#{text}"  # ImageColor wants the '#' that the API's `background` parameter leaves out
    red, green, blue = ImageColor.getrgb(text)[:3]  # ValueError for anything it cannot read
    return red, green, blue
