"""Training loss: the seed's sparse cross-entropy from logits, plus an optional soft Dice term.

Dice weighs each class by its own overlap, so the thin border class (a few % of pixels) counts as
much as the background; cross-entropy alone lets it starve.
"""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="petseg")
class SegmentationLoss(keras.losses.Loss):
    def __init__(self, num_classes: int = 3, dice_weight: float = 0.0, name: str = "segmentation_loss", **kw):
        super().__init__(name=name, **kw)
        self.num_classes = num_classes
        self.dice_weight = dice_weight

    def call(self, y_true, y_pred):
        labels = ops.cast(ops.squeeze(y_true, axis=-1), "int32")
        ce = keras.losses.sparse_categorical_crossentropy(labels, y_pred, from_logits=True)
        loss = ops.mean(ce, axis=(1, 2))
        if self.dice_weight:
            loss = loss + self.dice_weight * soft_dice_loss(labels, y_pred, self.num_classes)
        return loss

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes, "dice_weight": self.dice_weight}


def soft_dice_loss(labels, logits, num_classes: int):
    """1 - mean over classes of the soft Dice coefficient, per image."""
    probs = ops.softmax(logits, axis=-1)
    onehot = ops.one_hot(labels, num_classes, dtype=probs.dtype)
    inter = ops.sum(probs * onehot, axis=(1, 2))
    denom = ops.sum(probs + onehot, axis=(1, 2))
    dice = (2.0 * inter + 1.0) / (denom + 1.0)
    return 1.0 - ops.mean(dice, axis=-1)


@keras.saving.register_keras_serializable(package="petseg")
class MaskedSparseCrossEntropy(keras.losses.Loss):
    """Cross-entropy from logits of whole-photo labels (species, breed), over labelled photos only.

    A label < 0 (unknown: the lists do not name the photo) contributes nothing. Each photo's value is
    rescaled by batch size / labelled photos, so Keras' mean over the batch is the mean over the
    labelled photos (0 when none is labelled), whatever share of a batch is unlabelled.
    """

    def __init__(self, name: str = "masked_sparse_crossentropy", **kw):
        super().__init__(name=name, **kw)

    def call(self, y_true, y_pred):
        labels = ops.cast(ops.reshape(y_true, (-1,)), "int32")
        known = ops.cast(labels >= 0, y_pred.dtype)
        ce = keras.losses.sparse_categorical_crossentropy(ops.maximum(labels, 0), y_pred, from_logits=True)
        batch = ops.cast(ops.shape(labels)[0], y_pred.dtype)
        return ce * known * batch / ops.maximum(ops.sum(known), 1.0)
