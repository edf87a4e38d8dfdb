"""Choose the per-pixel class bias of an export on validation photos (a prior shift).

The network is trained for cross-entropy, so the argmax of its probabilities maximises pixel accuracy
at best, not the intersection-over-union the masks are judged by, and not at the photo's own
resolution the service upsamples to. Adding a constant to each class's logit (softmax(logits + bias),
inside the exported graph) moves that decision at no serving cost. The bias is chosen on the
validation slice only, scored exactly as the export's metrics are (as served, at original
resolution), by a small grid search on the mean IoU of the three classes; test photos are never seen.

Only differences between classes matter, so the pet class keeps bias 0. Equivalent to re-running the
model: softmax(logits + b) = p * exp(b) / sum(p * exp(b)), which `shift` computes from the cached
probabilities of the unbiased export.
"""

from __future__ import annotations

import itertools

import numpy as np

import petseg_contract as contract
from training.evaluate import batches, full_size_labels, model_inputs
from training.metrics import confusion_matrix, scores_to_json

BACKGROUND_BIASES = (-0.3, 0.0, 0.3, 0.6, 0.9)
BORDER_BIASES = (-0.3, 0.0, 0.3)
OBJECTIVE = "mean_iou"


def shift(probabilities: np.ndarray, bias) -> np.ndarray:
    """The probabilities softmax(logits + bias) would give, from softmax(logits)."""
    shifted = probabilities * np.exp(np.asarray(bias, np.float32))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def collect(predict, input_size: int, samples, served_from=None, batch_size: int = 16) -> list:
    """(probabilities [S, S, 3], true mask at the photo's size) for every sample, predicted once."""
    pairs: list = []
    for batch in batches(samples, batch_size):
        probs = predict(model_inputs(batch, input_size, served_from))[contract.OUTPUT_NAME]
        pairs.extend((p.astype(np.float32), s.mask) for p, s in zip(probs, batch, strict=True))
    return pairs


def score_bias(pairs, bias, served: bool) -> dict:
    """Scores at original resolution of these (probabilities, mask) pairs under one bias."""
    cm = np.zeros((contract.NUM_CLASSES, contract.NUM_CLASSES), np.int64)
    for probabilities, truth in pairs:
        cm += confusion_matrix(truth, full_size_labels(shift(probabilities, bias), truth.shape, served))
    return scores_to_json(cm)


def choose_class_bias(pairs, served: bool, background=BACKGROUND_BIASES, border=BORDER_BIASES) -> dict:
    """The bias [pet, background, border] with the best mean IoU on `pairs`, and every candidate's
    scores. Ties go to the smaller bias, so a grid that cannot improve leaves the model as trained."""
    if not pairs:
        raise ValueError("choosing a class bias needs validation photos")
    candidates = []
    for b_background, b_border in itertools.product(background, border):
        bias = [0.0, float(b_background), float(b_border)]
        s = score_bias(pairs, bias, served)
        candidates.append(
            {
                "bias": bias,
                "pixel_accuracy": s["pixel_accuracy"],
                "mean_iou": s["mean_iou"],
                "foreground_iou": s["foreground_iou"],
                "border_iou": s["iou"]["border"],
            }
        )
    best = max(candidates, key=lambda c: (round(c[OBJECTIVE], 6), -sum(abs(b) for b in c["bias"])))
    return {
        "values": best["bias"],
        "chosen_on": "validation",
        "photos": len(pairs),
        "objective": f"{OBJECTIVE} at original resolution",
        "candidates": candidates,
    }
