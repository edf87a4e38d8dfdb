"""petseg_contract.masks: probabilities -> labels and pet matte at the photo's size, exactly as defined
by three full-size Pillow resizes, however the labels are computed."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from petseg_contract import BACKGROUND, BORDER, PET, masks

PHONE = [(4032, 3024), (3024, 4032)]
# Small, odd and coprime sizes, a thin strip that shrinks one axis, and sizes where either path serves.
OTHER = [(500, 375), (1, 1), (17, 3000), (3000, 17), (225, 224), (4031, 3023), (1001, 997), (640, 427)]


def full_size_labels(probabilities: np.ndarray, height: int, width: int) -> np.ndarray:
    """The definition, as `upsample` computed it for every size until the cell path: quantise to
    1/255, three whole-photo Pillow BILINEAR resizes, argmax with ties to the lower index."""
    quantised = (np.clip(probabilities, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    planes = [
        np.asarray(
            Image.fromarray(np.ascontiguousarray(quantised[..., c]), "L").resize(
                (width, height), Image.Resampling.BILINEAR
            )
        )
        for c in (PET, BACKGROUND, BORDER)
    ]
    return np.argmax(np.stack(planes, axis=-1), axis=-1).astype(np.uint8)


def full_size_alpha(probabilities: np.ndarray, height: int, width: int, steepness: float = 1.0) -> np.ndarray:
    soft = np.clip(probabilities[..., PET] + 0.5 * probabilities[..., BORDER], 0.0, 1.0)
    soft = np.clip((soft - 0.5) * steepness + 0.5, 0.0, 1.0)
    small = Image.fromarray((soft * 255.0 + 0.5).astype(np.uint8), "L")
    return np.asarray(small.resize((width, height), Image.Resampling.BILINEAR))


def smooth_probabilities(seed: int, size: int = 224, blobs: int = 12, sharpness: float = 4.0) -> np.ndarray:
    """Softmax of upsampled noise: regions of every class with smooth, wandering boundaries."""
    noise = np.random.default_rng(seed).normal(size=(blobs, blobs, 3)).astype(np.float32)
    logits = np.stack(
        [
            np.asarray(Image.fromarray(noise[..., c], "F").resize((size, size), Image.Resampling.BICUBIC))
            for c in range(3)
        ],
        axis=-1,
    )
    e = np.exp(sharpness * (logits - logits.max(axis=-1, keepdims=True)))
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


def pet_blob(size: int = 224) -> np.ndarray:
    """What the model says about one pet: sure inside, sure background outside, a border band between
    (wider and noisier where the fur is), with a little noise everywhere."""
    rng = np.random.default_rng(3)
    y, x = np.mgrid[0:size, 0:size] / size
    distance = np.hypot((x - 0.45) / 0.3, (y - 0.55) / 0.35) - 1.0  # < 0 inside the pet
    band = 0.04 + 0.03 * np.sin(9 * np.arctan2(y - 0.55, x - 0.45)) ** 2
    pet = 1 / (1 + np.exp(distance / 0.02))
    border = np.exp(-((distance / band) ** 2)) + 0.02 * rng.random((size, size))
    background = 1 - pet + 0.02 * rng.random((size, size))
    stacked = np.stack([pet, background, border], axis=-1)
    return (stacked / stacked.sum(axis=-1, keepdims=True)).astype(np.float32)


def uniform_noise(seed: int) -> np.ndarray:
    """Every source pixel a different winner: no cell is settled, every pixel is computed."""
    p = np.random.default_rng(seed).random((224, 224, 3)).astype(np.float32)
    return p / p.sum(axis=-1, keepdims=True)


def ties(seed: int) -> np.ndarray:
    """Probabilities on thirds: exact ties between classes everywhere, before and after interpolation."""
    return (np.random.default_rng(seed).integers(0, 4, (224, 224, 3)) / 3.0).astype(np.float32)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(("width", "height"), PHONE + OTHER)
def test_labels_are_the_full_size_definition_on_smooth_maps(seed: int, width: int, height: int) -> None:
    probabilities = smooth_probabilities(seed)
    labels = masks.upsample(probabilities, height, width).labels
    np.testing.assert_array_equal(labels, full_size_labels(probabilities, height, width))


@pytest.mark.parametrize(("width", "height"), PHONE + OTHER)
def test_labels_are_the_full_size_definition_on_a_pet(width: int, height: int) -> None:
    probabilities = pet_blob()
    labels = masks.upsample(probabilities, height, width).labels
    np.testing.assert_array_equal(labels, full_size_labels(probabilities, height, width))


@pytest.mark.parametrize("make", [uniform_noise, ties], ids=["noise", "ties"])
@pytest.mark.parametrize(("width", "height"), [(4032, 3024), (4031, 3023), (500, 375)])
def test_labels_are_the_full_size_definition_at_the_worst(make, width: int, height: int) -> None:
    probabilities = make(width)
    labels = masks.upsample(probabilities, height, width).labels
    np.testing.assert_array_equal(labels, full_size_labels(probabilities, height, width))


@pytest.mark.parametrize(("width", "height"), [(224, 224), (225, 224), (300, 300), (500, 375), (640, 427)])
def test_both_paths_agree_where_either_could_serve(width: int, height: int) -> None:
    # Small photos take the full resize (cheaper there), large ones the cell path; whichever the
    # threshold picks, the labels are the same.
    quantised = (np.clip(pet_blob(), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    np.testing.assert_array_equal(
        masks._labels_by_cells(quantised, height, width),
        masks._labels_by_full_resize(quantised, height, width),
    )


def test_ties_go_to_the_lower_class_index() -> None:
    half = np.full((224, 224), 0.5, np.float32)
    zero = np.zeros((224, 224), np.float32)
    for probabilities, expected in (
        (np.stack([half, half, zero], axis=-1), PET),
        (np.stack([zero, half, half], axis=-1), BACKGROUND),
        (np.stack([half, zero, half], axis=-1), PET),
    ):
        for height, width in ((3024, 4032), (375, 500)):
            assert np.all(masks.upsample(probabilities, height, width).labels == expected)


@pytest.mark.parametrize(("width", "height"), [(4032, 3024), (500, 375), (17, 3000)])
def test_pet_probability_and_matte_are_full_size(width: int, height: int) -> None:
    probabilities = pet_blob()
    segmentation = masks.upsample(probabilities, height, width)
    np.testing.assert_array_equal(segmentation.pet_probability, full_size_alpha(probabilities, height, width))
    np.testing.assert_array_equal(
        segmentation.pet_alpha, full_size_alpha(probabilities, height, width, masks.MATTE_STEEPNESS)
    )


def test_the_cutout_matte_is_tighter_than_the_probability() -> None:
    """The halo issue 10 saw: the probability as a matte leaves a wide semi-transparent band."""
    segmentation = masks.upsample(smooth_probabilities(3), 1500, 2000)

    def semi_transparent(matte: np.ndarray) -> float:
        return float(np.mean((matte > 25) & (matte < 230)))

    assert semi_transparent(segmentation.pet_alpha) < 0.5 * semi_transparent(segmentation.pet_probability)
    # where the model is clearly for or against pet, the matte agrees: it sharpens the edge, not moves it
    sure_pet, sure_not = segmentation.pet_probability >= 192, segmentation.pet_probability <= 63
    assert np.all(segmentation.pet_alpha[sure_pet] > 127) and np.all(segmentation.pet_alpha[sure_not] < 128)
