"""Owns the exported SavedModel: load it, check it against its metadata, warm it up, run it. No HTTP."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from app.runtime import Runtime, TensorFlowRuntime, build_runtime
from app.settings import ModelDirError, Settings
from petseg_contract import (
    BREED_NAMES,
    BREED_OUTPUT,
    INPUT_NAME,
    OUTPUT_NAME,
    SIGNATURE_NAME,
    SPECIES_NAMES,
    SPECIES_OUTPUT,
    ContractError,
    check_metadata,
)

logger = logging.getLogger(__name__)


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


class Segmenter:
    """A loaded SavedModel plus its metadata; `predict` takes uint8 photos at the model's input size."""

    def __init__(self, model_dir: Path, loaded: Any, metadata: dict[str, Any]) -> None:
        self.model_dir = model_dir
        self.metadata = metadata
        self.input_size: int = int(metadata["input_size"])
        self.num_classes: int = len(metadata["classes"])
        self._loaded = loaded  # keeps the variables alive for the signature
        self._serve = loaded.signatures[SIGNATURE_NAME]
        # The contract's outputs this export has, in a fixed order: probabilities first, then the
        # optional species/breed heads. Outputs the contract does not know are ignored.
        self.output_names: tuple[str, ...] = tuple(
            name
            for name in (OUTPUT_NAME, SPECIES_OUTPUT, BREED_OUTPUT)
            if name in self._serve.structured_outputs
        )
        self.runtime: Runtime = TensorFlowRuntime(self._serve, self.output_names)

    @property
    def backend(self) -> str:
        """The inference runtime in use: tensorflow or openvino."""
        return self.runtime.backend

    def use_backend(
        self, backend: str, *, tolerance: float = 1e-4, threads: int = 0, streams: int = 1
    ) -> None:
        """Switch to `backend` (auto|tensorflow|openvino) once it agreed with TensorFlow on a fixed input;
        raises ModelDirError (RuntimeDisagreement) when it cannot be compiled or disagrees."""
        self.runtime = build_runtime(
            self._serve,
            self.output_names,
            self.input_size,
            backend=backend,
            tolerance=tolerance,
            threads=threads,
            streams=streams,
        )

    @property
    def streams(self) -> int:
        """Batches the runtime runs at once (the batcher starts one worker per stream)."""
        return self.runtime.streams

    @property
    def batch_size(self) -> int:
        """The most photos per forward pass the runtime runs best with (PETSEG_MAX_BATCH_SIZE=0)."""
        return self.runtime.batch_size

    @property
    def has_labels(self) -> bool:
        """Whether the model also says species and breed (optional outputs of the contract)."""
        return SPECIES_OUTPUT in self.output_names and BREED_OUTPUT in self.output_names

    @property
    def version(self) -> int:
        return int(self.metadata["version"])

    @property
    def name(self) -> str:
        return str(self.metadata["name"])

    @classmethod
    def load(cls, model_dir: Path, settings: Settings | None = None) -> Segmenter:
        """Load `model_dir` (a SavedModel version directory) on the runtime `settings.backend` chooses
        (TensorFlow without settings); raise ModelDirError saying what is wrong."""
        metadata = _read_metadata(model_dir)
        try:
            loaded = tf.saved_model.load(str(model_dir))
        except Exception as exc:  # TF raises many types for a broken export; all mean the same here
            raise ModelDirError(f"{model_dir}: cannot load SavedModel ({type(exc).__name__}: {exc})") from exc
        if SIGNATURE_NAME not in loaded.signatures:
            raise ModelDirError(f"{model_dir}: SavedModel has no '{SIGNATURE_NAME}' signature")
        _check_signature(model_dir, loaded.signatures[SIGNATURE_NAME], metadata)
        segmenter = cls(model_dir, loaded, metadata)
        if settings is not None:
            segmenter.use_backend(
                settings.backend,
                tolerance=settings.backend_check_tolerance,
                threads=settings.tf_intra_op_threads,
                streams=settings.model_streams,
            )
        return segmenter

    def predict(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """uint8 [n, S, S, 3] photos → each contract output by name (probabilities: float32 [n,S,S,C])."""
        return self.runtime.predict(images)

    def warm_up(self, batch_size: int = 1) -> None:
        """Run a batch of `batch_size` blank photos on every stream of the runtime, so that neither the
        first request pays for graph setup nor the first big batch under load for its memory."""
        size = self.input_size
        self.runtime.warm_up(np.zeros((batch_size, size, size, 3), np.uint8))


def _read_metadata(model_dir: Path) -> dict[str, Any]:
    path = model_dir / "metadata.json"
    try:
        metadata = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ModelDirError(f"{path}: metadata.json is missing") from exc
    except (OSError, ValueError) as exc:
        raise ModelDirError(f"{path}: unreadable metadata.json ({exc})") from exc
    try:
        check_metadata(metadata)
    except ContractError as exc:
        raise ModelDirError(f"{path}: {exc}") from exc
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
    for name, names in ((SPECIES_OUTPUT, SPECIES_NAMES), (BREED_OUTPUT, BREED_NAMES)):
        head = serve.structured_outputs.get(name)
        if head is not None and head.shape.as_list()[1:] != [len(names)]:
            raise ModelDirError(
                f"{model_dir}: signature output '{name}' is {head}, expected [batch, {len(names)}]"
            )
