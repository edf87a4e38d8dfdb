"""How much the input pipeline adds to a training step on this machine.

Three timings over the same number of steps: the pipeline alone (batches/s), training steps on one
batch already in memory (no pipeline), and training steps fed by the pipeline. The difference of the
last two is what the pipeline costs per step once prefetching overlaps it with compute.
"""

from __future__ import annotations

import time

import numpy as np

from training import data as pet_data
from training.config import TrainConfig
from training.model import model_from_config
from training.train import compile_model


def _timed(fn, steps: int) -> float:
    t0 = time.perf_counter()
    fn(steps)
    return (time.perf_counter() - t0) / steps


def benchmark_input(args) -> dict:
    cfg = TrainConfig(
        data_dir=args.data_dir,
        run_dir="",
        input_size=args.input_size,
        batch_size=args.batch_size,
        encoder_weights=args.encoder_weights,
        augment=args.augment,
        decoder=args.decoder,
        heads=args.heads,
    )
    source = pet_data.open_source(cfg.data_dir, cfg.seed)
    cache = round(cfg.input_size * cfg.cache_scale) if cfg.augment == "full" else cfg.input_size
    t0 = time.perf_counter()
    arrays = pet_data.load_arrays(source, "train", cache, cfg.seed, cfg.val_fraction)
    decode_s = time.perf_counter() - t0
    ds = pet_data.train_dataset(
        arrays,
        cfg.batch_size,
        cfg.input_size,
        cfg.seed,
        full=cfg.augment == "full",
        labels=cfg.heads != "none",
    ).repeat()
    it = iter(ds)
    next(it)  # fill the cache and prefetch buffer before timing

    def pipeline_only(n):
        for _ in range(n):
            next(it)

    per_batch_pipeline = _timed(pipeline_only, args.steps)

    model = model_from_config(cfg, cfg.encoder_weights)
    compile_model(model, cfg, cfg.learning_rate)
    x, y = next(it)
    x, y = np.asarray(x), {k: np.asarray(v) for k, v in y.items()}
    model.train_on_batch(x, y)  # trace once

    def fixed_batch(n):
        for _ in range(n):
            model.train_on_batch(x, y)

    def fed(n):
        model.fit(ds, steps_per_epoch=n, epochs=1, verbose=0)

    model.fit(ds, steps_per_epoch=1, epochs=1, verbose=0)  # trace the fit path too
    step_fixed = _timed(fixed_batch, args.steps)
    step_fed = _timed(fed, args.steps)
    return {
        "photos": arrays.report.loaded,
        "decode_once_seconds": round(decode_s, 2),
        "batch_size": cfg.batch_size,
        "pipeline_alone_ms_per_batch": round(per_batch_pipeline * 1e3, 1),
        "pipeline_alone_images_per_s": round(cfg.batch_size / per_batch_pipeline, 1),
        "train_step_in_memory_ms": round(step_fixed * 1e3, 1),
        "train_step_with_pipeline_ms": round(step_fed * 1e3, 1),
        "pipeline_adds_ms_per_step": round((step_fed - step_fixed) * 1e3, 1),
        "train_images_per_s": round(cfg.batch_size / step_fed, 1),
    }
