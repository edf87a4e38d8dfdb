"""Probes, model metadata, metrics, docs, API key, overload, concurrency and startup failures."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import httpx
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings, resolve_model_version_dir
from petseg_harness.metrics import metric_samples, metric_value
from petseg_harness.photos import make_photo
from petseg_harness.server import REPO
from tests.app.conftest import API_KEY, decode_png

PHOTO = make_photo(150, 100)


def test_readiness_is_503_before_startup_and_200_after_warm_up(model_dir: Path) -> None:
    app = create_app(Settings(model_dir=model_dir))
    outside = TestClient(app)  # not entered: the lifespan (model load, warm-up) has not run
    assert outside.get("/healthz").status_code == 200
    assert outside.get("/readyz").status_code == 503
    assert outside.post("/segment", files={"file": PHOTO}).status_code == 503
    with TestClient(app) as client:
        while (ready := client.get("/readyz")).status_code != 200:  # warm-up runs in the background
            assert ready.status_code == 503 and ready.json()["status"] == "not ready"
            assert client.get("/healthz").status_code == 200
        assert client.post("/segment", files={"file": PHOTO}).status_code == 200


def test_model_metadata_endpoint(client: httpx.Client) -> None:
    body = client.get("/v1/model").json()
    assert (body["name"], body["version"], body["input_size"]) == ("tiny-pet", 1, 64)
    assert [c["name"] for c in body["classes"]] == ["pet", "background", "border"]
    assert isinstance(body["metrics"], dict)


def test_metrics_count_requests_and_expose_the_model(client: httpx.Client) -> None:
    segment_200 = {"route": "/segment", "status": "200"}
    before = metric_value(client.get("/metrics").text, "petseg_http_requests_total", **segment_200)
    client.post("/segment", files={"file": PHOTO})
    text = client.get("/metrics").text
    after = metric_value(text, "petseg_http_requests_total", **segment_200)
    assert after == before + 1
    assert metric_value(text, "petseg_model_info", version="1") == 1
    assert metric_samples(text, "petseg_queue_depth")
    assert metric_samples(text, "petseg_http_request_duration_seconds_bucket")


def test_32_concurrent_requests_are_answered_in_shared_batches(client: httpx.Client, server) -> None:
    before = client.get("/metrics").text

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=server.url, timeout=120) as http:
            return await asyncio.gather(*(http.post("/segment", files={"file": PHOTO}) for _ in range(32)))

    responses = asyncio.run(burst())
    assert [r.status_code for r in responses] == [200] * 32
    assert all(decode_png(r.content).size == (150, 100) for r in responses)
    after = client.get("/metrics").text
    batches = metric_value(after, "petseg_batch_size_count") - metric_value(before, "petseg_batch_size_count")
    photos = metric_value(after, "petseg_batch_size_sum") - metric_value(before, "petseg_batch_size_sum")
    assert photos == 32
    assert batches < 32  # so at least one batch held more than one photo


def test_openapi_docs_describe_segment(client: httpx.Client) -> None:
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    content = spec["paths"]["/segment"]["post"]["requestBody"]["content"]
    assert "multipart/form-data" in content and "image/*" in content


def test_api_key_guards_segment_but_not_probes(guarded_server) -> None:
    with httpx.Client(base_url=guarded_server.url, timeout=60) as http:
        assert http.post("/segment", files={"file": PHOTO}).status_code == 401
        wrong = http.post("/segment", files={"file": PHOTO}, headers={"X-API-Key": "nope"})
        assert wrong.status_code == 401 and wrong.json()["status"] == 401
        right = http.post("/segment", files={"file": PHOTO}, headers={"X-API-Key": API_KEY})
        assert right.status_code == 200
        assert all(http.get(path).status_code == 200 for path in ("/healthz", "/readyz", "/metrics"))


def test_full_queue_answers_503_with_retry_after(guarded_server) -> None:
    async def burst() -> list[httpx.Response]:
        headers = {"X-API-Key": API_KEY}
        async with httpx.AsyncClient(base_url=guarded_server.url, timeout=120, headers=headers) as http:
            return await asyncio.gather(*(http.post("/segment", files={"file": PHOTO}) for _ in range(32)))

    responses = asyncio.run(burst())
    assert {r.status_code for r in responses} <= {200, 503}
    refused = [r for r in responses if r.status_code == 503]
    assert refused, "a one-photo queue should refuse some of 32 simultaneous requests"
    assert all(r.headers["retry-after"] == "1" and r.json()["status"] == 503 for r in refused)


def test_highest_numeric_version_wins(tmp_path: Path) -> None:
    for version in ("2", "10", "9", "latest"):
        (tmp_path / version).mkdir()
        (tmp_path / version / "saved_model.pb").touch()
    assert resolve_model_version_dir(tmp_path) == tmp_path / "10"
    assert resolve_model_version_dir(tmp_path / "2") == tmp_path / "2"


def test_settings_come_from_prefixed_environment(monkeypatch) -> None:
    monkeypatch.setenv("PETSEG_MAX_BATCH_SIZE", "7")
    monkeypatch.setenv("PETSEG_API_KEY", "s3cret")
    settings = Settings()
    assert settings.max_batch_size == 7 and settings.api_key.get_secret_value() == "s3cret"


def start_and_fail(model_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "uvicorn", "app.main:app", "--port", "0"],
        cwd=REPO,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PETSEG_MODEL_DIR": str(model_dir)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_missing_model_directory_stops_with_one_clear_line(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    proc = start_and_fail(missing)
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if "petseg cannot start" in line]
    assert errors and str(missing) in errors[0] and "does not exist" in errors[0]
    assert "Traceback" not in proc.stderr


def test_broken_model_directory_stops_with_one_clear_line(tmp_path: Path) -> None:
    (tmp_path / "1").mkdir()
    (tmp_path / "1" / "saved_model.pb").write_bytes(b"not a protobuf")
    (tmp_path / "1" / "metadata.json").write_text(
        '{"name": "x", "version": 1, "input_size": 64, "classes": []}'
    )
    proc = start_and_fail(tmp_path)
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if "petseg cannot start" in line]
    assert errors and str(tmp_path / "1") in errors[0]
    assert "Traceback" not in proc.stderr


def test_cli_has_a_serve_command() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "app", "serve", "--help"], cwd=REPO, capture_output=True, text=True
    )
    assert proc.returncode == 0 and "--port" in proc.stdout
