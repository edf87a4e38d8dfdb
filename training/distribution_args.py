"""The `train` command's distribution options; no TensorFlow import here, so `--help` stays fast."""

from __future__ import annotations

import argparse
import dataclasses

from training.config import TrainConfig

STRATEGIES = ("default", "mirrored", "multi-worker")
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """--strategy, --virtual-devices, --precision and --no-scale-learning-rate (defaults: TrainConfig)."""
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    parser.add_argument(
        "--strategy",
        choices=STRATEGIES,
        default=defaults["strategy"],
        help="default: one device; mirrored: every visible GPU of this machine (or --virtual-devices "
        "CPUs); multi-worker: MultiWorkerMirroredStrategy over the workers listed in TF_CONFIG",
    )
    parser.add_argument(
        "--virtual-devices",
        type=int,
        default=defaults["virtual_devices"],
        help="with --strategy mirrored: split the CPU into this many logical devices (testing without GPUs)",
    )
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default=defaults["precision"],
        help="Keras mixed-precision policy; logits and exported probabilities stay float32. "
        "mixed_float16 pays on GPUs with tensor cores; mixed_bfloat16 gave no gain on 2 CPU cores",
    )
    parser.add_argument(
        "--no-scale-learning-rate",
        dest="scale_learning_rate",
        action="store_false",
        help="keep the learning rates as given; by default both are multiplied by the number of "
        "replicas in sync (linear scaling: the global batch grows with the replicas)",
    )
