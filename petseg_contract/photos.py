"""Upload bytes -> an oriented RGB photo and the model's input: the one decoding both halves use.

The service decodes uploads with it and the evaluation decodes test photos with it, so a score is a
score of what users receive. The model input of a photo does not depend on what is asked of it
(mask, overlay, cut-out, JSON): it always comes from the same reduced-scale decode.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# Pillow registers plugins lazily; `Image.open(formats=...)` needs them registered up front.
Image.init()
# Formats Pillow decodes safely and people actually upload (older Pillows name phone JPEGs "MPO").
ALLOWED_FORMATS = tuple(f for f in ("JPEG", "MPO", "PNG", "WEBP", "BMP", "GIF", "TIFF") if f in Image.OPEN)

# EXIF orientations 5-8 rotate by 90°, swapping width and height.
_SWAPPING_ORIENTATIONS = {5, 6, 7, 8}
_EXIF_ORIENTATION_TAG = 0x0112


class ImageError(Exception):
    """A file that cannot become a photo; `status` is the HTTP status it deserves."""

    status = 400
    title = "Bad image"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class UnsupportedImage(ImageError):
    status = 415
    title = "Unsupported media type"


class CorruptImage(ImageError):
    status = 400
    title = "Corrupt image"


class TooManyPixels(ImageError):
    status = 413
    title = "Image too large"


@dataclass(frozen=True)
class Photo:
    """A decoded photo: its size as a viewer shows it, the model's input, and the pixels if asked for."""

    width: int
    height: int
    model_input: np.ndarray  # uint8 [S, S, 3]
    rgb: np.ndarray | None  # uint8 [height, width, 3], only when an output draws on the photo


def decode(data: bytes, *, input_size: int, max_pixels: int, keep_pixels: bool = False) -> Photo:
    """Decode `data` to RGB with EXIF orientation applied, refusing non-images and pixel bombs.

    The model input comes from a JPEG decoded at the smallest 1/2..1/8 scale still at least
    `input_size` on each side (draft mode: several times faster than a full decode), whatever
    `keep_pixels` says, so every output of a photo is drawn from the same labels.
    """
    image = _open(data)
    with image:
        width, height = image.size
        if width * height > max_pixels:
            raise TooManyPixels(f"{width}x{height} pixels exceeds the limit of {max_pixels}")
        if _orientation(image) in _SWAPPING_ORIENTATIONS:
            width, height = height, width
        full = None
        if keep_pixels:
            full = load_rgb(image)
            if image.format not in ("JPEG", "MPO"):
                small = full  # nothing cheaper to decode from
            else:
                with _open(data) as again:
                    small = load_rgb(again, draft=input_size)
        else:
            small = load_rgb(image, draft=input_size)
    return Photo(
        width=width,
        height=height,
        model_input=model_input(small, input_size),
        rgb=np.asarray(full, dtype=np.uint8) if full is not None else None,
    )


def decode_pixels(data: bytes, *, max_pixels: int) -> Image.Image:
    """The photo at full size, oriented, 8-bit RGB: what an overlay or cut-out is drawn on.

    Separate from `decode` so a caller can hold only the compressed bytes while the photo waits for
    the model, and decode the full pixels when it draws; the model input never comes from here.
    """
    image = _open(data)
    with image:
        width, height = image.size
        if width * height > max_pixels:
            raise TooManyPixels(f"{width}x{height} pixels exceeds the limit of {max_pixels}")
        return load_rgb(image)


def decode_file(path, *, input_size: int, max_pixels: int = 2**31, keep_pixels: bool = False) -> Photo:
    """`decode` on a file's bytes (the evaluation and the CLI read photos from disk)."""
    with open(path, "rb") as f:
        return decode(f.read(), input_size=input_size, max_pixels=max_pixels, keep_pixels=keep_pixels)


def model_input(rgb: Image.Image, size: int) -> np.ndarray:
    """The whole photo squeezed to size x size, bilinear (with Pillow's fast reducing for big photos)."""
    return np.asarray(rgb.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=2.0), dtype=np.uint8)


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode as 8-bit RGB: transparency over white, 16/32-bit scaled, CMYK/palette converted."""
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        # Pillow's I;16 -> L conversion clips at 255 instead of scaling; keep the high byte instead.
        high = (np.asarray(image, dtype=np.uint16) >> 8).astype(np.uint8)
        return Image.fromarray(high).convert("RGB")
    if image.mode in ("I", "F"):
        values = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if values.max(initial=0) > 255 else 255.0
        scaled = np.clip(values / peak * 255.0, 0, 255).astype(np.uint8)
        return Image.fromarray(scaled).convert("RGB")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        # Transparent areas are shown over white by viewers; black would invent a dark background.
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _open(data: bytes) -> Image.Image:
    if not data:
        raise UnsupportedImage("empty upload")
    try:
        with warnings.catch_warnings():
            # Pillow's own bomb warning is subsumed by the explicit pixel limit in `decode`.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except UnidentifiedImageError as exc:
        raise UnsupportedImage(
            "not an image in a supported format (jpeg, png, webp, bmp, gif, tiff)"
        ) from exc
    except Image.DecompressionBombError as exc:
        raise TooManyPixels(str(exc)) from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise CorruptImage(f"unreadable image header: {exc}") from exc


def load_rgb(image: Image.Image, draft: int | None = None) -> Image.Image:
    """Decode an opened image (a JPEG at the smallest scale still >= `draft` px a side), orient, RGB."""
    if draft and image.format in ("JPEG", "MPO"):
        image.draft("RGB", (draft, draft))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image.load()
        # In place: without it Pillow returns a copy of an upright photo (most are), 30 of a 12 MP
        # JPEG's 85 ms of full decode on the build machine.
        ImageOps.exif_transpose(image, in_place=True)
        return to_rgb(image)
    except Image.DecompressionBombError as exc:
        raise TooManyPixels(str(exc)) from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise CorruptImage(f"corrupt or truncated {image.format} image: {exc}") from exc


def _orientation(image: Image.Image) -> int:
    try:
        return int(image.getexif().get(_EXIF_ORIENTATION_TAG, 1))
    except Exception:  # a malformed EXIF block should not make an otherwise good photo fail
        return 1
