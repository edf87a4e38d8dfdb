"""Owns the exported SavedModel: load it, check it against its metadata, warm it up, run it. No HTTP."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
from PIL import Image

from app.imaging import BACKGROUND_CLASS, BORDER_CLASS, PET_CLASS
from app.settings import ModelDirError, Settings

logger = logging.getLogger(__name__)

SIGNATURE = "serving_default"
INPUT_NAME = "images"
OUTPUT_NAME = "probabilities"


def configure_tensorflow(settings: Settings) -> None:
    """Apply thread counts and GPU memory growth; TF only accepts these before it first runs anything."""
    try:
        tf.config.threading.set_intra_op_parallelism_threads(settings.tf_intra_op_threads)
        tf.config.threading.set_inter_op_parallelism_threads(settings.tf_inter_op_threads)
        if settings.gpu_memory_growth:
            for gpu in tf.config.list_physical_devices("GPU"):
                tf.config.experimental.set_memory_growth(gpu, True)
    except RuntimeError as exc:
        # A second app in the same process (tests) finds TF already initialised; the first settings stay.
        logger.warning("TensorFlow runtime already initialised, keeping its settings: %s", exc)


@dataclass(frozen=True)
class PhotoSegmentation:
    """Per-pixel result at the photo's own size."""

    labels: np.ndarray  # uint8 [h, w], class index per pixel
    pet_alpha: np.ndarray  # uint8 [h, w], 255 = surely pet; border pixels count half (soft edge)


class Segmenter:
    """A loaded SavedModel plus its metadata; `predict` takes uint8 photos at the model's input size."""

    def __init__(self, model_dir: Path, loaded: Any, metadata: dict[str, Any]) -> None:
        self.model_dir = model_dir
        self.metadata = metadata
        self.input_size: int = int(metadata["input_size"])
        self.num_classes: int = len(metadata["classes"])
        self._loaded = loaded  # keeps the variables alive for the signature
        self._serve = loaded.signatures[SIGNATURE]
        self._upsample = tf.function(
            self._upsample_graph,
            input_signature=[
                tf.TensorSpec([None, None, self.num_classes], tf.float32),
                tf.TensorSpec([2], tf.int32),
            ],
        )

    @property
    def version(self) -> int:
        return int(self.metadata["version"])

    @property
    def name(self) -> str:
        return str(self.metadata["name"])

    @classmethod
    def load(cls, model_dir: Path) -> Segmenter:
        """Load `model_dir` (a SavedModel version directory); raise ModelDirError saying what is wrong."""
        metadata = _read_metadata(model_dir)
        try:
            loaded = tf.saved_model.load(str(model_dir))
        except Exception as exc:  # TF raises many types for a broken export; all mean the same here
            raise ModelDirError(f"{model_dir}: cannot load SavedModel ({type(exc).__name__}: {exc})") from exc
        if SIGNATURE not in loaded.signatures:
            raise ModelDirError(f"{model_dir}: SavedModel has no '{SIGNATURE}' signature")
        _check_signature(model_dir, loaded.signatures[SIGNATURE], metadata)
        return cls(model_dir, loaded, metadata)

    def predict(self, images: np.ndarray) -> np.ndarray:
        """uint8 [n, S, S, 3] photos → float32 [n, S, S, C] class probabilities."""
        outputs = self._serve(**{INPUT_NAME: tf.constant(images, dtype=tf.uint8)})
        return outputs[OUTPUT_NAME].numpy()

    def upsample(self, probabilities: np.ndarray, height: int, width: int) -> PhotoSegmentation:
        """Resize one photo's probabilities to its own size before taking classes, so edges follow it."""
        if self.num_classes == 3:
            return _upsample_three_classes(probabilities, height, width)
        labels, alpha = self._upsample(
            tf.constant(probabilities, tf.float32), tf.constant([height, width], tf.int32)
        )
        return PhotoSegmentation(labels=labels.numpy(), pet_alpha=alpha.numpy())

    def warm_up(self) -> None:
        """Run the model and the upsampler once so the first request does not pay for graph setup."""
        size = self.input_size
        probabilities = self.predict(np.zeros((1, size, size, 3), np.uint8))
        self.upsample(probabilities[0], size * 2, size * 3)

    @staticmethod
    def _upsample_graph(probabilities: tf.Tensor, size: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        resized = tf.image.resize(probabilities[tf.newaxis], size, method="bilinear")[0]
        labels = tf.cast(tf.argmax(resized, axis=-1), tf.uint8)
        # The border class is the trimap's "unsure" band around the pet: counting it half makes the
        # cut-out's edge fade instead of stepping.
        alpha = resized[..., PET_CLASS] + 0.5 * resized[..., BORDER_CLASS]
        alpha = tf.cast(tf.round(tf.clip_by_value(alpha, 0.0, 1.0) * 255.0), tf.uint8)
        return labels, alpha


def _upsample_three_classes(probabilities: np.ndarray, height: int, width: int) -> PhotoSegmentation:
    """The same bilinear upsampling in Pillow, on probabilities quantised to 1/255 as one RGB image.

    Per request this is a few times cheaper than calling TensorFlow from a worker thread, whose op
    pool it would share with the model's batch; quantisation moves the argmax on well under 0.1 % of
    pixels (measured on the benchmark photos), all on class boundaries.
    """
    quantised = (np.clip(probabilities, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    size = (width, height)
    planes = np.asarray(Image.fromarray(quantised, "RGB").resize(size, Image.Resampling.BILINEAR))
    pet, background, border = planes[..., PET_CLASS], planes[..., BACKGROUND_CLASS], planes[..., BORDER_CLASS]
    # argmax with ties going to the lower index, as tf.argmax does
    labels = np.where(background > pet, np.uint8(BACKGROUND_CLASS), np.uint8(PET_CLASS))
    labels[border > np.maximum(pet, background)] = BORDER_CLASS
    # Border pixels count half: the cut-out's edge fades instead of stepping (interpolation is linear).
    soft = np.clip(probabilities[..., PET_CLASS] + 0.5 * probabilities[..., BORDER_CLASS], 0.0, 1.0)
    alpha_small = Image.fromarray((soft * 255.0 + 0.5).astype(np.uint8), "L")
    alpha = np.asarray(alpha_small.resize(size, Image.Resampling.BILINEAR))
    return PhotoSegmentation(labels=labels, pet_alpha=alpha)


def _read_metadata(model_dir: Path) -> dict[str, Any]:
    path = model_dir / "metadata.json"
    try:
        metadata = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ModelDirError(f"{path}: metadata.json is missing") from exc
    except (OSError, ValueError) as exc:
        raise ModelDirError(f"{path}: unreadable metadata.json ({exc})") from exc
    missing = [key for key in ("name", "version", "input_size", "classes") if key not in metadata]
    if missing:
        raise ModelDirError(f"{path}: metadata.json lacks {', '.join(missing)}")
    classes = metadata["classes"]
    if not isinstance(classes, list) or len(classes) < 3 or any("color" not in c for c in classes):
        raise ModelDirError(f"{path}: metadata.json 'classes' must list at least pet, background, border")
    return metadata


def _check_signature(model_dir: Path, serve: Any, metadata: dict[str, Any]) -> None:
    """Refuse an export whose signature disagrees with the contract or with its own metadata."""
    _, inputs = serve.structured_input_signature
    spec = inputs.get(INPUT_NAME)
    size = int(metadata["input_size"])
    if spec is None or spec.dtype != tf.uint8 or spec.shape.as_list()[1:] != [size, size, 3]:
        raise ModelDirError(
            f"{model_dir}: signature input '{INPUT_NAME}' is {spec}"
            f", expected uint8 [batch, {size}, {size}, 3]"
        )
    output = serve.structured_outputs.get(OUTPUT_NAME)
    classes = len(metadata["classes"])
    if output is None or output.shape.as_list()[1:] != [size, size, classes]:
        raise ModelDirError(
            f"{model_dir}: signature output '{OUTPUT_NAME}' is {output}"
            f", expected [batch, {size}, {size}, {classes}]"
        )
