"""imaging: pure decode and render functions, no model and no server."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from app import imaging
from tests.app.conftest import decode_png, make_photo

COLORS = [(255, 120, 0), (0, 0, 0), (255, 255, 255)]


def decode(data: bytes, keep_pixels: bool = True, max_pixels: int = 10**8) -> imaging.Photo:
    return imaging.decode_photo(data, input_size=32, max_pixels=max_pixels, keep_pixels=keep_pixels)


@pytest.mark.parametrize(
    ("mode", "fmt"),
    [
        ("RGB", "JPEG"),
        ("L", "PNG"),
        ("P", "PNG"),
        ("RGBA", "PNG"),
        ("CMYK", "JPEG"),
        ("I;16", "PNG"),
        ("RGB", "WEBP"),
        ("RGB", "BMP"),
        ("P", "GIF"),
        ("RGB", "TIFF"),
        ("LA", "PNG"),
    ],
)
def test_every_mode_and_format_becomes_rgb_at_full_size(mode: str, fmt: str) -> None:
    photo = decode(make_photo(60, 40, mode=mode, fmt=fmt))
    assert (photo.width, photo.height) == (60, 40)
    assert photo.rgb is not None and photo.rgb.shape == (40, 60, 3) and photo.rgb.dtype == np.uint8
    assert photo.model_input.shape == (32, 32, 3)


def test_sixteen_bit_grey_is_scaled_not_clipped() -> None:
    photo = decode(make_photo(60, 40, mode="I;16", fmt="PNG"))
    # The dark gradient stays dark; clipping 16-bit values at 255 would turn it white.
    assert photo.rgb is not None and photo.rgb[0, 0, 0] < 100


def test_transparent_areas_are_shown_over_white() -> None:
    buffer = io.BytesIO()
    Image.new("RGBA", (10, 10), (0, 0, 0, 0)).save(buffer, format="PNG")
    photo = decode(buffer.getvalue())
    assert photo.rgb is not None and (photo.rgb == 255).all()


def test_exif_orientation_swaps_width_and_height() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    for keep_pixels in (True, False):
        photo = decode(make_photo(120, 90, exif=exif.tobytes()), keep_pixels=keep_pixels)
        assert (photo.width, photo.height) == (90, 120)
    assert photo.rgb is None


def test_jpeg_draft_keeps_the_reported_full_size() -> None:
    photo = decode(make_photo(800, 600), keep_pixels=False)
    assert (photo.width, photo.height) == (800, 600)


@pytest.mark.parametrize("data", [b"", b"hello, not an image", b"%PDF-1.4 fake", b"\x89PNG\r\n"])
def test_non_images_are_unsupported(data: bytes) -> None:
    with pytest.raises(imaging.UnsupportedImage):
        decode(data)


def test_truncated_jpeg_is_corrupt() -> None:
    data = make_photo(400, 300)
    with pytest.raises(imaging.CorruptImage):
        decode(data[: len(data) // 2])


def test_pixel_limit_refuses_before_decoding() -> None:
    with pytest.raises(imaging.TooManyPixels) as caught:
        decode(make_photo(200, 100), max_pixels=19_999)
    assert caught.value.status == 413


def test_mask_png_is_palette_with_class_indices_and_colours() -> None:
    labels = np.array([[0, 1, 2], [2, 1, 0]], dtype=np.uint8)
    image = decode_png(imaging.render_mask(labels, COLORS))
    assert image.mode == "P" and image.size == (3, 2)
    assert (np.asarray(image) == labels).all()
    assert image.getpalette()[:9] == [c for color in COLORS for c in color]


def test_overlay_blends_colours_by_opacity() -> None:
    rgb = np.full((2, 2, 3), 100, np.uint8)
    labels = np.zeros((2, 2), np.uint8)
    full = np.asarray(decode_png(imaging.render_overlay(rgb, labels, COLORS, 1.0)))
    none = np.asarray(decode_png(imaging.render_overlay(rgb, labels, COLORS, 0.0)))
    assert (full == COLORS[0]).all() and (none == 100).all()


def test_cutout_uses_alpha_or_a_solid_background() -> None:
    rgb = np.full((2, 2, 3), 200, np.uint8)
    alpha = np.array([[0, 255], [128, 255]], np.uint8)
    rgba = decode_png(imaging.render_cutout(rgb, alpha, None))
    assert rgba.mode == "RGBA" and (np.asarray(rgba)[..., 3] == alpha).all()
    solid = np.asarray(decode_png(imaging.render_cutout(rgb, alpha, (0, 0, 255))))
    assert solid.shape == (2, 2, 3) and tuple(solid[0, 0]) == (0, 0, 255) and tuple(solid[0, 1]) == (200,) * 3


def test_bounding_box_and_fractions() -> None:
    labels = np.ones((10, 20), np.uint8)
    labels[2:5, 3:8] = 0
    assert imaging.bounding_box(labels, 0) == {"x0": 3, "y0": 2, "x1": 8, "y1": 5}
    assert imaging.bounding_box(labels, 2) is None
    assert imaging.class_fractions(labels, 3) == [15 / 200, 185 / 200, 0.0]
