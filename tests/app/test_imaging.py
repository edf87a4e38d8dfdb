"""imaging: pure render functions, no model and no server."""

from __future__ import annotations

import numpy as np

from app import imaging
from tests.app.conftest import decode_png

COLORS = [(255, 120, 0), (0, 0, 0), (255, 255, 255)]


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
