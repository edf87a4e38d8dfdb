"""imaging: pure render functions, no model and no server."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from PIL import Image

from app import imaging, png
from tests.app.conftest import decode_png

COLORS = [(255, 120, 0), (0, 0, 0), (255, 255, 255)]
# (height, width): one pixel, one row, one column, odd sizes, a 12 MP phone photo
SHAPES = [(1, 1), (1, 9), (9, 1), (37, 23), (3024, 4032)]


@pytest.fixture(scope="module")
def workers() -> Iterator[png.Workers]:
    pool = png.Workers(3)
    yield pool
    pool.close()


def scene(height: int, width: int) -> tuple[Image.Image, np.ndarray, np.ndarray]:
    """A noisy photo, labels of all three classes in rings, and a matte with every value."""
    rng = np.random.default_rng(height * 7919 + width)
    photo = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
    y, x = np.mgrid[0:height, 0:width]
    labels = (np.hypot(y - height / 2, x - width / 3) // 5 % 3).astype(np.uint8)
    alpha = ((x * 3 + y * 5) % 256).astype(np.uint8)
    return photo, labels, alpha


# The renderings as they were drawn before app.png: the whole image composited by Pillow at once.
def pillow_overlay(photo: Image.Image, labels: np.ndarray, opacity: float) -> np.ndarray:
    colours = Image.fromarray(labels, "L")
    colours.putpalette([c for color in COLORS for c in color])
    return np.asarray(Image.blend(photo, colours.convert("RGB"), opacity))


def pillow_cutout(
    photo: Image.Image, alpha: np.ndarray, background: tuple[int, int, int] | None
) -> np.ndarray:
    matte = Image.fromarray(alpha, "L")
    if background is None:
        cut = photo.convert("RGBA")
        cut.putalpha(matte)
        return np.asarray(cut)
    return np.asarray(Image.composite(photo, Image.new("RGB", photo.size, background), matte))


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


def test_alpha_png_is_the_matte_as_8_bit_greyscale() -> None:
    alpha = np.array([[0, 64, 255], [128, 1, 254]], np.uint8)
    image = decode_png(imaging.render_alpha(alpha))
    assert image.mode == "L" and image.size == (3, 2)
    assert (np.asarray(image) == alpha).all()


@pytest.mark.parametrize("shape", SHAPES)
def test_overlay_pixels_are_pillows_blend_of_the_whole_photo(shape, workers) -> None:
    photo, labels, _ = scene(*shape)
    for opacity in (0.0, 0.35, 0.5, 1.0) if shape[0] < 100 else (0.5,):
        drawn = decode_png(imaging.render_overlay(photo, labels, COLORS, opacity, workers))
        assert drawn.mode == "RGB"
        assert np.array_equal(np.asarray(drawn), pillow_overlay(photo, labels, opacity)), opacity


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("background", [None, (0, 255, 0)])
def test_cutout_pixels_are_pillows_composite_of_the_whole_photo(shape, background, workers) -> None:
    photo, _, alpha = scene(*shape)
    drawn = decode_png(imaging.render_cutout(photo, alpha, background, workers))
    assert drawn.mode == ("RGBA" if background is None else "RGB")
    assert np.array_equal(np.asarray(drawn), pillow_cutout(photo, alpha, background))


@pytest.mark.parametrize("shape", SHAPES)
def test_alpha_pixels_are_the_matte(shape, workers) -> None:
    _, _, alpha = scene(*shape)
    assert np.array_equal(np.asarray(decode_png(imaging.render_alpha(alpha, workers))), alpha)


def test_one_thread_and_several_draw_the_same_png_pixels(workers) -> None:
    photo, labels, _ = scene(1200, 1100)  # 4 MB of RGB: several bands
    alone = decode_png(imaging.render_overlay(photo, labels, COLORS, 0.4))
    shared = decode_png(imaging.render_overlay(photo, labels, COLORS, 0.4, workers))
    assert np.array_equal(np.asarray(alone), np.asarray(shared))
