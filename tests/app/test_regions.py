"""regions.find_pets: separate pets on constructed class maps, no model and no server."""

from __future__ import annotations

import numpy as np
import pytest

from app.regions import find_pets
from petseg_contract import BACKGROUND, BORDER, PET


def class_map(height: int = 100, width: int = 200) -> np.ndarray:
    return np.full((height, width), BACKGROUND, np.uint8)


def pet(labels: np.ndarray, y0: int, x0: int, y1: int, x1: int) -> None:
    """A pet: a block of pet pixels inside a one-pixel border band."""
    labels[y0 - 1 : y1 + 1, x0 - 1 : x1 + 1] = BORDER
    labels[y0:y1, x0:x1] = PET


def alpha_of(labels: np.ndarray) -> np.ndarray:
    return np.where(labels == PET, 255, np.where(labels == BORDER, 128, 0)).astype(np.uint8)


def test_two_pets_side_by_side_are_two_entries_largest_first() -> None:
    labels = class_map()
    pet(labels, 20, 10, 80, 70)  # 60 x 60
    pet(labels, 30, 120, 70, 190)  # 40 x 70, smaller
    pets = find_pets(labels, alpha_of(labels), 0.01)
    assert [(p.x0, p.y0, p.x1, p.y1) for p in pets] == [(10, 20, 70, 80), (120, 30, 190, 70)]
    assert pets[0].area_fraction == pytest.approx(62 * 62 / 20_000)
    assert pets[1].area_fraction == pytest.approx(42 * 72 / 20_000)


def test_a_region_under_the_minimum_share_is_a_speck() -> None:
    labels = class_map()
    pet(labels, 20, 10, 80, 70)
    pet(labels, 5, 150, 8, 153)  # 5 x 5 = 25 pixels = 0.125 % of the photo
    assert len(find_pets(labels, alpha_of(labels), 0.01)) == 1
    assert len(find_pets(labels, alpha_of(labels), 0.001)) == 2


def test_the_minimum_share_is_inclusive() -> None:
    labels = class_map(10, 10)
    labels[0:2, 0:5] = PET  # exactly 10 % of the photo
    assert len(find_pets(labels, alpha_of(labels), 0.10)) == 1
    assert find_pets(labels, alpha_of(labels), 0.11) == []


def test_border_joins_the_parts_of_one_pet() -> None:
    labels = class_map()
    labels[20:80, 10:100] = BORDER
    labels[30:70, 15:45] = PET
    labels[30:70, 60:95] = PET
    (only,) = find_pets(labels, alpha_of(labels), 0.01)
    assert (only.x0, only.y0, only.x1, only.y1) == (15, 30, 95, 70)


def test_diagonal_neighbours_belong_to_the_same_pet() -> None:
    labels = class_map(20, 20)
    labels[0:10, 0:10] = PET
    labels[10:20, 10:20] = PET  # touches the first block only at a corner
    assert len(find_pets(labels, alpha_of(labels), 0.01)) == 1


def test_a_region_of_border_alone_is_not_a_pet() -> None:
    labels = class_map()
    labels[:, :5] = BORDER  # an unsure band along the frame's edge
    pet(labels, 20, 50, 80, 110)
    (only,) = find_pets(labels, alpha_of(labels), 0.01)
    assert only.x0 == 50


def test_the_box_surrounds_pet_pixels_with_x1_y1_exclusive() -> None:
    labels = class_map(10, 10)
    labels[2:5, 3:8] = PET
    (only,) = find_pets(labels, alpha_of(labels), 0.0)
    assert (only.x0, only.y0, only.x1, only.y1) == (3, 2, 8, 5)


def test_mean_confidence_is_the_mean_matte_over_the_region() -> None:
    labels = class_map(10, 10)
    labels[0:2, 0:4] = PET
    labels[2, 0:4] = BORDER
    alpha = np.zeros((10, 10), np.uint8)
    alpha[0:2, 0:4] = 255
    alpha[2, 0:4] = 51
    (only,) = find_pets(labels, alpha, 0.0)
    assert only.mean_confidence == pytest.approx((8 * 1.0 + 4 * 0.2) / 12)
    assert only.area_fraction == pytest.approx(12 / 100)


def test_a_photo_without_pet_pixels_has_no_pets() -> None:
    assert find_pets(class_map(), np.zeros((100, 200), np.uint8), 0.01) == []
