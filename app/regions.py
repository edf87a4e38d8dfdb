"""Separate pets in one photo: connected regions of the per-pixel classes, as a pure function.

A region is a connected (8-neighbour) area of pet + border pixels at the photo's own resolution: the
border class is the trimap's band around an animal's outline, so it joins the parts of one pet the
model is sure about, while background between two pets keeps them apart. Regions smaller than a
minimum share of the photo, and regions holding no pet pixel at all (a band of "unsure" pixels with
nothing inside, e.g. along the frame's edge), are not pets.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from petseg_contract import BACKGROUND, PET

# 8-connectivity: a pet's outline drawn one pixel wide on a diagonal still counts as one piece.
_NEIGHBOURS = np.ones((3, 3), dtype=bool)


@dataclass(frozen=True)
class PetRegion:
    """One pet: the box around its pet pixels (x1/y1 exclusive), its share and its mean pet probability."""

    x0: int
    y0: int
    x1: int
    y1: int
    area_fraction: float  # pet + border pixels of the region / all pixels of the photo
    mean_confidence: float  # mean pet probability (0..1) over the region


def find_pets(labels: np.ndarray, pet_probability: np.ndarray, min_fraction: float) -> list[PetRegion]:
    """The photo's pets, largest first: connected pet + border regions of at least `min_fraction`.

    `labels` is the uint8 class map and `pet_probability` the uint8 pet probability (255 = sure), both at
    the photo's size. Each box surrounds the region's *pet* pixels, the same pixels `pet_bbox` is
    drawn around, so every pet's box lies inside `pet_bbox`.
    """
    height, width = labels.shape
    total = max(height * width, 1)
    min_pixels = max(1, int(np.ceil(min_fraction * total)))
    ids, _ = ndimage.label(labels != BACKGROUND, structure=_NEIGHBOURS)
    pets = []
    for index, box in enumerate(ndimage.find_objects(ids), start=1):
        if box is None:
            continue
        rows, cols = box
        # A region has at most as many pixels as its box: most specks are dropped here, uncounted.
        if (rows.stop - rows.start) * (cols.stop - cols.start) < min_pixels:
            continue
        region = ids[box] == index
        area = int(np.count_nonzero(region))
        if area < min_pixels:
            continue
        pet = region & (labels[box] == PET)
        pet_rows = np.flatnonzero(pet.any(axis=1))
        if pet_rows.size == 0:
            continue
        pet_cols = np.flatnonzero(pet[pet_rows[0] : pet_rows[-1] + 1].any(axis=0))
        pets.append(
            PetRegion(
                x0=cols.start + int(pet_cols[0]),
                y0=rows.start + int(pet_rows[0]),
                x1=cols.start + int(pet_cols[-1]) + 1,
                y1=rows.start + int(pet_rows[-1]) + 1,
                area_fraction=area / total,
                mean_confidence=float(pet_probability[box][region].mean()) / 255.0,
            )
        )
    pets.sort(key=lambda p: p.area_fraction, reverse=True)
    return pets
