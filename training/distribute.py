"""Training on more than one device: tf.distribute strategies, replica-aware settings, chief-only writes.

`--strategy default` is one device, as before. `mirrored` copies the model onto every visible GPU (or,
with `--virtual-devices N`, onto N logical CPU devices, for tests on CPU-only machines).
`multi-worker` is MultiWorkerMirroredStrategy, configured by the standard TF_CONFIG variable.

Every worker trains in step; only the chief writes the run directory. The other workers follow the TF
multi-worker Keras guide: they write the same files into a private temporary directory that is removed
at the end. They start from a snapshot of the chief's run directory (which must therefore be on storage
all workers share), so a resumed run restores the same backup, epoch and best score on every worker.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import keras
import tensorflow as tf

from training.distribution_args import PRECISIONS, STRATEGIES

log = logging.getLogger(__name__)

# Fields of TrainConfig that describe how this invocation runs, not the training recipe: a resumed run
# takes them from the command line (a run started on one GPU may resume on two), not from config.json.
RUNTIME_FIELDS = ("strategy", "virtual_devices", "precision", "replicas_in_sync")


def tf_config() -> dict:
    """The parsed TF_CONFIG environment variable ({} when unset)."""
    raw = os.environ.get("TF_CONFIG", "")
    if not raw.strip():
        return {}
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as e:
        raise ValueError(f"TF_CONFIG is not valid JSON: {e}") from None
    if not isinstance(config.get("cluster"), dict) or not isinstance(config.get("task"), dict):
        raise ValueError(
            'TF_CONFIG needs "cluster" and "task", e.g. {"cluster": {"worker": [...]}, '
            '"task": {"type": "worker", "index": 0}}'
        )
    return config


def split_cpu(n: int) -> None:
    """Split the first physical CPU into `n` logical devices; must run before TensorFlow uses a device."""
    (cpu, *_) = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * n)
    except RuntimeError as e:
        raise RuntimeError(f"--virtual-devices must be applied before TensorFlow initialises: {e}") from None


def create_strategy(name: str, virtual_devices: int = 0) -> tf.distribute.Strategy:
    """The tf.distribute strategy for `--strategy`; create it before any other TensorFlow work."""
    if name not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, not {name!r}")
    if virtual_devices < 0 or (virtual_devices and name != "mirrored"):
        raise ValueError("--virtual-devices N (N >= 1) goes with --strategy mirrored only")
    if name == "default":
        return tf.distribute.get_strategy()
    # tf.distribute logs every variable's reduction plan at INFO; the CLI's INFO logging would show them.
    logging.getLogger("tensorflow").setLevel(logging.WARNING)
    if name == "mirrored":
        if virtual_devices:
            split_cpu(virtual_devices)
            devices = [d.name for d in tf.config.list_logical_devices("CPU")]
            # Plain reduction on the host: NCCL (the GPU default) does not exist for CPU devices.
            return tf.distribute.MirroredStrategy(
                devices, cross_device_ops=tf.distribute.ReductionToOneDevice()
            )
        return tf.distribute.MirroredStrategy()  # every visible GPU; the CPU alone when there is none
    if not tf_config():
        raise ValueError("--strategy multi-worker needs TF_CONFIG (see docs/distributed-training.md)")
    patch_keras_for_multi_worker()
    return tf.distribute.MultiWorkerMirroredStrategy()


def is_chief_task(config: dict) -> bool:
    """Whether TF_CONFIG names this process the chief: the `chief` task, or worker 0 when there is none."""
    task = config.get("task") or {}
    if task.get("type") in (None, "chief"):
        return True
    return task["type"] == "worker" and task.get("index", 0) == 0 and "chief" not in config["cluster"]


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """The worker that writes the run directory; always this process on a single machine."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return True
    return is_chief_task(tf_config())


def per_replica_batch_size(global_batch_size: int, replicas: int) -> int:
    """Each replica's share of the global batch; the global size must split evenly."""
    if global_batch_size % replicas:
        raise ValueError(
            f"--batch-size {global_batch_size} is the global batch and must be a multiple of the "
            f"{replicas} replicas in sync"
        )
    return global_batch_size // replicas


def _even_batch(examples: int, global_batch_size: int, replicas: int) -> int | None:
    """The largest batch (a multiple of the replicas) whose batches all split without an empty share."""
    for size in range(min(global_batch_size, examples) // replicas * replicas, 0, -replicas):
        if examples % size == 0 or examples % size >= replicas:
            return size
    return None


def eval_batching(global_batch_size: int, examples: int, replicas: int) -> tuple[int, int]:
    """(batch size, photos to use) for evaluating a split during training on `replicas` replicas.

    Keras builds a distributed model by averaging the first batch over the replicas, so that batch
    must split evenly; and a last batch smaller than the replicas leaves one of them an empty share,
    which oneDNN's CPU convolution rejects. The largest batch avoiding both keeps every photo; when
    there is none, the split's last `examples % replicas` photos (fewer than the replicas) are left out.
    """
    if replicas == 1:
        return global_batch_size, examples
    if examples < replicas:
        raise ValueError(f"{examples} validation photos cannot feed {replicas} replicas in sync")
    size = _even_batch(examples, global_batch_size, replicas)
    if size:
        return size, examples
    kept = examples - examples % replicas
    size = _even_batch(kept, global_batch_size, replicas)
    if size is None:  # only when the global batch is smaller than the replicas
        raise ValueError(f"a global batch of {global_batch_size} cannot feed {replicas} replicas in sync")
    return size, kept


def scaled_learning_rate(learning_rate: float, replicas: int | None, scale: bool = True) -> float:
    """Linear scaling rule: the global batch grows with the replicas, so the step size does too."""
    return learning_rate * (replicas or 1) if scale else learning_rate


def shard_by_data(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """Auto-shard by element: the in-memory pipeline has no files to shard by.

    Every worker builds the same seeded, shuffled pipeline, so taking every n-th element gives each
    worker a disjoint part of every global batch. Single-worker strategies ignore the option.
    """
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def barrier(strategy: tf.distribute.Strategy) -> None:
    """Wait until every worker got here (an all-reduce of one number)."""
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        # In a tf.function: run eagerly, this strategy warns of overhead.
        tf.function(
            lambda: strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(tf.ones, ((),)), axis=None)
        )()


@contextlib.contextmanager
def worker_run_dir(run_dir: str | Path, strategy: tf.distribute.Strategy) -> Iterator[Path]:
    """The directory this worker writes: the run directory on the chief, a removed snapshot elsewhere.

    The snapshot is taken before the chief writes anything (a barrier separates the two), so every
    worker sees the same config, history, best score and backup when a run resumes.
    """
    run_dir = Path(run_dir)
    if is_chief(strategy):
        barrier(strategy)
        yield run_dir
        return
    private = Path(tempfile.mkdtemp(prefix="petseg-worker-"))
    try:
        if run_dir.is_dir():
            shutil.copytree(run_dir, private, dirs_exist_ok=True)
        barrier(strategy)
        yield private
    finally:
        shutil.rmtree(private, ignore_errors=True)


def patch_keras_for_multi_worker() -> None:
    """Work around keras-team/keras#20585: Keras 3's `fit` fails under MultiWorkerMirroredStrategy.

    Two spots of Keras' TensorFlow trainer reduce across workers in ways this strategy rejects:
    - before fit/evaluate it builds the model from the first batch averaged over the replicas, with
      one `strategy.reduce` over the whole (images, masks) structure (it reduces single tensors only);
      building needs shapes, not an average, so this worker's own first share is used instead;
    - every step it averages the scalar logs with `strategy.reduce(MEAN, axis=0)`, which has no axis
      0 on a scalar; axis=None averages them across all replicas, as on a single machine.
    Applied only when the multi-worker strategy is created.
    """
    from keras.src.backend.tensorflow import trainer as tf_trainer

    if getattr(tf_trainer, "_petseg_multi_worker_patch", False):
        return
    keras_reduce = tf_trainer.reduce_per_replica
    keras_build = tf_trainer.TensorFlowTrainer._maybe_symbolic_build

    def reduce_per_replica(values, strategy, reduction="auto"):
        if reduction in ("auto", "mean") and isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
            return keras.tree.map_structure(
                lambda v: (
                    strategy.reduce("MEAN", v, axis=None)
                    if isinstance(v, tf.distribute.DistributedValues)
                    else v
                ),
                values,
            )
        return keras_reduce(values, strategy, reduction)

    def maybe_symbolic_build(self, iterator=None, data_batch=None):
        strategy = self.distribute_strategy
        if iterator is not None and isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
            for _, _, batches in iterator:
                data_batch = keras.tree.map_structure(
                    lambda v: (
                        strategy.experimental_local_results(v)[0]
                        if isinstance(v, tf.distribute.DistributedValues)
                        else v
                    ),
                    next(batches),
                )
                break
            iterator = None
        return keras_build(self, iterator=iterator, data_batch=data_batch)

    tf_trainer.reduce_per_replica = reduce_per_replica
    tf_trainer.TensorFlowTrainer._maybe_symbolic_build = maybe_symbolic_build
    tf_trainer._petseg_multi_worker_patch = True


@contextlib.contextmanager
def precision_policy(name: str) -> Iterator[None]:
    """Use a Keras mixed-precision policy for the models built inside; restores the previous one."""
    if name not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, not {name!r}")
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(name)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


class Interrupted(RuntimeError):
    """Training stopped at an epoch end on SIGTERM; its backup is kept, so a rerun resumes."""


_sigterm = threading.Event()


def catch_sigterm() -> None:
    """From now on, SIGTERM (a preempted pod, `kubectl delete`) stops training at the next epoch end.

    Installed before the data is loaded, so a signal that arrives early is not lost.
    """

    def handler(signum, frame):
        log.warning("SIGTERM: stopping after this epoch's backup")
        _sigterm.set()

    if threading.current_thread() is threading.main_thread():  # Python delivers signals only there
        signal.signal(signal.SIGTERM, handler)


class StopOnSigterm(keras.callbacks.Callback):
    """Raise `Interrupted` at the end of the epoch during which SIGTERM arrived.

    Listed after BackupAndRestore, so the epoch's backup is written first. It raises instead of
    setting `stop_training`: a normal end of `fit` would delete the backup.
    """

    def on_epoch_end(self, epoch, logs=None):
        if _sigterm.is_set():
            raise Interrupted(f"interrupted by SIGTERM after epoch {epoch + 1}; rerun the command to resume")
