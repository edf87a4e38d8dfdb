"""Offline training package: Oxford-IIIT Pet -> U-Net -> evaluated SavedModel (see docs/training.md).

Class names, colours and everything else the service must agree on come from `petseg_contract`.
"""

from petseg_contract import CLASS_COLORS, CLASS_NAMES, NUM_CLASSES

__all__ = ["CLASS_COLORS", "CLASS_NAMES", "NUM_CLASSES"]
