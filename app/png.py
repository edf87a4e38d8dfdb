"""PNG encoding of 8-bit greyscale, RGB and RGBA pixels on several cores at once.

Pillow deflates a PNG on one core, with zlib: about 0.6 s for a 12 MP overlay at level 1, most of a
full-size answer's time. Here each row is filtered with NumPy ("Up": every byte minus the one above it;
smaller than Sub or Average on photos and overlays), the rows are split into horizontal bands, and each
band is deflated by zlib-ng in its own thread, as raw deflate ending in a sync flush (the last band in
a finish). That is pigz's technique: the bands' streams, concatenated behind one zlib header and
followed by the Adler-32 of all the filtered rows (combined from the bands' own), form one valid zlib
stream, so any decoder reads the result. NumPy, zlib-ng and Pillow's crop/convert/composite release
the GIL, so the bands really run at once and the event loop keeps answering meanwhile.

Where the pixels come from is a function `rows(start, stop)`, called by the band's own thread on
blocks of rows: a render can draw each block there (blend, composite) instead of drawing the whole
image first, and no full-size filtered copy is ever held.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
from zlib_ng import zlib_ng

T = TypeVar("T")
U = TypeVar("U")
Rows = Callable[[int, int], np.ndarray]
"""`rows(start, stop)` → uint8 pixels of rows start..stop-1, shape [stop - start, width (, channels)]."""

# PNG colour type and bytes per pixel of each Pillow mode written here.
COLOUR_TYPES = {"L": (0, 1), "RGB": (2, 3), "RGBA": (6, 4)}

# zlib-ng level 2 after Up filtering: a 12 MP overlay about 3x faster than Pillow's level 1 on one core
# and 8-15 % smaller; zlib-ng's level 1 is faster still but 50-70 % larger (docs/runtime.md).
LEVEL = 2
# Deflate strategy per mode. Up-filtered greyscale and RGB rows are mostly runs of small values, which
# run-length matching finds a little faster (12 MP overlays of 6 photos: 5 % faster and 5 % smaller in
# all, mixed photo by photo; the matte 40 % faster and 27 % smaller); RGBA interleaves the alpha byte
# into every run, so there RLE files are 35-45 % larger and the default strategy stays.
STRATEGIES = {"L": zlib_ng.Z_RLE, "RGB": zlib_ng.Z_RLE, "RGBA": zlib_ng.Z_DEFAULT_STRATEGY}
# Below this many bytes of pixels an image is one band, deflated by the calling thread alone: it takes
# about 10 ms there, and on a busy service the other cores are drawing other photos anyway.
MIN_BAND_BYTES = 1 << 20
# Rows are drawn, filtered and deflated about this many bytes at a time, so the band's full filtered
# copy is never held. Each block's buffers stay under glibc's mmap threshold (1 MiB as `petseg serve`
# sets it, app/cli.py; 256 KiB when this was measured): bigger ones are mapped afresh and faulted in
# page by page for every block, which made 1 MiB blocks cost a 12 MP overlay 28 % and a cut-out 24 %
# more time than these.
BLOCK_BYTES = 1 << 17
# A PNG chunk holds at most 2^31 - 1 bytes and each band is one IDAT chunk; deflate grows incompressible
# data by well under 1 %, so bands of at most 1 GiB of rows stay below that.
MAX_BAND_BYTES = 1 << 30

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_UP = 2  # PNG filter type of each row
_ZLIB_HEADER = b"\x78\x5e"  # deflate, 32 KiB window, "fast" level; 0x785e is a multiple of 31 (RFC 1950)
_ADLER_BASE = 65521


@dataclass(frozen=True)
class _Band:
    pieces: list[bytes]  # the band's raw deflate stream (the first band's starts with the zlib header)
    crc: int  # CRC-32 of b"IDAT" and the pieces: the band's IDAT chunk checksum so far
    adler: int  # Adler-32 of the band's filtered rows
    filtered_bytes: int


class Workers:
    """Threads that share out a PNG's bands: the calling thread takes one band, `count - 1` pool
    threads the others. The service holds one for all its renders (sized like its imaging threads),
    so a request never starts threads of its own."""

    def __init__(self, count: int) -> None:
        self.count = max(1, count)
        self._pool = (
            ThreadPoolExecutor(self.count - 1, thread_name_prefix="petseg-png") if self.count > 1 else None
        )

    def map(self, calls: list[Callable[[], T]]) -> list[T]:
        """Every call's result, in order: the first run here, the others by the pool (or here too)."""
        if self._pool is None or len(calls) < 2:
            return [call() for call in calls]
        futures = [self._pool.submit(call) for call in calls[1:]]
        return [calls[0](), *(future.result() for future in futures)]

    def pair(self, first: Callable[[], T], second: Callable[[], U]) -> tuple[T, U]:
        """Both results: `first` run here while the pool runs `second` (both here without a pool)."""
        if self._pool is None:
            return first(), second()
        future = self._pool.submit(second)
        return first(), future.result()

    def close(self) -> None:
        """Let the pool's threads end once their bands are done; returns at once (the service calls this
        from its event loop at shutdown)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False)


SERIAL = Workers(1)


def encode(
    size: tuple[int, int], mode: str, rows: Rows, workers: Workers = SERIAL, bands: int | None = None
) -> bytes:
    """PNG of a `mode` ("L", "RGB" or "RGBA") image of `size` (width, height) whose pixels `rows` gives.

    One band per worker thread by default, fewer for small images (below about 1 MB of pixels, one:
    the caller alone, no hand-off); `bands` forces the split (tests).
    """
    width, height = size
    colour_type, channels = COLOUR_TYPES[mode]
    if width < 1 or height < 1:
        raise ValueError(f"a PNG needs at least one pixel, not {width}x{height}")
    row_bytes = width * channels
    if bands is None:
        bands = min(workers.count, -(-height * row_bytes // MIN_BAND_BYTES))
    bands = max(1, min(height, max(bands, -(-height * row_bytes // MAX_BAND_BYTES))))
    edges = [height * i // bands for i in range(bands + 1)]
    done = workers.map(
        [
            functools.partial(
                _deflate_band,
                rows,
                edges[i],
                edges[i + 1],
                row_bytes,
                STRATEGIES[mode],
                i == bands - 1,
                b"" if i else _ZLIB_HEADER,
            )
            for i in range(bands)
        ]
    )
    return _assemble(width, height, colour_type, done)


def encode_array(pixels: np.ndarray, workers: Workers = SERIAL) -> bytes:
    """PNG of uint8 pixels [height, width] (greyscale), [h, w, 3] (RGB) or [h, w, 4] (RGBA), no copy."""
    if pixels.dtype != np.uint8:
        raise TypeError(f"PNG pixels must be uint8, not {pixels.dtype}")
    mode = "L" if pixels.ndim == 2 else {3: "RGB", 4: "RGBA"}[pixels.shape[2]]
    return encode((pixels.shape[1], pixels.shape[0]), mode, lambda start, stop: pixels[start:stop], workers)


def adler32_combine(first: int, second: int, second_length: int) -> int:
    """Adler-32 of A + B from Adler-32 of A, of B and B's length (zlib's adler32_combine).

    With a = 1 + sum of the bytes and b = the sum of every prefix's a: a(A+B) = a(A) + a(B) - 1 and
    b(A+B) = b(A) + b(B) + len(B) * (a(A) - 1), both modulo 65521.
    """
    a1, b1 = first & 0xFFFF, first >> 16
    a2, b2 = second & 0xFFFF, second >> 16
    a = (a1 + a2 - 1) % _ADLER_BASE
    b = (b1 + b2 + second_length * (a1 - 1)) % _ADLER_BASE
    return (b << 16) | a


def _deflate_band(
    rows: Rows, start: int, stop: int, row_bytes: int, strategy: int, last: bool, prefix: bytes
) -> _Band:
    """Filter rows start..stop-1 (Up, against the row above `start`) and deflate them as one raw stream."""
    compressor = zlib_ng.compressobj(LEVEL, zlib_ng.DEFLATED, -15, zlib_ng.DEF_MEM_LEVEL, strategy)
    block_rows = max(1, BLOCK_BYTES // (row_bytes + 1))
    filtered = np.empty((min(block_rows, stop - start), row_bytes + 1), np.uint8)
    filtered[:, 0] = _UP
    above = np.zeros(row_bytes, np.uint8) if start == 0 else _flat(rows(start - 1, start), 1, row_bytes)[0]
    pieces = [prefix] if prefix else []
    adler = 1
    for y in range(start, stop, block_rows):
        n = min(block_rows, stop - y)
        block = _flat(rows(y, y + n), n, row_bytes)
        out = filtered[:n]
        np.subtract(block[0], above, out=out[0, 1:])
        np.subtract(block[1:], block[:-1], out=out[1:, 1:])  # uint8 wraps modulo 256, as PNG wants
        above = block[-1]
        adler = zlib_ng.adler32(out, adler)
        pieces.append(compressor.compress(out))
    pieces.append(compressor.flush(zlib_ng.Z_FINISH if last else zlib_ng.Z_SYNC_FLUSH))
    crc = zlib_ng.crc32(b"IDAT")
    for piece in pieces:
        crc = zlib_ng.crc32(piece, crc)
    return _Band(pieces, crc, adler, (stop - start) * (row_bytes + 1))


def _flat(pixels: np.ndarray, n: int, row_bytes: int) -> np.ndarray:
    if pixels.dtype != np.uint8 or pixels.size != n * row_bytes:
        raise ValueError(f"rows gave {pixels.dtype} {pixels.shape}, not {n} rows of {row_bytes} bytes")
    return pixels.reshape(n, row_bytes)


def _assemble(width: int, height: int, colour_type: int, bands: list[_Band]) -> bytes:
    adler = bands[0].adler
    for band in bands[1:]:
        adler = adler32_combine(adler, band.adler, band.filtered_bytes)
    trailer = struct.pack(">I", adler)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    parts = [_SIGNATURE, _chunk(b"IHDR", ihdr)]
    for i, band in enumerate(bands):
        tail = trailer if i == len(bands) - 1 else b""
        length = sum(len(piece) for piece in band.pieces) + len(tail)
        crc = zlib_ng.crc32(tail, band.crc)
        parts += [struct.pack(">I", length), b"IDAT", *band.pieces, tail, struct.pack(">I", crc)]
    parts.append(_chunk(b"IEND", b""))
    return b"".join(parts)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data))
        + kind
        + data
        + struct.pack(">I", zlib_ng.crc32(data, zlib_ng.crc32(kind)))
    )
