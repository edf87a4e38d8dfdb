"""`python -m training evaluate --as-served` scores the masks exactly as POST /segment returns them:
the service's decoding, model runner and upsampling, at each photo's own resolution."""

from __future__ import annotations

import json

import numpy as np
import pytest

from petseg_contract import masks, photos
from petseg_harness.tiny_model import TINY_INPUT_SIZE
from tests.conftest import run_cli
from training import data as pet_data
from training.evaluate import EvaluationError, evaluate_model_dir, served_input, served_source
from training.metrics import confusion_matrix, scores_to_json


def test_as_served_scores_equal_the_services_own_masks(tiny_model_dir, synthetic_root):
    from app.segmenter import Segmenter

    segmenter = Segmenter.load(tiny_model_dir / "1")
    source = pet_data.DirectorySource(synthetic_root)
    cm = np.zeros((3, 3), np.int64)
    for stem in pet_data.read_list(synthetic_root, "test"):
        upload = source.photo_path(stem).read_bytes()
        photo = photos.decode(upload, input_size=segmenter.input_size, max_pixels=10**8)
        probs = segmenter.predict(photo.model_input[None])["probabilities"][0]
        labels = masks.upsample(probs, photo.height, photo.width).labels
        cm += confusion_matrix(source.load(stem).mask, labels)

    report = evaluate_model_dir(tiny_model_dir / "1", str(synthetic_root), "test", scoring="as-served")
    assert report["scoring"] == "as-served"
    assert report["results"]["all"]["original_resolution"] == scores_to_json(cm)


def test_served_model_input_is_the_draft_decode_not_a_full_resize(synthetic_root):
    # Why the scorings differ: the service decodes a large JPEG at a reduced scale before resizing.
    source = pet_data.DirectorySource(synthetic_root)
    stems = pet_data.read_list(synthetic_root, "test")
    differs = []
    for stem in stems:
        sample = source.load(stem)
        served = served_input(source.photo_path(stem), TINY_INPUT_SIZE, sample.mask.shape)
        differs.append(not np.array_equal(served, pet_data.resize_photo(sample.image, TINY_INPUT_SIZE)))
    assert any(differs)


def test_evaluate_cli_records_its_scoring(tiny_model_dir, synthetic_root, tmp_path):
    for flags, scoring in (([], "resized"), (["--as-served"], "as-served")):
        out = tmp_path / f"{scoring}.json"
        args = ["--model", str(tiny_model_dir / "1"), "--data-dir", str(synthetic_root), "--output", str(out)]
        proc = run_cli("evaluate", *args, *flags)
        assert json.loads(out.read_text())["scoring"] == scoring
        assert f"scoring={scoring}" in proc.stdout


def test_the_export_records_how_its_metrics_were_scored(tiny_model_dir):
    meta = json.loads((tiny_model_dir / "1" / "metadata.json").read_text())
    assert meta["metrics_scoring"] == "resized"


def test_as_served_scoring_needs_photo_files_and_a_known_scoring(synthetic_root):
    directory = pet_data.DirectorySource(synthetic_root)
    assert served_source(directory, "as-served") is directory
    assert served_source(directory, "resized") is None
    with pytest.raises(EvaluationError, match="photo directory"):
        served_source(object(), "as-served")  # e.g. tfds, whose photos come decoded
    with pytest.raises(EvaluationError, match="scoring must be one of"):
        served_source(directory, "approximately")
