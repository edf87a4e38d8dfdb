"""What drawing a full-size answer costs: overlay, cut-out and alpha PNGs, Pillow's way against app.png.

    python -m bench.render [--photo FILE | --data-dir DIR] [--repeats 7] [--threads N]

A 12 MP phone-sized JPEG (4032x3024, the dataset's largest photo upscaled, as `python -m bench` makes
it) and a typical 500x375 one, each decoded at full size, with labels and matte upsampled from
synthetic model output. Every output is drawn three ways, interleaved in one process so the ratios
hold on a noisy machine where the milliseconds do not: the previous path (the whole image composited
by Pillow, then Pillow's PNG at level 1), `app.imaging` on one thread, and `app.imaging` with the
service's band threads (`--threads`, default one per core as PETSEG_IMAGING_THREADS=0 gives). Prints
one JSON line per photo and output: fastest ms of each, CPU ms of the fastest, PNG MB, and the ratio
of the previous path to the new one. No model and no server, but glibc's malloc tuned as `petseg serve`
tunes it.
"""

from __future__ import annotations

import argparse
import io
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from app import imaging, png
from app.cli import tune_malloc
from app.settings import Settings
from bench.photos import DEFAULT_DATA_DIR, choose_photos
from bench.regions import SCENES, probabilities
from petseg_contract import masks, photos

SIZES = {"12 MP": (4032, 3024), "500x375": (500, 375)}
COLORS = [(255, 120, 0), (0, 0, 0), (255, 255, 0)]
OPACITY = 0.5
BACKGROUND = (255, 255, 255)


def pillow_png(image: Image.Image) -> bytes:
    """The previous encoder: Pillow's PNG at compression level 1, one core."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def previous(output: str, photo: Image.Image, labels: np.ndarray, alpha: np.ndarray) -> bytes:
    """The rendering before app.png: the whole image composited first, then encoded by Pillow."""
    if output == "overlay":
        colours = Image.fromarray(labels, "L")
        colours.putpalette([c for color in COLORS for c in color])
        return pillow_png(Image.blend(photo, colours.convert("RGB"), OPACITY))
    matte = Image.fromarray(alpha, "L")
    if output == "cutout":
        cut = photo.convert("RGBA")
        cut.putalpha(matte)
        return pillow_png(cut)
    if output == "cutout on colour":
        return pillow_png(Image.composite(photo, Image.new("RGB", photo.size, BACKGROUND), matte))
    return pillow_png(matte)


def current(
    output: str, photo: Image.Image, labels: np.ndarray, alpha: np.ndarray, workers: png.Workers
) -> bytes:
    if output == "overlay":
        return imaging.render_overlay(photo, labels, COLORS, OPACITY, workers)
    if output == "cutout":
        return imaging.render_cutout(photo, alpha, None, workers)
    if output == "cutout on colour":
        return imaging.render_cutout(photo, alpha, BACKGROUND, workers)
    return imaging.render_alpha(alpha, workers)


def jpeg_of(source: bytes, size: tuple[int, int]) -> bytes:
    image = Image.open(io.BytesIO(source)).convert("RGB").resize(size, Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=92)
    return buffer.getvalue()


def timed(run: Callable[[], bytes]) -> tuple[float, float, int]:
    """(wall s, CPU s of this process, PNG bytes) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    size = len(run())
    return time.perf_counter() - wall, time.process_time() - cpu, size


def compare(
    output: str, photo: Image.Image, labels: np.ndarray, alpha: np.ndarray, workers: png.Workers, repeats: int
) -> dict[str, float]:
    """Fastest wall ms, its CPU ms and PNG MB of each way, and the previous path's time over each new one."""
    ways: dict[str, Callable[[], bytes]] = {
        "pillow": lambda: previous(output, photo, labels, alpha),
        "new_1_thread": lambda: current(output, photo, labels, alpha, png.SERIAL),
        f"new_{workers.count}_threads": lambda: current(output, photo, labels, alpha, workers),
    }
    runs: dict[str, list[tuple[float, float, int]]] = {way: [] for way in ways}
    for _ in range(repeats):  # interleaved: a slow spell of the machine hits every way alike
        for way, run in ways.items():
            runs[way].append(timed(run))
    best = {way: min(times) for way, times in runs.items()}
    row: dict[str, float] = {}
    for way, (wall, cpu, size_bytes) in best.items():
        row[f"{way}_ms"] = round(wall * 1e3, 1)
        row[f"{way}_cpu_ms"] = round(cpu * 1e3, 1)
        row[f"{way}_mb"] = round(size_bytes / 1e6, 3)
    for way in list(ways)[1:]:
        row[f"pillow_vs_{way}"] = round(best["pillow"][0] / best[way][0], 2)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photo", type=Path, help="draw on this photo (resized) instead of the dataset's")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=0, help="band threads (0: one per core)")
    parser.add_argument("--outputs", default="overlay,cutout,cutout on colour,alpha")
    args = parser.parse_args(argv)
    tune_malloc()  # glibc as `petseg serve` sets it: its mmap threshold changes what large buffers cost
    chosen = choose_photos(args.data_dir, [args.photo] if args.photo else None)
    source = max(chosen, key=lambda p: p.width * p.height).data
    threads = Settings(imaging_threads=args.threads).imaging_thread_count
    workers = png.Workers(threads)
    probs = probabilities(SCENES["two pets side by side"])
    try:
        for label, size in SIZES.items():
            data = jpeg_of(source, size)
            decode_s = min(
                timed(lambda d=data: photos.decode_pixels(d, max_pixels=2**31).tobytes())[0] for _ in range(3)
            )
            photo = photos.decode_pixels(data, max_pixels=2**31)
            segmentation = masks.upsample(probs, size[1], size[0])
            labels, alpha = segmentation.labels, segmentation.pet_alpha
            for output in args.outputs.split(","):
                row = {"photo": label, "output": output, "decode_ms": round(decode_s * 1e3, 1)}
                row.update(compare(output, photo, labels, alpha, workers, args.repeats))
                print(json.dumps(row), flush=True)
    finally:
        workers.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
