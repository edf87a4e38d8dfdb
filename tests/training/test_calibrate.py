"""The per-pixel class bias: chosen on validation by mean IoU, and carried inside the exported graph."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf

from petseg_harness.tiny_model import TINY_INPUT_SIZE
from tests.conftest import run_cli, training_cli
from training.calibrate import choose_class_bias, score_bias, shift
from training.evaluate import SavedModelPredictor
from training.export import export


def test_shift_is_the_softmax_of_the_biased_logits():
    logits = np.random.default_rng(0).normal(size=(5, 7, 3)).astype(np.float32)
    bias = [0.0, 0.6, -0.3]
    want = tf.nn.softmax(logits + np.float32(bias), axis=-1).numpy()
    np.testing.assert_allclose(shift(tf.nn.softmax(logits, axis=-1).numpy(), bias), want, atol=1e-6)


def leaning_photo(lean: float):
    """A 20x20 photo, left half pet and right half background, whose model leans towards pet by `lean`
    on the background half (pet is argmax there when lean > 0)."""
    truth = np.zeros((20, 20), np.uint8)
    truth[:, 10:] = 1
    probs = np.zeros((20, 20, 3), np.float32)
    probs[:, :10] = (0.8, 0.1, 0.1)
    probs[:, 10:] = (0.45 + lean / 2, 0.45 - lean / 2, 0.10)
    return probs, truth


def test_a_model_that_leans_towards_pet_gets_a_background_bias_that_fixes_its_masks():
    pairs = [leaning_photo(0.1) for _ in range(3)]
    choice = choose_class_bias(pairs, served=True)
    assert choice["values"][0] == 0.0 and choice["values"][1] > 0.0
    unbiased = next(c for c in choice["candidates"] if c["bias"] == [0.0, 0.0, 0.0])
    assert unbiased["mean_iou"] < 0.5
    assert score_bias(pairs, choice["values"], served=True)["mean_iou"] > unbiased["mean_iou"]
    assert len(choice["candidates"]) == 15 and choice["chosen_on"] == "validation"


def test_a_model_that_is_already_right_keeps_a_zero_bias():
    choice = choose_class_bias([leaning_photo(-0.5)], served=False)
    assert choice["values"] == [0.0, 0.0, 0.0]


def test_choosing_without_validation_photos_is_refused():
    with pytest.raises(ValueError, match="validation photos"):
        choose_class_bias([], served=True)


def test_an_export_carries_its_class_bias_in_the_graph_and_metadata(tiny_run_dir, tmp_path):
    plain, biased = tmp_path / "m" / "1", tmp_path / "m" / "2"
    export(tiny_run_dir, plain, evaluate_splits=())
    export(tiny_run_dir, biased, evaluate_splits=(), class_bias=[0.0, 0.5, -0.25])
    images = np.random.default_rng(2).integers(0, 256, (2, TINY_INPUT_SIZE, TINY_INPUT_SIZE, 3), np.uint8)
    want = shift(SavedModelPredictor(plain)(images)["probabilities"], [0.0, 0.5, -0.25])
    got = SavedModelPredictor(biased)(images)
    np.testing.assert_allclose(got["probabilities"], want, atol=1e-5)
    meta = json.loads((biased / "metadata.json").read_text())
    assert meta["class_bias"] == {"values": [0.0, 0.5, -0.25], "chosen_on": "given"}
    assert json.loads((plain / "metadata.json").read_text())["class_bias"]["values"] is None


def test_auto_chooses_the_bias_on_validation_before_scoring(tiny_run_dir, tmp_path):
    out = tmp_path / "auto" / "1"
    run_cli(
        "export", "--run-dir", str(tiny_run_dir), "--output", str(out), "--evaluate", "validation",
        "--class-bias", "auto",
    )  # fmt: skip
    meta = json.loads((out / "metadata.json").read_text())
    choice = meta["class_bias"]
    assert choice["chosen_on"] == "validation" and choice["photos"] > 0
    best = max(c["mean_iou"] for c in choice["candidates"])
    chosen = next(c for c in choice["candidates"] if c["bias"] == choice["values"])
    assert chosen["mean_iou"] == best
    # The metrics scored after the choice are the chosen candidate's (same photos, same scoring).
    scored = meta["metrics"]["validation"]["all"]["original_resolution"]
    assert scored["mean_iou"] == pytest.approx(best, abs=2e-3)


def test_a_malformed_class_bias_is_a_usage_error(tiny_run_dir, tmp_path):
    out = str(tmp_path / "x" / "1")
    result = training_cli("export", "--run-dir", str(tiny_run_dir), "--output", out, "--class-bias", "1,2")
    assert result.returncode == 2 and "three comma-separated numbers" in result.stderr
