"""The model card's figures, drawn from a released SavedModel alone (its run directory is not kept).

- `curves-<tag>.png`: the training curves, from the per-epoch history export copies into metadata.json;
- `predictions-validation-<tag>.png`: the first validation photos | true mask | the mask as served;
- `worst-validation-<tag>.png`: the validation photos with the lowest foreground (pet) IoU as served,
  which is where a user sees the model fail (the card says what they show);
- `figures-<tag>.json`: every validation photo's pet IoU, worst first, so the card can cite them, and
  how tight and how right the cut-out's matte is at several steepnesses (`matte`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

import petseg_contract as contract
from petseg_contract import masks
from training import plots
from training.data import iter_samples, open_source
from training.evaluate import SavedModelPredictor, batches, full_size_labels, model_inputs

MATTE_CANDIDATES = (1.0, 2.0, 4.0, 8.0, 16.0, 100.0)


def pet_iou(truth: np.ndarray, predicted: np.ndarray) -> float:
    """IoU of the pet class; 1.0 when neither has a pet pixel."""
    t, p = truth == contract.PET, predicted == contract.PET
    union = int(np.count_nonzero(t | p))
    return float(np.count_nonzero(t & p)) / union if union else 1.0


class MatteScores:
    """How good the cut-out's matte is at each steepness (petseg_contract.masks.pet_matte): the mean
    |alpha - truth| on the pixels the trimap calls pet (1) or background (0), and the share of pixels
    left semi-transparent (alpha 0.1-0.9), the halo where a background shows through."""

    def __init__(self, steepness: tuple[float, ...] = MATTE_CANDIDATES) -> None:
        self.steepness = steepness
        self.error = dict.fromkeys(steepness, 0.0)
        self.semi = dict.fromkeys(steepness, 0)
        self.definite = 0
        self.pixels = 0

    def add(self, probabilities: np.ndarray, truth: np.ndarray) -> None:
        definite = truth != contract.BORDER
        target = (truth[definite] == contract.PET).astype(np.float32)
        for k in self.steepness:
            alpha = masks.pet_matte(probabilities, truth.shape[0], truth.shape[1], steepness=k)
            self.error[k] += float(np.abs(alpha[definite] / 255.0 - target).sum())
            self.semi[k] += int(np.count_nonzero((alpha > 25) & (alpha < 230)))
        self.definite += int(np.count_nonzero(definite))
        self.pixels += truth.size

    def report(self) -> dict:
        return {
            "served_steepness": masks.MATTE_STEEPNESS,
            "candidates": [
                {
                    "steepness": k,
                    "mean_abs_error_on_pet_and_background": round(self.error[k] / max(self.definite, 1), 4),
                    "semi_transparent_share": round(self.semi[k] / max(self.pixels, 1), 4),
                }
                for k in self.steepness
            ],
        }


def figures(model_dir: str | Path, data_dir: str, out_dir: str | Path, tag: str, count: int = 6) -> dict:
    """Write the figures above into `out_dir` and return what figures-<tag>.json holds."""
    predictor = SavedModelPredictor(model_dir)
    meta = predictor.metadata
    training = meta.get("training", {})
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    history = meta.get("training_history")
    if history:
        written.append(plots.plot_history(history, out_dir / f"curves-{tag}.png"))

    source = open_source(data_dir, int(training.get("seed", 0)))
    scored = []  # (pet IoU, stem, photo, truth, prediction)
    matte_errors = MatteScores()
    samples = iter_samples(
        source, "validation", int(training.get("seed", 0)), training.get("val_fraction", 0.1)
    )
    for batch in batches(samples, 16):
        probabilities = predictor(model_inputs(batch, predictor.input_size, served_from=source))[
            contract.OUTPUT_NAME
        ]
        for s, p in zip(batch, probabilities, strict=True):
            labels = full_size_labels(p, s.mask.shape, served=True)
            scored.append((pet_iou(s.mask, labels), s.stem, s.image, s.mask, labels))
            matte_errors.add(p, s.mask)
    if not scored:
        raise ValueError(f"{data_dir}: no validation photos")

    def grid(rows, name: str) -> None:
        images, truths, predictions, titles = zip(
            *[(r[2], r[3], r[4], f"{r[1]} pet IoU {r[0]:.2f}") for r in rows], strict=True
        )
        written.append(plots.plot_predictions(images, truths, predictions, titles, out_dir / name))

    grid(scored[:count], f"predictions-validation-{tag}.png")
    worst = sorted(scored, key=lambda r: r[0])
    grid(worst[:count], f"worst-validation-{tag}.png")
    ious = [r[0] for r in scored]
    report = {
        "model": str(model_dir),
        "photos": len(scored),
        "scoring": "as-served",
        "pet_iou_per_photo": {r[1]: round(r[0], 4) for r in worst},
        "pet_iou_quantiles": {
            q: round(float(np.quantile(ious, float(q))), 4) for q in ("0.05", "0.1", "0.25", "0.5")
        },
        "matte": matte_errors.report(),
        "figures": [p.name for p in written],
    }
    (out_dir / f"figures-{tag}.json").write_text(json.dumps(report, indent=1) + "\n")
    return report
