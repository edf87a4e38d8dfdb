"""app.png: the multi-threaded PNG encoder writes valid PNGs of exactly the pixels it was given."""

from __future__ import annotations

import io
import struct
import sys
import threading
import time
import zlib
from collections.abc import Iterator

import imagecodecs
import numpy as np
import pytest
from PIL import Image

from app import png

MODES = {"L": (), "RGB": (3,), "RGBA": (4,)}
# (height, width): one pixel, one row, one column, odd sizes on both sides
SHAPES = [(1, 1), (1, 9), (9, 1), (7, 13), (31, 17)]


@pytest.fixture(scope="module")
def workers() -> Iterator[png.Workers]:
    pool = png.Workers(3)
    yield pool
    pool.close()


def pixels(shape: tuple[int, int], mode: str, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (*shape, *MODES[mode]), dtype=np.uint8)


def chunks(data: bytes) -> list[tuple[bytes, bytes, int]]:
    """(type, data, stored CRC) of every chunk, read by hand, after the signature."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    found, at = [], 8
    while at < len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        kind, body = data[at + 4 : at + 8], data[at + 8 : at + 8 + length]
        (crc,) = struct.unpack(">I", data[at + 8 + length : at + 12 + length])
        found.append((kind, body, crc))
        at += 12 + length
    return found


def encode_in_bands(array: np.ndarray, bands: int, workers: png.Workers) -> bytes:
    mode = "L" if array.ndim == 2 else {3: "RGB", 4: "RGBA"}[array.shape[2]]
    return png.encode(
        (array.shape[1], array.shape[0]), mode, lambda start, stop: array[start:stop], workers, bands
    )


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shape", SHAPES)
def test_pillow_decodes_exactly_the_pixels_in_their_mode(mode: str, shape: tuple[int, int]) -> None:
    array = pixels(shape, mode)
    image = Image.open(io.BytesIO(png.encode_array(array)))
    assert image.mode == mode and image.size == (shape[1], shape[0])
    assert np.array_equal(np.asarray(image), array)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shape", SHAPES)
def test_libpng_decodes_exactly_the_pixels(mode: str, shape: tuple[int, int]) -> None:
    array = pixels(shape, mode)
    decoded = imagecodecs.png_decode(png.encode_array(array))  # an independent decoder (libpng)
    assert np.array_equal(decoded.reshape(array.shape), array)


@pytest.mark.parametrize("mode", MODES)
def test_pillow_verify_finds_the_file_sound(mode: str, workers: png.Workers) -> None:
    Image.open(io.BytesIO(encode_in_bands(pixels((31, 17), mode), 4, workers))).verify()


@pytest.mark.parametrize("mode", MODES)
def test_every_split_into_bands_encodes_the_same_pixels(mode: str, workers: png.Workers) -> None:
    array = pixels((31, 17), mode, seed=1)
    for bands in range(1, 32):
        data = encode_in_bands(array, bands, workers)
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(data))), array), bands
        assert np.array_equal(imagecodecs.png_decode(data).reshape(array.shape), array), bands


def test_chunks_carry_their_crc_and_the_idats_one_zlib_stream(workers: png.Workers) -> None:
    array = pixels((31, 17), "RGB", seed=2)
    found = chunks(encode_in_bands(array, 5, workers))
    assert [kind for kind, _, _ in found] == [b"IHDR", *[b"IDAT"] * 5, b"IEND"]
    assert all(zlib.crc32(kind + body) == crc for kind, body, crc in found)
    stream = b"".join(body for kind, body, _ in found if kind == b"IDAT")
    decompressor = zlib.decompressobj()  # checks the header and the Adler-32 trailer
    rows = decompressor.decompress(stream)
    assert decompressor.eof and not decompressor.unused_data
    assert len(rows) == 31 * (1 + 17 * 3)


def test_a_large_image_is_split_one_band_per_thread_and_a_small_one_not() -> None:
    two = png.Workers(2)
    try:
        big = np.zeros((1000, 1000, 3), np.uint8)  # 3 MB of pixels
        small = np.zeros((375, 500, 3), np.uint8)  # 0.56 MB: one band, no hand-off
        idats = [
            sum(kind == b"IDAT" for kind, _, _ in chunks(png.encode_array(a, two))) for a in (big, small)
        ]
    finally:
        two.close()
    assert idats == [2, 1]


def test_the_first_band_runs_in_the_calling_thread_and_the_rest_in_the_pool(workers: png.Workers) -> None:
    seen: list[int] = []
    array = pixels((8, 8), "L")

    def rows(start: int, stop: int) -> np.ndarray:
        seen.append(threading.get_ident())
        return array[start:stop]

    png.encode((8, 8), "L", rows, workers, bands=4)
    assert threading.get_ident() in seen and len(set(seen)) > 1


def test_adler32_combine_agrees_with_zlib() -> None:
    rng = np.random.default_rng(3)
    for first_length, second_length in [(0, 0), (0, 5), (5, 0), (1, 1), (70_000, 140_000), (3, 65_521)]:
        first = rng.integers(0, 256, first_length, dtype=np.uint8).tobytes()
        second = rng.integers(0, 256, second_length, dtype=np.uint8).tobytes()
        combined = png.adler32_combine(zlib.adler32(first), zlib.adler32(second), len(second))
        assert combined == zlib.adler32(first + second), (first_length, second_length)


def test_other_threads_run_while_it_encodes() -> None:
    """With forced GIL hand-overs made rare, a counting thread only runs when the encoder releases the
    GIL by itself (as NumPy, zlib-ng and Pillow do; fpng, for one, does not)."""
    array = pixels((1000, 1000), "RGB", seed=4)
    assert runs_of_another_thread_during(lambda: png.encode_array(array)) > 0


def test_the_deflate_call_itself_releases_the_gil() -> None:
    data = pixels((1000, 1000), "RGB", seed=5).tobytes()
    compressor = png.zlib_ng.compressobj(png.LEVEL, png.zlib_ng.DEFLATED, -15)
    assert runs_of_another_thread_during(lambda: compressor.compress(data)) > 0


def runs_of_another_thread_during(work) -> int:
    """How often a counting thread ran while `work` did, with forced GIL hand-overs made rare (30 s)."""
    counted, stop = [0], threading.Event()

    def count() -> None:
        while not stop.is_set():
            counted[0] += 1
            time.sleep(0)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(30.0)
    counter = threading.Thread(target=count)
    counter.start()
    try:
        before = counted[0]
        work()
        after = counted[0]
    finally:
        stop.set()
        counter.join()
        sys.setswitchinterval(interval)
    return after - before


def test_zero_pixels_are_refused() -> None:
    with pytest.raises(ValueError, match="at least one pixel"):
        png.encode((0, 5), "RGB", lambda start, stop: np.zeros((stop - start, 0, 3), np.uint8))


def test_pair_runs_the_second_call_in_the_pool_beside_the_first(workers: png.Workers) -> None:
    first, second = workers.pair(threading.get_ident, threading.get_ident)
    assert first == threading.get_ident() and second != first
