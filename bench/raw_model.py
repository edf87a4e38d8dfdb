"""The ceiling: the SavedModel's signature called directly on pre-resized photos, no HTTP, no imaging.

`--backend tensorflow` calls the signature through TensorFlow; `--backend openvino` calls the same
signature frozen, converted and compiled by OpenVINO with nothing rewritten (issue 11's baseline: what
anyone gets from `openvino.convert_model`); `--backend openvino-served` calls it as the service compiles
it (app.runtime: the class softmax rewritten per channel). Run in its own
process (`python -m bench.raw_model --model-dir DIR --backend B`) so the runtime's thread pools are set
up exactly as in a server process; prints one JSON object.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import time
from pathlib import Path

import numpy as np


def measure(
    model_dir: Path,
    batch_sizes: list[int],
    seconds: float,
    data_dir: Path | None,
    photo_files: list[Path] | None = None,
    backend: str = "tensorflow",
) -> dict:
    import tensorflow as tf
    from PIL import Image

    from app.runtime import OpenVINORuntime
    from bench.photos import DEFAULT_DATA_DIR, choose_photos

    size = int(json.loads((model_dir / "metadata.json").read_text())["input_size"])
    loaded = tf.saved_model.load(str(model_dir))
    signature = loaded.signatures["serving_default"]
    if backend.startswith("openvino"):
        compiled = OpenVINORuntime.from_signature(signature, ("probabilities",), plain=backend == "openvino")

        def call(batch: np.ndarray) -> np.ndarray:
            return compiled.predict(batch)["probabilities"]
    else:

        def call(batch: np.ndarray) -> np.ndarray:
            return signature(images=tf.constant(batch))["probabilities"].numpy()

    photos = choose_photos(data_dir or DEFAULT_DATA_DIR, photo_files)
    inputs = np.stack(
        [np.asarray(Image.open(io.BytesIO(p.data)).convert("RGB").resize((size, size))) for p in photos]
    )
    results = {}
    for batch_size in batch_sizes:
        batches = [np.take(inputs, range(i, i + batch_size), axis=0, mode="wrap") for i in range(8)]
        for batch in batches[:3]:  # first calls build the graph for this shape
            call(batch)
        calls = []
        cpu_started = time.process_time()
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline or len(calls) < 5:
            batch = batches[len(calls) % len(batches)]
            started = time.perf_counter()
            call(batch)
            calls.append(time.perf_counter() - started)
        results[batch_size] = {
            "images_per_s": round(batch_size * len(calls) / sum(calls), 2),
            "median_call_ms": round(statistics.median(calls) * 1e3, 2),
            "cpu_ms_per_image": round(
                (time.process_time() - cpu_started) * 1e3 / (batch_size * len(calls)), 2
            ),
            "calls": len(calls),
        }
    best = max(results, key=lambda b: results[b]["images_per_s"])
    return {"backend": backend, "input_size": size, "batches": results, "best_batch_size": best}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model-dir", type=Path, required=True, help="a SavedModel version directory")
    parser.add_argument("--batch-sizes", default="1,2,4,8,16,32")
    parser.add_argument("--seconds", type=float, default=5.0, help="per batch size")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--photo", type=Path, action="append", help="use this photo file (repeatable)")
    parser.add_argument(
        "--backend", choices=["tensorflow", "openvino", "openvino-served"], default="tensorflow"
    )
    args = parser.parse_args()
    sizes = [int(b) for b in args.batch_sizes.split(",")]
    print(json.dumps(measure(args.model_dir, sizes, args.seconds, args.data_dir, args.photo, args.backend)))


if __name__ == "__main__":
    main()
