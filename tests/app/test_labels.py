"""labels: the optional species/breed outputs as ranked names, no model and no server."""

from __future__ import annotations

import numpy as np
import pytest

from app.labels import photo_labels, ranked
from petseg_contract import BREED_NAMES, BREED_OUTPUT, OUTPUT_NAME, SPECIES_OUTPUT

SEGMENTATION = {OUTPUT_NAME: np.zeros((4, 4, 3), np.float32)}


def test_without_the_optional_outputs_everything_is_none() -> None:
    labels = photo_labels(SEGMENTATION)
    assert (labels.species, labels.breed, labels.breed_top3) == (None, None, None)


def test_one_output_of_the_pair_alone_is_not_reported() -> None:
    labels = photo_labels({**SEGMENTATION, SPECIES_OUTPUT: np.array([0.9, 0.1], np.float32)})
    assert (labels.species, labels.breed_top3) == (None, None)


def test_species_and_the_three_likeliest_breeds_are_named() -> None:
    breeds = np.full(37, 0.01, np.float32)
    breeds[[9, 27, 7]] = [0.5, 0.2, 0.1]  # British Shorthair, Russian Blue, Bombay
    labels = photo_labels(
        {
            **SEGMENTATION,
            SPECIES_OUTPUT: np.array([0.9, 0.1], np.float32),
            BREED_OUTPUT: breeds,
        }
    )
    assert labels.species.label == "cat" and labels.species.confidence == pytest.approx(0.9)
    assert [s.label for s in labels.breed_top3] == ["British Shorthair", "Russian Blue", "Bombay"]
    assert [s.confidence for s in labels.breed_top3] == pytest.approx([0.5, 0.2, 0.1])
    assert labels.breed == labels.breed_top3[0]


def test_ties_go_to_the_earlier_name_and_confidences_stay_within_0_and_1() -> None:
    scores = ranked(np.array([1.0000001] + [0.0] * 36, np.float32), BREED_NAMES, 3)
    assert [s.label for s in scores] == list(BREED_NAMES[:3])
    assert scores[0].confidence == 1.0
