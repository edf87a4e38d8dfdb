"""One confusion-matrix implementation, checked against numbers worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from training.metrics import ConfusionScore, confusion_matrix, scores_to_json

# rows = truth (pet, background, border), columns = prediction
CRAFTED = np.array([[50, 10, 5], [5, 100, 5], [10, 5, 10]])


def test_confusion_counts_pairs_of_labels():
    cm = confusion_matrix(np.array([0, 0, 1, 2, 2]), np.array([0, 1, 1, 2, 0]))
    assert cm.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 1]]


def test_scores_match_hand_computed_values():
    s = scores_to_json(CRAFTED)
    assert s["pixel_accuracy"] == pytest.approx(160 / 200)
    assert s["iou"]["pet"] == pytest.approx(50 / (65 + 65 - 50))
    assert s["iou"]["background"] == pytest.approx(100 / (110 + 115 - 100))
    assert s["iou"]["border"] == pytest.approx(10 / (25 + 20 - 10))
    assert s["mean_iou"] == pytest.approx((50 / 80 + 100 / 125 + 10 / 35) / 3)
    # foreground = pet + border: truth 90 px, prediction 85 px, both foreground 50+5+10+10 = 75
    assert s["foreground_iou"] == pytest.approx(75 / (90 + 85 - 75))


def test_empty_class_scores_zero_instead_of_nan():
    s = scores_to_json(np.array([[0, 0, 0], [0, 10, 0], [0, 0, 0]]))
    assert s["iou"]["pet"] == 0.0 and s["pixel_accuracy"] == 1.0


@pytest.mark.parametrize("score", ["mean_iou", "foreground_iou", "pixel_accuracy", "iou_border"])
def test_keras_metric_equals_offline_scores(score):
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 3, (2, 8, 8, 1))
    logits = rng.normal(size=(2, 8, 8, 3)).astype(np.float32)
    metric = ConfusionScore(score)
    metric.update_state(y_true[:1], logits[:1])
    metric.update_state(y_true[1:], logits[1:])
    offline = scores_to_json(confusion_matrix(y_true[..., 0], logits.argmax(-1)))
    expected = offline["iou"]["border"] if score == "iou_border" else offline[score]
    assert float(metric.result()) == pytest.approx(expected)
    metric.reset_state()
    assert float(metric.result()) == 0.0
