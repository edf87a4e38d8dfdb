"""The benchmark's per-stage breakdown: the service's Server-Timing read back, and a lone request's time
beyond the raw model call split by stage (issue 11 asks where the time goes when a target is missed)."""

from __future__ import annotations

from app.api.routes.segment import server_timing
from app.schemas import Timings
from bench.__main__ import over_raw_call
from bench.load import Outcome, parse_server_timing, stage_medians


def test_the_services_own_header_reads_back_stage_by_stage() -> None:
    timings = Timings(
        decode_ms=3.2, queue_ms=0.0, inference_ms=9.9, render_ms=2.7, total_ms=15.8, batch_size=1
    )
    assert parse_server_timing(server_timing(0.3, timings)) == {
        "upload": 0.3,
        "decode": 3.2,
        "queue": 0.0,
        "inference": 9.9,
        "render": 2.7,
        "total": 16.1,
    }


def test_missing_or_malformed_timings_are_left_out() -> None:
    assert parse_server_timing(None) is None
    assert parse_server_timing("") is None
    assert parse_server_timing('cache;desc="hit", db;dur=x, app;dur=2.5') == {"app": 2.5}


def test_medians_per_stage_and_what_lies_outside_the_service() -> None:
    outcomes = [
        Outcome(0.0, latency, 200, stages_ms={"decode": decode, "total": total})
        for latency, decode, total in ((0.010, 3.0, 8.0), (0.012, 4.0, 9.0), (0.020, 5.0, 17.0))
    ]
    assert stage_medians(outcomes) == {"decode": 4.0, "total": 9.0, "outside": 3.0}
    assert stage_medians([Outcome(0.0, 0.01, 200)]) is None


def test_a_lone_requests_time_beyond_the_raw_call_by_stage() -> None:
    stages = {"upload": 0.3, "decode": 3.2, "queue": 0.0, "inference": 9.9, "render": 2.7, "total": 16.1}
    assert over_raw_call({**stages, "outside": 1.4}, raw_call_ms=8.8) == {
        "upload": 0.3,
        "decode": 3.2,
        "queue": 0.0,
        "render": 2.7,
        "outside": 1.4,
        "inference_beyond_raw_call": 1.1,
    }
