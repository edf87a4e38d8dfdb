"""A training run's configuration: recorded in the run directory, travels into metadata.json."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

CONFIG_FILE = "config.json"


@dataclass
class TrainConfig:
    data_dir: str
    run_dir: str
    epochs: int = 20
    fine_tune_epochs: int = 0
    input_size: int = 128
    batch_size: int = 32
    encoder_weights: str = "imagenet"
    seed: int = 0
    val_fraction: float = 0.1
    learning_rate: float = 1e-3
    fine_tune_learning_rate: float = 1e-4
    fine_tune_from: str | None = None  # first encoder layer to unfreeze; None = the whole encoder
    dice_weight: float = 0.0
    augment: str = "full"  # "full" (crop + flip + colour jitter) or "flip" (the seed's)
    cache_scale: float = 1.25  # training photos are cached at this multiple of input_size, then cropped
    alpha: float = 1.0  # MobileNetV2 width; < 1 only for tiny test models
    decoder_scale: float = 1.0
    patience: int = 6  # early stopping on validation mean IoU
    steps_per_epoch: int | None = None  # cap, for smoke runs
    name: str = "pet-unet"
    init_weights: str | None = None  # start from another run's best.weights.h5 (any input size)
    # Distribution (training/distribute.py); batch_size above is the global batch over all replicas.
    strategy: str = "default"  # "default", "mirrored" or "multi-worker"
    virtual_devices: int = 0  # logical CPU devices for "mirrored" without GPUs (tests)
    precision: str = "float32"  # Keras mixed-precision policy
    scale_learning_rate: bool = True  # learning rates x replicas_in_sync (linear scaling rule)
    replicas_in_sync: int | None = None  # recorded by the run, not chosen

    def save(self, run_dir: Path) -> None:
        (run_dir / CONFIG_FILE).write_text(json.dumps(dataclasses.asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, run_dir: str | Path) -> TrainConfig:
        data = json.loads((Path(run_dir) / CONFIG_FILE).read_text())
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})
