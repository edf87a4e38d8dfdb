"""One confusion-matrix implementation, used by Keras during training and by evaluation.

`scores_from_confusion` is written with `keras.ops`, so the very same formulas run inside the
compiled training step (on tensors) and in offline evaluation (on NumPy arrays).
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from training import CLASS_NAMES, NUM_CLASSES

PET, BACKGROUND, BORDER = 0, 1, 2


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """Confusion counts (rows = truth, columns = prediction) of two integer label arrays."""
    t = np.asarray(y_true, dtype=np.int64).ravel()
    p = np.asarray(y_pred, dtype=np.int64).ravel()
    valid = (t >= 0) & (t < num_classes)
    idx = t[valid] * num_classes + p[valid]
    return np.bincount(idx, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def _safe_div(a, b):
    return ops.where(b > 0, a / ops.maximum(b, 1e-12), ops.zeros_like(a))


def scores_from_confusion(cm) -> dict:
    """Pixel accuracy, per-class IoU, 3-class mean IoU and binary foreground IoU of a confusion matrix.

    Foreground is pet + border against background, the way a cut-out uses the mask.
    """
    cm = ops.cast(cm, "float64")
    tp = ops.diagonal(cm)
    rows = ops.sum(cm, axis=1)
    cols = ops.sum(cm, axis=0)
    total = ops.sum(cm)
    iou = _safe_div(tp, rows + cols - tp)
    # Binary view: background stays background, pet and border merge into foreground.
    bg_tp = cm[BACKGROUND, BACKGROUND]
    fg_true = total - rows[BACKGROUND]
    fg_pred = total - cols[BACKGROUND]
    fg_tp = total - rows[BACKGROUND] - cols[BACKGROUND] + bg_tp
    return {
        "pixel_accuracy": _safe_div(ops.sum(tp), total),
        "iou": iou,
        "mean_iou": ops.mean(iou),
        "foreground_iou": _safe_div(fg_tp, fg_true + fg_pred - fg_tp),
    }


def scores_to_json(cm: np.ndarray) -> dict:
    """Plain-Python form of the scores (per-class IoU keyed by class name), for JSON reports."""
    s = scores_from_confusion(np.asarray(cm))
    iou = np.asarray(s["iou"], dtype=float)
    return {
        "pixel_accuracy": float(s["pixel_accuracy"]),
        "mean_iou": float(s["mean_iou"]),
        "foreground_iou": float(s["foreground_iou"]),
        "iou": {name: float(iou[i]) for i, name in enumerate(CLASS_NAMES)},
        "pixels": int(np.asarray(cm).sum()),
    }


class ConfusionScore(keras.metrics.Metric):
    """A Keras metric reporting one score of a running confusion matrix.

    `score` is a key of `scores_from_confusion` ("mean_iou", "foreground_iou", "pixel_accuracy") or
    "iou_<class>" for one class. Predictions are logits or probabilities; the class is their argmax.
    """

    def __init__(
        self, score: str = "mean_iou", num_classes: int = NUM_CLASSES, name: str | None = None, **kw
    ):
        super().__init__(name=name or score, **kw)
        self.score = score
        self.num_classes = num_classes
        self.cm = self.add_variable(
            shape=(num_classes, num_classes), initializer="zeros", dtype="float64", name="confusion"
        )

    def update_state(self, y_true, y_pred, sample_weight=None):
        t = ops.reshape(ops.cast(y_true, "int32"), (-1,))
        p = ops.reshape(ops.cast(ops.argmax(y_pred, axis=-1), "int32"), (-1,))
        idx = t * self.num_classes + p
        counts = ops.bincount(idx, minlength=self.num_classes * self.num_classes)
        counts = ops.reshape(ops.cast(counts, "float64"), (self.num_classes, self.num_classes))
        self.cm.assign(self.cm + counts)

    def result(self):
        s = scores_from_confusion(self.cm)
        if self.score.startswith("iou_"):
            return s["iou"][CLASS_NAMES.index(self.score[4:])]
        return s[self.score]

    def reset_state(self):
        self.cm.assign(ops.zeros_like(self.cm))

    def get_config(self):
        return {**super().get_config(), "score": self.score, "num_classes": self.num_classes}


class LabelAccuracy(keras.metrics.Metric):
    """Accuracy of a whole-photo label (species or breed) over labelled photos; unknown (< 0) ones are
    skipped, so an unlabelled photo neither helps nor hurts."""

    def __init__(self, name: str = "accuracy", **kw):
        super().__init__(name=name, **kw)
        self.correct = self.add_variable(shape=(), initializer="zeros", dtype="float64", name="correct")
        self.count = self.add_variable(shape=(), initializer="zeros", dtype="float64", name="count")

    def update_state(self, y_true, y_pred, sample_weight=None):
        t = ops.reshape(ops.cast(y_true, "int32"), (-1,))
        p = ops.cast(ops.argmax(y_pred, axis=-1), "int32")
        known = t >= 0
        self.correct.assign(self.correct + ops.sum(ops.cast(ops.logical_and(known, p == t), "float64")))
        self.count.assign(self.count + ops.sum(ops.cast(known, "float64")))

    def result(self):
        return _safe_div(self.correct, self.count)

    def reset_state(self):
        self.correct.assign(0.0)
        self.count.assign(0.0)


def training_metrics() -> list[keras.metrics.Metric]:
    """The metrics compiled into every training run (logged per epoch, train and validation)."""
    return [
        ConfusionScore("pixel_accuracy"),
        ConfusionScore("mean_iou"),
        ConfusionScore("foreground_iou"),
        ConfusionScore("iou_border"),
    ]
