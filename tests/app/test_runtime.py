"""Inference runtimes: TensorFlow and OpenVINO serve the same SavedModel with the same answers."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from app.runtime import (
    OPENVINO_BATCH_SIZE,
    TENSORFLOW_BATCH_SIZE,
    AloneOrSharedRuntime,
    OpenVINORuntime,
    RuntimeDisagreement,
    TensorFlowRuntime,
    check_agreement,
    check_input,
    max_abs_difference,
)
from app.segmenter import Segmenter
from app.settings import Settings
from petseg_contract import BREED_NAMES, SPECIES_NAMES, labels_metadata
from petseg_harness.metrics import metric_value
from petseg_harness.photos import make_photo
from petseg_harness.server import REPO, ServerProcess, running_service

PHOTO = make_photo(150, 100)


@pytest.fixture(scope="module")
def labelled_model_dir(tmp_path_factory, model_dir: Path) -> Path:
    """The tiny model re-exported with the contract's optional species and breed heads on top.

    A real SavedModel (tf.Module + tf.saved_model.save, as training exports), with its heads computed
    from the segmentation, so a backend that drops or mixes up an output disagrees with TensorFlow.
    """
    import tensorflow as tf

    source = model_dir / "1"
    metadata = json.loads((source / "metadata.json").read_text())
    size = int(metadata["input_size"])
    inner = tf.saved_model.load(str(source))
    rng = np.random.default_rng(3)

    class Labelled(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = inner
            self.species = tf.Variable(rng.normal(size=(3, len(SPECIES_NAMES))).astype(np.float32))
            self.breeds = tf.Variable(rng.normal(size=(3, len(BREED_NAMES))).astype(np.float32))

        @tf.function(input_signature=[tf.TensorSpec([None, size, size, 3], tf.uint8, name="images")])
        def serve(self, images):
            probabilities = self.inner.signatures["serving_default"](images=images)["probabilities"]
            pooled = tf.reduce_mean(probabilities, axis=[1, 2]) * 4.0
            return {
                "probabilities": probabilities,
                "species_probabilities": tf.nn.softmax(pooled @ self.species),
                "breed_probabilities": tf.nn.softmax(pooled @ self.breeds),
            }

    module = Labelled()
    target = tmp_path_factory.mktemp("labelled") / "1"
    tf.saved_model.save(module, str(target), signatures={"serving_default": module.serve})
    (target / "metadata.json").write_text(json.dumps({**metadata, **labels_metadata()}))
    return target


@pytest.fixture(scope="module")
def tensorflow_server(tmp_path_factory, model_dir: Path) -> Iterator[ServerProcess]:
    log = tmp_path_factory.mktemp("logs") / "tensorflow.log"
    with running_service(model_dir, log, {"PETSEG_BACKEND": "tensorflow"}) as running:
        yield running


@pytest.fixture(scope="module")
def openvino_server(tmp_path_factory, model_dir: Path) -> Iterator[ServerProcess]:
    log = tmp_path_factory.mktemp("logs") / "openvino.log"
    with running_service(model_dir, log, {"PETSEG_BACKEND": "openvino"}) as running:
        yield running


def labels_of(server: ServerProcess, photo: bytes) -> np.ndarray:
    response = httpx.post(f"{server.url}/segment", files={"file": photo}, timeout=60)
    assert response.status_code == 200, response.text
    return np.asarray(Image.open(io.BytesIO(response.content)))


def test_each_server_names_its_backend_in_model_info_and_metrics(tensorflow_server, openvino_server) -> None:
    for server, backend in ((tensorflow_server, "tensorflow"), (openvino_server, "openvino")):
        assert httpx.get(f"{server.url}/v1/model").json()["backend"] == backend
        assert (
            metric_value(httpx.get(f"{server.url}/metrics").text, "petseg_model_info", backend=backend) == 1
        )
        assert f"on {backend}" in server.log_path.read_text()


def test_both_backends_give_the_same_labels_for_the_same_photo(tensorflow_server, openvino_server) -> None:
    for photo in (PHOTO, make_photo(640, 480), make_photo(97, 211, fmt="PNG")):
        on_tensorflow, on_openvino = labels_of(tensorflow_server, photo), labels_of(openvino_server, photo)
        assert on_tensorflow.shape == on_openvino.shape
        # Probabilities agree within ~1e-6; they are quantised to 1/255 before upsampling, so a value
        # sitting exactly on a rounding edge may move one pixel on a class boundary, never more.
        assert np.mean(on_tensorflow != on_openvino) <= 1e-3


def test_auto_picks_openvino_on_a_cpu_only_machine(model_dir: Path) -> None:
    segmenter = Segmenter.load(model_dir / "1", Settings(model_dir=model_dir, backend="auto"))
    import tensorflow as tf

    gpu = bool(tf.config.list_physical_devices("GPU"))
    assert segmenter.backend == ("tensorflow" if gpu else "openvino")


@pytest.mark.parametrize("which", ["tiny", "labelled"])
def test_every_output_of_the_model_comes_out_of_both_backends(which, model_dir, labelled_model_dir) -> None:
    directory = model_dir / "1" if which == "tiny" else labelled_model_dir
    tensorflow = Segmenter.load(directory, Settings(model_dir=directory, backend="tensorflow"))
    openvino = Segmenter.load(directory, Settings(model_dir=directory, backend="openvino"))
    assert (tensorflow.backend, openvino.backend) == ("tensorflow", "openvino")
    assert openvino.output_names == tensorflow.output_names
    if which == "labelled":
        assert tensorflow.has_labels and openvino.has_labels
    images = np.stack([make_input(tensorflow.input_size, seed) for seed in range(5)])  # batch of 5: dynamic
    expected, actual = tensorflow.predict(images), openvino.predict(images)
    for name in tensorflow.output_names:
        assert actual[name].shape == expected[name].shape and actual[name].shape[0] == 5
        np.testing.assert_allclose(actual[name], expected[name], atol=1e-4)
    one = openvino.predict(images[:1])  # and a batch of one after a batch of five
    np.testing.assert_allclose(one["probabilities"][0], expected["probabilities"][0], atol=1e-4)


def class_softmax_signature(channels: int, scale: float):
    """A signature like the contract's: uint8 photos -> a softmax over `channels` per pixel, logits
    spread over `scale` (hundreds: exp of the raw logits would overflow float32)."""
    import tensorflow as tf

    mixing = np.random.default_rng(channels).normal(size=(3, channels)).astype(np.float32)

    class Classes(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 8, 8, 3], tf.uint8, name="images")])
        def serve(self, images):
            logits = tf.einsum("nhwc,ck->nhwk", tf.cast(images, tf.float32) / 255.0, mixing) * scale
            return {"probabilities": tf.nn.softmax(logits)}

    module = Classes()
    return module, module.serve.get_concrete_function()


@pytest.mark.parametrize(("channels", "rewritten"), [(2, 1), (3, 1), (8, 1), (9, 0)])
def test_a_class_softmax_is_rewritten_per_channel_with_tensorflows_answers(channels, rewritten) -> None:
    from app.runtime import convert_signature, softmax_by_channels

    _module, signature = class_softmax_signature(channels, scale=300.0)
    model = convert_signature(signature, ("probabilities",), plain=True)
    assert softmax_by_channels(model) == rewritten
    kinds = [node.get_type_name() for node in model.get_ordered_ops()]
    assert ("Softmax" in kinds) == (rewritten == 0)
    assert "probabilities" in model.outputs[0].get_names()  # the contract name moved to the new output
    runtime = OpenVINORuntime.compile(model, ("probabilities",))
    images = np.random.default_rng(1).integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
    expected = TensorFlowRuntime(signature, ("probabilities",)).predict(images)["probabilities"]
    actual = runtime.predict(images)["probabilities"]
    assert np.isfinite(actual).all() and np.abs(expected).max() > 0.99  # saturated pixels included
    np.testing.assert_allclose(actual, expected, atol=1e-6)


def test_the_served_conversion_rewrites_the_pixel_softmax_only(model_dir: Path) -> None:
    """The exported model's per-pixel softmax goes, its species and breed softmaxes (2-D) stay."""
    import tensorflow as tf

    from app.runtime import convert_signature

    loaded = tf.saved_model.load(str(model_dir / "1"))
    serve = loaded.signatures["serving_default"]
    served, plain = (convert_signature(serve, ("probabilities",), plain=p) for p in (False, True))

    def softmax_ranks(model) -> list[int]:
        return sorted(
            node.get_output_partial_shape(0).rank.get_length()
            for node in model.get_ordered_ops()
            if node.get_type_name() == "Softmax"
        )

    assert 4 in softmax_ranks(plain)
    assert softmax_ranks(served) == [rank for rank in softmax_ranks(plain) if rank != 4]


def test_two_openvino_streams_answer_concurrent_callers_each_with_its_own_photos(model_dir: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    directory = model_dir / "1"
    tensorflow = Segmenter.load(directory, Settings(model_dir=directory, backend="tensorflow"))
    streams = Segmenter.load(directory, Settings(model_dir=directory, backend="openvino", model_streams=2))
    runtime = streams.runtime
    assert isinstance(runtime, AloneOrSharedRuntime) and runtime.backend == "openvino"
    assert runtime.shared._compiled.get_property("NUM_STREAMS") == 2
    assert runtime.alone._compiled.get_property("NUM_STREAMS") == 1
    batches = [np.stack([make_input(tensorflow.input_size, seed + i) for i in range(3)]) for seed in range(8)]
    with ThreadPoolExecutor(4) as callers:  # more callers than streams: some wait for a free request
        answers = list(callers.map(streams.predict, batches))
    for batch, answer in zip(batches, answers, strict=True):
        expected = tensorflow.predict(batch)["probabilities"]
        np.testing.assert_allclose(answer["probabilities"], expected, atol=1e-4)


def test_warm_up_runs_the_largest_batch_on_every_stream_of_both_compilations(model_dir: Path) -> None:
    directory = model_dir / "1"
    segmenter = Segmenter.load(directory, Settings(model_dir=directory, backend="openvino", model_streams=2))
    segmenter.warm_up(5)
    runtime = segmenter.runtime
    assert isinstance(runtime, AloneOrSharedRuntime)
    for compilation in (runtime.alone, runtime.shared):
        requests = [compilation._requests.get() for _ in range(compilation.streams)]
        for request in requests:
            compilation._requests.put(request)
        # Every infer request (one per stream) last ran the 5-photo batch, so each stream holds its memory.
        assert [request.get_input_tensor().shape[0] for request in requests] == [5] * compilation.streams


def test_two_compilations_share_one_conversion_and_one_reference_run(model_dir: Path, monkeypatch) -> None:
    """Freezing and converting is the slow part of startup (~2 s on the release model, a compilation
    0.1-0.2 s): done once for both compilations, and TensorFlow's check answer computed once."""
    import app.runtime as runtime_module

    calls = {"convert": 0, "reference": 0}
    real_convert, real_predict = runtime_module.convert_signature, TensorFlowRuntime.predict

    def counting_convert(*args, **kwargs):
        calls["convert"] += 1
        return real_convert(*args, **kwargs)

    def counting_predict(self, images):
        calls["reference"] += 1
        return real_predict(self, images)

    monkeypatch.setattr(runtime_module, "convert_signature", counting_convert)
    monkeypatch.setattr(TensorFlowRuntime, "predict", counting_predict)
    directory = model_dir / "1"
    segmenter = Segmenter.load(directory, Settings(model_dir=directory, backend="openvino", model_streams=2))
    assert isinstance(segmenter.runtime, AloneOrSharedRuntime)
    assert calls == {"convert": 1, "reference": 1}


def test_each_backend_batches_as_it_runs_best_unless_told(tensorflow_server, openvino_server) -> None:
    """PETSEG_MAX_BATCH_SIZE unset: OpenVINO on the CPU in batches of at most 2 per stream, TensorFlow
    16; the one in use is in /v1/model and in the warm-up's log line."""
    for server, size in ((tensorflow_server, TENSORFLOW_BATCH_SIZE), (openvino_server, OPENVINO_BATCH_SIZE)):
        assert httpx.get(f"{server.url}/v1/model").json()["max_batch_size"] == size
        assert f"warm-up done (a batch of {size} on every stream)" in server.log_path.read_text()
    assert (OPENVINO_BATCH_SIZE, TENSORFLOW_BATCH_SIZE) == (2, 16)


def test_a_served_model_warms_up_with_the_largest_batch_before_it_is_ready(tmp_path, model_dir) -> None:
    env = {"PETSEG_BACKEND": "openvino", "PETSEG_MAX_BATCH_SIZE": "3"}
    with running_service(model_dir, tmp_path / "service.log", env) as server:
        assert httpx.get(f"{server.url}/readyz").status_code == 200
        assert "warm-up done (a batch of 3 on every stream); ready" in server.log_path.read_text()
        assert httpx.get(f"{server.url}/v1/model").json()["max_batch_size"] == 3  # the setting wins


def make_input(size: int, seed: int) -> np.ndarray:
    photo = Image.open(io.BytesIO(make_photo(120 + seed * 7, 90 + seed * 5))).convert("RGB")
    return np.asarray(photo.resize((size, size)), dtype=np.uint8)


def test_the_startup_check_passes_within_tolerance_and_refuses_beyond_it(model_dir: Path) -> None:
    import tensorflow as tf

    loaded = tf.saved_model.load(str(model_dir / "1"))  # holds the variables the signature reads
    serve = loaded.signatures["serving_default"]
    names = ("probabilities",)
    tensorflow, openvino = TensorFlowRuntime(serve, names), OpenVINORuntime.from_signature(serve, names)
    assert check_agreement(tensorflow, openvino, 64, tolerance=1e-4) <= 1e-4
    # The same runtimes, held to an impossible standard: the check must refuse, naming the backends.
    with pytest.raises(RuntimeDisagreement, match="openvino disagrees with tensorflow"):
        check_agreement(tensorflow, openvino, 64, tolerance=-1.0)


def test_differences_are_per_output_and_a_missing_output_is_infinite() -> None:
    expected = {"probabilities": np.zeros((2, 4, 4, 3), np.float32), "species_probabilities": np.ones((2, 2))}
    actual = {"probabilities": np.full((2, 4, 4, 3), 0.25, np.float32)}
    differences = max_abs_difference(expected, actual)
    assert differences == {"probabilities": 0.25, "species_probabilities": float("inf")}
    assert check_input(8).shape == (2, 8, 8, 3) and (check_input(8) == check_input(8)).all()


def test_a_disagreeing_backend_stops_the_service_with_one_clear_line(model_dir: Path) -> None:
    env = {
        **os.environ,
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "PETSEG_MODEL_DIR": str(model_dir),
        "PETSEG_BACKEND": "openvino",
        "PETSEG_BACKEND_CHECK_TOLERANCE": "0",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "uvicorn", "app.main:app", "--port", "0"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    errors = [line for line in proc.stderr.splitlines() if "petseg cannot start" in line]
    # OpenVINO's kernels round differently from TensorFlow's (~1e-8 on this model): zero tolerance refuses.
    assert proc.returncode != 0, proc.stderr[-2000:]
    assert errors and "openvino disagrees with tensorflow" in errors[0] and "allowed 0" in errors[0]
    assert "Traceback" not in proc.stderr


class HeldRuntime:
    """A stand-in compilation (plain NumPy) that records its calls and can be held inside one."""

    def __init__(self, name: str) -> None:
        import threading

        self.name = name
        self.output_names = ("probabilities",)
        self.streams = 2 if name == "shared" else 1
        self.batch_size = 2
        self.calls = 0
        self.entered = threading.Event()
        self.release = threading.Event()

    def predict(self, images: np.ndarray) -> dict[str, np.ndarray]:
        self.calls += 1
        self.entered.set()
        assert self.release.wait(60)
        return {"probabilities": np.full(images.shape, self.name == "shared", np.float32)}


def test_a_batch_alone_gets_every_core_and_one_overlapping_it_gets_a_stream() -> None:
    from concurrent.futures import ThreadPoolExecutor

    alone, shared = HeldRuntime("alone"), HeldRuntime("shared")
    runtime = AloneOrSharedRuntime(alone, shared)  # type: ignore[arg-type]
    images = np.zeros((1, 2, 2, 3), np.uint8)
    with ThreadPoolExecutor(2) as callers:
        first = callers.submit(runtime.predict, images)
        assert alone.entered.wait(60)
        second = callers.submit(runtime.predict, images)  # the first is still inside `alone`
        assert shared.entered.wait(60)
        alone.release.set()
        shared.release.set()
        assert not first.result()["probabilities"].any() and second.result()["probabilities"].all()
    runtime.predict(images)  # nothing running any more: alone again
    assert (alone.calls, shared.calls) == (2, 1)


def test_streams_default_to_two_on_openvino_with_two_cores_and_one_on_tensorflow(model_dir: Path) -> None:
    from app.settings import usable_cores

    directory = model_dir / "1"
    openvino = Segmenter.load(directory, Settings(model_dir=directory, backend="openvino"))
    tensorflow = Segmenter.load(directory, Settings(model_dir=directory, backend="tensorflow"))
    assert (openvino.streams, tensorflow.streams) == (min(2, usable_cores()), 1)
