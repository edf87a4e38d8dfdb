"""POST /segment and /segment/batch against the real uvicorn server on the tiny exported model."""

from __future__ import annotations

import io
import json

import httpx
import numpy as np
import pytest
from PIL import Image

from petseg_harness.photos import make_photo
from tests.app.conftest import decode_png

PHOTO = make_photo(150, 100)


def test_default_output_is_a_palette_mask_of_the_photo_size(client: httpx.Client, model_dir) -> None:
    response = client.post("/segment", files={"file": ("cat.jpg", PHOTO, "image/jpeg")})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    assert response.headers["x-model-version"] == "1"
    # Server-Timing says where the time went for a PNG too (it has no JSON timings)
    stages = dict(part.split(";dur=") for part in response.headers["server-timing"].split(", "))
    assert list(stages) == ["upload", "decode", "queue", "inference", "render", "total"]
    assert float(stages["inference"]) > 0 and float(stages["total"]) >= float(stages["inference"])
    mask = decode_png(response.content)
    assert mask.mode == "P" and mask.size == (150, 100)
    assert set(np.unique(np.asarray(mask))) <= {0, 1, 2}
    metadata = json.loads((model_dir / "1" / "metadata.json").read_text())
    colours = [c for cls in metadata["classes"] for c in cls["color"]]
    assert mask.getpalette()[: len(colours)] == colours


def test_raw_image_body_is_accepted(client: httpx.Client) -> None:
    response = client.post("/segment", content=PHOTO, headers={"content-type": "image/jpeg"})
    assert response.status_code == 200, response.text
    assert decode_png(response.content).size == (150, 100)


def test_overlay_is_an_rgb_png_of_the_photo_size(client: httpx.Client) -> None:
    response = client.post("/segment", params={"output": "overlay", "opacity": 0.3}, files={"file": PHOTO})
    assert response.status_code == 200, response.text
    overlay = decode_png(response.content)
    assert overlay.mode == "RGB" and overlay.size == (150, 100)


def test_cutout_is_rgba_or_rgb_on_a_background(client: httpx.Client) -> None:
    transparent = decode_png(
        client.post("/segment", params={"output": "cutout"}, files={"file": PHOTO}).content
    )
    assert transparent.mode == "RGBA" and transparent.size == (150, 100)
    solid = client.post(
        "/segment", params={"output": "cutout", "background": "#00ff00"}, files={"file": PHOTO}
    )
    assert solid.status_code == 200
    assert decode_png(solid.content).mode == "RGB"


def test_json_output_summarises_the_photo(client: httpx.Client) -> None:
    response = client.post("/segment", params={"output": "json"}, files={"file": PHOTO})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["width"], body["height"], body["model_version"]) == (150, 100, 1)
    assert set(body["class_fractions"]) == {"pet", "background", "border"}
    assert sum(body["class_fractions"].values()) == pytest.approx(1.0)
    box = body["pet_bbox"]
    assert box is None or (0 <= box["x0"] < box["x1"] <= 150 and 0 <= box["y0"] < box["y1"] <= 100)
    assert body["timings"]["batch_size"] >= 1


def test_exif_rotated_photo_gives_a_mask_of_the_rotated_size(client: httpx.Client) -> None:
    exif = Image.Exif()
    exif[0x0112] = 8
    response = client.post("/segment", files={"file": make_photo(160, 90, exif=exif.tobytes())})
    assert decode_png(response.content).size == (90, 160)


@pytest.mark.parametrize(("mode", "fmt"), [("L", "PNG"), ("RGBA", "PNG"), ("CMYK", "JPEG"), ("P", "GIF")])
def test_other_modes_and_formats_are_segmented(client: httpx.Client, mode: str, fmt: str) -> None:
    response = client.post("/segment", files={"file": make_photo(70, 50, mode=mode, fmt=fmt)})
    assert response.status_code == 200, response.text
    assert decode_png(response.content).size == (70, 50)


def test_batch_returns_one_result_or_error_per_photo(client: httpx.Client) -> None:
    files = [
        ("file", ("a.jpg", PHOTO)),
        ("file", ("b.txt", b"not an image")),
        ("file", ("c.png", make_photo(fmt="PNG"))),
    ]
    response = client.post("/segment/batch", files=files)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["filename"] for r in results] == ["a.jpg", "b.txt", "c.png"]
    assert [r["ok"] for r in results] == [True, False, True]
    assert results[0]["result"]["width"] == 150 and results[2]["result"]["width"] == 120
    assert results[1]["error"]["status"] == 415


def problem(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["status"] == status and body["title"] and "Traceback" not in response.text
    return body


def test_not_an_image_is_415(client: httpx.Client) -> None:
    problem(client.post("/segment", files={"file": ("x.jpg", b"plain text", "image/jpeg")}), 415)


def test_wrong_content_type_is_415(client: httpx.Client) -> None:
    problem(client.post("/segment", content=b"{}", headers={"content-type": "application/json"}), 415)


def test_truncated_image_is_400(client: httpx.Client) -> None:
    data = make_photo(400, 300)
    problem(client.post("/segment", files={"file": data[: len(data) // 2]}), 400)


def test_upload_over_the_byte_limit_is_413(client: httpx.Client) -> None:
    problem(
        client.post("/segment", content=b"\xff" * (3 * 1024 * 1024), headers={"content-type": "image/jpeg"}),
        413,
    )


def test_chunked_upload_over_the_limit_is_413_while_reading(client: httpx.Client) -> None:
    def chunks():
        for _ in range(64):
            yield b"\0" * 65536  # 4 MiB in all, with no Content-Length to check up front

    problem(client.post("/segment", content=chunks(), headers={"content-type": "image/png"}), 413)


def test_decompression_bomb_is_413(client: httpx.Client) -> None:
    buffer = io.BytesIO()
    Image.new("L", (3000, 2000)).save(buffer, format="PNG")  # 6 Mpx, a few KiB compressed
    problem(client.post("/segment", files={"file": buffer.getvalue()}), 413)


def test_missing_file_field_is_422(client: httpx.Client) -> None:
    problem(client.post("/segment", files={"photo": PHOTO}), 422)


@pytest.mark.parametrize("params", [{"output": "gif"}, {"opacity": 2}, {"background": "red"}])
def test_bad_parameters_are_422(client: httpx.Client, params: dict) -> None:
    problem(client.post("/segment", params=params, files={"file": PHOTO}), 422)


def test_server_survives_bad_input(client: httpx.Client) -> None:
    client.post("/segment", files={"file": b"\x89PNG\r\n\x1a\n" + b"\0" * 100})
    assert client.get("/healthz").status_code == 200
    assert client.post("/segment", files={"file": PHOTO}).status_code == 200


def test_a_bad_parameter_problem_says_what_in_a_sentence_and_lists_each_error(client: httpx.Client) -> None:
    body = problem(client.post("/segment", params={"opacity": 2}, files={"file": PHOTO}), 422)
    assert isinstance(body["detail"], str) and "opacity" in body["detail"]
    assert [error["loc"] for error in body["errors"]] == [["query", "opacity"]]
    assert {"msg", "type"} <= set(body["errors"][0])


def test_more_files_than_the_endpoint_takes_is_413(client: httpx.Client) -> None:
    two = [("file", ("a.jpg", PHOTO, "image/jpeg")), ("file", ("b.jpg", PHOTO, "image/jpeg"))]
    body = problem(client.post("/segment", files=two), 413)
    assert body["title"] == "Too many files" and "at most 1 photo" in body["detail"]


def test_form_fields_besides_the_photo_are_422(client: httpx.Client) -> None:
    extra = {"note": "hello", "tag": "cat"}  # the form takes only `file`
    body = problem(client.post("/segment", data=extra, files={"file": PHOTO}), 422)
    assert "besides 'file'" in body["detail"]


def test_the_api_documents_each_multipart_refusal(client: httpx.Client) -> None:
    responses = client.get("/openapi.json").json()["paths"]["/segment/batch"]["post"]["responses"]
    assert "files" in responses["413"]["description"] and "form fields" in responses["422"]["description"]
    assert "multipart" in responses["400"]["description"]
