"""Model probabilities -> labels, the pet probability and the cut-out matte at the photo's own size.

The service renders every output from this, and the evaluation scores exactly this, so the numbers
in a model card are the numbers of the masks users receive.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from PIL import Image

from petseg_contract import BACKGROUND, BORDER, PET
from petseg_contract.resample import Taps, bilinear_taps, interpolate

# Below about this many output pixels three plain Pillow resizes beat working out where they are
# needed (crossover 0.12-0.19 MP, measured with `python -m bench.upsample --sizes`); both paths give
# the same labels.
CELLS_FROM_PIXELS = 150_000
# A class that leads another by this much (in 1/255) at every tap still leads after the rounding of
# one pass (the integer weights may sum to 2**22 - 1, which can cost one unit per pass); see
# `_sure_labels`. Source pixels go through two passes, horizontally interpolated ones through one.
SOURCE_MARGIN = 3
COLUMN_MARGIN = 2
UNSURE = np.uint8(255)  # a pixel or cell whose label needs the exact computation
# Elements per vectorised step over the uncertain pixels: big enough that NumPy's per-call cost
# vanishes, small enough that the temporaries stay in cache and under glibc's mmap threshold.
CHUNK = 16_384
# How much steeper than the pet probability the cut-out's matte is (Segmentation.pet_alpha), chosen on
# the 147 validation photos as served by version 5 (`python -m training figures` reports it): mean
# |alpha - truth| on the pixels the trimap calls pet or background 0.051 at 1 (the probability itself),
# 0.031 at 2, 0.024 at 8, 0.023 at 100; pixels left semi-transparent (alpha 0.1-0.9) 20.6 %, 12.7 %,
# 6.5 %, 1.8 %. 8 keeps most of the gain and leaves really undecided regions translucent, not cut hard.
MATTE_STEEPNESS = 8.0


@dataclass(frozen=True)
class Segmentation:
    """Per-pixel result at the photo's own size."""

    labels: np.ndarray  # uint8 [h, w], class index per pixel
    probabilities: np.ndarray  # float32 [S, S, C], the model output the labels were upsampled from

    @cached_property
    def pet_probability(self) -> np.ndarray:
        """uint8 [h, w]: how sure the model is that each pixel is pet (255 = surely), the border class
        counting half (it is the trimap's "unsure" band around the pet). What a pet's
        `mean_confidence` is the mean of. Computed on first use: at 12 MP it is a full-size resize."""
        height, width = self.labels.shape
        return pet_matte(self.probabilities, height, width, steepness=1.0)

    @cached_property
    def pet_alpha(self) -> np.ndarray:
        """uint8 [h, w] cut-out matte, 255 = opaque pet: `pet_matte` at MATTE_STEEPNESS, a tight edge
        (an anti-aliased ramp about one model pixel wide), translucent only where the model is really
        undecided. The probability itself as a matte made a fifth of a photo's pixels semi-transparent:
        a halo where the background shows through (numbers at MATTE_STEEPNESS)."""
        height, width = self.labels.shape
        return pet_matte(self.probabilities, height, width, steepness=MATTE_STEEPNESS)


def pet_matte(probabilities: np.ndarray, height: int, width: int, steepness: float) -> np.ndarray:
    """uint8 [height, width] matte from model probabilities [S, S, C]: the pet probability plus half
    the border's, made `steepness` times steeper around one half (1: the probability itself), then
    upsampled bilinearly to the photo's size."""
    soft = np.clip(probabilities[..., PET] + 0.5 * probabilities[..., BORDER], 0.0, 1.0)
    if steepness != 1.0:
        soft = np.clip((soft - 0.5) * steepness + 0.5, 0.0, 1.0)
    # Not by cells like the labels: the model is never quite sure, so the matte is rarely flat (on real
    # photos 52-75 % of the output columns of a band still vary), and interpolating that much in NumPy
    # costs more than Pillow's one resize.
    small = Image.fromarray((soft * 255.0 + 0.5).astype(np.uint8), "L")
    return np.asarray(small.resize((width, height), Image.Resampling.BILINEAR))


def upsample(probabilities: np.ndarray, height: int, width: int) -> Segmentation:
    """Bilinear upsampling of [S, S, 3] probabilities to height x width, then the class per pixel.

    The definition: each class's probabilities, quantised to 1/255, resized as an 8-bit plane by
    Pillow's BILINEAR, then the class with the highest value (ties to the lower index, as np.argmax).
    The quantisation moves the argmax on well under 0.1 % of pixels, all on class boundaries, and
    makes this a few times cheaper than TensorFlow per photo.

    Large photos get exactly those labels without three full-size resizes: bilinear interpolation
    only mixes the 2 x 2 source pixels around an output pixel, with non-negative weights, so where
    one class clearly leads at all four of them it leads in the whole output cell between them
    (`_sure_labels`). Those cells (about 96 % of a 224 px model's cells on real photos) are filled
    with their label; only the rest is interpolated, pixel for pixel as Pillow would
    (`petseg_contract.resample`). On the bundled model's output at 12 MP that is 1-2 % of the pixels,
    and the labels cost about a tenth of the three resizes (`python -m bench.upsample`).
    """
    quantised = (np.clip(probabilities, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    source_height, source_width = quantised.shape[:2]
    if height * width >= CELLS_FROM_PIXELS and height >= source_height and width >= source_width:
        labels = _labels_by_cells(quantised, height, width)
    else:
        labels = _labels_by_full_resize(quantised, height, width)
    return Segmentation(labels=labels, probabilities=probabilities)


def _labels_by_full_resize(quantised: np.ndarray, height: int, width: int) -> np.ndarray:
    """The definition, literally: three full-size Pillow resizes and the argmax."""
    size = (width, height)

    def plane(index: int) -> np.ndarray:
        # One plane at a time so the full-size planes come out contiguous (no interleaved RGB copy).
        small = Image.fromarray(np.ascontiguousarray(quantised[..., index]), "L")
        return np.asarray(small.resize(size, Image.Resampling.BILINEAR))

    return _argmax(plane(PET), plane(BACKGROUND), plane(BORDER))


def _argmax(pet: np.ndarray, background: np.ndarray, border: np.ndarray) -> np.ndarray:
    """Class per pixel with ties going to the lower index, as np.argmax does, in two comparisons."""
    labels = np.where(background > pet, np.uint8(BACKGROUND), np.uint8(PET))
    np.putmask(labels, border > np.maximum(pet, background), np.uint8(BORDER))
    return labels


def _sure_labels(planes: np.ndarray, margin: int) -> np.ndarray:
    """uint8 labels of int32 [3, ...] class values that no bilinear mix with the same label can change,
    UNSURE elsewhere.

    Each pass computes (w0 * a + w1 * b + 2**21) >> 22 with w0, w1 >= 0 and w0 + w1 within one of
    2**22. That is monotonic, so a class that is >= another at every tap is >= after the pass: pet,
    which wins ties, is sure wherever it is >= both others. A strict lead of m at every tap becomes
    at least m - 1, so background and border, which must end strictly ahead of pet (and border of
    background), are sure only with a lead of `margin`: 3 before two passes, 2 before one.
    """
    pet, background, border = planes[PET], planes[BACKGROUND], planes[BORDER]
    sure = np.full(pet.shape, UNSURE, np.uint8)
    # The three conditions exclude each other, so the order of the assignments does not matter.
    sure[(pet >= background) & (pet >= border)] = PET
    sure[(background >= pet + margin) & (background >= border)] = BACKGROUND
    sure[border >= np.maximum(pet, background) + margin] = BORDER
    return sure


def _labels_by_cells(quantised: np.ndarray, height: int, width: int) -> np.ndarray:
    """The labels of `_labels_by_full_resize`, computed only where the class can change.

    Pillow resizes horizontally first (source rows -> output columns), then vertically. Output row
    y reads source rows `rows.first[y]` and the next one: the rows reading source rows j and j + 1
    form band j, and likewise the output columns reading source columns i and i + 1 form column
    band i. Cell (j, i) is band j x column band i. In three steps:

    1. cells whose four source pixels share a sure label get it;
    2. in the other cells, each output column is interpolated horizontally (source rows j and
       j + 1 only, exactly as Pillow's first pass): where both results share a sure label, that
       column of the band gets it;
    3. the remaining columns are interpolated vertically for every row of the band, and argmaxed.
    """
    planes = np.moveaxis(quantised, -1, 0).astype(np.int32)  # [3, h, w]
    source_height, source_width = planes.shape[1:]
    rows, cols = bilinear_taps(source_height, height), bilinear_taps(source_width, width)

    sure = _sure_labels(planes, SOURCE_MARGIN)
    below = np.vstack((sure[1:], sure[-1:]))  # source row j + 1, the last row standing in for itself
    settled = (sure == below) & (sure != UNSURE)
    settled[:, :-1] &= (sure[:, :-1] == sure[:, 1:]) & (below[:, :-1] == below[:, 1:])
    # [source rows, output columns]: the label of each column within each band, UNSURE where open.
    grid = np.take(np.where(settled, sure, UNSURE), cols.first, axis=1)

    band, column, upper, lower = _open_columns(planes, ~settled, cols, grid)
    labels = np.take(grid, rows.first, axis=0)
    _interpolate_columns(labels, rows, band, column, upper, lower)
    return labels


def _open_columns(
    planes: np.ndarray, open_cells: np.ndarray, cols: Taps, grid: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Step 2 of `_labels_by_cells`: settle what the horizontal pass can in `grid`; return the rest.

    Returns, for each column still open, its band, its output column, and its horizontally
    interpolated class values (int32 [3, n]) in source rows band and band + 1."""
    source_height, source_width = planes.shape[1:]
    flat = planes.reshape(3, -1)
    band_width = np.bincount(cols.first, minlength=source_width)
    band_start = np.cumsum(band_width) - band_width
    cell_rows, cell_cols = np.nonzero(open_cells)
    per_step = max(1, CHUNK // (3 * int(band_width.max())))
    found: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
    for start in range(0, len(cell_rows), per_step):
        widths = band_width[cell_cols[start : start + per_step]]
        column = _ragged_arange(band_start[cell_cols[start : start + per_step]], widths)
        band = np.repeat(cell_rows[start : start + per_step], widths)
        first, second = cols.first[column], cols.second[column]
        w0, w1 = cols.weight0[column], cols.weight1[column]
        top, bottom = band * source_width, np.minimum(band + 1, source_height - 1) * source_width
        upper = interpolate(w0, flat[:, top + first], w1, flat[:, top + second])
        lower = interpolate(w0, flat[:, bottom + first], w1, flat[:, bottom + second])
        sure_upper = _sure_labels(upper, COLUMN_MARGIN)
        settled = (sure_upper == _sure_labels(lower, COLUMN_MARGIN)) & (sure_upper != UNSURE)
        grid[band, column] = np.where(settled, sure_upper, UNSURE)
        still = ~settled
        found.append((band[still], column[still], upper[:, still], lower[:, still]))
    if not found:
        empty = np.empty(0, np.intp)
        return empty, empty, np.empty((3, 0), np.int32), np.empty((3, 0), np.int32)
    bands, columns, uppers, lowers = zip(*found, strict=True)
    return np.concatenate(bands), np.concatenate(columns), np.hstack(uppers), np.hstack(lowers)


def _interpolate_columns(
    labels: np.ndarray, rows: Taps, band: np.ndarray, column: np.ndarray, upper: np.ndarray, lower: np.ndarray
) -> None:
    """Step 3 of `_labels_by_cells`: Pillow's vertical pass and the argmax for every row of each open
    column of its band, written into `labels` (C-contiguous [height, width])."""
    if len(band) == 0:
        return
    width = labels.shape[1]
    band_height = np.bincount(rows.first, minlength=rows.in_size)
    band_top = np.cumsum(band_height) - band_height
    tallest = int(band_height.max())
    # [tallest, n]: rows past a band's end repeat its last row, which rewrites the same value.
    offsets = np.arange(tallest)[:, None]
    per_step = max(1, CHUNK // tallest)
    flat_labels = labels.reshape(-1)
    for start in range(0, len(band), per_step):
        step = slice(start, start + per_step)
        out_rows = band_top[band[step]] + np.minimum(offsets, band_height[band[step]] - 1)
        w0, w1 = rows.weight0[out_rows], rows.weight1[out_rows]
        pet, background, border = (interpolate(w0, upper[c, step], w1, lower[c, step]) for c in range(3))
        flat_labels[out_rows * width + column[step]] = _argmax(pet, background, border)


def _ragged_arange(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenation of arange(start, start + length) for each pair, without a Python loop."""
    ends = np.cumsum(lengths)
    return np.repeat(starts - (ends - lengths), lengths) + np.arange(int(ends[-1]) if len(ends) else 0)
