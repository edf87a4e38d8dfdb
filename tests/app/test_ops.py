"""Probes, model metadata, metrics, docs, API key, unavailability, concurrency and startup failures."""

from __future__ import annotations

import asyncio
import os
import re
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


def test_warming_up_503_sends_the_configured_retry_after(tmp_path: Path) -> None:
    outside = TestClient(create_app(Settings(model_dir=tmp_path, retry_after_seconds=7)))  # no lifespan yet
    response = outside.post("/segment", files={"file": PHOTO})
    assert response.status_code == 503 and response.headers["retry-after"] == "7"


async def _cancel_model_worker() -> None:
    """Ends one of the batcher's worker tasks from outside, as an unexpected crash would (they are named in
    start(), one per model stream); one dead worker stops the whole batcher."""
    worker = next(task for task in asyncio.all_tasks() if task.get_name().startswith("petseg-batcher-"))
    worker.cancel()
    await asyncio.wait({worker})


def test_a_dead_model_worker_makes_readyz_fail_and_requests_answer_503(model_dir: Path) -> None:
    with TestClient(create_app(Settings(model_dir=model_dir, retry_after_seconds=3))) as client:
        while client.get("/readyz").status_code != 200:  # warm-up runs in the background
            pass
        client.portal.call(_cancel_model_worker)
        ready = client.get("/readyz")
        assert ready.status_code == 503 and "model worker" in ready.json()["detail"]
        assert client.get("/v2/health/ready").status_code == 503
        refused = client.post("/segment", files={"file": PHOTO})  # answered at once, not left hanging
        assert refused.status_code == 503 and refused.headers["retry-after"] == "3"
        assert "restarted" in refused.json()["detail"]


def test_error_responses_name_the_model_too(client: httpx.Client) -> None:
    for response in (
        client.post("/segment", files={"file": ("x.jpg", b"plain text", "image/jpeg")}),  # 415
        client.post("/segment", params={"output": "gif"}, files={"file": PHOTO}),  # 422
        client.get("/no/such/page"),  # 404
    ):
        assert response.status_code >= 400
        assert (response.headers["x-model-name"], response.headers["x-model-version"]) == ("tiny-pet", "1")


def test_docs_pages_and_their_assets_are_counted_under_their_own_paths(tmp_path: Path) -> None:
    # In-process: TestClient returns only once the app (and so the metrics middleware) has finished,
    # whereas a real server may answer /metrics before it has counted the previous, large response.
    client = TestClient(create_app(Settings(model_dir=tmp_path)))
    before = client.get("/metrics").text
    paths = ["/docs", "/docs/oauth2-redirect", "/openapi.json", "/docs/assets/swagger-ui.css"]
    assert all(client.get(path).status_code == 200 for path in paths)
    after = client.get("/metrics").text
    for route in ["/docs", "/docs/oauth2-redirect", "/openapi.json", "/docs/assets"]:
        counted = metric_value(after, "petseg_http_requests_total", route=route) - metric_value(
            before, "petseg_http_requests_total", route=route
        )
        assert counted == 1, route
    unmatched = metric_value(after, "petseg_http_requests_total", route="unmatched")
    assert unmatched == metric_value(before, "petseg_http_requests_total", route="unmatched")


def test_api_docs_load_only_assets_served_by_the_service(client: httpx.Client) -> None:
    html = client.get("/docs").text
    assert "http://" not in html and "https://" not in html  # nothing from a CDN: works offline
    assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)
    assert any(asset.endswith(".js") for asset in assets)
    for asset in assets:
        assert asset.startswith("/") and not asset.startswith("//"), asset
        response = client.get(asset)
        assert response.status_code == 200 and response.content, asset


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
