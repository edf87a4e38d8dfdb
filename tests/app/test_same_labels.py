"""One model input per photo whatever the output: a 12 MP phone JPEG gets the same labels in every mode."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.batcher import Batcher
from app.schemas import OutputMode, RenderOptions
from app.segmenter import Segmenter
from app.service import Rendered, SegmentationService
from app.settings import Settings
from tests.app.conftest import decode_png


def phone_photo(width: int = 4032, height: int = 3024) -> bytes:
    """A 12 MP JPEG like a phone's: a bright subject on a textured background, ~2 MB."""
    rng = np.random.default_rng(12)
    y, x = np.mgrid[0:height, 0:width]
    subject = ((x - width * 0.45) / (width * 0.22)) ** 2 + ((y - height * 0.55) / (height * 0.3)) ** 2 < 1
    base = np.stack([x * 120 // width + 30, y * 100 // height + 40, np.full_like(x, 90)], axis=-1)
    pixels = np.where(subject[..., None], np.array([225, 185, 125]), base)
    pixels = np.clip(pixels + rng.integers(-25, 26, pixels.shape), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def answers(model_dir: Path) -> dict[str, Rendered]:
    """The same photo through the service's own segment() as mask, overlay (opacity 1), cut-out, JSON."""
    settings = Settings(model_dir=model_dir)
    segmenter = Segmenter.load(settings.model_version_dir, settings)
    photo = phone_photo()
    modes = {
        "mask": RenderOptions(output=OutputMode.mask),
        "overlay": RenderOptions(output=OutputMode.overlay, opacity=1.0),
        "cutout": RenderOptions(output=OutputMode.cutout, background=(0, 255, 0)),
        "json": RenderOptions(output=OutputMode.json),
    }

    async def run() -> dict[str, Rendered]:
        batcher = Batcher(segmenter.predict, max_batch_size=1, max_wait_s=0, capacity=4)
        service = SegmentationService(settings, segmenter, batcher)
        batcher.start()
        try:
            return {name: await service.segment(photo, options) for name, options in modes.items()}
        finally:
            await batcher.stop()
            service.close()

    return asyncio.run(run())


def test_every_output_reports_the_same_class_shares_and_pet_box(answers: dict[str, Rendered]) -> None:
    mask = answers["mask"].result
    assert (mask.width, mask.height) == (4032, 3024)
    for name in ("overlay", "cutout", "json"):
        result = answers[name].result
        assert result.class_fractions == mask.class_fractions, name
        assert result.pet_bbox == mask.pet_bbox, name


def test_the_overlay_is_drawn_from_the_mask_labels(answers: dict[str, Rendered]) -> None:
    assert answers["mask"].png is not None and answers["overlay"].png is not None
    labels = np.asarray(decode_png(answers["mask"].png))
    overlay = np.asarray(decode_png(answers["overlay"].png))  # opacity 1: each pixel is its class colour
    colors = np.asarray(decode_png(answers["mask"].png).getpalette()[:9], np.uint8).reshape(3, 3)
    assert overlay.shape == (*labels.shape, 3)
    assert (overlay == colors[labels]).all()
    assert len(np.unique(labels)) > 1  # a photo with more than one class, or the check says little


def test_the_cutout_is_the_photo_size(answers: dict[str, Rendered]) -> None:
    assert answers["cutout"].png is not None
    assert decode_png(answers["cutout"].png).size == (4032, 3024)
