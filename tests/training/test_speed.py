"""`python -m training speed` times a candidate against a baseline under TensorFlow and OpenVINO in one
run and prints ratios; the tests check what it reports, never how fast anything is."""

from __future__ import annotations

import json

import numpy as np
import pytest

from petseg_harness.tiny_model import TINY_INPUT_SIZE
from tests.conftest import run_cli
from training.speed import Runner


@pytest.fixture(scope="module")
def openvino():
    return pytest.importorskip("openvino")


def test_openvino_runs_the_export_like_tensorflow(tiny_model_dir, openvino):
    batch = np.random.default_rng(0).integers(0, 256, (2, TINY_INPUT_SIZE, TINY_INPUT_SIZE, 3), np.uint8)
    tf_out = Runner(tiny_model_dir / "1", "tensorflow")(batch)
    ov_out = Runner(tiny_model_dir / "1", "openvino")(batch)
    assert set(ov_out) == set(tf_out) == {"probabilities", "species_probabilities", "breed_probabilities"}
    for name, expected in tf_out.items():
        np.testing.assert_allclose(ov_out[name], expected, atol=1e-3, err_msg=name)


def test_speed_reports_both_runtimes_and_ratios_for_a_preset(tiny_model_dir, openvino):
    proc = run_cli(
        "speed",
        "--baseline",
        str(tiny_model_dir / "1"),
        "--preset",
        "v2",
        "--input-size",
        "64",
        "--batch-size",
        "2",
        "--seconds",
        "0.3",
    )
    report = json.loads(proc.stdout)
    assert set(report["images_per_s"]) == {"tensorflow", "openvino"}
    for runtime, models in report["images_per_s"].items():
        assert models["baseline"]["images_per_s"] > 0 and models["candidate"]["input_size"] == 64
        assert report["candidate_over_baseline"][runtime] > 0
    assert report["models"]["candidate"] == "preset v2 (random weights)"
