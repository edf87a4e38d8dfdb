"""Score an exported SavedModel on held-out photos.

Probabilities come back at S x S and are upsampled to each photo's own size before the argmax; masks
are scored there ("original" resolution) and also at S x S ("model" resolution), overall and per
part of the data ("original"-resolution photos vs the shared copy's 299 px "resized" ones). A model
with the species and breed heads is also scored on those (accuracy over the photos the lists label).

Two scorings (SCORINGS), which differ only in how a photo becomes the model's input and how the
probabilities return to its size:
- "resized" (the trainer's view, and what export writes into metadata.json by default): the photo
  decoded in full, resized to S x S; probabilities upsampled by TensorFlow's bilinear resize.
- "as-served": exactly what POST /segment returns. The photo file's bytes go through the service's
  own decoding (petseg_contract.photos.decode: reduced-scale JPEG draft decode, EXIF orientation, RGB)
  and the probabilities through its own upsampling (petseg_contract.masks.upsample) to the photo's
  size. Needs photo files (a directory source, not tfds).
"""

from __future__ import annotations

import itertools
import json
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import tensorflow as tf

import petseg_contract as contract
from petseg_contract import masks, photos
from training import data as pet_data
from training.metrics import confusion_matrix, scores_to_json


class SavedModelPredictor:
    """The exported `serving_default` signature as a NumPy function: uint8 [B,S,S,3] -> every contract
    output it has, by name (`probabilities`, and `species_probabilities`/`breed_probabilities`)."""

    def __init__(self, model_dir: str | Path):
        self.model_dir = Path(model_dir)
        self._loaded = tf.saved_model.load(str(self.model_dir))
        self._fn = self._loaded.signatures[contract.SIGNATURE_NAME]
        meta = self.model_dir / "metadata.json"
        self.metadata = json.loads(meta.read_text()) if meta.exists() else {}
        # The signature itself knows S, so a freshly written export (no metadata yet) works too.
        self.input_size = int(self._fn.structured_input_signature[1][contract.INPUT_NAME].shape[1])

        self.output_names = tuple(
            n
            for n in (contract.OUTPUT_NAME, contract.SPECIES_OUTPUT, contract.BREED_OUTPUT)
            if n in self._fn.structured_outputs
        )

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        outputs = self._fn(**{contract.INPUT_NAME: tf.constant(images, tf.uint8)})
        return {name: outputs[name].numpy() for name in self.output_names}


def upsample_argmax(probs: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear upsampling of S x S probabilities to the photo size, then the class per pixel."""
    big = tf.image.resize(probs[None], (height, width), method="bilinear")[0]
    return tf.argmax(big, axis=-1, output_type=tf.int32).numpy().astype(np.uint8)


LABEL_OUTPUTS = (("species", contract.SPECIES_OUTPUT), ("breed", contract.BREED_OUTPUT))


SCORINGS = ("resized", "as-served")


class EvaluationError(ValueError):
    """A scoring that cannot be done as asked; the message says why."""


def served_source(source, scoring: str) -> pet_data.DirectorySource | None:
    """The source whose photo files are scored as served, or None for the "resized" scoring."""
    if scoring not in SCORINGS:
        raise EvaluationError(f"scoring must be one of {SCORINGS}, not {scoring!r}")
    if scoring == "resized":
        return None
    if not isinstance(source, pet_data.DirectorySource):
        raise EvaluationError(
            "as-served scoring decodes the photo files as uploaded: it needs a photo directory"
        )
    return source


def served_input(path: Path, input_size: int, truth_shape: tuple[int, ...]) -> np.ndarray:
    """The model input the service makes of this photo file; its decoded size must be the trimap's."""
    photo = photos.decode_file(path, input_size=input_size)
    if (photo.height, photo.width) != truth_shape:
        raise EvaluationError(
            f"{path.name}: the service sees {photo.width}x{photo.height}, the trimap is "
            f"{truth_shape[1]}x{truth_shape[0]}"
        )
    return photo.model_input


def batches(items, size: int):
    """Lists of up to `size` consecutive items (itertools.batched, which needs Python 3.12)."""
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


def model_inputs(samples, input_size: int, served_from=None) -> np.ndarray:
    """The uint8 [N, S, S, 3] batch the model sees for these samples: as served when `served_from` (a
    source with photo files) is given, otherwise the trainer's resize of the decoded photo."""
    if served_from is None:
        return np.stack([pet_data.resize_photo(s.image, input_size) for s in samples])
    return np.stack([served_input(served_from.photo_path(s.stem), input_size, s.mask.shape) for s in samples])


def full_size_labels(probabilities: np.ndarray, shape: tuple[int, ...], served: bool) -> np.ndarray:
    """The class per pixel at the photo's own size: the service's upsampling when `served`, otherwise
    TensorFlow's bilinear resize."""
    if served:
        return masks.upsample(probabilities, shape[0], shape[1]).labels
    return upsample_argmax(probabilities, shape[0], shape[1])


def evaluate_predictor(predict, input_size: int, samples, batch_size: int = 16, served_from=None) -> dict:
    """Confusion matrices per part and resolution, and species/breed accuracy when the model has
    those outputs, for any `predict(uint8 batch) -> {output name: probabilities}`.

    With `served_from` (a source with photo files), photos are scored "as-served" (see the module's
    docstring); otherwise "resized".
    """
    cms: dict[tuple[str, str], np.ndarray] = defaultdict(lambda: np.zeros((3, 3), np.int64))
    photos: dict[str, int] = defaultdict(int)
    # (part, "species"/"breed") -> [correct, labelled photos]
    hits: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])

    def flush(batch):
        outputs = predict(model_inputs(batch, input_size, served_from))
        probs = outputs[contract.OUTPUT_NAME]
        for i, (s, p) in enumerate(zip(batch, probs, strict=True)):
            small_mask = pet_data.resize_mask(s.mask, input_size)
            full_pred = full_size_labels(p, s.mask.shape, served_from is not None)
            for part in ("all", s.part):
                cms[(part, "model_resolution")] += confusion_matrix(small_mask, p.argmax(-1))
                cms[(part, "original_resolution")] += confusion_matrix(s.mask, full_pred)
                photos[part] += 1
                for key, output in LABEL_OUTPUTS:
                    truth = getattr(s, key)
                    if output in outputs and truth >= 0:
                        hits[(part, key)][0] += int(outputs[output][i].argmax() == truth)
                        hits[(part, key)][1] += 1

    for batch in batches(samples, batch_size):
        flush(batch)
    results: dict = {}
    for (part, res), cm in sorted(cms.items()):
        results.setdefault(part, {"photos": photos[part]})[res] = scores_to_json(cm)
    for (part, key), (correct, labelled) in sorted(hits.items()):
        results[part][key] = {"accuracy": correct / labelled if labelled else 0.0, "labelled": labelled}
    return results


def evaluate_model_dir(
    model_dir: str | Path,
    data_dir: str,
    split: str = "test",
    seed: int = 0,
    val_fraction: float = 0.1,
    batch_size: int = 16,
    scoring: str = "resized",
) -> dict:
    """Metrics of an exported model on one split of a data source, as a JSON-ready dict.

    `scoring` is "resized" or "as-served" (see the module's docstring).
    """
    predictor = SavedModelPredictor(model_dir)
    source = pet_data.open_source(data_dir, seed)
    served_from = served_source(source, scoring)
    served = served_from is not None
    report = pet_data.LoadReport(split)
    size = predictor.input_size
    t0 = time.perf_counter()
    # As served, the sample's own decode is not used for the model input: a draft decode keeps it cheap.
    samples = pet_data.iter_samples(
        source, split, seed, val_fraction, draft_size=size if served else None, report=report
    )
    results = evaluate_predictor(predictor, size, samples, batch_size, served_from=served_from)
    return {
        "model": str(model_dir),
        "split": split,
        "scoring": scoring,
        "data": source.describe(),
        "load_report": report.to_json(),
        "seconds": round(time.perf_counter() - t0, 1),
        "results": results,
    }


def format_table(report: dict) -> str:
    """The headline numbers as a small fixed-width table."""
    lines = [
        f"split={report['split']}  scoring={report.get('scoring', 'resized')}  model={report['model']}",
        f"{'part':<10}{'resolution':<22}{'photos':>7}{'pix_acc':>9}{'mIoU':>7}{'fgIoU':>7}"
        f"{'pet':>7}{'bg':>7}{'border':>8}",
    ]
    for part, res in report["results"].items():
        for key in ("model_resolution", "original_resolution"):
            s = res[key]
            lines.append(
                f"{part:<10}{key:<22}{res['photos']:>7}{s['pixel_accuracy']:>9.4f}{s['mean_iou']:>7.4f}"
                f"{s['foreground_iou']:>7.4f}{s['iou']['pet']:>7.4f}{s['iou']['background']:>7.4f}"
                f"{s['iou']['border']:>8.4f}"
            )
    for part, res in report["results"].items():
        for key, _ in LABEL_OUTPUTS:
            if key in res:
                lines.append(
                    f"{part:<10}{key + ' accuracy':<22}{res[key]['labelled']:>7}{res[key]['accuracy']:>9.4f}"
                )
    return "\n".join(lines)
