"""Short load runs: no errors under concurrency, 503 + Retry-After only past the queue capacity,
and SIGTERM drains what is in flight and exits 0. (Durations are short; no timing is asserted.)"""

from __future__ import annotations

import asyncio

from bench.load import multipart_post, run_load
from petseg_harness.server import ServerProcess, running_service
from stress.runs import sigterm_during_load, sustained_load


def test_concurrent_clients_get_only_200(stress_server: ServerProcess, load_photos) -> None:
    result = sustained_load(stress_server, load_photos, clients=16, seconds=3)
    assert result["statuses"] == {"200": result["requests"]}
    assert result["readyz_after"] == 200


def test_a_lone_client_gets_the_services_time_by_stage(stress_server: ServerProcess, load_photos) -> None:
    # What `python -m bench` prints as "where the time goes" at c=1, from the real server's headers.
    requests = [multipart_post("/segment?output=mask", name, data) for name, data in load_photos]
    run = asyncio.run(run_load(stress_server.url, requests, concurrency=1, total=12))
    summary = run.summary()
    assert summary["statuses"] == {"200": 12}
    stages = summary["stages_p50_ms"]
    assert set(stages) == {"upload", "decode", "queue", "inference", "render", "total", "outside"}
    assert stages["inference"] > 0 and stages["decode"] > 0 and stages["render"] > 0
    # The client's latency holds the service's total (Server-Timing rounds to 0.1 ms per stage).
    assert stages["outside"] > -0.5
    assert stages["total"] <= summary["p50_ms"] + 0.5


def test_a_full_queue_answers_503_with_retry_after_and_nothing_else(
    tiny_model_dir, tmp_path, load_photos
) -> None:
    # Every client may decode at once and one model stream serves batches of one, so decoded photos
    # outrun the model and the queue of 2 overflows. With the default 2 decoding slots per core and two
    # streams, at most as many photos were decoded as the streams take: the queue filled by chance only.
    env = {
        "PETSEG_QUEUE_CAPACITY": "2",
        "PETSEG_MAX_BATCH_SIZE": "1",
        "PETSEG_MAX_BATCH_WAIT_MS": "0",
        "PETSEG_MAX_DECODING": "24",
        "PETSEG_MODEL_STREAMS": "1",
    }
    with running_service(tiny_model_dir, tmp_path / "server.log", env) as server:
        requests = [multipart_post("/segment", name, data) for name, data in load_photos]
        run = asyncio.run(run_load(server.url, requests, concurrency=24, duration_s=3))
    statuses = {o.status for o in run.outcomes}
    assert statuses <= {200, 503}
    assert 503 in statuses and 200 in statuses
    assert all(o.retry_after for o in run.outcomes if o.status == 503)


def test_sigterm_during_load_finishes_in_flight_requests_and_exits_0(
    tiny_model_dir, tmp_path, load_photos
) -> None:
    with running_service(tiny_model_dir, tmp_path / "server.log") as server:
        result = sigterm_during_load(server, load_photos, clients=8, before_s=1.5)
    assert result["in_flight_at_signal"] > 0
    assert result["in_flight_completed_200"] == result["in_flight_at_signal"], result
    assert result["server_errors"] == 0, result
    assert result["exit_code"] == 0, result
