"""Pure image functions: upload bytes → validated RGB photo, and per-pixel classes → PNG renderings."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# Class indices fixed by the export contract (trimap value - 1).
PET_CLASS = 0
BACKGROUND_CLASS = 1
BORDER_CLASS = 2

# Pillow registers plugins lazily; `Image.open(formats=...)` needs them registered up front.
Image.init()
# Formats Pillow decodes safely and people actually upload (older Pillows name phone JPEGs "MPO").
ALLOWED_FORMATS = tuple(f for f in ("JPEG", "MPO", "PNG", "WEBP", "BMP", "GIF", "TIFF") if f in Image.OPEN)

# EXIF orientations 5-8 rotate by 90°, swapping width and height.
_SWAPPING_ORIENTATIONS = {5, 6, 7, 8}
_EXIF_ORIENTATION_TAG = 0x0112
# PNG compression level 1: several times faster than the default for a few percent larger masks.
_PNG_OPTIONS = {"format": "PNG", "compress_level": 1}


class ImageError(Exception):
    """An upload that cannot become a photo; `status` is the HTTP status it deserves."""

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
    """A decoded upload: its size as the user sees it, the model's input, and the pixels if needed."""

    width: int
    height: int
    model_input: np.ndarray  # uint8 [S, S, 3]
    rgb: np.ndarray | None  # uint8 [height, width, 3], only when an output draws on the photo


def decode_photo(data: bytes, *, input_size: int, max_pixels: int, keep_pixels: bool) -> Photo:
    """Decode an upload to RGB with EXIF orientation applied, refusing non-images and pixel bombs.

    With `keep_pixels=False` JPEGs are decoded at a reduced scale close to the model's input (draft
    mode), which is several times faster; the reported size is still the photo's full size.
    """
    if not data:
        raise UnsupportedImage("empty upload")
    try:
        with warnings.catch_warnings():
            # Pillow's own bomb warning is subsumed by our explicit pixel limit below.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except UnidentifiedImageError as exc:
        raise UnsupportedImage(
            "not an image in a supported format (jpeg, png, webp, bmp, gif, tiff)"
        ) from exc
    except Image.DecompressionBombError as exc:
        raise TooManyPixels(str(exc)) from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise CorruptImage(f"unreadable image header: {exc}") from exc

    with image:
        width, height = image.size
        if width * height > max_pixels:
            raise TooManyPixels(f"{width}x{height} pixels exceeds the limit of {max_pixels}")
        if _orientation(image) in _SWAPPING_ORIENTATIONS:
            width, height = height, width
        if not keep_pixels and image.format == "JPEG":
            image.draft("RGB", (input_size, input_size))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                image.load()
            oriented = ImageOps.exif_transpose(image)
            rgb = to_rgb(oriented)
        except Image.DecompressionBombError as exc:
            raise TooManyPixels(str(exc)) from exc
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise CorruptImage(f"corrupt or truncated {image.format} image: {exc}") from exc

    model_input = rgb.resize((input_size, input_size), Image.Resampling.BILINEAR, reducing_gap=2.0)
    return Photo(
        width=width,
        height=height,
        model_input=np.asarray(model_input, dtype=np.uint8),
        rgb=np.asarray(rgb, dtype=np.uint8) if keep_pixels else None,
    )


def _orientation(image: Image.Image) -> int:
    try:
        return int(image.getexif().get(_EXIF_ORIENTATION_TAG, 1))
    except Exception:  # a malformed EXIF block should not make an otherwise good photo fail
        return 1


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB: transparency over white, 16-bit scaled, CMYK converted."""
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        # Pillow's I;16 → L conversion clips at 255 instead of scaling; keep the high byte instead.
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


def encode_png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, **_PNG_OPTIONS)
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
