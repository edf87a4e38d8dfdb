"""petseg_contract.resample: Pillow's bilinear upscaling weights, so that any part of a resize can be
computed alone and match the whole resize bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from petseg_contract.resample import PRECISION_BITS, bilinear_taps, interpolate

# (source width, source height, output width, output height): equal, +1, integer and half-integer
# ratios, coprime sizes, and phone sizes along each axis (on thin strips, to stay quick).
SIZES = [
    (224, 224, 224, 224),
    (224, 224, 225, 224),
    (224, 6, 4032, 6),
    (6, 224, 9, 3024),
    (224, 5, 4031, 7),
    (5, 224, 5, 3023),
    (224, 224, 1001, 997),
    (160, 224, 2317, 1733),
    (7, 5, 640, 480),
    (1, 1, 3, 2),
]


def two_passes(plane: np.ndarray, width: int, height: int) -> np.ndarray:
    """The whole resize from the taps: horizontal pass over every source row, then vertical."""
    cols = bilinear_taps(plane.shape[1], width)
    rows = bilinear_taps(plane.shape[0], height)
    source = plane.astype(np.int32)
    across = interpolate(cols.weight0, source[:, cols.first], cols.weight1, source[:, cols.second])
    down = interpolate(rows.weight0[:, None], across[rows.first], rows.weight1[:, None], across[rows.second])
    return down.astype(np.uint8)


@pytest.mark.parametrize(("source_width", "source_height", "width", "height"), SIZES)
def test_the_taps_reproduce_pillows_resize_exactly(source_width, source_height, width, height) -> None:
    rng = np.random.default_rng(source_width * 7 + width)
    for plane in (
        rng.integers(0, 256, (source_height, source_width), dtype=np.uint8),
        np.full((source_height, source_width), 255, np.uint8),
        (np.arange(source_width * source_height) % 256).astype(np.uint8).reshape(source_height, source_width),
    ):
        expected = np.asarray(Image.fromarray(plane, "L").resize((width, height), Image.Resampling.BILINEAR))
        np.testing.assert_array_equal(two_passes(plane, width, height), expected)


@pytest.mark.parametrize("out_size", [224, 225, 300, 448, 500, 1001, 3023, 3024, 4031, 4032, 4624])
def test_weights_are_non_negative_and_sum_to_one_within_a_unit(out_size: int) -> None:
    # The premise of masks._sure_labels: each pass is a monotonic mix whose rounding loses at most one.
    taps = bilinear_taps(224, out_size)
    total = taps.weight0.astype(np.int64) + taps.weight1
    assert taps.weight0.min() >= 0 and taps.weight1.min() >= 0
    assert np.abs(total - (1 << PRECISION_BITS)).max() <= 1


@pytest.mark.parametrize("out_size", [224, 225, 3023, 4032])
def test_every_source_pixel_starts_a_band_of_outputs(out_size: int) -> None:
    # masks._labels_by_cells relies on it: output rows (columns) come in one contiguous, non-empty
    # band per source row (column), in order, and no tap leaves the source.
    taps = bilinear_taps(224, out_size)
    assert np.all(np.diff(taps.first) >= 0)
    assert np.bincount(taps.first, minlength=224).min() >= 1
    assert taps.first.min() == 0 and taps.second.max() == 223


def test_downscaling_is_refused() -> None:
    # Shrinking spreads each output over more than two source pixels; these taps do not describe it.
    with pytest.raises(ValueError, match="only upscaling"):
        bilinear_taps(224, 17)
