"""Model probabilities -> labels and a soft pet matte at the photo's own size.

The service renders every output from this, and the evaluation scores exactly this, so the numbers
in a model card are the numbers of the masks users receive.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from PIL import Image

from petseg_contract import BACKGROUND, BORDER, PET


@dataclass(frozen=True)
class Segmentation:
    """Per-pixel result at the photo's own size."""

    labels: np.ndarray  # uint8 [h, w], class index per pixel
    probabilities: np.ndarray  # float32 [S, S, C], the model output the labels were upsampled from

    @cached_property
    def pet_alpha(self) -> np.ndarray:
        """uint8 [h, w], 255 = surely pet; border pixels count half (soft edge). Computed on first use:
        only cut-outs need it, and at 12 MP it is another full-size resize."""
        # The border class is the trimap's "unsure" band around the pet: counting it half makes the
        # cut-out's edge fade instead of stepping (interpolation is linear, so this commutes with it).
        soft = np.clip(self.probabilities[..., PET] + 0.5 * self.probabilities[..., BORDER], 0.0, 1.0)
        alpha_small = Image.fromarray((soft * 255.0 + 0.5).astype(np.uint8), "L")
        height, width = self.labels.shape
        return np.asarray(alpha_small.resize((width, height), Image.Resampling.BILINEAR))


def upsample(probabilities: np.ndarray, height: int, width: int) -> Segmentation:
    """Bilinear upsampling of [S, S, 3] probabilities to height x width, then the class per pixel.

    Done in Pillow on probabilities quantised to 1/255, one 8-bit plane per class: a few times cheaper
    than TensorFlow per photo, and the quantisation moves the argmax on well under 0.1 % of pixels, all
    on class boundaries. Each plane is resized on its own so the full-size planes come out contiguous
    (no interleaved RGB copy), and the argmax is two in-place comparisons over uint8.
    """
    quantised = (np.clip(probabilities, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    size = (width, height)

    def plane(index: int) -> np.ndarray:
        small = Image.fromarray(np.ascontiguousarray(quantised[..., index]), "L")
        return np.asarray(small.resize(size, Image.Resampling.BILINEAR))

    pet, background, border = plane(PET), plane(BACKGROUND), plane(BORDER)
    # argmax with ties going to the lower index, as np.argmax does
    labels = np.where(background > pet, np.uint8(BACKGROUND), np.uint8(PET))
    np.putmask(labels, border > np.maximum(pet, background), np.uint8(BORDER))
    return Segmentation(labels=labels, probabilities=probabilities)
