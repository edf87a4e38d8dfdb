"""What turning the model's probabilities into labels at the photo's size costs, old way and new.

    python -m bench.upsample [--data-dir DIR | --photo FILE ... | --synthetic] [--sizes 4032x3024,500x375]

The probabilities are real: the bundled model, run once through TensorFlow on `--photos` dataset
photos (or the named `--photo` files); `--synthetic` uses bench.regions' blobs instead and needs no
TensorFlow. For each photo and output size, the full-size definition (three Pillow resizes of the
whole photo, `masks._labels_by_full_resize`, what `upsample` did for every size before) and
`masks.upsample` run interleaved in this process, after the allocator tuning `petseg serve` applies,
and the fastest of `--repeats` runs of each is printed with the ratio new / old (the ratio holds on a
noisy machine where the milliseconds do not) and whether the labels are identical (they must be).
The pet matte (`Segmentation.pet_alpha`, one full-size resize) is timed alongside for scale.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from app.cli import tune_malloc
from bench.photos import DEFAULT_DATA_DIR, choose_photos, load_photos
from bench.regions import SCENES, best_ms, probabilities
from bench.server import DEFAULT_MODEL_BASE
from petseg_contract import masks, photos


def model_probabilities(model_dir: Path, files: list[Path] | None, data_dir: Path, count: int) -> dict:
    """{photo name: float32 [S, S, 3]} from the model, on the model input the service would decode."""
    import tensorflow as tf

    from app.settings import resolve_model_version_dir

    version_dir = resolve_model_version_dir(model_dir)
    size = int(json.loads((version_dir / "metadata.json").read_text())["input_size"])
    serve = tf.saved_model.load(str(version_dir)).signatures["serving_default"]
    chosen = (
        choose_photos(data_dir, files) if files else load_photos(data_dir, typical=count, large=1)[:count]
    )
    result = {}
    for photo in chosen:
        decoded = photos.decode(photo.data, input_size=size, max_pixels=10**9)
        result[photo.name] = serve(images=tf.constant(decoded.model_input[None]))["probabilities"].numpy()[0]
    return result


def interleaved_best_ms(
    old: Callable[[], object], new: Callable[[], object], repeats: int
) -> tuple[float, float]:
    """Fastest run of each, alternating them so that a busy spell on the machine hits both."""
    old_ms, new_ms = [], []
    for _ in range(repeats):
        old_ms.append(best_ms(old, 1))
        new_ms.append(best_ms(new, 1))
    return min(old_ms), min(new_ms)


def parse_size(text: str) -> tuple[int, int]:
    width, height = (int(v) for v in text.lower().split("x"))
    return width, height


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=DEFAULT_MODEL_BASE)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--photo", type=Path, action="append", metavar="FILE", help="repeatable")
    parser.add_argument("--photos", type=int, default=3, help="dataset photos when no --photo is named")
    parser.add_argument("--synthetic", action="store_true", help="bench.regions' blobs, no model")
    parser.add_argument("--sizes", default="4032x3024,500x375", help="WIDTHxHEIGHT, comma-separated")
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args(argv)
    tune_malloc()  # as in `petseg serve`: large temporaries are mmapped, so their page faults count
    if args.synthetic:
        inputs = {scene: probabilities(blobs) for scene, blobs in SCENES.items()}
    else:
        inputs = model_probabilities(args.model_dir, args.photo, args.data_dir, args.photos)
    for name, probs in inputs.items():
        quantised = (np.clip(probs, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
        for width, height in (parse_size(s) for s in args.sizes.split(",")):

            def old(p: np.ndarray = probs, w: int = width, h: int = height) -> np.ndarray:
                q = (np.clip(p, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
                return masks._labels_by_full_resize(q, h, w)

            def new(p: np.ndarray = probs, w: int = width, h: int = height) -> np.ndarray:
                return masks.upsample(p, h, w).labels

            same = bool(np.array_equal(masks._labels_by_full_resize(quantised, height, width), new()))
            old_ms, new_ms = interleaved_best_ms(old, new, args.repeats)
            labels = new()
            alpha_ms = best_ms(lambda done=labels, p=probs: masks.Segmentation(done, p).pet_alpha, 3)
            row = {
                "probabilities": name,
                "size": f"{width}x{height}",
                "old_ms": round(old_ms, 1),
                "new_ms": round(new_ms, 1),
                "new_vs_old": round(new_ms / old_ms, 3),
                "same_labels": same,
                "pet_alpha_ms": round(alpha_ms, 1),
            }
            print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
