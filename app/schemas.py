"""Request options and JSON response bodies of the segmentation API."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field


class OutputMode(StrEnum):
    mask = "mask"
    overlay = "overlay"
    cutout = "cutout"
    alpha = "alpha"
    json = "json"


# The query parameters each output reads; a parameter given explicitly with an output that ignores it is
# a caller's mistake (422), not something to drop silently.
OUTPUT_PARAMETERS: dict[str, frozenset[OutputMode]] = {
    "opacity": frozenset({OutputMode.overlay}),
    "background": frozenset({OutputMode.cutout}),
}


def users_of(parameter: str) -> str:
    """The outputs that read `parameter`, as text for an error message ("overlay")."""
    return " or ".join(sorted(mode.value for mode in OUTPUT_PARAMETERS[parameter]))


def ignored_parameters(output: OutputMode, given: set[str]) -> list[str]:
    """The explicitly given parameters that `output` does not use, in a stable order."""
    return [name for name, used_by in OUTPUT_PARAMETERS.items() if name in given and output not in used_by]


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


class LabelScore(BaseModel):
    label: str = Field(description="A name from the model's label list (see GET /v1/model).")
    confidence: float = Field(ge=0.0, le=1.0, description="The model's probability for this label.")


class Pet(BaseModel):
    bbox: BoundingBox = Field(description="Box around this pet's pet-class pixels (inside `pet_bbox`).")
    area_fraction: float = Field(description="Share of the photo's pixels in this pet's region (pet+border).")
    mean_confidence: float = Field(
        description="Mean pet probability over the region (the border class counting half), 0..1."
    )


# The model card's finding on photos without a pet, said where callers read `pet_found`.
NON_PET_NOTE = (
    "The model has only seen photos that contain a pet and always looks for one: on photos without a "
    "pet it can still mark people or objects as pet-like regions (in the model card's trials, an "
    "astronaut's head and a coffee cup), so `pet_found` true is not proof of a pet. Regions under "
    "PETSEG_MIN_PET_FRACTION of the photo are ignored."
)


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
    pet_bbox: BoundingBox | None = Field(
        description="Box around all pet-class pixels (the pets' boxes and any specks), null if none."
    )
    pet_found: bool = Field(description="Whether at least one pet region survived. " + NON_PET_NOTE)
    pets: list[Pet] = Field(
        description="One entry per separate pet (connected pet + border region of at least "
        "PETSEG_MIN_PET_FRACTION of the photo, at the photo's resolution), largest first."
    )
    species: LabelScore | None = Field(
        description="Cat or dog, for the photo as a whole; null when the model has no species output."
    )
    breed: LabelScore | None = Field(
        description="The most likely of the 37 Oxford-IIIT Pet breeds, for the photo as a whole; null when "
        "the model has no breed output."
    )
    breed_top3: list[LabelScore] | None = Field(
        description="The three likeliest breeds, likeliest first; null when the model has no breed output."
    )
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


class ModelLabels(BaseModel):
    species: list[str]
    breeds: list[str]


class ModelInfo(BaseModel):
    name: str
    version: int
    input_size: int
    classes: list[dict[str, Any]]
    metrics: dict[str, Any] = {}
    created_at: str | None = None
    reports_labels: bool = Field(
        description="Whether the model says species and breed (`species`, `breed`, `breed_top3` in JSON)."
    )
    labels: ModelLabels | None = Field(
        description="The species and breed names the model chooses from; null when it reports neither."
    )
    metadata: dict[str, Any] = Field(description="The full metadata.json of the export.")
    backend: str = Field(description="Inference runtime serving it: tensorflow or openvino (PETSEG_BACKEND).")
    max_batch_size: int = Field(
        description="Most photos in one forward pass: PETSEG_MAX_BATCH_SIZE, or the backend's own choice."
    )
