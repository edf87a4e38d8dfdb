"""`petseg predict`: photos on disk through the service's own decode → batch → render path, no HTTP.

The files go through `SegmentationService.segment`, exactly what `POST /segment` calls, so a PNG written
here is byte-for-byte what the service would answer for the same photo and options.
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from anyio import to_thread

from app.schemas import OutputMode, RenderOptions
from app.settings import ModelDirError, Settings
from petseg_contract.photos import ImageError

if TYPE_CHECKING:
    from app.service import SegmentationService

# What each output mode is saved as: `<stem><suffix>` in the output directory.
SUFFIXES = {
    OutputMode.mask: ".mask.png",
    OutputMode.overlay: ".overlay.png",
    OutputMode.cutout: ".cutout.png",
    OutputMode.alpha: ".alpha.png",
    OutputMode.json: ".json",
}

EXIT_OK = 0
EXIT_SOME_FAILED = 1
EXIT_CANNOT_START = 2  # nothing tried: no usable model or output directory (the CLI adds bad settings)


@dataclass(frozen=True)
class Job:
    """One input photo and where its result goes."""

    source: Path
    target: Path


@dataclass(frozen=True)
class Outcome:
    job: Job
    error: str | None = None


def plan_jobs(photos: list[Path], out_dir: Path, output: OutputMode) -> list[Job]:
    """Pair every photo with `<out_dir>/<stem><suffix>`; photos sharing a stem get `-2`, `-3`, ... added."""
    taken: set[Path] = set()
    jobs = []
    for photo in photos:
        target = out_dir / f"{photo.stem}{SUFFIXES[output]}"
        counter = 2
        while target in taken:
            target = out_dir / f"{photo.stem}-{counter}{SUFFIXES[output]}"
            counter += 1
        taken.add(target)
        jobs.append(Job(photo, target))
    return jobs


async def _segment_one(service: SegmentationService, job: Job, options: RenderOptions) -> Outcome:
    try:
        data = await to_thread.run_sync(job.source.read_bytes)
    except OSError as exc:
        return Outcome(job, f"cannot read: {exc.strerror or exc}")
    try:
        rendered = await service.segment(data, options)
    except ImageError as exc:
        return Outcome(job, f"{exc.title.lower()}: {exc.detail}")
    payload = rendered.png if rendered.png is not None else rendered.result.model_dump_json(indent=2).encode()
    try:
        await to_thread.run_sync(job.target.write_bytes, payload)
    except OSError as exc:
        return Outcome(job, f"cannot write {job.target}: {exc.strerror or exc}")
    return Outcome(job)


async def _run(
    settings: Settings, jobs: list[Job], options: RenderOptions, *, progress: bool
) -> list[Outcome]:
    from app.wiring import running_service

    async with running_service(settings) as service:
        # Two batches per model stream in flight: one runs while the next one's photos are decoded
        # (never more than the queue holds, so no photo is refused as Overloaded).
        batches = 2 * service.segmenter.streams
        in_flight = max(1, min(batches * service.batcher.max_batch_size, settings.queue_capacity))
        return await _segment_all(service, jobs, options, in_flight=in_flight, progress=progress)


async def _segment_all(
    service: SegmentationService, jobs: list[Job], options: RenderOptions, *, in_flight: int, progress: bool
) -> list[Outcome]:
    from tqdm import tqdm

    slots = asyncio.Semaphore(in_flight)

    async def limited(job: Job) -> Outcome:
        async with slots:
            return await _segment_one(service, job, options)

    outcomes = []
    with tqdm(total=len(jobs), unit="photo", disable=not progress, file=sys.stderr) as bar:
        for finished in asyncio.as_completed([limited(job) for job in jobs]):
            outcome = await finished
            outcomes.append(outcome)
            if outcome.error is None:
                tqdm.write(f"{outcome.job.source} -> {outcome.job.target}", file=sys.stdout)
            else:
                tqdm.write(f"petseg: {outcome.job.source}: {outcome.error}", file=sys.stderr)
            bar.update()
    return outcomes


def predict(
    photos: list[Path],
    *,
    settings: Settings,
    output: OutputMode,
    out_dir: Path,
    opacity: float = 0.5,
    background: tuple[int, int, int] | None = None,
    progress: bool = True,
) -> int:
    """Segment `photos` into `out_dir`; each failure is reported on stderr and the rest go on.

    Returns the process exit code: 0 all written, 1 some photos failed, 2 no usable model or output dir.
    """
    try:
        settings.model_version_dir  # noqa: B018 - resolve now, to fail before any work with a clear line
    except ModelDirError as exc:
        print(f"petseg: no model: {exc} (pass --model DIR or set PETSEG_MODEL_DIR)", file=sys.stderr)
        return EXIT_CANNOT_START
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"petseg: cannot create output directory {out_dir}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_CANNOT_START
    jobs = plan_jobs(photos, out_dir, output)
    options = RenderOptions(output=output, opacity=opacity, background=background)
    try:
        outcomes = asyncio.run(_run(settings, jobs, options, progress=progress and len(jobs) > 1))
    except ModelDirError as exc:
        print(f"petseg: cannot load model: {exc}", file=sys.stderr)
        return EXIT_CANNOT_START
    failed = sum(outcome.error is not None for outcome in outcomes)
    if failed:
        print(f"petseg: {failed} of {len(outcomes)} photos failed", file=sys.stderr)
        return EXIT_SOME_FAILED
    return EXIT_OK
