"""train -> export -> evaluate through the CLI, and the export contract the service relies on."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import tensorflow as tf

from petseg_contract import BREED_NAMES, SPECIES_NAMES, check_metadata
from petseg_harness.tiny_model import TINY_INPUT_SIZE, TINY_TRAIN_ARGS
from tests.conftest import run_cli, training_cli
from training.export import ExportError, check_roundtrip, export, parse_output

METADATA_KEYS = {
    "name",
    "version",
    "input_size",
    "classes",
    "metrics",
    "training",
    "data",
    "library_versions",
    "created_at",
    "signature",
    "export_check",
    "species",
    "breeds",
}


def test_run_directory_records_config_data_history_and_plots(tiny_run_dir):
    for name in (
        "config.json",
        "data.json",
        "history.csv",
        "best.weights.h5",
        "timing.json",
        "curves.png",
        "predictions.png",
    ):
        assert (tiny_run_dir / name).is_file(), name
    data = json.loads((tiny_run_dir / "data.json").read_text())
    assert (
        data["splits"]["train"]["skipped_missing_photo"]
        + data["splits"]["validation"]["skipped_missing_photo"]
        == 1
    )
    assert json.loads((tiny_run_dir / "config.json").read_text())["input_size"] == TINY_INPUT_SIZE


def test_export_follows_the_contract(tiny_model_dir):
    version = tiny_model_dir / "1"
    assert (version / "saved_model.pb").is_file() and (version / "variables").is_dir()
    meta = json.loads((version / "metadata.json").read_text())
    assert meta.keys() >= METADATA_KEYS
    assert (meta["name"], meta["version"], meta["input_size"]) == ("tiny-pet", 1, TINY_INPUT_SIZE)
    assert [c["name"] for c in meta["classes"]] == ["pet", "background", "border"]
    assert set(meta["metrics"]) == {"validation", "test"}
    assert meta["export_check"]["max_abs_diff"] <= 1e-4

    fn = tf.saved_model.load(str(version)).signatures["serving_default"]
    spec = fn.structured_input_signature[1]["images"]
    assert spec.dtype == tf.uint8 and spec.shape.as_list() == [None, TINY_INPUT_SIZE, TINY_INPUT_SIZE, 3]
    out = fn(images=tf.zeros((2, TINY_INPUT_SIZE, TINY_INPUT_SIZE, 3), tf.uint8))
    probs = out["probabilities"].numpy()
    assert probs.shape == (2, TINY_INPUT_SIZE, TINY_INPUT_SIZE, 3) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-5)


def test_export_has_species_and_breed_outputs_named_in_metadata(tiny_model_dir):
    version = tiny_model_dir / "1"
    meta = json.loads((version / "metadata.json").read_text())
    check_metadata(meta)
    assert [s["name"] for s in meta["species"]] == list(SPECIES_NAMES)
    assert [b["name"] for b in meta["breeds"]] == list(BREED_NAMES)
    assert meta["signature"]["outputs"]["species_probabilities"]["shape"] == [None, 2]
    assert meta["signature"]["outputs"]["breed_probabilities"]["shape"] == [None, 37]
    fn = tf.saved_model.load(str(version)).signatures["serving_default"]
    out = fn(images=tf.zeros((3, TINY_INPUT_SIZE, TINY_INPUT_SIZE, 3), tf.uint8))
    for name, classes in (("species_probabilities", 2), ("breed_probabilities", 37)):
        got = out[name].numpy()
        assert got.shape == (3, classes) and got.dtype == np.float32, name
        np.testing.assert_allclose(got.sum(-1), 1.0, atol=1e-5)


def test_evaluate_cli_prints_and_writes_metrics(tiny_model_dir, synthetic_root, tmp_path):
    out = tmp_path / "eval.json"
    proc = run_cli(
        "evaluate",
        "--model",
        str(tiny_model_dir / "1"),
        "--data-dir",
        str(synthetic_root),
        "--split",
        "test",
        "--output",
        str(out),
    )
    report = json.loads(out.read_text())
    assert "original_resolution" in proc.stdout
    res = report["results"]["all"]
    assert res["photos"] == 12
    for key in ("model_resolution", "original_resolution"):
        assert 0.0 <= res[key]["mean_iou"] <= 1.0 and set(res[key]["iou"]) == {"pet", "background", "border"}
    for head in ("species", "breed"):
        assert res[head]["labelled"] == 12 and 0.0 <= res[head]["accuracy"] <= 1.0
    assert "species accuracy" in proc.stdout and "breed accuracy" in proc.stdout


def test_export_refuses_a_non_numeric_version_and_an_existing_one(tiny_run_dir, tiny_model_dir):
    with pytest.raises(ExportError, match="numeric version"):
        parse_output("models/pet-unet/latest")
    with pytest.raises(ExportError, match="already exists"):
        export(tiny_run_dir, tiny_model_dir / "1")


def test_roundtrip_check_fails_loudly_on_a_mismatch(tiny_model_dir):
    from training.evaluate import SavedModelPredictor
    from training.model import build_unet

    other = build_unet(TINY_INPUT_SIZE, encoder_weights=None, alpha=0.35, decoder_scale=0.125)
    images = np.random.default_rng(0).integers(
        0, 255, (2, TINY_INPUT_SIZE, TINY_INPUT_SIZE, 3), dtype=np.uint8
    )
    with pytest.raises(ExportError, match="differs"):
        check_roundtrip(other, SavedModelPredictor(tiny_model_dir / "1"), images)


def test_every_cli_command_documents_its_options():
    for cmd in ("train", "evaluate", "export", "benchmark"):
        assert "usage:" in run_cli(cmd, "--help").stdout


def test_showcase_runs_the_model_on_photos_outside_the_dataset(tiny_model_dir, tmp_path):
    pytest.importorskip("skimage")
    run_cli("showcase", "--model", str(tiny_model_dir / "1"), "--out", str(tmp_path))
    results = json.loads((tmp_path / "showcase.json").read_text())
    assert set(results) == {"chelsea", "astronaut", "coffee", "rocket"}
    for r in results.values():
        assert r["pet"] + r["background"] + r["border"] == pytest.approx(1.0, abs=1e-3)
    assert (tmp_path / "showcase.png").stat().st_size > 1000


def test_figures_are_drawn_from_the_release_alone(tiny_model_dir, tiny_run_dir, synthetic_root, tmp_path):
    meta = json.loads((tiny_model_dir / "1" / "metadata.json").read_text())
    epochs = len((tiny_run_dir / "history.csv").read_text().splitlines()) - 1
    assert [row["epoch"] for row in meta["training_history"]] == list(range(epochs))
    with (tiny_run_dir / "history.csv").open() as f:
        logged = list(csv.DictReader(f))
    for kept, row in zip(meta["training_history"], logged, strict=True):  # learning rates of 1e-5 too
        assert {k: pytest.approx(float(v), rel=1e-5) for k, v in row.items()} == kept

    run_cli("figures", "--model", str(tiny_model_dir / "1"), "--data-dir", str(synthetic_root),
            "--out", str(tmp_path), "--tag", "t", "--count", "2")  # fmt: skip
    for name in ("curves-t.png", "predictions-validation-t.png", "worst-validation-t.png"):
        assert (tmp_path / name).stat().st_size > 1000, name
    report = json.loads((tmp_path / "figures-t.json").read_text())
    ious = list(report["pet_iou_per_photo"].values())
    assert len(ious) == report["photos"] == meta["metrics"]["validation"]["all"]["photos"]
    assert ious == sorted(ious) and all(0.0 <= v <= 1.0 for v in ious)
    matte = {c["steepness"]: c for c in report["matte"]["candidates"]}
    assert report["matte"]["served_steepness"] in matte
    for c in matte.values():
        assert (
            0.0 <= c["semi_transparent_share"] <= 1.0
            and 0.0 <= c["mean_abs_error_on_pet_and_background"] <= 1.0
        )


def test_test_time_flip_export_is_mirror_symmetric(tiny_run_dir, tmp_path):
    from training.evaluate import SavedModelPredictor

    meta = export(tiny_run_dir, tmp_path / "tta" / "1", evaluate_splits=(), flip_tta=True)
    assert meta["test_time_flip"] is True
    predict = SavedModelPredictor(tmp_path / "tta" / "1")
    x = np.random.default_rng(1).integers(0, 255, (1, TINY_INPUT_SIZE, TINY_INPUT_SIZE, 3), dtype=np.uint8)
    plain, mirrored = predict(x), predict(x[:, :, ::-1])
    np.testing.assert_allclose(mirrored["probabilities"][:, :, ::-1], plain["probabilities"], atol=1e-5)
    for head in ("species_probabilities", "breed_probabilities"):  # a mirrored pet is the same pet
        np.testing.assert_allclose(mirrored[head], plain[head], atol=1e-5)


def fine_tune_from(init_weights, synthetic_root, run, input_size: int = TINY_INPUT_SIZE) -> None:
    """One fine-tuning epoch of the tiny model (phase 1 skipped) starting from `init_weights`."""
    args = [a if a != str(TINY_INPUT_SIZE) else str(input_size) for a in TINY_TRAIN_ARGS]
    args[args.index("--epochs") + 1] = "0"
    run_cli("train", "--data-dir", str(synthetic_root), "--run-dir", str(run), *args,
            "--fine-tune-epochs", "1", "--init-weights", str(init_weights))  # fmt: skip


def test_a_run_can_start_from_another_runs_weights_at_a_larger_size(tiny_run_dir, synthetic_root, tmp_path):
    run = tmp_path / "bigger"
    fine_tune_from(tiny_run_dir / "best.weights.h5", synthetic_root, run, input_size=96)
    history = (run / "history.csv").read_text().splitlines()
    assert len(history) == 2  # header + the one fine-tuning epoch
    assert json.loads((run / "config.json").read_text())["input_size"] == 96


def test_a_released_savedmodel_is_a_starting_point_with_every_weight(tiny_run_dir, tiny_model_dir):
    from training.config import TrainConfig
    from training.evaluate import SavedModelPredictor
    from training.model import load_release_weights, model_from_config, predict_outputs

    model = model_from_config(TrainConfig.load(tiny_run_dir), encoder_weights=None)
    load_release_weights(model, tiny_model_dir / "1")
    x = np.random.default_rng(2).integers(0, 255, (2, TINY_INPUT_SIZE, TINY_INPUT_SIZE, 3), dtype=np.uint8)
    ours = predict_outputs(model, x.astype(np.float32))
    released = SavedModelPredictor(tiny_model_dir / "1")(x)
    for name, value in released.items():  # batch norm statistics included, or these would differ
        np.testing.assert_allclose(ours[name].numpy(), value, atol=1e-5)


def test_a_savedmodel_of_another_architecture_is_refused(tiny_model_dir):
    from training.model import build_unet, load_release_weights

    other = build_unet(TINY_INPUT_SIZE, encoder_weights=None, alpha=0.35, decoder_scale=0.25, decoder="light")
    with pytest.raises(ValueError, match="do not fit this architecture"):
        load_release_weights(other, tiny_model_dir / "1")


@pytest.mark.parametrize("weights", ["savedmodel", "h5"])
def test_weights_of_another_architecture_are_a_one_line_error_before_the_run_exists(
    weights, tiny_model_dir, tiny_run_dir, synthetic_root, tmp_path
):
    init = tiny_model_dir / "1" if weights == "savedmodel" else tiny_run_dir / "best.weights.h5"
    args = list(TINY_TRAIN_ARGS)
    args[args.index("--alpha") + 1] = "0.5"  # the tiny model was trained at 0.35
    run = tmp_path / "mismatched"
    proc = training_cli("train", "--data-dir", str(synthetic_root), "--run-dir", str(run), *args,
                        "--init-weights", str(init))  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "error: --init-weights" in proc.stderr and "do not fit" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not run.exists()  # nothing written, so a corrected command starts afresh


def test_fine_tuning_can_start_from_a_released_savedmodel(tiny_model_dir, synthetic_root, tmp_path):
    run = tmp_path / "from-release"
    fine_tune_from(tiny_model_dir / "1", synthetic_root, run)
    assert len((run / "history.csv").read_text().splitlines()) == 2
    assert json.loads((run / "config.json").read_text())["init_weights"] == str(tiny_model_dir / "1")


def test_exported_variables_are_stored_once(tiny_model_dir):
    from training.model import build_unet

    params = build_unet(TINY_INPUT_SIZE, encoder_weights=None, alpha=0.35, decoder_scale=0.125).count_params()
    stored = sum(f.stat().st_size for f in (tiny_model_dir / "1" / "variables").glob("variables.data-*"))
    assert stored < 1.2 * 4 * params  # float32 weights plus a little bookkeeping, not a second copy
