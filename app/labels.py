"""The model's optional whole-photo answers (species, breed) as ranked names, as pure functions."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from petseg_contract import BREED_NAMES, BREED_OUTPUT, SPECIES_NAMES, SPECIES_OUTPUT


@dataclass(frozen=True)
class Scored:
    label: str
    confidence: float


@dataclass(frozen=True)
class PhotoLabels:
    """Species and breeds of one photo; all None when the model lacks those outputs."""

    species: Scored | None
    breed_top3: list[Scored] | None

    @property
    def breed(self) -> Scored | None:
        return None if self.breed_top3 is None else self.breed_top3[0]


def ranked(probabilities: np.ndarray, names: tuple[str, ...], k: int) -> list[Scored]:
    """The `k` most probable names, most probable first (ties: the earlier name first)."""
    order = np.argsort(-np.asarray(probabilities, dtype=np.float64), kind="stable")[:k]
    # float32 softmax can land a hair outside [0, 1]; a probability is reported as one.
    return [Scored(names[i], min(max(float(probabilities[i]), 0.0), 1.0)) for i in order]


def photo_labels(outputs: dict[str, np.ndarray]) -> PhotoLabels:
    """Species and top-3 breeds from one photo's model outputs (by contract name).

    The contract has the two outputs come as a pair (as `Segmenter.has_labels` and GET /v1/model
    treat them): with either one missing, neither is reported.
    """
    species = outputs.get(SPECIES_OUTPUT)
    breeds = outputs.get(BREED_OUTPUT)
    if species is None or breeds is None:
        return PhotoLabels(species=None, breed_top3=None)
    return PhotoLabels(
        species=ranked(species, SPECIES_NAMES, 1)[0], breed_top3=ranked(breeds, BREED_NAMES, 3)
    )
