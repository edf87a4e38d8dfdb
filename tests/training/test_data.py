"""The loader reads the official layout, skips what it must, and splits and labels like the seed."""

from __future__ import annotations

import io
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from petseg_contract import BREED_KEYS, BREED_SPECIES, photos
from training import BREED, SEGMENTATION, SPECIES
from training import data as pet_data
from training.synthetic import CORRUPT_STEM, MISSING_STEM, PNG_AS_JPG_STEM, UNLABELLED_STEM

REAL_LIST = Path(__file__).resolve().parents[3] / "shared/data/oxford-iiit-pet/annotations/list.txt"


@pytest.fixture(scope="module")
def source(synthetic_root):
    return pet_data.DirectorySource(synthetic_root)


def load(source, split):
    report = pet_data.LoadReport(split)
    return list(pet_data.iter_samples(source, split, seed=0, val_fraction=0.2, report=report)), report


def test_missing_and_corrupt_photos_are_counted_and_skipped(source):
    train, tr = load(source, "train")
    val, va = load(source, "validation")
    missing = tr.missing + va.missing
    corrupt = {**tr.corrupt, **va.corrupt}
    assert missing == [MISSING_STEM]
    assert list(corrupt) == [CORRUPT_STEM]
    assert tr.listed + va.listed == 43  # 40 photos + png-under-jpg + corrupt + missing
    assert tr.loaded + va.loaded == 41 == len(train) + len(val)


def test_png_under_jpg_name_decodes_by_content_to_rgb(source):
    sample = source.load(PNG_AS_JPG_STEM)
    assert sample.image.dtype == np.uint8 and sample.image.shape[2] == 3


def test_train_and_validation_partition_trainval(source):
    train, _ = load(source, "train")
    val, _ = load(source, "validation")
    tr, va = {s.stem for s in train}, {s.stem for s in val}
    assert tr and va and not (tr & va)
    assert tr | va == set(pet_data.read_list(source.root, "trainval")) - {MISSING_STEM, CORRUPT_STEM}


def test_validation_slice_is_seeded_and_deterministic():
    stems = [f"pet_{i}" for i in range(2000)]
    a = [s for s in stems if pet_data.is_validation(s, 0, 0.1)]
    b = [s for s in stems if pet_data.is_validation(s, 0, 0.1)]
    c = [s for s in stems if pet_data.is_validation(s, 1, 0.1)]
    assert a == b and a != c
    assert 150 < len(a) < 250


def test_test_split_is_the_official_test_list(source):
    test, report = load(source, "test")
    assert {s.stem for s in test} == set(pet_data.read_list(source.root, "test"))
    assert report.missing == [] and report.corrupt == {}


def test_labels_are_trimap_minus_one():
    trimap = np.array([[1, 2, 3]], np.uint8)
    assert pet_data.trimap_to_labels(trimap).tolist() == [[0, 1, 2]]
    with pytest.raises(ValueError):
        pet_data.trimap_to_labels(np.array([[0, 4]], np.uint8))


def test_loaded_masks_hold_only_the_three_classes(source):
    train, _ = load(source, "train")
    values = set(np.unique(np.concatenate([s.mask.ravel() for s in train])).tolist())
    assert values == {0, 1, 2}


@pytest.mark.parametrize("mode", ["L", "P", "RGBA", "CMYK", "I;16", "LA"])
def test_every_photo_mode_becomes_rgb(mode):
    img = Image.new("RGB", (10, 8), (200, 100, 50)).convert("RGBA" if mode == "LA" else "RGB")
    img = img.convert("L").convert(mode) if mode in ("I;16", "LA") else img.convert(mode)
    buf = io.BytesIO()
    img.save(buf, format="TIFF" if mode in ("CMYK", "I;16") else "PNG")
    with Image.open(io.BytesIO(buf.getvalue())) as reopened:
        out = np.asarray(photos.to_rgb(reopened))
    assert out.shape == (8, 10, 3) and out.dtype == np.uint8


def test_augmentation_moves_image_and_mask_together():
    rng = np.random.default_rng(0)
    mask = np.zeros((80, 80, 1), np.uint8)
    mask[10:50, 20:70] = 1
    mask[50:75, 5:40] = 2
    mask += (rng.random(mask.shape) < 0.01).astype(np.uint8) * 0  # keep it clean
    image = np.repeat(mask * 100, 3, axis=-1).astype(np.float32)  # the image *is* the mask, scaled
    for s in range(5):
        img, m = pet_data.augment(
            tf.constant(image), tf.constant(mask), tf.constant([s, 7], tf.int64), 64, crop=True, jitter=False
        )
        img, m = img.numpy(), m.numpy()
        assert img.shape == (64, 64, 3) and m.shape == (64, 64, 1)
        agree = np.mean(np.abs(img[..., 0] - m[..., 0] * 100.0) < 1.0)
        assert agree > 0.9, f"seed {s}: only {agree:.2%} of pixels still line up"


def test_augmentation_is_reproducible_for_a_seed():
    image = tf.random.uniform((40, 40, 3), 0, 255, seed=1)
    mask = tf.zeros((40, 40, 1), tf.uint8)
    a = pet_data.augment(image, mask, tf.constant([3, 4], tf.int64), 32)[0].numpy()
    b = pet_data.augment(image, mask, tf.constant([3, 4], tf.int64), 32)[0].numpy()
    c = pet_data.augment(image, mask, tf.constant([5, 4], tf.int64), 32)[0].numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_train_dataset_batches_have_model_shapes(source):
    arrays = pet_data.load_arrays(source, "train", 40, 0, 0.2)
    assert len(arrays.stems) == arrays.report.loaded == len(arrays)
    images, targets = next(iter(pet_data.train_dataset(arrays, 4, 32, seed=0)))
    assert images.shape == (4, 32, 32, 3) and images.dtype == tf.float32
    assert targets[SEGMENTATION].shape == (4, 32, 32, 1) and targets[SEGMENTATION].dtype == tf.uint8
    assert targets[SPECIES].shape == (4,) and targets[BREED].shape == (4,)


def test_a_dataset_without_labels_yields_segmentation_targets_only(source):
    arrays = pet_data.load_arrays(source, "validation", 32, 0, 0.2)
    _, targets = next(iter(pet_data.eval_dataset(arrays, 4, labels=False)))
    assert set(targets) == {SEGMENTATION}


def test_species_and_breed_follow_list_txt(source):
    arrays = pet_data.load_arrays(source, "train", 32, 0, 0.2)
    lines = (source.root / "annotations" / "list.txt").read_text().splitlines()
    listed = {
        f[0]: (int(f[2]) - 1, int(f[1]) - 1) for f in (line.split() for line in lines if line[0] != "#")
    }
    for stem, species, breed in zip(arrays.stems, arrays.species, arrays.breeds, strict=True):
        assert (species, breed) == listed.get(stem, (pet_data.UNKNOWN, pet_data.UNKNOWN)), stem
    labelled = arrays.breeds >= 0
    assert labelled.sum() == len(arrays) - 1  # the synthetic set leaves one photo out of list.txt
    assert arrays.species[labelled].tolist() == [BREED_SPECIES[b] for b in arrays.breeds[labelled]]


def test_a_photo_missing_from_list_txt_has_unknown_species_and_breed(source):
    sample = source.load(UNLABELLED_STEM)
    assert (sample.species, sample.breed) == (pet_data.UNKNOWN, pet_data.UNKNOWN)


def test_official_list_lines_give_species_and_class_id_minus_one(tmp_path):
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "list.txt").write_text(
        "#Image CLASS-ID SPECIES BREED ID\nAbyssinian_100 1 1 1\nyorkshire_terrier_99 37 2 25\n"
    )
    assert pet_data.read_labels(tmp_path) == {"Abyssinian_100": (0, 0), "yorkshire_terrier_99": (1, 36)}


@pytest.mark.skipif(not REAL_LIST.exists(), reason="the shared Oxford-IIIT Pet copy is not here")
def test_the_real_list_agrees_with_the_contracts_breed_order():
    labels = pet_data.read_labels(REAL_LIST.parents[1])
    assert len(labels) == 7349
    for stem, (species, breed) in labels.items():
        # The official file names spell the breed; cats' start with a capital letter.
        assert stem.rsplit("_", 1)[0] == BREED_KEYS[breed] and species == BREED_SPECIES[breed], stem


def test_loading_submits_only_a_few_photos_ahead_of_the_consumer(synthetic_root, monkeypatch):
    submitted = []
    original_submit = ThreadPoolExecutor.submit

    def counting_submit(self, fn, /, *args, **kwargs):  # the real submit, counted
        submitted.append(args)
        return original_submit(self, fn, *args, **kwargs)

    monkeypatch.setattr(ThreadPoolExecutor, "submit", counting_submit)
    samples = pet_data.iter_samples(
        pet_data.DirectorySource(synthetic_root), "train", seed=0, val_fraction=0.2, workers=2
    )
    next(samples)  # a consumer that has taken one photo so far
    in_flight_limit = 2 * 2  # workers x photos ahead per worker
    assert len(submitted) <= in_flight_limit + 1 < len(pet_data.read_list(synthetic_root, "trainval"))
    samples.close()


def test_bounded_map_returns_every_result_in_order():
    assert list(pet_data.bounded_map(lambda x: x * x, range(50), workers=3)) == [x * x for x in range(50)]


def test_synthetic_data_is_written_once_and_reused(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where gettempdir() points
    first = pet_data.open_source("synthetic")
    second = pet_data.open_source("synthetic")
    assert first.root == second.root
    assert [p.name for p in tmp_path.iterdir()] == [first.root.name]  # no directory left per call
    assert len(pet_data.read_list(first.root, "test")) == 16
