"""Offline training package: Oxford-IIIT Pet -> U-Net -> evaluated SavedModel (see docs/training.md).

Class names, colours and everything else the service must agree on come from `petseg_contract`.
"""

from petseg_contract import CLASS_COLORS, CLASS_NAMES, NUM_CLASSES

# The Keras model's output keys, which are also the keys of the training targets: per-pixel class
# logits, and (with the classification heads) species and breed logits of the whole photo.
SEGMENTATION, SPECIES, BREED = "segmentation", "species", "breed"

__all__ = ["BREED", "CLASS_COLORS", "CLASS_NAMES", "NUM_CLASSES", "SEGMENTATION", "SPECIES"]
