"""The Open Inference Protocol's tensor format (app/oip.py) on its own: no server, no model."""

from __future__ import annotations

import gzip
import json
import zlib

import numpy as np
import pytest

from app import oip

IMAGES = oip.TensorSpec("images", "UINT8", (-1, 2, 2, 3))
OUTPUTS = ["probabilities", "species_probabilities"]


def binary_request(arrays: dict[str, tuple[str, np.ndarray]], **extra) -> tuple[bytes, str]:
    """A request body with every input in binary after the JSON header, and that header's length."""
    inputs = [
        {
            "name": name,
            "datatype": datatype,
            "shape": list(a.shape),
            "parameters": {"binary_data_size": a.nbytes},
        }
        for name, (datatype, a) in arrays.items()
    ]
    header = json.dumps({"inputs": inputs, **extra}).encode()
    blobs = [a.astype(a.dtype.newbyteorder("<")).tobytes() for _, a in arrays.values()]
    return header + b"".join(blobs), str(len(header))


def json_request(data, shape=(1, 2, 2, 3), **extra) -> bytes:
    tensor = {"name": "images", "datatype": "UINT8", "shape": list(shape), "data": data}
    return json.dumps({"inputs": [tensor], **extra}).encode()


def parse(body: bytes, header_length: str | None = None, inputs=(IMAGES,)) -> oip.InferRequest:
    return oip.parse_infer_request(body, header_length, list(inputs), OUTPUTS)


def test_binary_input_is_read_little_endian_in_row_major_order() -> None:
    values = np.arange(-6, 6, dtype=np.int32).reshape(2, 6)
    spec = oip.TensorSpec("x", "INT32", (-1, 6))
    body, length = binary_request({"x": ("INT32", values.astype(">i4"))})
    assert np.array_equal(parse(body, length, [spec]).inputs["x"], values)


def test_several_binary_inputs_follow_the_header_in_input_order() -> None:
    a, b = np.arange(24, dtype=np.uint8).reshape(2, 2, 2, 3), np.linspace(0, 1, 4, dtype=np.float16)
    specs = [IMAGES, oip.TensorSpec("weights", "FP16", (4,))]
    body, length = binary_request({"images": ("UINT8", a), "weights": ("FP16", b)})
    parsed = parse(body, length, specs)
    assert np.array_equal(parsed.inputs["images"], a) and np.array_equal(parsed.inputs["weights"], b)


def test_flat_and_nested_json_data_give_the_same_tensor() -> None:
    images = np.arange(12, dtype=np.uint8).reshape(1, 2, 2, 3)
    flat = parse(json_request(images.ravel().tolist())).inputs["images"]
    nested = parse(json_request(images.tolist())).inputs["images"]
    assert flat.dtype == nested.dtype == np.uint8
    assert np.array_equal(flat, images) and np.array_equal(nested, images)


def test_outputs_default_to_all_in_the_form_the_request_asks() -> None:
    body = json_request([0] * 12, parameters={"binary_data_output": True})
    assert parse(body).outputs == {"probabilities": True, "species_probabilities": True}
    assert parse(json_request([0] * 12)).outputs == {"probabilities": False, "species_probabilities": False}


def test_each_requested_output_may_choose_its_own_form() -> None:
    wanted = [
        {"name": "species_probabilities"},
        {"name": "probabilities", "parameters": {"binary_data": True}},
    ]
    parsed = parse(json_request([0] * 12, outputs=wanted, id="r1"))
    assert parsed.outputs == {"species_probabilities": False, "probabilities": True}
    assert parsed.id == "r1"


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (json_request([0] * 12) + b"}", "malformed"),
        (
            json.dumps({"inputs": [{"name": "images", "datatype": "UINT8", "shape": [1, 2, 2, 3]}]}).encode(),
            "neither",
        ),
        (
            json.dumps({"inputs": [json.loads(json_request([0] * 12))["inputs"][0]] * 2}).encode(),
            "more than once",
        ),
        (json_request([0] * 12, shape=(1, 2, 2, -3)), "shape"),
        (json_request([0] * 12, shape=(1, 2, 2)), "shape"),
        (json_request([0] * 11), "11 values"),
        (json_request([0] * 12, outputs=[{"name": "probabilities"}] * 2), "more than once"),
        (
            json_request([0] * 12, outputs=[{"name": "probabilities", "parameters": {"binary_data": "yes"}}]),
            "binary_data",
        ),
        (
            json_request([0] * 12, outputs=[{"name": "probabilities", "parameters": {"classification": 3}}]),
            "classification",
        ),
    ],
)
def test_requests_that_break_the_protocol_are_refused_with_a_reason(body: bytes, words: str) -> None:
    with pytest.raises(oip.ProtocolError, match=words):
        parse(body)


def test_an_input_with_both_json_and_binary_data_is_refused() -> None:
    body, length = binary_request({"images": ("UINT8", np.zeros((1, 2, 2, 3), np.uint8))})
    header = json.loads(body[: int(length)])
    header["inputs"][0]["data"] = [0] * 12
    encoded = json.dumps(header).encode()
    with pytest.raises(oip.ProtocolError, match="both"):
        parse(encoded + body[int(length) :], str(len(encoded)))


def test_shared_memory_is_refused() -> None:
    tensor = {
        "name": "images",
        "datatype": "UINT8",
        "shape": [1, 2, 2, 3],
        "parameters": {"shared_memory_region": "r"},
    }
    with pytest.raises(oip.ProtocolError, match="shared memory"):
        parse(json.dumps({"inputs": [tensor]}).encode())


def test_a_missing_input_is_refused() -> None:
    weights = oip.TensorSpec("weights", "FP32", (4,))
    with pytest.raises(oip.ProtocolError, match="weights"):
        parse(json_request([0] * 12), inputs=[IMAGES, weights])


def test_json_response_data_round_trips_float32_exactly() -> None:
    values = np.random.default_rng(0).random((2, 3), dtype=np.float32)
    body, length = oip.encode_infer_response("m", "1", "r9", [("probabilities", values, False)])
    assert length is None
    response = json.loads(body)
    assert (response["model_name"], response["model_version"], response["id"]) == ("m", "1", "r9")
    (output,) = response["outputs"]
    assert (output["datatype"], output["shape"]) == ("FP32", [2, 3])
    assert np.array_equal(np.asarray(output["data"], np.float32).reshape(2, 3), values)


def test_binary_response_outputs_follow_the_header_in_order() -> None:
    a, b = np.arange(6, dtype=np.float32).reshape(2, 3), np.array([[0.25, 0.75]], np.float32)
    body, length = oip.encode_infer_response(
        "m", "1", None, [("a", a, True), ("b", b, False), ("c", b, True)]
    )
    assert length is not None
    header = json.loads(body[:length])
    assert "id" not in header
    assert [o.get("parameters", {}).get("binary_data_size") for o in header["outputs"]] == [24, None, 8]
    assert body[length:] == a.tobytes() + b.tobytes()


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_compressed_bodies_inflate_within_the_limit(encoding: str) -> None:
    compress = gzip.compress if encoding == "gzip" else zlib.compress
    assert oip.decode_content(compress(b"x" * 100), encoding, 100) == b"x" * 100
    with pytest.raises(oip.BodyTooLarge):
        oip.decode_content(compress(b"x" * 101), encoding, 100)
    with pytest.raises(oip.ProtocolError, match=r"truncated|not valid"):
        oip.decode_content(compress(b"x" * 100)[:-6], encoding, 100)


def test_unknown_content_encoding_is_refused_and_identity_passes() -> None:
    assert oip.decode_content(b"abc", None, 3) == oip.decode_content(b"abc", "identity", 3) == b"abc"
    with pytest.raises(oip.UnsupportedEncoding):
        oip.decode_content(b"abc", "br", 3)
