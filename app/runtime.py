"""Inference runtimes for the one SavedModel: TensorFlow itself, or the same graph compiled by OpenVINO.

The SavedModel stays the only artifact and contract. The OpenVINO runtime is built from the loaded
model's `serving_default` at startup (frozen, converted, compiled for the CPU) and is only used after
it gave TensorFlow's answers on a fixed input (`check_agreement`). Both runtimes take uint8
[N, S, S, 3] photos and return every contract output the model has, by name.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import queue
import threading
from typing import Any, Literal, Protocol

import numpy as np

from app.settings import ModelDirError, usable_cores
from petseg_contract import INPUT_NAME

logger = logging.getLogger(__name__)

Backend = Literal["tensorflow", "openvino"]
# CPUs with AMX/AVX512-BF16 default to bf16 inference, which moved probabilities by ~3e-2 on the
# release model and would fail the startup check; f32 keeps OpenVINO within ~1e-6 of TensorFlow.
OPENVINO_PRECISION = {"INFERENCE_PRECISION_HINT": "f32"}
# The CPU plugin keeps, per input shape it has run, the executors it built for that shape (up to 5,000
# entries). The batcher sends every batch size from 1 to PETSEG_MAX_BATCH_SIZE, on each compilation and
# stream: on the release model that held about 110 MB more by the time all had been seen, 37 MB
# without the cache; rebuilding them is cheap next to the convolutions (per-image time unchanged within
# noise, interleaved A/B with random batch sizes, docs/runtime.md).
OPENVINO_NO_SHAPE_CACHE = {"CPU_RUNTIME_CACHE_CAPACITY": 0}


def openvino_config(streams: int, threads: int = 0) -> dict[str, str | int]:
    """One stream over every core (LATENCY) for one batch at a time; with `streams` > 1, that many
    streams sharing the cores (THROUGHPUT), each running its own batch without waiting for the
    others' threads. `threads` > 0 caps the threads of all streams together."""
    config: dict[str, str | int] = {**OPENVINO_PRECISION, **OPENVINO_NO_SHAPE_CACHE}
    if streams > 1:
        config.update({"PERFORMANCE_HINT": "THROUGHPUT", "NUM_STREAMS": streams})
    else:
        config["PERFORMANCE_HINT"] = "LATENCY"
    if threads > 0:
        config["INFERENCE_NUM_THREADS"] = threads
    return config


# Most photos per forward pass when PETSEG_MAX_BATCH_SIZE is 0 (its default), per runtime. OpenVINO on
# the CPU runs best in small batches, one per stream: raw on the release model (2 cores, 2 streams, one
# batch each at once) 2 x batch 2 or 4 gave 124-126 images/s at 16 CPU-ms per image, batch 8 103 and
# batch 16 95 (19-21 ms: activations no longer fit the caches); the service at 16 clients gave 67.6-78.6
# req/s with at most 2 against 54.4-61.3 with 16, at 2-5 CPU-ms less per request, and 0.6 GB less
# memory after the warm-up (docs/runtime.md). TensorFlow, on a GPU or on a CPU without OpenVINO, gains from
# bigger batches (raw on the CPU: 54 images/s at batch 2, 64 at 16).
OPENVINO_BATCH_SIZE = 2
TENSORFLOW_BATCH_SIZE = 16

# The fixed input of the startup check: two deterministic pseudo-random photos (a batch > 1, so a
# runtime that mixes up photos in a batch is caught too).
CHECK_SEED = 20240611
CHECK_BATCH = 2


class RuntimeDisagreement(ModelDirError):
    """A runtime's outputs differ from TensorFlow's beyond the tolerance: the service must not start."""


class Runtime(Protocol):
    """What the segmenter needs of a runtime."""

    backend: Backend
    output_names: tuple[str, ...]
    streams: int  # batches it runs at once without them waiting on each other's threads
    batch_size: int  # the most photos per forward pass it runs best with (PETSEG_MAX_BATCH_SIZE=0)

    def predict(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """uint8 [n, S, S, 3] → each output in `output_names`, float32 with leading dimension n."""
        ...

    def warm_up(self, images: np.ndarray) -> None:
        """Run `images` (the largest batch the service sends) once on every stream the runtime has."""
        ...


class TensorFlowRuntime:
    """The SavedModel's signature called through TensorFlow (CPU or GPU)."""

    backend: Backend = "tensorflow"
    streams = 1
    batch_size = TENSORFLOW_BATCH_SIZE

    def __init__(self, signature: Any, output_names: tuple[str, ...]) -> None:
        self._signature = signature
        self.output_names = output_names

    def predict(self, images: np.ndarray) -> dict[str, np.ndarray]:
        import tensorflow as tf

        outputs = self._signature(**{INPUT_NAME: tf.constant(images, dtype=tf.uint8)})
        return {name: outputs[name].numpy() for name in self.output_names}

    def warm_up(self, images: np.ndarray) -> None:
        self.predict(images)


class OpenVINORuntime:
    """The same signature frozen to constants and compiled by OpenVINO for the CPU, dynamic batch."""

    backend: Backend = "openvino"
    batch_size = OPENVINO_BATCH_SIZE

    def __init__(self, compiled: Any, output_names: tuple[str, ...], streams: int = 1) -> None:
        self._compiled = compiled
        # An infer request serves one call at a time: one per stream, each lent to one caller (a
        # batcher worker, the warm-up, tests) and given back, so concurrent calls never share one.
        self._requests: queue.SimpleQueue[Any] = queue.SimpleQueue()
        for _ in range(streams):
            self._requests.put(compiled.create_infer_request())
        self._outputs = [compiled.output(name) for name in output_names]
        self.output_names = output_names
        self.streams = streams

    @classmethod
    def from_signature(
        cls,
        signature: Any,
        output_names: tuple[str, ...],
        *,
        threads: int = 0,
        streams: int = 1,
        plain: bool = False,
    ) -> OpenVINORuntime:
        """`convert_signature`, then `compile`: for one compilation of a signature."""
        model = convert_signature(signature, output_names, plain=plain)
        return cls.compile(model, output_names, threads=threads, streams=streams)

    @classmethod
    def compile(
        cls, model: Any, output_names: tuple[str, ...], *, threads: int = 0, streams: int = 1
    ) -> OpenVINORuntime:
        """Compile a converted model (`convert_signature`) for the CPU with `streams` infer requests."""
        import openvino as ov

        compiled = ov.Core().compile_model(model, "CPU", openvino_config(streams, threads))
        return cls(compiled, output_names, streams)

    def predict(self, images: np.ndarray) -> dict[str, np.ndarray]:
        # One synchronous call per batch on a free infer request (a caller waits for one otherwise).
        # share_outputs=False: the request reuses its output buffers on the next call, and the
        # caller keeps these arrays, so they are copies.
        request = self._requests.get()
        try:
            results = request.infer(
                [np.ascontiguousarray(images, dtype=np.uint8)], share_inputs=True, share_outputs=False
            )
        finally:
            self._requests.put(request)
        return {name: results[output] for name, output in zip(self.output_names, self._outputs, strict=True)}

    def warm_up(self, images: np.ndarray) -> None:
        """Run `images` on every infer request at once, so that each stream runs the batch.

        Each stream holds its own working memory, sized by the largest batch it has run (about 200 MB
        per stream for 16 photos on the release model). Paid here, before the service is ready, instead
        of by whichever request first makes a big batch on that stream: RSS then stays flat under load.
        """
        requests = [self._requests.get() for _ in range(self.streams)]
        try:
            for request in requests:
                request.start_async([np.ascontiguousarray(images, dtype=np.uint8)], share_inputs=True)
            for request in requests:
                request.wait()
        finally:
            for request in requests:
                self._requests.put(request)


def convert_signature(signature: Any, output_names: tuple[str, ...], *, plain: bool = False) -> Any:
    """Freeze `signature` and convert the GraphDef (the SavedModel folder itself fails on VarHandleOp)
    to an OpenVINO model whose outputs carry their contract names, its class softmax rewritten for
    speed (`softmax_by_channels`) unless `plain` (the benchmark's baseline). The slow part of building an
    OpenVINO runtime (about 2 s on the release model, against 0.1-0.2 s per compilation): done once,
    whatever the number of compilations."""
    import openvino as ov
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    frozen = convert_variables_to_constants_v2(signature)
    # The frozen function returns its outputs as a flat list in the order tf.nest flattens the
    # signature's dict (sorted by key); pair each graph tensor with its contract name that way.
    keys = tf.nest.flatten({key: key for key in signature.structured_outputs})
    tensor_of = {key: tensor.name for key, tensor in zip(keys, frozen.outputs, strict=True)}
    model = ov.convert_model(frozen.graph.as_graph_def())
    for output in model.outputs:
        names = output.get_names()
        for name in output_names:
            if tensor_of[name] in names:
                output.get_tensor().set_names({name, *names})
    if not plain:
        softmax_by_channels(model)
    return model


# A softmax over this few channels (the segmentation's classes) is written out per channel.
SOFTMAX_BY_CHANNELS_UP_TO = 8


def softmax_by_channels(model: Any) -> int:
    """Rewrite each Softmax over the last axis of a 4-D tensor with few channels (the per-pixel class
    softmax) as the same arithmetic on each channel; return how many were rewritten.

    OpenVINO's CPU Softmax kernel over a last axis of 3 was 7.5 % of the release model's time (2.5 ms
    of 34 per batch of 2, in OpenVINO's own per-layer counters) and also held the layer before it in
    plain layout. Split into its channels, max, exp, sum and divide are elementwise and fuse into one
    generated kernel: 2 streams x batch 2 went from 105.8-114.6 to 117.1-125.1 images/s (+9 %, four
    alternated rounds, 16.4 against 17.9 CPU-ms per image). Same formula as TensorFlow's (the max
    subtracted first), so the outputs stay within float rounding of it; the startup check still
    compares them. A plain OpenVINO conversion would spell its Softmax back the same (a ReduceMax /
    Exp / ReduceSum / Divide chain is fused back into a Softmax), hence the split.
    """
    import openvino.opset13 as ops

    rewritten = 0
    for node in model.get_ordered_ops():
        if node.get_type_name() != "Softmax":
            continue
        shape = node.get_output_partial_shape(0)
        if shape.rank.is_dynamic or shape.rank.get_length() != 4:
            continue
        channels = shape[3]
        axis = int(node.get_attributes()["axis"])
        if (
            axis not in (-1, 3)
            or channels.is_dynamic
            or not 1 < channels.get_length() <= SOFTMAX_BY_CHANNELS_UP_TO
        ):
            continue
        parts = ops.split(node.input_value(0), ops.constant(np.int64(-1)), channels.get_length()).outputs()
        largest = functools.reduce(lambda a, b: ops.maximum(a, b).output(0), parts)
        exps = [ops.exp(ops.subtract(part, largest)).output(0) for part in parts]
        total = functools.reduce(lambda a, b: ops.add(a, b).output(0), exps)
        softmax = ops.concat([ops.divide(exp, total) for exp in exps], -1)
        # replace() hands the old output's tensor names (a contract name among them) to the new one.
        node.output(0).replace(softmax.output(0))
        rewritten += 1
    return rewritten


class AloneOrSharedRuntime:
    """Two compilations of one model: all cores for a batch that runs alone, streams when batches overlap.

    With one stream over every core, a second batch must wait; with several streams, a batch that runs
    alone still gets only its stream's share of the cores. So a batch that finds no other running takes
    `alone` (one stream, every core: a lone request's latency), and one that finds another running
    takes a stream of `shared` (their threads never wait on each other: throughput under load).
    """

    backend: Backend = "openvino"

    def __init__(self, alone: OpenVINORuntime, shared: OpenVINORuntime) -> None:
        self.alone = alone
        self.shared = shared
        self.output_names = alone.output_names
        self.streams = shared.streams
        self.batch_size = shared.batch_size
        self._lock = threading.Lock()
        self._running = 0

    def predict(self, images: np.ndarray) -> dict[str, np.ndarray]:
        with self._lock:
            # `alone` has one infer request and is only taken when nothing else runs: never waited for.
            runtime = self.alone if self._running == 0 else self.shared
            self._running += 1
        try:
            return runtime.predict(images)
        finally:
            with self._lock:
                self._running -= 1

    def warm_up(self, images: np.ndarray) -> None:
        self.alone.warm_up(images)
        self.shared.warm_up(images)


def openvino_installed() -> bool:
    return importlib.util.find_spec("openvino") is not None


def gpu_visible() -> bool:
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


def choose_backend(requested: str) -> Backend:
    """`auto`: TensorFlow when it sees a GPU, else OpenVINO when installed, else TensorFlow."""
    if requested == "tensorflow":
        return "tensorflow"
    if requested == "openvino":
        if not openvino_installed():
            raise ModelDirError("PETSEG_BACKEND=openvino but the openvino package is not installed")
        return "openvino"
    if gpu_visible() or not openvino_installed():
        return "tensorflow"
    return "openvino"


def check_input(input_size: int) -> np.ndarray:
    """The startup check's fixed input: the same photos every time, for every model of this size."""
    rng = np.random.default_rng(CHECK_SEED)
    return rng.integers(0, 256, size=(CHECK_BATCH, input_size, input_size, 3), dtype=np.uint8)


def max_abs_difference(expected: dict[str, np.ndarray], actual: dict[str, np.ndarray]) -> dict[str, float]:
    """Largest |expected - actual| per output name; a missing output or another shape counts as infinite."""
    differences = {}
    for name, reference in expected.items():
        other = actual.get(name)
        if other is None or other.shape != reference.shape:
            differences[name] = float("inf")
        else:
            differences[name] = float(np.max(np.abs(reference.astype(np.float64) - other), initial=0.0))
    return differences


def check_agreement(
    reference: Runtime,
    candidate: Runtime,
    input_size: int,
    tolerance: float,
    expected: dict[str, np.ndarray] | None = None,
) -> float:
    """Run both on `check_input` (the reference not again when its outputs are `expected`); return the
    largest difference, or raise RuntimeDisagreement."""
    images = check_input(input_size)
    if expected is None:
        expected = reference.predict(images)
    differences = max_abs_difference(expected, candidate.predict(images))
    worst = max(differences.values(), default=0.0)
    if worst > tolerance:
        detail = ", ".join(f"{name} {value:.2g}" for name, value in differences.items())
        raise RuntimeDisagreement(
            f"{candidate.backend} disagrees with {reference.backend} on the startup check "
            f"(max abs difference: {detail}; allowed {tolerance:g}); set PETSEG_BACKEND=tensorflow"
        )
    return worst


def build_runtime(
    signature: Any,
    output_names: tuple[str, ...],
    input_size: int,
    *,
    backend: str,
    tolerance: float,
    threads: int = 0,
    streams: int = 1,
) -> Runtime:
    """The runtime `backend` (auto|tensorflow|openvino) asks for, checked against TensorFlow first.

    OpenVINO with `streams` > 1 is compiled twice (AloneOrSharedRuntime), and each compilation is checked.
    `streams` 0 means 2 for OpenVINO on a machine with at least two cores, else 1 (TensorFlow spreads one
    batch over every core or the GPU itself).
    """
    reference = TensorFlowRuntime(signature, output_names)
    chosen = choose_backend(backend)
    if chosen == "tensorflow":
        return reference
    if streams == 0:
        streams = min(2, usable_cores())
    compilations = [1] if streams <= 1 else [1, streams]
    expected = reference.predict(check_input(input_size))
    compiled = []
    try:
        model = convert_signature(signature, output_names)
    except Exception as exc:  # the converter raises many types for a graph it cannot take
        raise ModelDirError(f"OpenVINO cannot convert the model ({type(exc).__name__}: {exc})") from exc
    for count in compilations:
        try:
            candidate = OpenVINORuntime.compile(model, output_names, threads=threads, streams=count)
        except Exception as exc:  # the plugin raises RuntimeError, or others for a model it cannot take
            raise ModelDirError(f"OpenVINO cannot compile the model ({type(exc).__name__}: {exc})") from exc
        difference = check_agreement(reference, candidate, input_size, tolerance, expected)
        logger.info(
            "OpenVINO (%d stream%s) agrees with TensorFlow on the startup check (max abs difference %.2g)",
            count,
            "" if count == 1 else "s",
            difference,
        )
        compiled.append(candidate)
    return compiled[0] if len(compiled) == 1 else AloneOrSharedRuntime(*compiled)
