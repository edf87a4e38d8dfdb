"""One photo through the whole path: decode → batched model → upsample → render. Routes call this."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from anyio import CapacityLimiter, to_thread

from app import imaging, regions
from app.admission import Admission
from app.batcher import Batcher
from app.labels import Scored, photo_labels
from app.png import Workers as PngWorkers
from app.schemas import BoundingBox, LabelScore, OutputMode, Pet, RenderOptions, SegmentResult, Timings
from app.settings import Settings
from petseg_contract import PET, masks, photos

if TYPE_CHECKING:  # TensorFlow is heavy; only the lifespan imports the segmenter at runtime
    from app.segmenter import Segmenter


@dataclass(frozen=True)
class Rendered:
    """A finished answer: PNG bytes for image outputs, or the JSON result.

    With a PNG output the result still carries sizes, class shares and timings, but its `pets` are not
    looked for (empty, `pet_found` false): only a JSON answer pays for the region analysis.
    """

    png: bytes | None
    result: SegmentResult


class SegmentationService:
    """Holds the model and its batcher; decoding and rendering run in worker threads, in parallel."""

    def __init__(self, settings: Settings, segmenter: Segmenter, batcher: Batcher) -> None:
        self.settings = settings
        self.segmenter = segmenter
        self.batcher = batcher
        self.class_names = [str(c["name"]) for c in segmenter.metadata["classes"]]
        self.colors: list[tuple[int, int, int]] = [
            (int(r), int(g), int(b)) for r, g, b, *_ in (c["color"] for c in segmenter.metadata["classes"])
        ]
        # Decoding and rendering are CPU work: more threads than cores (anyio's default is 40) only add
        # context switches, memory held by half-done photos, and contention with TensorFlow's own threads.
        self._cpu_limiter = CapacityLimiter(settings.imaging_thread_count)
        # A full-size PNG is deflated in bands on all those threads at once (app/png.py): shared by every
        # render, so a request never starts threads of its own.
        self.png_workers = PngWorkers(settings.imaging_thread_count)
        self.admission = Admission(
            settings.max_decoding, settings.max_decoding_waiting, holding=batcher.arriving
        )

    def close(self) -> None:
        """Stop the PNG band threads; call once no render is running (after the batcher stops)."""
        self.png_workers.close()

    async def segment(
        self, data: bytes, options: RenderOptions, on_decoded: Callable[[], None] | None = None
    ) -> Rendered:
        """Segment one uploaded photo; raises photos.ImageError for bad input, Overloaded when full.

        `on_decoded` is called once the photo is decoded (or failed to), e.g. to free an admission slot.
        """
        started = time.perf_counter()
        try:
            with self.batcher.arriving():
                photo = await to_thread.run_sync(self._decode, data, limiter=self._cpu_limiter)
        finally:
            if on_decoded is not None:
                on_decoded()
        decoded = time.perf_counter()
        batch = await self.batcher.submit(photo.model_input)
        inferred = time.perf_counter()
        png, fractions, box, pets = await to_thread.run_sync(
            self._render, data, photo, batch.probabilities, options, limiter=self._cpu_limiter
        )
        finished = time.perf_counter()
        named = photo_labels(batch.outputs)
        result = SegmentResult(
            width=photo.width,
            height=photo.height,
            model_name=self.segmenter.name,
            model_version=self.segmenter.version,
            class_fractions=dict(zip(self.class_names, fractions, strict=True)),
            pet_bbox=_box(box),
            pet_found=bool(pets),
            pets=[_pet(pet) for pet in pets],
            species=_score(named.species),
            breed=_score(named.breed),
            breed_top3=None if named.breed_top3 is None else [_score(s) for s in named.breed_top3],
            timings=Timings(
                decode_ms=(decoded - started) * 1e3,
                queue_ms=batch.queued_s * 1e3,
                inference_ms=batch.inference_s * 1e3,
                render_ms=(finished - inferred) * 1e3,
                total_ms=(finished - started) * 1e3,
                batch_size=batch.batch_size,
            ),
        )
        return Rendered(png=png, result=result)

    def _decode(self, data: bytes) -> photos.Photo:
        # The model input only, from the reduced-scale decode, whatever the output: every output of a
        # photo is drawn from the same labels, and a photo waiting for the model holds its compressed
        # bytes and a small input, never its full pixels.
        return photos.decode(data, input_size=self.segmenter.input_size, max_pixels=self.settings.max_pixels)

    def _render(
        self, data: bytes, photo: photos.Photo, probabilities: np.ndarray, options: RenderOptions
    ) -> tuple[bytes | None, list[float], dict[str, int] | None, list[regions.PetRegion]]:
        """PNG (or None for JSON), class fractions, pet box and separate pets; all here, in a worker
        thread, because counting pixels of a full-size photo would otherwise block the event loop. Only
        overlays and cut-outs decode the photo at full size, and only now."""
        cutout = options.output is OutputMode.cutout

        def upsampled() -> masks.Segmentation:
            segmentation = masks.upsample(probabilities, photo.height, photo.width)
            if cutout:
                _ = segmentation.pet_alpha  # another full-size resize: here, beside the photo's decode
            return segmentation

        png: bytes | None = None
        if options.output in (OutputMode.overlay, OutputMode.cutout):
            # The full-size decode (libjpeg) and the upsampling (Pillow) both release the GIL: side by
            # side on two of the imaging threads they cost the longer of the two, not the sum.
            segmentation, pixels = self.png_workers.pair(
                upsampled, lambda: photos.decode_pixels(data, max_pixels=self.settings.max_pixels)
            )
            if cutout:
                png = imaging.render_cutout(
                    pixels, segmentation.pet_alpha, options.background, self.png_workers
                )
            else:
                png = imaging.render_overlay(
                    pixels, segmentation.labels, self.colors, options.opacity, self.png_workers
                )
        else:
            segmentation = upsampled()
            if options.output is OutputMode.mask:
                png = imaging.render_mask(segmentation.labels, self.colors)
            elif options.output is OutputMode.alpha:
                png = imaging.render_alpha(segmentation.pet_alpha, self.png_workers)
        labels = segmentation.labels
        fractions = imaging.class_fractions(labels, len(self.class_names))
        # Only the JSON reports separate pets; a PNG answer does not pay for finding them.
        pets = (
            regions.find_pets(labels, segmentation.pet_probability, self.settings.min_pet_fraction)
            if options.output is OutputMode.json
            else []
        )
        return png, fractions, imaging.bounding_box(labels, PET), pets


def _box(box: dict[str, int] | None) -> BoundingBox | None:
    return None if box is None else BoundingBox(**box)


def _pet(pet: regions.PetRegion) -> Pet:
    return Pet(
        bbox=BoundingBox(x0=pet.x0, y0=pet.y0, x1=pet.x1, y1=pet.y1),
        area_fraction=pet.area_fraction,
        mean_confidence=pet.mean_confidence,
    )


def _score(scored: Scored | None) -> LabelScore | None:
    return None if scored is None else LabelScore(label=scored.label, confidence=scored.confidence)
