"""What finding separate pets costs per photo: `app.regions.find_pets` next to `masks.upsample`.

    python -m bench.regions [--width 4000 --height 3000] [--repeats 5]

Both run on the same synthetic probabilities at the photo's size (default 12 MP), in the same process,
so the printed ratio (regions / upsample) holds on a noisy machine where the milliseconds do not. Only
`output=json` pays for the region analysis. No model and no server: pure NumPy/SciPy/Pillow.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

import numpy as np

from app.regions import find_pets
from petseg_contract import masks

MODEL_SIZE = 160
# (centre x, centre y, radius) of pet-like blobs in model pixels, for each kind of photo.
SCENES = {
    "two pets side by side": [(50, 80, 22), (115, 80, 22)],
    "one pet filling the frame": [(80, 80, 70)],
    "many specks": [(x, y, 3) for x in range(5, MODEL_SIZE, 12) for y in range(5, MODEL_SIZE, 12)],
}


def probabilities(blobs: list[tuple[int, int, int]]) -> np.ndarray:
    """float32 [S, S, 3] softmax-like output: pet blobs, a noisy border band, background elsewhere."""
    yy, xx = np.mgrid[0:MODEL_SIZE, 0:MODEL_SIZE]
    pet = sum(np.exp(-(((xx - cx) / r) ** 2 + ((yy - cy) / r) ** 2)) for cx, cy, r in blobs)
    border = 0.25 + 0.1 * np.random.default_rng(0).random((MODEL_SIZE, MODEL_SIZE))
    stacked = np.stack([pet, 1.0 - np.clip(pet, 0.0, 1.0) + 0.05, border], axis=-1)
    return (stacked / stacked.sum(axis=-1, keepdims=True)).astype(np.float32)


def best_ms(run: Callable[[], object], repeats: int) -> float:
    """Fastest of `repeats` runs: the least disturbed by other work on the machine."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times) * 1e3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=4000)
    parser.add_argument("--height", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--min-fraction", type=float, default=0.01)
    args = parser.parse_args(argv)
    rows = []
    for scene, blobs in SCENES.items():
        probs = probabilities(blobs)
        segmentation = masks.upsample(probs, args.height, args.width)
        upsample_ms = best_ms(lambda p=probs: masks.upsample(p, args.height, args.width), args.repeats)
        regions_ms = best_ms(
            lambda s=segmentation: find_pets(s.labels, s.pet_probability, args.min_fraction), args.repeats
        )
        pets = find_pets(segmentation.labels, segmentation.pet_probability, args.min_fraction)
        rows.append(
            {
                "scene": scene,
                "megapixels": round(args.width * args.height / 1e6, 1),
                "upsample_ms": round(upsample_ms, 1),
                "find_pets_ms": round(regions_ms, 1),
                "find_pets_vs_upsample": round(regions_ms / upsample_ms, 2),
                "pets": len(pets),
            }
        )
        print(json.dumps(rows[-1]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
