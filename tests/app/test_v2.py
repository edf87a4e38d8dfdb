"""The Open Inference Protocol (KServe v2) endpoints, driven by the official `tritonclient.http` and by
plain httpx against a real server on the tiny model; results are checked against the SavedModel itself."""

from __future__ import annotations

import gzip
import json
import re
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from tritonclient.utils import InferenceServerException

from app.main import create_app
from app.settings import Settings
from petseg_harness.server import ServerProcess as Server
from tests.app.conftest import API_KEY

REPO = Path(__file__).resolve().parents[2]

HEADER_LENGTH = "Inference-Header-Content-Length"
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def model(model_dir: Path) -> dict:
    """The served model's metadata.json (name, version, input size)."""
    return json.loads((model_dir / "1" / "metadata.json").read_text())


@pytest.fixture(scope="module")
def savedmodel(model_dir: Path) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
    """The exported SavedModel's serving_default, called directly with TensorFlow in this process."""
    import tensorflow as tf

    loaded = tf.saved_model.load(str(model_dir / "1"))
    serve = loaded.signatures["serving_default"]

    def run(images: np.ndarray) -> dict[str, np.ndarray]:
        _ = loaded  # keeps the variables alive for the signature
        return {name: tensor.numpy() for name, tensor in serve(images=tf.constant(images)).items()}

    return run


@pytest.fixture(scope="module")
def client(server: Server) -> Iterator[triton.InferenceServerClient]:
    with triton.InferenceServerClient(server.url.removeprefix("http://"), network_timeout=120) as tc:
        yield tc


@pytest.fixture
def http(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=120) as h:
        yield h


def photos(model: dict, n: int, seed: int = 0) -> np.ndarray:
    size = model["input_size"]
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def images_input(images: np.ndarray, *, binary: bool = True, name: str = "images") -> triton.InferInput:
    tensor = triton.InferInput(name, list(images.shape), triton.np_to_triton_dtype(images.dtype))
    tensor.set_data_from_numpy(images, binary_data=binary)
    return tensor


def infer_url(model: dict) -> str:
    return f"/v2/models/{model['name']}/infer"


def json_request(images: np.ndarray, **extra) -> dict:
    tensor = {
        "name": "images",
        "shape": list(images.shape),
        "datatype": "UINT8",
        "data": images.ravel().tolist(),
    }
    return {"inputs": [tensor], **extra}


def metric(text: str, name: str, **labels: str) -> float:
    """Sum of the samples called `name` whose labels include `labels`, from Prometheus text format."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )


def assert_matches(outputs: dict[str, np.ndarray], expected: dict[str, np.ndarray]) -> None:
    assert set(outputs) == set(expected)
    for name, values in expected.items():
        assert outputs[name].dtype == values.dtype and outputs[name].shape == values.shape, name
        np.testing.assert_allclose(outputs[name], values, atol=TOLERANCE, rtol=0, err_msg=name)


def error_of(call: Callable[[], object]) -> InferenceServerException:
    with pytest.raises(InferenceServerException) as caught:
        call()
    return caught.value


# --- health and metadata ---------------------------------------------------------------------------


def test_server_and_model_are_live_and_ready(client, model) -> None:
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready(model["name"])
    assert client.is_model_ready(model["name"], str(model["version"]))
    assert not client.is_model_ready("no-such-model")
    assert not client.is_model_ready(model["name"], "99")


def test_server_metadata_announces_binary_tensor_data(client) -> None:
    metadata = client.get_server_metadata()
    assert metadata["name"] == "petseg"
    assert metadata["version"]
    assert "binary_tensor_data" in metadata["extensions"]


def test_model_metadata_lists_the_contract_tensors(client, model, savedmodel) -> None:
    size = model["input_size"]
    signature_outputs = savedmodel(photos(model, 1))
    for version in ("", str(model["version"])):
        metadata = client.get_model_metadata(model["name"], version)
        assert metadata["name"] == model["name"]
        assert metadata["versions"] == [str(model["version"])]
        assert metadata["platform"] == "tensorflow_savedmodel"
        assert metadata["inputs"] == [{"name": "images", "datatype": "UINT8", "shape": [-1, size, size, 3]}]
        outputs = {o["name"]: o for o in metadata["outputs"]}
        assert set(outputs) == set(signature_outputs) & {
            "probabilities",
            "species_probabilities",
            "breed_probabilities",
        }
        assert outputs["probabilities"] == {
            "name": "probabilities",
            "datatype": "FP32",
            "shape": [-1, size, size, len(model["classes"])],
        }
        for name, values in signature_outputs.items():
            assert outputs[name]["shape"][1:] == list(values.shape[1:])


def test_unknown_model_or_version_metadata_is_404(client, model) -> None:
    assert error_of(lambda: client.get_model_metadata("no-such-model")).status() == "404"
    assert error_of(lambda: client.get_model_metadata(model["name"], "99")).status() == "404"


def test_before_the_model_is_ready_v2_is_live_but_answers_503(model_dir: Path, model) -> None:
    outside = TestClient(create_app(Settings(model_dir=model_dir)))  # lifespan not run: no model yet
    assert outside.get("/v2/health/live").status_code == 200
    for response in (
        outside.get("/v2/health/ready"),
        outside.get(f"/v2/models/{model['name']}/ready"),
        outside.get(f"/v2/models/{model['name']}"),
        outside.post(infer_url(model), json=json_request(photos(model, 1))),
    ):
        assert_protocol_error(response, 503)
        assert "retry-after" in response.headers


# --- inference -------------------------------------------------------------------------------------


def test_binary_inference_of_a_batch_matches_the_savedmodel(client, model, savedmodel) -> None:
    images = photos(model, 3)
    result = client.infer(model["name"], [images_input(images)])  # tritonclient's defaults: all binary
    response = result.get_response()
    assert response["model_name"] == model["name"]
    assert response["model_version"] == str(model["version"])
    assert all("binary_data_size" in output["parameters"] for output in response["outputs"])
    expected = savedmodel(images)
    assert_matches({name: result.as_numpy(name) for name in expected}, expected)


def test_json_inference_matches_the_savedmodel(client, model, savedmodel) -> None:
    images = photos(model, 2, seed=1)
    expected = savedmodel(images)
    wanted = [triton.InferRequestedOutput(name, binary_data=False) for name in expected]
    result = client.infer(model["name"], [images_input(images, binary=False)], outputs=wanted)
    response = result.get_response()
    assert all("data" in output for output in response["outputs"])
    assert_matches({name: result.as_numpy(name) for name in expected}, expected)


def test_versioned_inference_echoes_the_request_id(client, model, savedmodel) -> None:
    images = photos(model, 1, seed=2)
    result = client.infer(
        model["name"], [images_input(images)], model_version=str(model["version"]), request_id="req-42"
    )
    assert result.get_response()["id"] == "req-42"
    assert_matches(
        {"probabilities": result.as_numpy("probabilities")},
        {"probabilities": savedmodel(images)["probabilities"]},
    )


def test_only_the_requested_outputs_come_back_in_the_requested_form(client, model, savedmodel) -> None:
    images = photos(model, 2, seed=3)
    wanted = [triton.InferRequestedOutput("probabilities", binary_data=False)]
    result = client.infer(model["name"], [images_input(images)], outputs=wanted)
    (output,) = result.get_response()["outputs"]
    assert output["name"] == "probabilities" and "data" in output
    np.testing.assert_allclose(
        result.as_numpy("probabilities"), savedmodel(images)["probabilities"], atol=TOLERANCE, rtol=0
    )


@pytest.mark.parametrize("algorithm", ["gzip", "deflate"])
def test_compressed_requests_are_inflated(client, model, savedmodel, algorithm) -> None:
    images = photos(model, 1, seed=4)
    result = client.infer(model["name"], [images_input(images)], request_compression_algorithm=algorithm)
    np.testing.assert_allclose(
        result.as_numpy("probabilities"), savedmodel(images)["probabilities"], atol=TOLERANCE, rtol=0
    )


def test_a_batch_shares_forward_passes_as_full_as_the_batch_size_allows(client, model, http) -> None:
    largest = http.get("/v1/model").json()["max_batch_size"]  # the backend's choice: 2 for OpenVINO
    before = http.get("/metrics").text
    client.infer(model["name"], [images_input(photos(model, 4, seed=5))])
    after = http.get("/metrics").text
    assert metric(after, "petseg_batch_size_sum") - metric(before, "petseg_batch_size_sum") == 4
    passes = metric(after, "petseg_batch_size_count") - metric(before, "petseg_batch_size_count")
    assert passes == -(-4 // largest)  # not one pass per photo


def test_inference_is_counted_by_route(model, http) -> None:
    route = "/v2/models/{model_name}/infer"
    before = metric(http.get("/metrics").text, "petseg_http_requests_total", route=route, status="200")
    assert http.post(infer_url(model), json=json_request(photos(model, 1))).status_code == 200
    after = metric(http.get("/metrics").text, "petseg_http_requests_total", route=route, status="200")
    assert after == before + 1


# --- bad requests, through tritonclient ------------------------------------------------------------


def test_wrong_shape_is_400(client, model) -> None:
    size = model["input_size"]
    wrong = np.zeros((1, size + 1, size, 3), np.uint8)
    error = error_of(lambda: client.infer(model["name"], [images_input(wrong)]))
    assert error.status() == "400" and "shape" in error.message()


def test_wrong_datatype_is_400(client, model) -> None:
    floats = photos(model, 1).astype(np.float32)
    error = error_of(lambda: client.infer(model["name"], [images_input(floats)]))
    assert error.status() == "400" and "FP32" in error.message()


def test_wrong_input_or_output_name_is_400(client, model) -> None:
    images = photos(model, 1)
    error = error_of(lambda: client.infer(model["name"], [images_input(images, name="photos")]))
    assert error.status() == "400" and "photos" in error.message()
    nope = [triton.InferRequestedOutput("masks")]
    error = error_of(lambda: client.infer(model["name"], [images_input(images)], outputs=nope))
    assert error.status() == "400" and "masks" in error.message()


def test_unknown_model_or_version_inference_is_404(client, model) -> None:
    images = [images_input(photos(model, 1))]
    assert error_of(lambda: client.infer("no-such-model", images)).status() == "404"
    assert error_of(lambda: client.infer(model["name"], images, model_version="99")).status() == "404"


def test_more_photos_than_a_request_may_hold_is_400(client, model) -> None:
    error = error_of(lambda: client.infer(model["name"], [images_input(photos(model, 17))]))
    assert error.status() == "400" and "17 photos" in error.message()


def test_request_over_the_upload_limit_is_413(client, model) -> None:
    too_many = photos(model, 2 * 1024 * 1024 // (3 * model["input_size"] ** 2) + 1)  # just over 2 MiB
    error = error_of(lambda: client.infer(model["name"], [images_input(too_many)]))
    assert error.status() == "413"


# --- the JSON form and the wire format, through plain httpx ----------------------------------------


def test_json_form_accepts_flat_and_nested_data(http, model, savedmodel) -> None:
    images = photos(model, 2, seed=6)
    flat = http.post(infer_url(model), json=json_request(images, id="flat"))
    nested_request = json_request(images)
    nested_request["inputs"][0]["data"] = images.tolist()
    nested = http.post(infer_url(model), json=nested_request)
    assert flat.status_code == nested.status_code == 200
    assert flat.headers["content-type"] == "application/json" and HEADER_LENGTH not in flat.headers
    body = flat.json()
    assert body["id"] == "flat" and body["model_name"] == model["name"]
    (output,) = [o for o in body["outputs"] if o["name"] == "probabilities"]
    assert output["datatype"] == "FP32" and output["shape"] == [
        2,
        *savedmodel(images)["probabilities"].shape[1:],
    ]
    values = np.asarray(output["data"], np.float32).reshape(output["shape"])
    np.testing.assert_allclose(values, savedmodel(images)["probabilities"], atol=TOLERANCE, rtol=0)
    assert nested.json()["outputs"] == body["outputs"]


def test_binary_response_has_its_header_length_and_octet_stream(http, model) -> None:
    images = photos(model, 1)
    response = http.post(infer_url(model), json=json_request(images, parameters={"binary_data_output": True}))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/octet-stream"
    length = int(response.headers[HEADER_LENGTH])
    header = json.loads(response.content[:length])
    sizes = [o["parameters"]["binary_data_size"] for o in header["outputs"]]
    assert length + sum(sizes) == len(response.content)


def binary_body(images: np.ndarray, declared_size: int | None = None) -> tuple[bytes, int]:
    raw = images.tobytes()
    tensor = {"name": "images", "shape": list(images.shape), "datatype": "UINT8"}
    tensor["parameters"] = {"binary_data_size": len(raw) if declared_size is None else declared_size}
    header = json.dumps({"inputs": [tensor]}).encode()
    return header + raw, len(header)


def assert_protocol_error(response: httpx.Response, status: int, *words: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"} and isinstance(body["error"], str)
    for word in words:
        assert word in body["error"]


@pytest.mark.parametrize(
    ("content", "header_length", "words"),
    [
        (b'{"inputs": [', None, ["malformed"]),
        (b"\xff\xfe not json", None, ["malformed"]),
        (b'{"inputs": "images"}', None, ["inputs"]),
        (b'{"inputs": [{"name": "images", "shape": [1], "datatype": "UINT8"}]}', None, ["shape"]),
        (b'{"inputs": []}', "abc", [HEADER_LENGTH]),
        (b'{"inputs": []}', "9999", [HEADER_LENGTH]),
    ],
)
def test_malformed_requests_are_400(http, model, content, header_length, words) -> None:
    headers = {HEADER_LENGTH: header_length} if header_length else {}
    assert_protocol_error(http.post(infer_url(model), content=content, headers=headers), 400, *words)


def test_binary_sizes_that_disagree_with_the_shape_or_body_are_400(http, model) -> None:
    images = photos(model, 1)
    body, length = binary_body(images, declared_size=images.nbytes - 1)
    response = http.post(infer_url(model), content=body, headers={HEADER_LENGTH: str(length)})
    assert_protocol_error(response, 400, "binary")
    body, length = binary_body(images)
    response = http.post(infer_url(model), content=body + b"extra", headers={HEADER_LENGTH: str(length)})
    assert_protocol_error(response, 400, "binary bytes")


@pytest.mark.parametrize("value", [256, -1, 1.5, "7", None])
def test_json_values_outside_uint8_are_400(http, model, value) -> None:
    request = json_request(photos(model, 1))
    request["inputs"][0]["data"][5] = value
    assert_protocol_error(http.post(infer_url(model), json=request), 400, "UINT8")


def test_ragged_nested_data_is_400(http, model) -> None:
    request = json_request(photos(model, 1))
    request["inputs"][0]["data"] = [request["inputs"][0]["data"][:-1], [0]]
    assert_protocol_error(http.post(infer_url(model), json=request), 400, "images")


def test_chunked_body_over_the_limit_is_413_while_reading(http, model) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(40):
            yield b" " * 64 * 1024  # 2.5 MiB in all, no Content-Length

    assert_protocol_error(http.post(infer_url(model), content=chunks()), 413, "limit")


def test_body_that_inflates_over_the_limit_is_413(http, model) -> None:
    bomb = gzip.compress(b" " * (3 * 1024 * 1024))
    response = http.post(infer_url(model), content=bomb, headers={"Content-Encoding": "gzip"})
    assert_protocol_error(response, 413, "limit")


def test_broken_or_unknown_content_encoding_is_rejected(http, model) -> None:
    body = json.dumps(json_request(photos(model, 1))).encode()
    broken = zlib.compress(body)[:-10]
    response = http.post(infer_url(model), content=broken, headers={"Content-Encoding": "deflate"})
    assert_protocol_error(response, 400, "deflate")
    response = http.post(infer_url(model), content=body, headers={"Content-Encoding": "br"})
    assert_protocol_error(response, 415, "br")


def test_errors_take_the_protocol_shape_only_under_v2(http, model) -> None:
    assert_protocol_error(http.get("/v2/no-such-endpoint"), 404)
    assert_protocol_error(http.get(f"/v2/models/{model['name']}/versions/99/ready"), 404, "99")
    assert_protocol_error(http.get(infer_url(model)), 405)
    elsewhere = http.get("/no-such-endpoint")
    assert elsewhere.status_code == 404
    assert elsewhere.headers["content-type"] == "application/problem+json"


def test_server_is_still_ready_after_bad_requests(client, http, model) -> None:
    for content in (b"", b"{}", b"[]", b"null", b'{"inputs": [{"name": "images"}]}'):
        assert 400 <= http.post(infer_url(model), content=content).status_code < 500
    assert client.is_server_ready() and client.is_model_ready(model["name"])


# --- API key and overload, on the guarded server -----------------------------------------------------


@pytest.fixture(scope="module")
def guarded(guarded_server: Server) -> Iterator[triton.InferenceServerClient]:
    with triton.InferenceServerClient(guarded_server.url.removeprefix("http://"), network_timeout=120) as tc:
        yield tc


def test_api_key_is_required_for_inference_only(guarded, model, guarded_server) -> None:
    images = [images_input(photos(model, 1))]
    error = error_of(lambda: guarded.infer(model["name"], images))
    assert error.status() == "401" and "X-API-Key" in error.message()
    assert (
        guarded.infer(model["name"], images, headers={"X-API-Key": API_KEY}).as_numpy("probabilities")
        is not None
    )
    assert guarded.is_server_ready() and guarded.get_model_metadata(model["name"])["name"] == model["name"]
    response = httpx.post(f"{guarded_server.url}{infer_url(model)}", json=json_request(photos(model, 1)))
    assert_protocol_error(response, 401)
    assert response.headers["www-authenticate"] == "X-API-Key"


def test_a_batch_beyond_the_queue_capacity_is_503_with_retry_after(guarded_server, model) -> None:
    # The guarded server queues one photo at most; a request of two cannot all be queued at once.
    response = httpx.post(
        f"{guarded_server.url}{infer_url(model)}",
        json=json_request(photos(model, 2)),
        headers={"X-API-Key": API_KEY},
        timeout=120,
    )
    assert_protocol_error(response, 503, "retry")
    assert response.headers["retry-after"] == "1"


def test_the_documented_python_examples_run(server: Server, model, monkeypatch, capsys) -> None:
    """docs/open-inference-protocol.md's examples, as written, against this server and its model."""
    doc = (REPO / "docs" / "open-inference-protocol.md").read_text()
    code = "\n".join(re.findall(r"```python\n(.*?)```", doc, re.DOTALL))
    code = code.replace("127.0.0.1:8000", server.url.removeprefix("http://")).replace(
        "pet-unet", model["name"]
    )
    monkeypatch.chdir(REPO)  # the example opens app/static/example.jpg
    namespace: dict = {}
    exec(compile(code, "docs/open-inference-protocol.md", "exec"), namespace)
    size = model["input_size"]
    assert namespace["labels"].shape == (size, size)
    assert namespace["probabilities"].shape == (1, size, size, len(model["classes"]))
    assert "example-1 pet covers" in capsys.readouterr().out
