"""Pillow's 8-bit bilinear upscaling, written out so that parts of an image can be computed alone.

`Image.resize(size, BILINEAR)` on an 8-bit plane is two passes, each a fixed-point weighted sum of
at most two neighbours rounded back to 8 bits: horizontal (source rows, output columns), then
vertical. Pillow cannot compute a part of that result: its `box=` argument takes the region in
float32, so a tile's weights come out slightly different from the whole image's (measured: most
random tiles differ from the matching part of the full resize). These are the weights of the
*whole* resize, computed with the same double-precision steps as Pillow's `precompute_coeffs` and
`normalize_coeffs_8bpc` (src/libImaging/Resample.c of the Pillow versions pyproject.toml allows),
so any pixel of the full result can be computed on its own and comes out bit-identical;
tests/contract/test_resample.py checks that against Pillow itself on many sizes.

Only upscaling (output >= input along the axis): there the filter support is one source pixel, so
each output coordinate has at most two taps, `first` and `first + 1`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

PRECISION_BITS = 22  # Pillow's fixed point for 8-bit resampling: 32 - 8 bits - 2 bits of headroom
ROUNDING = 1 << (PRECISION_BITS - 1)  # added before the shift: round half up


@dataclass(frozen=True)
class Taps:
    """Per output coordinate: the first source index and the two integer weights (sum 2**22 +- 1)."""

    in_size: int
    first: np.ndarray  # intp [out], source index of the first tap
    weight0: np.ndarray  # int32 [out], weight of source `first`
    weight1: np.ndarray  # int32 [out], weight of source `first + 1`; 0 where that is outside

    @property
    def second(self) -> np.ndarray:
        """Source index of the second tap, clamped into the image (its weight is 0 where clamped)."""
        return np.minimum(self.first + 1, self.in_size - 1)


@lru_cache(maxsize=16)  # photos come in a few sizes; the arrays are read-only, so sharing them is safe
def bilinear_taps(in_size: int, out_size: int) -> Taps:
    """Pillow's BILINEAR weights for resizing `in_size` to `out_size` (>= in_size) pixels, whole image."""
    if out_size < in_size:
        raise ValueError(f"only upscaling: {in_size} -> {out_size}")
    # The same operations in the same order as precompute_coeffs (box = the whole image, so in0 = 0,
    # support = 1 and scale = in/out), each one IEEE double as in C.
    scale = float(in_size) / out_size
    center = (np.arange(out_size) + 0.5) * scale
    first = np.maximum(np.trunc((center - 1.0) + 0.5).astype(np.intp), 0)
    stop = np.minimum(np.trunc((center + 1.0) + 0.5).astype(np.intp), in_size)
    w0 = _triangle((first - center) + 0.5)
    w1 = np.where(stop - first > 1, _triangle((first + 1 - center) + 0.5), 0.0)
    total = w0 + w1
    safe_total = np.where(total != 0.0, total, 1.0)
    w0, w1 = w0 / safe_total, w1 / safe_total
    one = float(1 << PRECISION_BITS)
    taps = Taps(
        in_size=in_size,
        first=first,
        weight0=(0.5 + w0 * one).astype(np.int32),
        weight1=(0.5 + w1 * one).astype(np.int32),
    )
    for array in (taps.first, taps.weight0, taps.weight1):
        array.flags.writeable = False
    return taps


def _triangle(x: np.ndarray) -> np.ndarray:
    """Pillow's bilinear_filter: 1 - |x| inside (-1, 1), else 0."""
    x = np.abs(x)
    return np.where(x < 1.0, 1.0 - x, 0.0)


def interpolate(
    weight0: np.ndarray, value0: np.ndarray, weight1: np.ndarray, value1: np.ndarray
) -> np.ndarray:
    """One pass of Pillow's fixed-point sum for int32 arrays that broadcast: the 8-bit result, as int32.

    Pillow clips to 0..255 after the shift; with non-negative weights summing to at most 2**22 + 1
    and 8-bit inputs the sum never leaves that range, so no clip is needed."""
    out = weight0 * value0
    out += weight1 * value1
    out += ROUNDING
    out >>= PRECISION_BITS
    return out
