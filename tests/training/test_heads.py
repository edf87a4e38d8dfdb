"""Species and breed from the same encoder: masked losses and accuracy, the export's extra outputs,
and a segmentation-only model that still exports and loads."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf

from petseg_contract import BREED_OUTPUT, OUTPUT_NAME, SPECIES_OUTPUT
from petseg_harness.tiny_model import TINY_INPUT_SIZE, TINY_TRAIN_ARGS
from tests.conftest import run_cli
from training.data import UNKNOWN, Sample
from training.evaluate import SavedModelPredictor, evaluate_predictor
from training.export import ExportError, check_roundtrip, export, load_run_model
from training.losses import MaskedSparseCrossEntropy
from training.metrics import LabelAccuracy


def crossentropy(logits, label):
    return float(-tf.nn.log_softmax(logits)[label])


def test_unlabelled_photos_do_not_count_in_the_classification_loss():
    logits = np.array([[2.0, -1.0], [0.5, 0.3], [-3.0, 3.0]], np.float32)
    loss = float(MaskedSparseCrossEntropy()(np.array([1, UNKNOWN, 0]), logits))
    # the mean over the two labelled photos, not over all three
    assert loss == pytest.approx((crossentropy(logits[0], 1) + crossentropy(logits[2], 0)) / 2, rel=1e-5)


def test_a_batch_without_labels_has_zero_classification_loss():
    logits = np.array([[2.0, -1.0], [0.5, 0.3]], np.float32)
    assert float(MaskedSparseCrossEntropy()(np.array([UNKNOWN, UNKNOWN]), logits)) == 0.0


def test_label_accuracy_skips_unlabelled_photos():
    metric = LabelAccuracy()
    metric.update_state(
        np.array([0, 1, UNKNOWN, 1]), np.array([[0.9, 0.1], [0.8, 0.2], [0.1, 0.9], [0.3, 0.7]])
    )
    assert float(metric.result()) == pytest.approx(2 / 3)


def test_evaluation_reports_species_and_breed_accuracy_over_labelled_photos():
    mask = np.ones((20, 30), np.uint8)
    samples = [
        Sample("a", np.zeros((20, 30, 3), np.uint8), mask, species=0, breed=0),
        Sample("b", np.zeros((20, 30, 3), np.uint8), mask, species=1, breed=1),
        Sample("c", np.zeros((20, 30, 3), np.uint8), mask, species=0, breed=5),
        Sample("d", np.zeros((20, 30, 3), np.uint8), mask),  # not labelled
    ]

    def predict(images):  # always "cat, Abyssinian (breed 0)", everything background
        n = len(images)
        probs = np.zeros((n, 8, 8, 3), np.float32)
        probs[..., 1] = 1.0
        species, breed = np.zeros((n, 2), np.float32), np.zeros((n, 37), np.float32)
        species[:, 0], breed[:, 0] = 1.0, 1.0
        return {OUTPUT_NAME: probs, SPECIES_OUTPUT: species, BREED_OUTPUT: breed}

    results = evaluate_predictor(predict, 8, samples, batch_size=3)["all"]
    assert results["species"] == {"accuracy": pytest.approx(2 / 3), "labelled": 3}
    assert results["breed"] == {"accuracy": pytest.approx(1 / 3), "labelled": 3}
    assert results["original_resolution"]["pixel_accuracy"] == 1.0


def test_the_export_check_covers_the_species_and_breed_outputs(tiny_run_dir, tiny_model_dir):
    model, _ = load_run_model(tiny_run_dir)
    images = np.random.default_rng(0).integers(0, 255, (2, TINY_INPUT_SIZE, TINY_INPUT_SIZE, 3), np.uint8)
    predictor = SavedModelPredictor(tiny_model_dir / "1")
    assert check_roundtrip(model, predictor, images) <= 1e-4
    breed = model.get_layer("breed_logits")
    breed.bias.assign(breed.bias.numpy() + np.linspace(0, 3, 37, dtype=np.float32))  # heads only
    with pytest.raises(ExportError, match="differs"):
        check_roundtrip(model, predictor, images)


@pytest.fixture(scope="module")
def segmentation_only_model(tmp_path_factory, synthetic_root):
    """The seed preset (no heads, flip only) shrunk to the tiny model, one epoch, exported unscored."""
    base = tmp_path_factory.mktemp("seg-only")
    args = [a for a in TINY_TRAIN_ARGS if a not in ("--heads", "species-breed")]
    args[args.index("--epochs") + 1] = "1"
    run_cli(
        "train", "--preset", "seed", "--data-dir", str(synthetic_root), "--run-dir", str(base / "run"), *args
    )
    config = json.loads((base / "run" / "config.json").read_text())
    assert (config["preset"], config["heads"], config["augment"]) == ("seed", "none", "flip")
    export(base / "run", base / "model" / "1", evaluate_splits=())
    return base / "model" / "1"


def test_a_model_without_heads_exports_probabilities_only(segmentation_only_model):
    meta = json.loads((segmentation_only_model / "metadata.json").read_text())
    assert "species" not in meta and "breeds" not in meta
    assert set(meta["signature"]["outputs"]) == {OUTPUT_NAME}
    predictor = SavedModelPredictor(segmentation_only_model)
    out = predictor(np.zeros((1, TINY_INPUT_SIZE, TINY_INPUT_SIZE, 3), np.uint8))
    assert set(out) == {OUTPUT_NAME}


def test_the_service_loads_models_with_and_without_heads(segmentation_only_model, tiny_model_dir):
    from app.segmenter import Segmenter

    assert not Segmenter.load(segmentation_only_model).has_labels
    assert Segmenter.load(tiny_model_dir / "1").has_labels
