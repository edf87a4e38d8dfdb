"""The model on photos from outside the dataset: scikit-image's bundled real photos.

For the model card: what it calls "pet" on a cat that is not from Oxford-IIIT Pet (chelsea), and on
photos with no pet at all (astronaut, coffee, rocket), where every pet pixel is a false positive.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

import petseg_contract as contract
from training import plots
from training.data import resize_photo
from training.evaluate import SavedModelPredictor, upsample_argmax

PHOTOS = ("chelsea", "astronaut", "coffee", "rocket")


def showcase(model_dir: str | Path, out_dir: str | Path) -> dict:
    """Predict each photo at its own resolution; write a grid PNG and a JSON of class fractions."""
    import skimage.data

    predictor = SavedModelPredictor(model_dir)
    s = predictor.input_size
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    photos, masks, results = [], [], {}
    for name in PHOTOS:
        photo = np.asarray(Image.fromarray(getattr(skimage.data, name)()).convert("RGB"))
        small = resize_photo(photo, s)
        outputs = predictor(small[None])
        mask = upsample_argmax(outputs[contract.OUTPUT_NAME][0], *photo.shape[:2])
        fractions = np.bincount(mask.ravel(), minlength=3) / mask.size
        results[name] = {
            "size": [photo.shape[1], photo.shape[0]],
            "pet": round(float(fractions[0]), 4),
            "background": round(float(fractions[1]), 4),
            "border": round(float(fractions[2]), 4),
        }
        if contract.BREED_OUTPUT in outputs:  # what the heads think the photo shows, pet or not
            species = outputs[contract.SPECIES_OUTPUT][0]
            breed = outputs[contract.BREED_OUTPUT][0]
            results[name]["species"] = {
                n: round(float(p), 4) for n, p in zip(contract.SPECIES_NAMES, species, strict=True)
            }
            results[name]["top_breed"] = {
                "name": contract.BREED_NAMES[int(breed.argmax())],
                "probability": round(float(breed.max()), 4),
            }
        photos.append(photo)
        masks.append(mask)
    overlays = [
        (0.55 * p + 0.45 * plots.colorize(m)).astype(np.uint8) for p, m in zip(photos, masks, strict=True)
    ]
    rows = [
        [(p, name), (o, "overlay"), (plots.colorize(m), "predicted mask")]
        for p, o, m, name in zip(photos, overlays, masks, PHOTOS, strict=True)
    ]
    plots.plot_grid(rows, out_dir / "showcase.png")
    (out_dir / "showcase.json").write_text(json.dumps(results, indent=1) + "\n")
    return results
