"""Raw model speed, candidate against baseline, under TensorFlow and OpenVINO, in one run.

Issue 10's speed rule: a new model's raw throughput at batch 16 compiled by OpenVINO must be at least
v1's, measured side by side on the same machine in the same run; TensorFlow's numbers are reported
too. Both SavedModels' `serving_default` is called directly on random uint8 batches (no decoding, no
HTTP); the candidate is an export or an architecture from a preset, exported with random weights
(speed does not depend on their values). Rounds alternate between the models so that a machine
getting busier or quieter midway skews neither. Run it on an idle machine: the numbers are only as
good as the quiet.

OpenVINO converts the signature's concrete function: its TensorFlow front end cannot read these
SavedModels' variables from the directory itself ("Cannot find requested variable").
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

import petseg_contract as contract

RUNTIMES = ("tensorflow", "openvino")


class Runner:
    """One uint8 batch through an exported model's serving signature on `runtime`."""

    def __init__(self, model_dir: Path, runtime: str):
        if runtime not in RUNTIMES:
            raise ValueError(f"runtime must be one of {RUNTIMES}, not {runtime!r}")
        import tensorflow as tf  # here, so that the CLI can list RUNTIMES without loading TensorFlow

        self._tf = tf
        self._loaded = tf.saved_model.load(str(model_dir))  # keeps the signature's variables alive
        self._fn = self._loaded.signatures[contract.SIGNATURE_NAME]
        self.input_size = int(self._fn.structured_input_signature[1][contract.INPUT_NAME].shape[1])
        self._compiled = None
        if runtime == "openvino":
            import openvino as ov

            # Compiled as the service's latency compilation is (app/runtime.py): one stream, f32.
            # OpenVINO's default on CPUs with AMX is bf16, about 2x faster but outside the service's
            # 1e-4 startup check. The plain conversion: the service also rewrites the per-pixel class
            # softmax (about 1 ms per photo less), alike for every model with the contract's output.
            config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
            self._compiled = ov.Core().compile_model(ov.convert_model(self._fn), "CPU", config)

    def __call__(self, batch: np.ndarray) -> dict:
        if self._compiled is not None:
            return {out.get_any_name(): value for out, value in self._compiled(batch).items()}
        outputs = self._fn(**{contract.INPUT_NAME: self._tf.constant(batch)})
        return {k: v.numpy() for k, v in outputs.items()}


def export_preset(preset: str, out_dir: Path, input_size: int | None = None) -> Path:
    """A preset's architecture exported with random weights, for timing only."""
    from training.config import PRESETS, TrainConfig
    from training.export import write_savedmodel
    from training.model import model_from_config

    values = dict(PRESETS[preset])
    if input_size:
        values["input_size"] = input_size
    cfg = TrainConfig(data_dir="", run_dir="", **values)
    model = model_from_config(cfg, encoder_weights=None)
    target = out_dir / preset / "1"
    write_savedmodel(model, cfg.input_size, target)
    return target


def measure(
    models: dict[str, Path], runtimes: tuple[str, ...], batch_size: int, seconds: float, rounds: int = 3
) -> dict:
    """images/s per model and runtime (best of `rounds` alternating rounds), and candidate/baseline ratios."""
    rng = np.random.default_rng(0)
    results: dict[str, dict[str, dict]] = {}
    for runtime in runtimes:
        runners = {name: Runner(path, runtime) for name, path in models.items()}
        batches = {
            name: [
                rng.integers(0, 256, (batch_size, r.input_size, r.input_size, 3), np.uint8) for _ in range(4)
            ]
            for name, r in runners.items()
        }
        for name, run in runners.items():  # first calls build and compile for this shape
            for batch in batches[name][:2]:
                run(batch)
        best: dict[str, float] = {name: 0.0 for name in runners}
        for _ in range(rounds):
            for name, run in runners.items():
                calls, total = 0, 0.0
                deadline = time.perf_counter() + seconds / rounds
                while time.perf_counter() < deadline or calls < 3:
                    started = time.perf_counter()
                    run(batches[name][calls % 4])
                    total += time.perf_counter() - started
                    calls += 1
                best[name] = max(best[name], batch_size * calls / total)
        results[runtime] = {
            name: {"input_size": runners[name].input_size, "images_per_s": round(best[name], 2)}
            for name in runners
        }
    ratios = {
        runtime: round(r["candidate"]["images_per_s"] / r["baseline"]["images_per_s"], 3)
        for runtime, r in results.items()
    }
    return {
        "batch_size": batch_size,
        "models": {name: str(path) for name, path in models.items()},
        "images_per_s": results,
        "candidate_over_baseline": ratios,
    }


def compare(
    baseline: Path,
    candidate: Path | None,
    preset: str | None,
    runtimes: tuple[str, ...],
    batch_size: int = 16,
    seconds: float = 10.0,
    input_size: int | None = None,
) -> dict:
    """Time `candidate` (or `preset`'s architecture) against `baseline`; see the module docstring."""
    if (candidate is None) == (preset is None):
        raise ValueError("give exactly one of a candidate model directory and a preset")
    with tempfile.TemporaryDirectory(prefix="petseg-speed-") as tmp:
        target = candidate if candidate is not None else export_preset(str(preset), Path(tmp), input_size)
        report = measure({"baseline": baseline, "candidate": target}, runtimes, batch_size, seconds)
    if preset:
        report["models"]["candidate"] = f"preset {preset} (random weights)"
    return report
