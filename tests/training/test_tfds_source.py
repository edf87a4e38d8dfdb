"""The tensorflow-datasets path yields the same Sample records as the directory layout.

No network here, so tfds' own `mock_data` stands in for the download and serves examples built from
the synthetic set; everything after `as_dataset` is the real code path.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from training import data as pet_data

tfds = pytest.importorskip("tensorflow_datasets")


def test_tfds_records_become_the_same_samples(synthetic_root):
    directory = pet_data.DirectorySource(synthetic_root)
    stems = pet_data.read_list(synthetic_root, "test")[:4]  # all labelled: only a trainval photo is not
    samples = [directory.load(s) for s in stems]

    def as_dataset(self, split, **kwargs):
        return tf.data.Dataset.from_generator(
            lambda: (
                {
                    "file_name": f"{s.stem}.jpg",
                    "image": s.image,
                    "segmentation_mask": (s.mask + 1)[..., None],  # tfds stores the raw trimap 1..3
                    "label": s.breed,  # tfds' breed ClassLabel, in the official CLASS-ID order
                    "species": s.species,  # tfds' species ClassLabel: Cat, Dog
                }
                for s in samples
            ),
            output_signature={
                "file_name": tf.TensorSpec([], tf.string),
                "image": tf.TensorSpec([None, None, 3], tf.uint8),
                "segmentation_mask": tf.TensorSpec([None, None, 1], tf.uint8),
                "label": tf.TensorSpec([], tf.int64),
                "species": tf.TensorSpec([], tf.int64),
            },
        )

    with tfds.testing.mock_data(num_examples=4, as_dataset_fn=as_dataset):
        source = pet_data.open_source("tfds")
        report = pet_data.LoadReport("test")
        got = list(pet_data.iter_samples(source, "test", report=report))
    assert isinstance(source, pet_data.TfdsSource) and report.loaded == 4
    by_stem = {s.stem: s for s in got}
    for s in samples:
        np.testing.assert_array_equal(by_stem[s.stem].image, s.image)
        np.testing.assert_array_equal(by_stem[s.stem].mask, s.mask)
        assert (by_stem[s.stem].species, by_stem[s.stem].breed) == (s.species, s.breed)
