"""Request options and JSON response bodies of the segmentation API."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field


class OutputMode(StrEnum):
    mask = "mask"
    overlay = "overlay"
    cutout = "cutout"
    json = "json"


class RenderOptions(BaseModel):
    """What to draw once the model has answered."""

    output: OutputMode = OutputMode.mask
    opacity: float = 0.5
    background: tuple[int, int, int] | None = None


class BoundingBox(BaseModel):
    x0: int = Field(description="Left edge, inclusive.")
    y0: int = Field(description="Top edge, inclusive.")
    x1: int = Field(description="Right edge, exclusive.")
    y1: int = Field(description="Bottom edge, exclusive.")


class Timings(BaseModel):
    decode_ms: float
    queue_ms: float
    inference_ms: float
    render_ms: float
    total_ms: float
    batch_size: int = Field(description="Photos in the model batch this photo ran in.")


class SegmentResult(BaseModel):
    width: int = Field(description="Photo width after EXIF orientation.")
    height: int = Field(description="Photo height after EXIF orientation.")
    model_name: str
    model_version: int
    class_fractions: dict[str, float] = Field(description="Share of pixels per class name.")
    pet_bbox: BoundingBox | None = Field(description="Box around the pet pixels, null if none.")
    timings: Timings


class ValidationIssue(BaseModel):
    loc: list[str | int] = Field(description="Where: e.g. ['query', 'opacity'].")
    msg: str
    type: str = Field(description="Pydantic's error type, e.g. 'less_than_equal'.")


class Problem(BaseModel):
    """RFC 9457 problem details; every error response has this shape."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str = Field(description="What went wrong, for people (always a string).")
    errors: list[ValidationIssue] | None = Field(
        default=None, description="422 only: each invalid input, for programs."
    )


class BatchItem(BaseModel):
    filename: str | None
    ok: bool
    result: SegmentResult | None = None
    error: Problem | None = None


class BatchResponse(BaseModel):
    model_name: str
    model_version: int
    results: list[BatchItem]


class ModelInfo(BaseModel):
    name: str
    version: int
    input_size: int
    classes: list[dict[str, Any]]
    metrics: dict[str, Any] = {}
    created_at: str | None = None
    metadata: dict[str, Any] = Field(description="The full metadata.json of the export.")
    backend: str = Field(description="Inference runtime serving it: tensorflow or openvino (PETSEG_BACKEND).")
