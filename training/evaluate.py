"""Score an exported SavedModel the way the service uses it.

Photos are resized to the model's input, probabilities come back at S x S and are upsampled
(bilinear) to each photo's own size before the argmax; masks are scored there ("original"
resolution) and also at S x S ("model" resolution), overall and per part of the data
("original"-resolution photos vs the shared copy's 299 px "resized" ones). A model with the species
and breed heads is also scored on those (accuracy over the photos the lists label).
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import tensorflow as tf

import petseg_contract as contract
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


def evaluate_predictor(predict, input_size: int, samples, batch_size: int = 16) -> dict:
    """Confusion matrices per part and resolution, and species/breed accuracy when the model has
    those outputs, for any `predict(uint8 batch) -> {output name: probabilities}`."""
    cms: dict[tuple[str, str], np.ndarray] = defaultdict(lambda: np.zeros((3, 3), np.int64))
    photos: dict[str, int] = defaultdict(int)
    # (part, "species"/"breed") -> [correct, labelled photos]
    hits: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])

    def flush(batch):
        pairs = [pet_data.resize_pair(s, input_size) for s in batch]
        outputs = predict(np.stack([image for image, _ in pairs]))
        probs = outputs[contract.OUTPUT_NAME]
        for i, (s, (_, small_mask), p) in enumerate(zip(batch, pairs, probs, strict=True)):
            full_pred = upsample_argmax(p, *s.mask.shape)
            for part in ("all", s.part):
                cms[(part, "model_resolution")] += confusion_matrix(small_mask, p.argmax(-1))
                cms[(part, "original_resolution")] += confusion_matrix(s.mask, full_pred)
                photos[part] += 1
                for key, output in LABEL_OUTPUTS:
                    truth = getattr(s, key)
                    if output in outputs and truth >= 0:
                        hits[(part, key)][0] += int(outputs[output][i].argmax() == truth)
                        hits[(part, key)][1] += 1

    batch = []
    for s in samples:
        batch.append(s)
        if len(batch) == batch_size:
            flush(batch)
            batch = []
    if batch:
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
) -> dict:
    """Metrics of an exported model on one split of a data source, as a JSON-ready dict."""
    predictor = SavedModelPredictor(model_dir)
    source = pet_data.open_source(data_dir, seed)
    report = pet_data.LoadReport(split)
    t0 = time.perf_counter()
    results = evaluate_predictor(
        predictor,
        predictor.input_size,
        pet_data.iter_samples(source, split, seed, val_fraction, report=report),
        batch_size,
    )
    return {
        "model": str(model_dir),
        "split": split,
        "data": source.describe(),
        "load_report": report.to_json(),
        "seconds": round(time.perf_counter() - t0, 1),
        "results": results,
    }


def format_table(report: dict) -> str:
    """The headline numbers as a small fixed-width table."""
    lines = [
        f"split={report['split']}  model={report['model']}",
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
