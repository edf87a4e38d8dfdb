"""Oxford-IIIT Pet: read the official layout (or tensorflow-datasets), split, cache, augment.

Labels follow the seed: trimap value - 1 -> 0 pet, 1 background, 2 border. Each photo also carries
its species (0 cat, 1 dog) and breed (0..36 = official CLASS-ID - 1) from annotations/list.txt, or
UNKNOWN (-1) when the list does not name it. Every source yields the same `Sample` records, so the
tf.data pipeline after them is one and the same.
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import logging
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np
import tensorflow as tf
from PIL import Image

import petseg_contract as contract
from petseg_contract import photos
from training import BREED, SEGMENTATION, SPECIES

log = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")
SYNTHETIC = "synthetic"
TFDS = "tfds"
T = TypeVar("T")
R = TypeVar("R")
UNKNOWN = -1  # species/breed of a photo the lists do not label; masked out of the classification loss


@dataclass(frozen=True)
class Sample:
    stem: str
    image: np.ndarray  # uint8 [H, W, 3], RGB
    mask: np.ndarray  # uint8 [H, W], class indices
    part: str = "original"  # "original" or "resized" (the shared copy stores some photos at 299 px)
    species: int = UNKNOWN  # 0 cat, 1 dog (petseg_contract.SPECIES_NAMES)
    breed: int = UNKNOWN  # 0..36, official CLASS-ID - 1 (petseg_contract.BREEDS)


@dataclass
class LoadReport:
    """What a split listed, what it really held, and what was skipped and why."""

    split: str
    listed: int = 0
    loaded: int = 0
    missing: list[str] = field(default_factory=list)
    corrupt: dict[str, str] = field(default_factory=dict)
    parts: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {
            "split": self.split,
            "listed": self.listed,
            "loaded": self.loaded,
            "skipped_missing_photo": len(self.missing),
            "skipped_corrupt": self.corrupt,
            "parts": self.parts,
        }


def decode_photo(path: Path, draft_size: int | None = None) -> np.ndarray:
    """Decode a photo by its content (not its extension) into an RGB uint8 array, as the service does.

    With `draft_size`, a JPEG decodes straight to the smallest 1/2..1/8 scale still that large.
    """
    with Image.open(path) as img:
        return np.asarray(photos.load_rgb(img, draft=draft_size))


def trimap_to_labels(trimap: np.ndarray) -> np.ndarray:
    """Official trimap (1 pet, 2 background, 3 border) -> class indices (0, 1, 2)."""
    labels = trimap.astype(np.int16) - 1
    if labels.min() < 0 or labels.max() > 2:
        raise ValueError(f"trimap values outside 1..3: {np.unique(trimap).tolist()}")
    return labels.astype(np.uint8)


def is_validation(stem: str, seed: int, fraction: float) -> bool:
    """Seeded, order-independent validation membership: the same stems for every source and run."""
    h = hashlib.sha256(f"{seed}:{stem}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64 < fraction


def read_list(root: Path, name: str) -> list[str]:
    """Stems of an official list file (`trainval.txt`, `test.txt`); comment lines skipped."""
    stems = []
    for line in (root / "annotations" / f"{name}.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            stems.append(line.split()[0])
    return stems


def read_labels(root: Path) -> dict[str, tuple[int, int]]:
    """Stem -> (species, breed) from the official annotations/list.txt; empty when there is none.

    list.txt lines are `<stem> <CLASS-ID 1..37> <SPECIES 1 cat, 2 dog> <BREED ID>`; the breed index is
    CLASS-ID - 1 (the order of petseg_contract.BREEDS) and the species index SPECIES - 1.
    """
    path = root / "annotations" / "list.txt"
    if not path.exists():
        return {}
    labels = {}
    for line in path.read_text().splitlines():
        fields = line.split()
        if len(fields) < 3 or line.startswith("#"):
            continue
        breed, species = int(fields[1]) - 1, int(fields[2]) - 1
        if not (0 <= breed < len(contract.BREEDS) and 0 <= species < len(contract.SPECIES_NAMES)):
            raise ValueError(
                f"{path}: {fields[0]} has CLASS-ID {fields[1]} / SPECIES {fields[2]} out of range"
            )
        labels[fields[0]] = (species, breed)
    return labels


def read_parts(root: Path) -> dict[str, str]:
    """Stem -> "original"/"resized" from the shared copy's manifest.csv; empty when there is none."""
    manifest = root / "manifest.csv"
    if not manifest.exists():
        return {}
    with manifest.open(newline="") as f:
        return {row["stem"]: row.get("resolution") or "original" for row in csv.DictReader(f)}


class DirectorySource:
    """The official release layout: images/, annotations/trimaps/, annotations/{trainval,test}.txt."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        if not (self.root / "annotations" / "trainval.txt").exists():
            raise FileNotFoundError(
                f"{self.root}: not an Oxford-IIIT Pet layout (no annotations/trainval.txt)"
            )
        self.parts = read_parts(self.root)
        self.labels = read_labels(self.root)
        if not self.labels:
            log.warning("%s: no annotations/list.txt, so no species/breed labels", self.root)

    def describe(self) -> str:
        return str(self.root.resolve())

    def stems(self, official_split: str) -> list[str]:
        return read_list(self.root, official_split)

    def load(self, stem: str, draft_size: int | None = None) -> Sample:
        image = decode_photo(self.photo_path(stem), draft_size)
        with Image.open(self.root / "annotations" / "trimaps" / f"{stem}.png") as t:
            mask = trimap_to_labels(np.asarray(t.convert("L")))
        if mask.shape != image.shape[:2] and not draft_size:
            raise ValueError(
                f"photo {image.shape[1]}x{image.shape[0]} but trimap {mask.shape[1]}x{mask.shape[0]}"
            )
        species, breed = self.labels.get(stem, (UNKNOWN, UNKNOWN))
        return Sample(stem, image, mask, self.parts.get(stem, "original"), species, breed)

    def photo_path(self, stem: str) -> Path:
        """The photo file as released (what a user would upload)."""
        return self.root / "images" / f"{stem}.jpg"

    def has_photo(self, stem: str) -> bool:
        return self.photo_path(stem).exists()


def iter_samples(
    source: DirectorySource,
    split: str,
    seed: int = 0,
    val_fraction: float = 0.1,
    draft_size: int | None = None,
    report: LoadReport | None = None,
    workers: int = 2,
) -> Iterator[Sample]:
    """Yield the photos of `split` (train/validation/test), skipping missing and corrupt ones.

    train and validation partition the official `trainval` list; test is the official `test` list.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
    report = report if report is not None else LoadReport(split)
    official = "test" if split == "test" else "trainval"
    stems = source.stems(official)
    if split != "test":
        want_val = split == "validation"
        stems = [s for s in stems if is_validation(s, seed, val_fraction) == want_val]
    report.listed = len(stems)
    present: list[str] = []
    for stem in stems:
        (present if source.has_photo(stem) else report.missing).append(stem)

    def load(stem: str) -> Sample | str:
        try:
            return source.load(stem, draft_size)
        except Exception as e:  # a broken file is reported and skipped, never fatal
            return f"{type(e).__name__}: {e}"

    for stem, result in zip(present, bounded_map(load, present, workers), strict=True):
        if isinstance(result, str):
            log.warning("skipping %s: %s", stem, result)
            report.corrupt[stem] = result
            continue
        report.loaded += 1
        report.parts[result.part] = report.parts.get(result.part, 0) + 1
        yield result


def bounded_map(fn: Callable[[T], R], items: Iterable[T], workers: int, ahead: int = 2) -> Iterator[R]:
    """`fn` over `items` on `workers` threads, results in order, at most `workers * ahead` in flight.

    Executor.map would submit every item at once: a whole split of decoded photos could pile up in
    memory ahead of a slow consumer. Here a new item is submitted only as a result is taken, and
    what is still queued is cancelled when the consumer stops early.
    """
    window: deque[Future[R]] = deque()
    todo = iter(items)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        try:
            for item in itertools.islice(todo, workers * ahead):
                window.append(pool.submit(fn, item))
            while window:
                result = window.popleft().result()
                for item in itertools.islice(todo, 1):
                    window.append(pool.submit(fn, item))
                yield result
        finally:
            for future in window:
                future.cancel()


class TfdsSource:
    """The same records from tensorflow-datasets' `oxford_iiit_pet` (needs the internet once)."""

    def __init__(self, data_dir: str | None = None):
        import tensorflow_datasets as tfds

        self._builder = tfds.builder("oxford_iiit_pet", data_dir=data_dir)
        self._builder.download_and_prepare()
        self._cache: dict[str, dict[str, dict]] = {}
        # Map tfds' class labels to the contract's order by name, not by trusting both orders agree.
        features = self._builder.info.features
        self._breed_index = [contract.BREED_KEYS.index(n) for n in features["label"].names]
        self._species_index = [contract.SPECIES_NAMES.index(n.lower()) for n in features["species"].names]

    def describe(self) -> str:
        return f"tensorflow-datasets oxford_iiit_pet ({self._builder.data_dir})"

    def _records(self, official_split: str) -> dict[str, dict]:
        if official_split not in self._cache:
            ds = self._builder.as_dataset(split="train" if official_split == "trainval" else "test")
            recs = {}
            for ex in ds.as_numpy_iterator():
                stem = Path(ex["file_name"].decode()).stem
                recs[stem] = ex
            self._cache[official_split] = recs
        return self._cache[official_split]

    def stems(self, official_split: str) -> list[str]:
        return sorted(self._records(official_split))

    def has_photo(self, stem: str) -> bool:
        return True

    def load(self, stem: str, draft_size: int | None = None) -> Sample:
        for recs in self._cache.values():
            if stem in recs:
                ex = recs[stem]
                return Sample(
                    stem,
                    ex["image"],
                    trimap_to_labels(ex["segmentation_mask"][..., 0]),
                    species=self._species_index[int(ex["species"])],
                    breed=self._breed_index[int(ex["label"])],
                )
        raise KeyError(stem)


def open_source(data_dir: str, seed: int = 0):
    """`synthetic` (a tiny generated set), `tfds[:DIR]`, or a directory in the official layout."""
    if data_dir == SYNTHETIC:
        from training.synthetic import cached_synthetic_dataset

        return DirectorySource(cached_synthetic_dataset(seed))
    if data_dir == TFDS or data_dir.startswith(TFDS + ":"):
        return TfdsSource(data_dir.partition(":")[2] or None)
    return DirectorySource(data_dir)


def resize_photo(image: np.ndarray, size: int) -> np.ndarray:
    """Whole photo to size x size: the model's input, exactly as the service prepares it."""
    return photos.model_input(Image.fromarray(image), size)


def resize_mask(mask: np.ndarray, size: int) -> np.ndarray:
    """Class indices to size x size, nearest-neighbour."""
    return np.asarray(Image.fromarray(mask).resize((size, size), Image.Resampling.NEAREST))


def resize_pair(sample: Sample, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Photo (bilinear) and mask (nearest-neighbour) to size x size."""
    return resize_photo(sample.image, size), resize_mask(sample.mask, size)


@dataclass
class SplitArrays:
    """A split decoded once into model-sized arrays, with its labels and what was loaded."""

    images: np.ndarray  # uint8 [N, S, S, 3]
    masks: np.ndarray  # uint8 [N, S, S, 1], class indices
    species: np.ndarray  # int32 [N], UNKNOWN where the lists do not label the photo
    breeds: np.ndarray  # int32 [N], UNKNOWN likewise
    stems: list[str]
    report: LoadReport

    def __len__(self) -> int:
        return len(self.images)

    def targets(self, labels: bool = True) -> dict[str, np.ndarray]:
        """The training targets keyed like the model's outputs; `labels=False` for segmentation only."""
        targets = {SEGMENTATION: self.masks}
        if labels:
            targets.update({SPECIES: self.species, BREED: self.breeds})
        return targets


def load_arrays(source, split: str, size: int, seed: int, val_fraction: float) -> SplitArrays:
    """Decode a split once into size x size arrays, with each photo's species and breed."""
    report = LoadReport(split)
    images, masks, stems, species, breeds = [], [], [], [], []
    for s in iter_samples(source, split, seed, val_fraction, draft_size=size, report=report):
        img, m = resize_pair(s, size)
        images.append(img)
        masks.append(m[..., None])
        stems.append(s.stem)
        species.append(s.species)
        breeds.append(s.breed)
    if not images:
        raise ValueError(f"{source.describe()}: split {split!r} has no usable photos")
    return SplitArrays(
        np.stack(images),
        np.stack(masks),
        np.asarray(species, np.int32),
        np.asarray(breeds, np.int32),
        stems,
        report,
    )


def augment(image, mask, seed, output_size: int, crop: bool = True, jitter: bool = True):
    """Horizontal flip, plus (optionally) a random resized crop and colour jitter.

    Geometry is identical on image and mask. `seed` is a [2] int tensor; every random op is
    stateless, so a run is reproducible. crop=jitter=False is the seed's flip-only augmentation.
    """
    seeds = tf.random.experimental.stateless_split(seed, num=6)
    if crop:
        begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
            tf.shape(image),
            bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]]),
            seed=seeds[0],
            min_object_covered=0.0,
            aspect_ratio_range=(0.75, 1.33),
            area_range=(0.45, 1.0),
            use_image_if_no_bounding_boxes=True,
        )
        image = tf.slice(image, begin, size)
        mask = tf.slice(mask, begin, tf.concat([size[:2], [1]], 0))
    image = tf.image.resize(image, (output_size, output_size), method="bilinear")
    mask = tf.image.resize(mask, (output_size, output_size), method="nearest")
    flip = tf.random.stateless_uniform([], seeds[1]) < 0.5
    image = tf.cond(flip, lambda: tf.image.flip_left_right(image), lambda: image)
    mask = tf.cond(flip, lambda: tf.image.flip_left_right(mask), lambda: mask)
    if jitter:
        x = image / 255.0
        x = tf.image.stateless_random_brightness(x, 0.1, seeds[2])
        x = tf.image.stateless_random_contrast(x, 0.8, 1.2, seeds[3])
        x = tf.image.stateless_random_saturation(x, 0.8, 1.2, seeds[4])
        x = tf.image.stateless_random_hue(x, 0.02, seeds[5])
        image = tf.clip_by_value(x, 0.0, 1.0) * 255.0
    return image, tf.cast(mask, tf.uint8)


def train_dataset(
    arrays: SplitArrays, batch_size: int, input_size: int, seed: int, full: bool = True, labels: bool = True
) -> tf.data.Dataset:
    """Cached arrays -> shuffled, augmented, batched, prefetched (image, targets) batches.

    Decoding happened once, before. Augmentation moves photo and mask together; species and breed
    ride along unchanged. `labels=False` yields segmentation targets only (a model without heads).
    """
    n = len(arrays)
    ds = tf.data.Dataset.from_tensor_slices((arrays.images, arrays.targets(labels))).cache()
    ds = ds.shuffle(n, seed=seed, reshuffle_each_iteration=True)
    # A seeded stream of per-element seeds: different crops each epoch, the same ones every run.
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
    ds = tf.data.Dataset.zip((ds, seeds))

    def augment_pair(pair, s):
        image, targets = pair
        image, mask = augment(tf.cast(image, tf.float32), targets[SEGMENTATION], s, input_size, full, full)
        return image, {**targets, SEGMENTATION: mask}

    ds = ds.map(augment_pair, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.batch(batch_size, drop_remainder=n >= batch_size).prefetch(tf.data.AUTOTUNE)


def eval_dataset(arrays: SplitArrays, batch_size: int, labels: bool = True) -> tf.data.Dataset:
    """Validation/test batches: no augmentation, float images in [0, 255] as the model expects."""
    ds = tf.data.Dataset.from_tensor_slices((arrays.images, arrays.targets(labels))).cache()
    ds = ds.map(lambda i, t: (tf.cast(i, tf.float32), t), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)
