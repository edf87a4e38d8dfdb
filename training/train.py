"""Keras `fit` in two phases: decoder on a frozen encoder, then (optionally) the encoder fine-tuned.

Everything a run produces lands in its run directory: config.json, data.json (what it saw),
history.csv, best.weights.h5 (best on validation mean IoU), timing.json, plots, and a backup that
lets an interrupted run resume where it stopped.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import sys
import time
from pathlib import Path

import keras
import numpy as np

from training import BREED, SEGMENTATION, SPECIES, distribute
from training import data as pet_data
from training.config import ConfigError, TrainConfig
from training.losses import MaskedSparseCrossEntropy, SegmentationLoss
from training.metrics import LabelAccuracy, training_metrics
from training.model import has_heads, load_release_weights, model_from_config, set_encoder_trainable

log = logging.getLogger(__name__)

BEST_WEIGHTS = "best.weights.h5"
HISTORY = "history.csv"
STATE = "state.json"


def monitor_name(cfg: TrainConfig) -> str:
    """The validation score checkpoints and early stopping follow: segmentation mean IoU.

    Keras prefixes a metric with its output's key once a model has several outputs.
    """
    return f"val_{SEGMENTATION}_mean_iou" if cfg.heads != "none" else "val_mean_iou"


class EpochTiming(keras.callbacks.Callback):
    """Wall time and images/s of every epoch, by phase, appended to timing.json."""

    def __init__(self, path: Path, phase: str, images_per_epoch: int, distribution: dict | None = None):
        super().__init__()
        self.path, self.phase, self.images = path, phase, images_per_epoch
        self.distribution = distribution or {}  # strategy and replicas_in_sync of the epoch

    def on_epoch_begin(self, epoch, logs=None):
        self._t0 = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - self._t0
        rows = json.loads(self.path.read_text()) if self.path.exists() else []
        rows.append(
            {
                "epoch": epoch + 1,
                "phase": self.phase,
                "seconds": round(seconds, 2),
                "train_images_per_s": round(self.images / seconds, 2),
                **self.distribution,
            }
        )
        self.path.write_text(json.dumps(rows, indent=1) + "\n")


def compile_model(model: keras.Model, cfg: TrainConfig, learning_rate: float) -> None:
    """Adam on the segmentation loss, plus (with the heads) the species and breed cross-entropies
    weighted by `species_weight` and `breed_weight`; unlabelled photos are masked out of those."""
    loss: dict = {SEGMENTATION: SegmentationLoss(dice_weight=cfg.dice_weight)}
    weights = {SEGMENTATION: 1.0}
    metrics: dict = {SEGMENTATION: training_metrics()}
    if has_heads(model):
        for key, weight in ((SPECIES, cfg.species_weight), (BREED, cfg.breed_weight)):
            loss[key] = MaskedSparseCrossEntropy(name=f"{key}_crossentropy")
            weights[key] = weight
            metrics[key] = [LabelAccuracy()]
    model.compile(
        optimizer=keras.optimizers.Adam(
            distribute.scaled_learning_rate(learning_rate, cfg.replicas_in_sync, cfg.scale_learning_rate)
        ),
        loss=loss,
        loss_weights=weights,
        metrics=metrics,
        jit_compile=False,
    )


def best_so_far(run_dir: Path, monitor: str) -> float | None:
    """Best validation score already logged, so a resumed run doesn't overwrite a better checkpoint."""
    path = run_dir / HISTORY
    if not path.exists():
        return None
    with path.open() as f:
        values = [float(r[monitor]) for r in csv.DictReader(f) if r.get(monitor)]
    return max(values) if values else None


def logged_epochs(run_dir: Path) -> int:
    path = run_dir / HISTORY
    return max(0, len(path.read_text().splitlines()) - 1) if path.exists() else 0


def callbacks(run_dir: Path, cfg: TrainConfig, phase: str, images_per_epoch: int) -> list:
    monitor = monitor_name(cfg)
    return [
        keras.callbacks.BackupAndRestore(str(run_dir / f"backup-{phase}")),
        keras.callbacks.ModelCheckpoint(
            str(run_dir / BEST_WEIGHTS),
            monitor=monitor,
            mode="max",
            save_best_only=True,
            save_weights_only=True,
            initial_value_threshold=best_so_far(run_dir, monitor),
        ),
        keras.callbacks.EarlyStopping(monitor=monitor, mode="max", patience=cfg.patience),
        keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=3, min_lr=1e-6),
        keras.callbacks.CSVLogger(str(run_dir / HISTORY), append=True),
        EpochTiming(
            run_dir / "timing.json",
            phase,
            images_per_epoch,
            {"strategy": cfg.strategy, "replicas_in_sync": cfg.replicas_in_sync},
        ),
        distribute.StopOnSigterm(),  # after BackupAndRestore: the epoch's backup is written first
    ]


def prepare_run(cfg: TrainConfig) -> TrainConfig:
    """Create the run directory, or resume one: an existing config.json wins over new arguments.

    Raises ConfigError (before anything is written or decoded) for a configuration that cannot train.
    """
    run_dir = Path(cfg.run_dir)
    if (run_dir / "config.json").exists():
        saved = TrainConfig.load(run_dir)
        saved.run_dir = str(run_dir)
        for name in distribute.RUNTIME_FIELDS:  # how this invocation runs comes from its command line
            setattr(saved, name, getattr(cfg, name))
        saved.validate()
        saved.save(run_dir)
        log.info("resuming run in %s with its recorded configuration", run_dir)
        return saved
    cfg.validate()
    if cfg.init_weights:
        # A few seconds of model building, so that weights of another architecture are refused
        # before the run directory exists: once its config.json is written, a resume would keep them.
        load_init_weights(model_from_config(cfg, encoder_weights=None), cfg.init_weights)
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg.save(run_dir)
    return cfg


def load_init_weights(model: keras.Model, init_weights: str) -> None:
    """Start `model` from a run's weights file or an exported SavedModel; ConfigError when they do
    not fit its architecture.

    The network is fully convolutional, so weights trained at one input size load at another: a cheap
    way to fine-tune a 128 px run at a larger size (progressive resizing).
    """
    try:
        if Path(init_weights).is_dir():
            load_release_weights(model, init_weights)
        else:
            model.load_weights(init_weights)
    except (ValueError, OSError) as exc:
        detail = str(exc.__cause__ or exc).strip().splitlines()[0][:200]  # one line, not every variable
        raise ConfigError(
            f"--init-weights {init_weights}: these weights do not fit the model this configuration builds "
            f"(--alpha, --decoder, --decoder-scale, --fine-channels and --heads must match theirs; the input "
            f"size may differ): {detail}"
        ) from exc


def load_training_data(cfg: TrainConfig):
    """Decode train and validation photos once into cached arrays; returns datasets and data.json."""
    source = pet_data.open_source(cfg.data_dir, cfg.seed)
    cache_size = round(cfg.input_size * cfg.cache_scale) if cfg.augment == "full" else cfg.input_size
    t0 = time.perf_counter()
    train = pet_data.load_arrays(source, "train", cache_size, cfg.seed, cfg.val_fraction)
    val = pet_data.load_arrays(source, "validation", cfg.input_size, cfg.seed, cfg.val_fraction)
    decode_s = time.perf_counter() - t0
    overlap = set(train.stems) & set(val.stems)
    if overlap:  # cannot happen with is_validation; guard the invariant the metrics rely on
        raise RuntimeError(f"train/validation overlap: {sorted(overlap)[:5]}")
    info = {
        "source": source.describe(),
        "decode_seconds": round(decode_s, 1),
        "splits": {"train": train.report.to_json(), "validation": val.report.to_json()},
        # Photos the lists give a species and breed; the others are masked out of the heads' loss.
        "labelled": {"train": int((train.breeds >= 0).sum()), "validation": int((val.breeds >= 0).sum())},
        "validation_stems": val.stems,
    }
    labels = cfg.heads != "none"
    train_ds = pet_data.train_dataset(
        train, cfg.batch_size, cfg.input_size, cfg.seed, full=cfg.augment == "full", labels=labels
    )
    val_batch, monitored = distribute.eval_batching(cfg.batch_size, len(val), cfg.replicas_in_sync or 1)
    info["validation_photos_monitored"] = monitored  # what val_* in history.csv scored; export scores all
    scored = dataclasses.replace(
        val,
        images=val.images[:monitored],
        masks=val.masks[:monitored],
        species=val.species[:monitored],
        breeds=val.breeds[:monitored],
        stems=val.stems[:monitored],
    )
    val_ds = pet_data.eval_dataset(scored, val_batch, labels=labels)
    train_ds, val_ds = distribute.shard_by_data(train_ds), distribute.shard_by_data(val_ds)
    return train_ds, val_ds, val, info, len(train)


def train(cfg: TrainConfig) -> dict:
    """Run (or resume) both phases under cfg.strategy; returns the best validation scores.

    Everything from the data pipeline to the last evaluation happens inside the strategy's scope; the
    chief writes cfg.run_dir, other workers a private copy (see training.distribute).
    """
    distribute.catch_sigterm()
    strategy = distribute.create_strategy(cfg.strategy, cfg.virtual_devices)
    distribute.per_replica_batch_size(cfg.batch_size, strategy.num_replicas_in_sync)
    log.info("strategy %s: %d replica(s) in sync", cfg.strategy, strategy.num_replicas_in_sync)
    with (
        distribute.worker_run_dir(cfg.run_dir, strategy) as run_dir,
        distribute.precision_policy(cfg.precision),
        strategy.scope(),
    ):
        cfg = dataclasses.replace(cfg, run_dir=str(run_dir), replicas_in_sync=strategy.num_replicas_in_sync)
        return train_phases(cfg)


def train_phases(cfg: TrainConfig) -> dict:
    """Both phases in this worker's run directory, within the strategy scope `train` entered."""
    cfg = prepare_run(cfg)
    run_dir = Path(cfg.run_dir)
    keras.utils.set_random_seed(cfg.seed)
    train_ds, val_ds, val, info, n_train = load_training_data(cfg)
    (run_dir / "data.json").write_text(json.dumps(info, indent=1) + "\n")
    log.info("data: %s", {k: v["loaded"] for k, v in info["splits"].items()})
    steps = cfg.steps_per_epoch
    if steps:
        train_ds = train_ds.repeat()
    images_per_epoch = (steps or max(1, n_train // cfg.batch_size)) * cfg.batch_size
    verbose = 1 if sys.stdout.isatty() else 2
    state = json.loads((run_dir / STATE).read_text()) if (run_dir / STATE).exists() else {}

    model = model_from_config(cfg, cfg.encoder_weights)
    if cfg.init_weights:
        load_init_weights(model, cfg.init_weights)
        if not (run_dir / BEST_WEIGHTS).exists():
            model.save_weights(run_dir / BEST_WEIGHTS)
    if cfg.epochs > 0 and not state.get("frozen_done"):
        compile_model(model, cfg, cfg.learning_rate)
        model.fit(
            train_ds,
            validation_data=val_ds,
            epochs=cfg.epochs,
            steps_per_epoch=steps,
            callbacks=callbacks(run_dir, cfg, "frozen", images_per_epoch),
            verbose=verbose,
        )
    if not state.get("frozen_done"):
        state["frozen_done"] = True
        state["frozen_epochs"] = logged_epochs(run_dir)
        (run_dir / STATE).write_text(json.dumps(state) + "\n")

    if cfg.fine_tune_epochs > 0 and not state.get("fine_tune_done"):
        model.load_weights(run_dir / BEST_WEIGHTS)
        set_encoder_trainable(model, True, cfg.fine_tune_from)
        compile_model(model, cfg, cfg.fine_tune_learning_rate)
        start = state["frozen_epochs"]
        model.fit(
            train_ds,
            validation_data=val_ds,
            initial_epoch=start,
            epochs=start + cfg.fine_tune_epochs,
            steps_per_epoch=steps,
            callbacks=callbacks(run_dir, cfg, "fine_tune", images_per_epoch),
            verbose=verbose,
        )
        state["fine_tune_done"] = True
        (run_dir / STATE).write_text(json.dumps(state) + "\n")

    model.load_weights(run_dir / BEST_WEIGHTS)
    compile_model(model, cfg, cfg.learning_rate)
    best = model.evaluate(val_ds, return_dict=True, verbose=0)
    best = {k: float(v) for k, v in best.items()}
    (run_dir / "best_validation.json").write_text(json.dumps(best, indent=1) + "\n")

    from training import plots

    plots.plot_history(run_dir / HISTORY, run_dir / "curves.png")
    k = min(6, len(val))
    logits = model.predict(val.images[:k].astype(np.float32), verbose=0)[SEGMENTATION]
    plots.plot_predictions(
        val.images[:k], val.masks[:k, ..., 0], logits.argmax(-1), val.stems[:k], run_dir / "predictions.png"
    )
    return best
