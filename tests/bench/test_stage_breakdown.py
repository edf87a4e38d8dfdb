"""How `python -m bench` judges issue 11's targets: the service's Server-Timing read back, a lone request's
time beyond the raw model call split by stage (the issue asks where the time goes when a target is
missed), and raw baselines bracketing the service's levels."""

from __future__ import annotations

from app.api.routes.segment import server_timing
from app.schemas import Timings
from bench.__main__ import bracket, over_raw_call, ratios
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


def raw(**batches: tuple[float, float]) -> dict:
    return {
        "batches": {
            size: {"images_per_s": ips, "median_call_ms": ms, "cpu_ms_per_image": 2000 / ips}
            for size, (ips, ms) in batches.items()
        },
        "best_batch_size": max(batches, key=lambda size: batches[size][0]),
    }


def test_baselines_measured_again_after_the_levels_count_half_each() -> None:
    before = raw(**{"1": (40.0, 25.0), "4": (67.0, 60.0), "16": (64.0, 250.0)})
    after = raw(**{"1": (44.0, 23.0), "16": (56.0, 290.0)})
    mean = bracket(before, after)["batches"]
    assert mean["16"]["images_per_s"] == 60.0 and mean["16"]["median_call_ms"] == 270.0
    assert mean["16"]["before"]["images_per_s"] == 64.0 and mean["16"]["after"]["images_per_s"] == 56.0
    assert mean["1"]["images_per_s"] == 42.0
    assert mean["4"] == before["batches"]["4"]  # measured once: kept as it was
    assert bracket(before, None) is before


def test_the_targets_are_judged_against_the_bracketed_baselines() -> None:
    service = {"levels": {"16": {"throughput_rps": 72.0, "cpu_ms_per_request": 25.0}}, "ready_s": 9.0}
    before = raw(**{"1": (40.0, 25.0), "16": (64.0, 250.0)})
    after = raw(**{"1": (40.0, 25.0), "16": (56.0, 290.0)})
    assert ratios(before, service, None)["service_vs_raw_b16_at_c16"] == 1.125
    assert ratios(bracket(before, after), service, None)["service_vs_raw_b16_at_c16"] == 1.2
