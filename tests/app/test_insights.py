"""What ?output=json says beyond the mask (separate pets, species, breed) and ?output=alpha, on real servers.

The tiny test model is barely trained, so which pixels it calls pet is not controlled here: these tests
check the fields' presence and their consistency with each other and with the mask. Where regions come
from is specified on constructed class maps in test_regions.py.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from app.regions import find_pets
from petseg_contract import BREED_NAMES, SPECIES_NAMES
from petseg_harness.photos import make_photo
from petseg_harness.server import REPO, ServerProcess, running_service
from tests.app.conftest import decode_png

PHOTO = make_photo(150, 100)


def two_blobs_photo(width: int = 240, height: int = 120) -> bytes:
    """Two bright blobs side by side on a dark background, like two cats on a sofa."""
    image = Image.new("RGB", (width, height), (40, 60, 80))
    image.paste((220, 180, 120), (20, 20, 100, 100))
    image.paste((200, 160, 110), (140, 25, 220, 105))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


PHOTOS = {"blob": PHOTO, "two blobs": two_blobs_photo(), "noise": None}


def noise_photo() -> bytes:
    pixels = np.random.default_rng(3).integers(0, 256, (90, 130, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


PHOTOS["noise"] = noise_photo()

# Re-exports a SavedModel with only the segmentation output: a model without species/breed heads,
# whatever the tiny model has. Run in a subprocess so TensorFlow stays out of the test process.
_STRIP_HEADS = """
import json, sys
import tensorflow as tf
source, target = sys.argv[1], sys.argv[2]
loaded = tf.saved_model.load(source)
serve = loaded.signatures["serving_default"]
spec = serve.structured_input_signature[1]["images"]

@tf.function(input_signature=[tf.TensorSpec(spec.shape, tf.uint8, name="images")])
def segment_only(images):
    return {"probabilities": serve(images=images)["probabilities"]}

module = tf.Module()
module.loaded = loaded
tf.saved_model.save(module, target, signatures={"serving_default": segment_only})
metadata = json.load(open(source + "/metadata.json"))
for key in ("species", "breeds"):
    metadata.pop(key, None)
json.dump(metadata, open(target + "/metadata.json", "w"))
"""


@pytest.fixture(scope="module")
def segment_only_server(tmp_path_factory, model_dir: Path) -> Iterator[ServerProcess]:
    """The service on the tiny model re-exported without species/breed outputs, keeping every pet region."""
    target = tmp_path_factory.mktemp("segment-only") / "1"
    proc = subprocess.run(
        [sys.executable, "-c", _STRIP_HEADS, str(model_dir / "1"), str(target)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    log = tmp_path_factory.mktemp("logs") / "segment-only.log"
    with running_service(target, log, {"PETSEG_MIN_PET_FRACTION": "0"}) as server:
        yield server


@pytest.fixture(scope="module")
def segment_only(segment_only_server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=segment_only_server.url, timeout=60) as http:
        yield http


def summary(client: httpx.Client, photo: bytes) -> dict:
    response = client.post("/segment", params={"output": "json"}, files={"file": photo})
    assert response.status_code == 200, response.text
    return response.json()


def inside(box: dict, outer: dict) -> bool:
    return (
        outer["x0"] <= box["x0"] < box["x1"] <= outer["x1"]
        and outer["y0"] <= box["y0"] < box["y1"] <= outer["y1"]
    )


def assert_consistent(body: dict, min_fraction: float) -> None:
    """Pets sorted by area, none under the minimum, inside the pet box, no more pixels than pet + border."""
    pets = body["pets"]
    assert body["pet_found"] is bool(pets)
    areas = [p["area_fraction"] for p in pets]
    assert areas == sorted(areas, reverse=True)
    assert all(a >= min_fraction for a in areas)
    fractions = body["class_fractions"]
    assert sum(areas) <= fractions["pet"] + fractions["border"] + 1e-9
    for p in pets:
        assert inside(p["bbox"], body["pet_bbox"])
        assert 0.0 <= p["mean_confidence"] <= 1.0


@pytest.mark.parametrize("name", PHOTOS)
def test_pets_of_at_least_the_default_share_are_consistent_with_the_mask(
    client: httpx.Client, name: str
) -> None:
    assert_consistent(summary(client, PHOTOS[name]), 0.01)


@pytest.mark.parametrize("name", PHOTOS)
def test_with_no_minimum_every_pet_pixel_is_in_some_pet(segment_only: httpx.Client, name: str) -> None:
    body = summary(segment_only, PHOTOS[name])
    assert_consistent(body, 0.0)
    boxes = [p["bbox"] for p in body["pets"]]
    if body["pet_bbox"] is None:
        assert boxes == []
        return
    union = {
        "x0": min(b["x0"] for b in boxes),
        "y0": min(b["y0"] for b in boxes),
        "x1": max(b["x1"] for b in boxes),
        "y1": max(b["y1"] for b in boxes),
    }
    assert union == body["pet_bbox"]


@pytest.mark.parametrize(("server_name", "min_fraction"), [("client", 0.01), ("segment_only", 0.0)])
def test_pets_are_the_regions_of_the_served_mask_and_matte(
    request, server_name: str, min_fraction: float
) -> None:
    """The JSON's pets are found on the very mask the service returns, at the photo's size. Their
    confidence is the mean pet probability, which no PNG carries (the alpha output is the steeper
    cut-out matte), so only its range is checked here; tests/app/test_regions.py checks its value."""
    http: httpx.Client = request.getfixturevalue(server_name)
    for photo in PHOTOS.values():
        mask = np.asarray(decode_png(http.post("/segment", files={"file": photo}).content))
        expected = [
            {
                "bbox": {"x0": p.x0, "y0": p.y0, "x1": p.x1, "y1": p.y1},
                "area_fraction": pytest.approx(p.area_fraction),
            }
            for p in find_pets(mask, np.zeros(mask.shape, np.uint8), min_fraction)
        ]
        pets = summary(http, photo)["pets"]
        assert all(0.0 <= pet.pop("mean_confidence") <= 1.0 for pet in pets)
        assert pets == expected


def test_a_model_without_species_and_breed_says_so(segment_only: httpx.Client) -> None:
    info = segment_only.get("/v1/model").json()
    assert info["reports_labels"] is False and info["labels"] is None
    body = summary(segment_only, PHOTO)
    assert (body["species"], body["breed"], body["breed_top3"]) == (None, None, None)


def test_a_model_with_species_and_breed_names_them(client: httpx.Client) -> None:
    info = client.get("/v1/model").json()
    if not info["reports_labels"]:
        pytest.skip("the tiny model was exported without species/breed outputs")
    assert info["labels"] == {"species": list(SPECIES_NAMES), "breeds": list(BREED_NAMES)}
    body = summary(client, PHOTO)
    assert body["species"]["label"] in SPECIES_NAMES and 0 <= body["species"]["confidence"] <= 1
    top3 = body["breed_top3"]
    assert len(top3) == 3 and len({b["label"] for b in top3}) == 3
    assert all(b["label"] in BREED_NAMES for b in top3)
    confidences = [b["confidence"] for b in top3]
    assert confidences == sorted(confidences, reverse=True)
    assert body["breed"] == top3[0]


def test_batch_results_carry_the_same_fields(client: httpx.Client) -> None:
    single = summary(client, PHOTO)
    response = client.post("/segment/batch", files=[("file", ("a.jpg", PHOTO)), ("file", ("b.png", PHOTO))])
    assert response.status_code == 200, response.text
    for item in response.json()["results"]:
        result = item["result"]
        for field in ("pets", "pet_found", "pet_bbox", "species", "breed", "breed_top3"):
            assert result[field] == single[field], field


def test_alpha_is_the_cutouts_matte_as_greyscale_at_the_photos_size(client: httpx.Client) -> None:
    response = client.post("/segment", params={"output": "alpha"}, files={"file": PHOTO})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    alpha = decode_png(response.content)
    assert (alpha.mode, alpha.size) == ("L", (150, 100))
    cutout = decode_png(client.post("/segment", params={"output": "cutout"}, files={"file": PHOTO}).content)
    assert np.array_equal(np.asarray(alpha), np.asarray(cutout)[..., 3])


@pytest.mark.parametrize(
    ("params", "detail", "ignored"),
    [
        (
            {"output": "mask", "background": "ffffff"},
            "query.background: only applies to output=cutout, not output=mask",
            ["background"],
        ),
        (
            {"output": "json", "opacity": "0.3"},
            "query.opacity: only applies to output=overlay, not output=json",
            ["opacity"],
        ),
        (
            {"output": "alpha", "opacity": "0.5", "background": "000000"},
            "not output=alpha",
            ["opacity", "background"],
        ),
        ({"background": "ffffff"}, "not output=mask", ["background"]),
    ],
)
def test_a_parameter_the_output_ignores_is_422(
    client: httpx.Client, params: dict, detail: str, ignored: list[str]
) -> None:
    response = client.post("/segment", params=params, files={"file": PHOTO})
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert detail in body["detail"]
    assert [error["loc"] for error in body["errors"]] == [["query", name] for name in ignored]


@pytest.mark.parametrize(
    "params",
    [
        {"output": "overlay", "opacity": "0.2"},
        {"output": "cutout", "background": "00ff00"},
        {"output": "json"},
    ],
)
def test_parameters_the_output_uses_are_accepted(client: httpx.Client, params: dict) -> None:
    assert client.post("/segment", params=params, files={"file": PHOTO}).status_code == 200


def test_openapi_documents_the_new_fields_with_examples(client: httpx.Client) -> None:
    spec = client.get("/openapi.json").json()
    result = spec["components"]["schemas"]["SegmentResult"]["properties"]
    for field in ("pets", "pet_found", "species", "breed", "breed_top3"):
        assert field in result, field
    assert "not proof of a pet" in result["pet_found"]["description"]
    segment = spec["paths"]["/segment"]["post"]
    examples = segment["responses"]["200"]["content"]["application/json"]["examples"]
    assert len(examples["two cats"]["value"]["pets"]) == 2
    assert "null" in examples["two cats"]["description"]
    output = next(p for p in segment["parameters"] if p["name"] == "output")
    assert "alpha" in json.dumps(spec["components"]["schemas"].get("OutputMode", output["schema"]))
    batch = spec["paths"]["/segment/batch"]["post"]["responses"]["200"]["content"]["application/json"]
    assert batch["example"]["results"][0]["result"]["pet_found"] is True
    assert "reports_labels" in spec["components"]["schemas"]["ModelInfo"]["properties"]
