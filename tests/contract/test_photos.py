"""petseg_contract.photos: upload bytes -> RGB photo and model input, shared by service and evaluation."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageOps

from petseg_contract import photos
from petseg_harness.photos import make_photo


def decode(data: bytes, keep_pixels: bool = True, max_pixels: int = 10**8) -> photos.Photo:
    return photos.decode(data, input_size=32, max_pixels=max_pixels, keep_pixels=keep_pixels)


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


@pytest.mark.parametrize("orientation", [1, 3, 6, 8])
def test_full_pixels_are_shown_as_a_viewer_shows_them(orientation: int) -> None:
    """The transposition happens in place (no copy of an upright photo): the pixels must still be
    those of Pillow's own exif_transpose, for upright and rotated photos alike."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    # A ramp across and down: every rotation and flip of it gives different pixels.
    ramp = np.add.outer(np.arange(90) * 2, np.arange(120)).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(np.stack([ramp, ramp // 2, 255 - ramp], axis=-1)).save(
        buffer, format="JPEG", exif=exif.tobytes()
    )
    data = buffer.getvalue()
    expected = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB"))
    pixels = np.asarray(photos.decode_pixels(data, max_pixels=10**6))
    kept = decode(data, keep_pixels=True).rgb
    assert pixels.shape == expected.shape == ((120, 90, 3) if orientation in (6, 8) else (90, 120, 3))
    assert np.array_equal(pixels, expected) and kept is not None and np.array_equal(kept, expected)


def test_jpeg_draft_keeps_the_reported_full_size() -> None:
    photo = decode(make_photo(800, 600), keep_pixels=False)
    assert (photo.width, photo.height) == (800, 600)


@pytest.mark.parametrize("data", [b"", b"hello, not an image", b"%PDF-1.4 fake", b"\x89PNG\r\n"])
def test_non_images_are_unsupported(data: bytes) -> None:
    with pytest.raises(photos.UnsupportedImage):
        decode(data)


def test_truncated_jpeg_is_corrupt() -> None:
    data = make_photo(400, 300)
    with pytest.raises(photos.CorruptImage):
        decode(data[: len(data) // 2])


def test_pixel_limit_refuses_before_decoding() -> None:
    with pytest.raises(photos.TooManyPixels) as caught:
        decode(make_photo(200, 100), max_pixels=19_999)
    assert caught.value.status == 413


def test_model_input_is_the_same_whatever_the_output() -> None:
    # mask/json (no pixels kept) and overlay/cutout (pixels kept) must label a photo identically.
    for data in (make_photo(1600, 1200), make_photo(300, 200, fmt="PNG")):
        lean = photos.decode(data, input_size=64, max_pixels=10**8, keep_pixels=False)
        full = photos.decode(data, input_size=64, max_pixels=10**8, keep_pixels=True)
        np.testing.assert_array_equal(lean.model_input, full.model_input)
        assert full.rgb is not None and full.rgb.shape[:2] == (full.height, full.width)


def test_thirty_two_bit_grey_is_scaled_to_its_range() -> None:
    values = np.linspace(0, 60000, 40 * 60, dtype=np.int32).reshape(40, 60)
    rgb = np.asarray(photos.to_rgb(Image.fromarray(values, "I")))
    assert rgb.shape == (40, 60, 3) and rgb[0, 0, 0] == 0 and rgb[-1, -1, 0] > 230
