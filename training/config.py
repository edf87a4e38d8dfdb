"""A training run's configuration: recorded in the run directory, travels into metadata.json.

`TrainConfig` is the one source of every training option: its fields carry their defaults and help
text, and `python -m training train` builds its flags from them. `PRESETS` are named sets of
defaults (explicit flags override them).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CONFIG_FILE = "config.json"
DATA_HELP = (
    "photos: a directory in the official Oxford-IIIT Pet layout (e.g. ../shared/data/oxford-iiit-pet), "
    "'tfds' or 'tfds:DIR' for tensorflow-datasets' oxford_iiit_pet (downloads once), or 'synthetic' "
    "for a tiny generated set (smoke runs, seconds)"
)
HEADS = ("none", "species-breed")
DECODERS = ("pix2pix", "light")
AUGMENTATIONS = ("full", "flip")


class ConfigError(ValueError):
    """A configuration that cannot train; the message says which option to change."""


def option(default: Any, help: str, choices: tuple[str, ...] | None = None) -> Any:
    """A config field with its CLI help (and allowed values) attached, read by training.cli."""
    return field(default=default, metadata={"help": help, "choices": choices})


@dataclass
class TrainConfig:
    data_dir: str = field(metadata={"help": DATA_HELP})
    run_dir: str = field(metadata={"help": "where config, history, checkpoints and plots go"})
    epochs: int = option(20, "phase 1: decoder (and heads) on the frozen encoder")
    fine_tune_epochs: int = option(0, "phase 2: encoder unfrozen (0 = skip)")
    input_size: int = option(128, "square model input in pixels")
    batch_size: int = option(
        32, "photos per training step, over all replicas in sync (per replica = global / replicas)"
    )
    encoder_weights: str = option(
        "imagenet", "'imagenet' (Keras download), a path to a MobileNetV2 .weights.h5, or 'none'"
    )
    seed: int = option(0, "seed of the validation slice, shuffling, augmentation and initialisation")
    val_fraction: float = option(0.1, "seeded slice of trainval for validation")
    learning_rate: float = option(1e-3, "Adam learning rate of phase 1")
    fine_tune_learning_rate: float = option(1e-4, "Adam learning rate of phase 2")
    fine_tune_from: str | None = option(
        None, "first encoder layer to unfreeze in phase 2 (e.g. block_13_expand); default: all"
    )
    dice_weight: float = option(0.0, "weight of a soft Dice term added to the segmentation CE")
    augment: str = option(
        "full", "full: random resized crop + flip + colour jitter; flip: the seed's flip only", AUGMENTATIONS
    )
    cache_scale: float = option(
        1.25, "training photos are cached at this multiple of input-size, then cropped (augment full)"
    )
    alpha: float = option(1.0, "MobileNetV2 width (<1 only for tiny test models)")
    decoder: str = option(
        "pix2pix",
        "pix2pix: the seed's 3x3 transposed convolutions on concatenated skips; light: 1x1 skip "
        "reductions to 96 channels, bilinear x2 and one depthwise-separable 3x3 per level",
        DECODERS,
    )
    decoder_scale: float = option(1.0, "decoder width multiplier")
    fine_channels: int | None = option(
        None,
        "light decoder: channels of its 1/2-resolution level (its costliest); default: as the others (96)",
    )
    heads: str = option(
        "species-breed",
        "species-breed: also train species (2) and breed (37) heads on the encoder's deepest feature; "
        "none: segmentation only",
        HEADS,
    )
    species_weight: float = option(0.1, "weight of the species cross-entropy in the total loss")
    breed_weight: float = option(0.1, "weight of the breed cross-entropy in the total loss")
    head_dropout: float = option(0.2, "dropout before the species/breed dense layers")
    patience: int = option(6, "early stopping patience (epochs) on validation mean IoU")
    steps_per_epoch: int | None = option(None, "cap steps per epoch (smoke runs)")
    name: str = option("pet-unet", "model name recorded in the run")
    init_weights: str | None = option(
        None,
        "start from a run's best.weights.h5 or an exported SavedModel (e.g. models/pet-unet/5) with the "
        "same architecture (e.g. fine-tune a 128 px run at 192 px); needed with --epochs 0, which goes "
        "straight to fine-tuning",
    )
    preset: str | None = field(default=None, metadata={"cli": False})  # recorded; set by --preset
    # Distribution (training/distribute.py), flags from training/distribution_args.py; batch_size above is
    # the global batch over all replicas.
    strategy: str = field(default="default", metadata={"cli": False})  # default, mirrored, multi-worker
    virtual_devices: int = field(default=0, metadata={"cli": False})  # logical CPUs for mirrored (tests)
    precision: str = field(default="float32", metadata={"cli": False})  # Keras mixed-precision policy
    scale_learning_rate: bool = field(default=True, metadata={"cli": False})  # learning rates x replicas
    replicas_in_sync: int | None = field(default=None, metadata={"cli": False})  # recorded by the run

    def save(self, run_dir: Path) -> None:
        (run_dir / CONFIG_FILE).write_text(json.dumps(dataclasses.asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, run_dir: str | Path) -> TrainConfig:
        data = json.loads((Path(run_dir) / CONFIG_FILE).read_text())
        # Runs recorded before these options existed had the seed's decoder and no heads.
        data.setdefault("decoder", "pix2pix")
        data.setdefault("heads", "none")
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def validate(self) -> None:
        """Raise ConfigError for a configuration that would fail only after decoding the data."""
        for name, allowed in (("heads", HEADS), ("decoder", DECODERS), ("augment", AUGMENTATIONS)):
            if getattr(self, name) not in allowed:
                raise ConfigError(
                    f"--{name} must be one of {', '.join(allowed)}, not {getattr(self, name)!r}"
                )
        if self.epochs < 0 or self.fine_tune_epochs < 0:
            raise ConfigError("--epochs and --fine-tune-epochs cannot be negative")
        if self.epochs == 0 and not self.init_weights:
            raise ConfigError(
                "--epochs 0 skips phase 1, so there are no weights to fine-tune or export: "
                "pass --init-weights RUN/best.weights.h5, or train at least one epoch"
            )
        if self.init_weights and not (
            Path(self.init_weights).is_file() or (Path(self.init_weights) / "saved_model.pb").is_file()
        ):
            raise ConfigError(
                f"--init-weights {self.init_weights}: neither a weights file nor an exported SavedModel"
            )


# Named starting points for `--preset`; explicit flags override any value here.
PRESETS: dict[str, dict[str, Any]] = {
    # The tutorial this project grew from: ImageNet MobileNetV2 frozen, pix2pix transposed-convolution
    # decoder, 128 px, flip augmentation, Adam at 1e-3, batch 64, 20 epochs, segmentation only.
    # patience 20 = no early stopping within the 20 epochs, as in the tutorial.
    "seed": {
        "input_size": 128,
        "decoder": "pix2pix",
        "decoder_scale": 1.0,
        "heads": "none",
        "encoder_weights": "imagenet",
        "augment": "flip",
        "epochs": 20,
        "fine_tune_epochs": 0,
        "batch_size": 64,
        "learning_rate": 1e-3,
        "dice_weight": 0.0,
        "patience": 20,
    },
    # The candidate v2 design of issue 10: light decoder at 224 px (no more compute than v1's
    # pix2pix at 160 px), species and breed heads, full augmentation, then the whole encoder
    # fine-tuned. A starting point for the validation runs, not a measured winner.
    "v2": {
        "input_size": 224,
        "decoder": "light",
        "decoder_scale": 1.0,
        "heads": "species-breed",
        "encoder_weights": "imagenet",
        "augment": "full",
        "epochs": 12,
        "fine_tune_epochs": 12,
        "batch_size": 32,
        "learning_rate": 1e-3,
        "fine_tune_learning_rate": 1e-4,
        "dice_weight": 0.5,
        "species_weight": 0.1,
        "breed_weight": 0.1,
        "name": "pet-unet",
    },
    # v2 with its 1/2-resolution decoder level narrowed to 32 channels (the level cost as much as
    # the encoder, making v2 slower than v1 at f32 under OpenVINO), more frozen epochs (v2's best
    # validation came at its last frozen epochs) and a 10x gentler fine-tuning (v2's at 1e-4 never
    # improved on the frozen phase).
    "v3": {
        "input_size": 224,
        "decoder": "light",
        "decoder_scale": 1.0,
        "fine_channels": 32,
        "heads": "species-breed",
        "encoder_weights": "imagenet",
        "augment": "full",
        "epochs": 12,
        "fine_tune_epochs": 8,
        "batch_size": 32,
        "learning_rate": 1e-3,
        "fine_tune_learning_rate": 1e-5,
        "dice_weight": 0.5,
        "species_weight": 0.1,
        "breed_weight": 0.1,
        "name": "pet-unet",
    },
}
