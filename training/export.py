"""Export a run's best weights as a SavedModel following the contract in docs/design.md.

models/<name>/<version>/saved_model.pb + variables/ + metadata.json. Signature `serving_default`:
`images` uint8 [batch, S, S, 3] -> `probabilities` float32 [batch, S, S, 3]; normalisation inside.
A model trained with the species/breed heads also returns `species_probabilities` float32 [batch, 2]
and `breed_probabilities` float32 [batch, 37], and its metadata.json lists their class names.
"""

from __future__ import annotations

import csv
import dataclasses
import itertools
import json
import platform
import shutil
from datetime import UTC, datetime
from pathlib import Path

import keras
import numpy as np
import PIL
import tensorflow as tf

import petseg_contract as contract
from training import calibrate
from training import data as pet_data
from training.config import TrainConfig
from training.evaluate import SavedModelPredictor, evaluate_predictor, served_source
from training.model import has_heads, model_from_config, predict_outputs
from training.train import BEST_WEIGHTS, HISTORY

MAX_ABS_DIFF = 1e-4


class ExportError(RuntimeError):
    pass


def parse_output(output: str | Path) -> tuple[str, int]:
    """models/<name>/<version> -> (name, version); the version must be a positive integer (TF Serving)."""
    out = Path(output)
    if not out.name.isdigit() or int(out.name) < 1:
        raise ExportError(f"{out}: the last path component must be a numeric version, e.g. models/pet-unet/1")
    return out.parent.name, int(out.name)


def load_run_model(run_dir: Path) -> tuple[keras.Model, TrainConfig]:
    cfg = TrainConfig.load(run_dir)
    weights = run_dir / BEST_WEIGHTS
    if not weights.exists():
        raise ExportError(
            f"{weights}: no best checkpoint in this run directory (did training finish an epoch?)"
        )
    model = model_from_config(cfg, encoder_weights=None)
    model.load_weights(weights)
    return model, cfg


class ServingModule(tf.Module):
    """What the SavedModel holds: the Keras model and its one serving function.

    A plain tf.Module rather than keras.export.ExportArchive: the archive tracks every variable twice
    (`variables` and `_all_variables`), which doubled the release model to 52 MB on disk.
    """

    def __init__(self, model: keras.Model, input_size: int, flip_tta: bool = False, class_bias=None):
        super().__init__(name="petseg_serving")
        self.model = model
        self.flip_tta = flip_tta
        self.class_bias = class_bias
        spec = tf.TensorSpec([None, input_size, input_size, 3], tf.uint8, name=contract.INPUT_NAME)
        self.serve = tf.function(self._serve, input_signature=[spec])

    def _serve(self, images):
        return predict_outputs(self.model, tf.cast(images, tf.float32), self.flip_tta, self.class_bias)


def write_savedmodel(
    model: keras.Model, input_size: int, output: Path, flip_tta: bool = False, class_bias=None
) -> None:
    """uint8 photos in, softmax probabilities (and species/breed ones) out; the float cast, [-1, 1]
    scaling and the per-pixel class bias (None: none) live in the graph."""
    module = ServingModule(model, input_size, flip_tta, class_bias)
    tf.saved_model.save(module, str(output), signatures={contract.SIGNATURE_NAME: module.serve})


def check_roundtrip(
    model: keras.Model,
    predictor: SavedModelPredictor,
    images: np.ndarray,
    flip_tta: bool = False,
    class_bias=None,
) -> float:
    """Max |SavedModel - Keras| over every output on a batch; raises when an output is missing, has
    another shape, or differs by more than MAX_ABS_DIFF."""
    raw = predict_outputs(model, images.astype(np.float32), flip_tta, class_bias)
    expected = {k: v.numpy() for k, v in raw.items()}
    got = predictor(images)
    if set(got) != set(expected):
        raise ExportError(
            f"SavedModel outputs {sorted(got)} differ from the Keras model's {sorted(expected)}"
        )
    diff = 0.0
    for name, want in expected.items():
        if got[name].shape != want.shape:
            raise ExportError(
                f"SavedModel output {name} is {got[name].shape}, the Keras model's {want.shape}"
            )
        diff = max(diff, float(np.max(np.abs(want - got[name]))))
    if not diff <= MAX_ABS_DIFF:
        raise ExportError(
            f"SavedModel output differs from the Keras model: max abs diff {diff:.3g} > {MAX_ABS_DIFF}"
        )
    return diff


def signature_outputs(input_size: int, heads: bool) -> dict:
    """metadata.json's description of the signature's outputs."""
    outputs = {
        contract.OUTPUT_NAME: {
            "dtype": "float32",
            "shape": [None, input_size, input_size, contract.NUM_CLASSES],
        }
    }
    if heads:
        outputs[contract.SPECIES_OUTPUT] = {"dtype": "float32", "shape": [None, len(contract.SPECIES_NAMES)]}
        outputs[contract.BREED_OUTPUT] = {"dtype": "float32", "shape": [None, len(contract.BREEDS)]}
    return outputs


def training_history(run_dir: Path) -> list[dict]:
    """The run's per-epoch history.csv as rows of numbers, so the release keeps its own curves
    (`python -m training figures` draws them) after the run directory is gone."""
    path = run_dir / HISTORY
    if not path.exists():
        return []
    with path.open() as f:
        return [
            {k: int(v) if k == "epoch" else float(f"{float(v):.6g}") for k, v in row.items() if v != ""}
            for row in csv.DictReader(f)
        ]


def library_versions() -> dict:
    return {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "pillow": PIL.__version__,
    }


def export(
    run_dir: str | Path,
    output: str | Path,
    evaluate_splits: tuple[str, ...] = ("validation",),
    data_dir: str | None = None,
    overwrite: bool = False,
    flip_tta: bool = False,
    scoring: str = "resized",
    class_bias: str | list[float] | None = None,
) -> dict:
    """Write the SavedModel and metadata.json, verify the round trip, evaluate on held-out splits.

    `scoring` is how the held-out photos are scored (training.evaluate.SCORINGS; "as-served" needs
    a photo directory); metadata.json records it beside the metrics. `class_bias`: None (the model as
    trained), three numbers added to the per-pixel logits, or "auto" to choose them on the validation
    photos, scored the same way (training.calibrate), before any split is scored.
    """
    calibrating = class_bias == "auto"
    if not (class_bias is None or calibrating or len(class_bias) == contract.NUM_CLASSES):
        raise ExportError(f"class_bias must be 'auto' or {contract.NUM_CLASSES} numbers, not {class_bias!r}")
    run_dir, output = Path(run_dir), Path(output)
    name, version = parse_output(output)
    if output.exists():
        if not overwrite:
            raise ExportError(
                f"{output} already exists (versions are immutable; pick a new one or --overwrite)"
            )
        shutil.rmtree(output)
    model, cfg = load_run_model(run_dir)
    data_dir = data_dir or cfg.data_dir
    source = pet_data.open_source(data_dir, cfg.seed)
    served_from = served_source(source, scoring)
    val_samples = pet_data.iter_samples(source, "validation", cfg.seed, cfg.val_fraction)
    # Decode the whole validation split only when it is scored; the round-trip check needs 8 photos.
    whole = "validation" in evaluate_splits or calibrating
    val = list(val_samples) if whole else list(itertools.islice(val_samples, 8))
    check_batch = np.stack([pet_data.resize_pair(s, cfg.input_size)[0] for s in val[:8]])

    tmp = output.with_name(f".{output.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        bias = None if calibrating else class_bias
        write_savedmodel(model, cfg.input_size, tmp, flip_tta, bias)
        predictor = SavedModelPredictor(tmp)
        calibration: dict = {"values": bias, "chosen_on": "given" if bias else None}
        if calibrating:
            pairs = calibrate.collect(predictor, cfg.input_size, val, served_from)
            calibration = calibrate.choose_class_bias(pairs, served=served_from is not None)
            bias = calibration["values"] if any(calibration["values"]) else None
            if bias:
                shutil.rmtree(tmp)
                write_savedmodel(model, cfg.input_size, tmp, flip_tta, bias)
                predictor = SavedModelPredictor(tmp)
        diff = check_roundtrip(model, predictor, check_batch, flip_tta, bias)
        metrics = {}
        for split in evaluate_splits:
            scored = (
                val
                if split == "validation"
                else pet_data.iter_samples(source, split, cfg.seed, cfg.val_fraction)
            )
            metrics[split] = evaluate_predictor(predictor, cfg.input_size, scored, served_from=served_from)
        run_data = json.loads((run_dir / "data.json").read_text()) if (run_dir / "data.json").exists() else {}
        run_data.pop("validation_stems", None)
        metadata = {
            "contract_version": contract.CONTRACT_VERSION,
            "name": name,
            "version": version,
            "input_size": cfg.input_size,
            "signature": {
                "name": contract.SIGNATURE_NAME,
                "inputs": {
                    contract.INPUT_NAME: {
                        "dtype": "uint8",
                        "shape": [None, cfg.input_size, cfg.input_size, 3],
                    }
                },
                "outputs": signature_outputs(cfg.input_size, has_heads(model)),
            },
            "preprocessing": "whole photo resized to input_size x input_size (bilinear), RGB uint8; "
            "scaling to [-1, 1] is inside the graph",
            "test_time_flip": flip_tta,
            "class_bias": calibration,
            "classes": contract.classes_metadata(),
            **(contract.labels_metadata() if has_heads(model) else {}),
            "metrics": metrics,
            "metrics_scoring": scoring,
            "training": dataclasses.asdict(cfg),
            "training_history": training_history(run_dir),
            "data": run_data,
            "export_check": {"max_abs_diff": diff, "tolerance": MAX_ABS_DIFF},
            "library_versions": library_versions(),
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        (tmp / "metadata.json").write_text(json.dumps(metadata, indent=2) + "\n")
        tmp.rename(output)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return metadata
