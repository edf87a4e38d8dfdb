"""POST /segment (one photo → PNG or JSON) and POST /segment/batch (several photos → one JSON)."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response

from app.admission import Slot
from app.api.deps import ApiKeyDep, ServiceDep, SettingsDep
from app.api.uploads import FILE_FIELD, read_uploads
from app.batcher import Unavailable
from app.imaging import parse_color
from app.schemas import (
    NON_PET_NOTE,
    BatchItem,
    BatchResponse,
    OutputMode,
    Problem,
    RenderOptions,
    SegmentResult,
    Timings,
    ignored_parameters,
    users_of,
)
from petseg_contract.photos import ImageError

router = APIRouter(tags=["segmentation"], dependencies=[ApiKeyDep])

_BINARY = {"type": "string", "format": "binary"}
_FORM_SCHEMA = {
    "type": "object",
    "required": [FILE_FIELD],
    "properties": {FILE_FIELD: _BINARY},
}
_BATCH_FORM_SCHEMA = {
    "type": "object",
    "required": [FILE_FIELD],
    "properties": {FILE_FIELD: {"type": "array", "items": _BINARY}},
}
_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": Problem, "description": why}
    for status, why in {
        400: "Corrupt or truncated image, or a malformed multipart body.",
        401: "Missing or wrong X-API-Key (when a key is configured).",
        413: "Upload too large, too many pixels, or more files than the endpoint takes.",
        415: "Not an image, or an unsupported format or content type.",
        422: "Missing field, bad parameter, a parameter the chosen output does not use, or form fields "
        "besides `file`; `errors` lists each one.",
        503: "Overloaded, warming up, shutting down, or the model worker stopped; see Retry-After.",
    }.items()
}


# The shape of a JSON answer (illustrative values: a photo of two cats, a model with species/breed outputs).
JSON_EXAMPLE = {
    "width": 1200,
    "height": 800,
    "model_name": "pet-unet",
    "model_version": 2,
    "class_fractions": {"pet": 0.2815, "background": 0.6552, "border": 0.0633},
    "pet_bbox": {"x0": 96, "y0": 212, "x1": 1130, "y1": 745},
    "pet_found": True,
    "pets": [
        {
            "bbox": {"x0": 640, "y0": 230, "x1": 1130, "y1": 745},
            "area_fraction": 0.1790,
            "mean_confidence": 0.91,
        },
        {
            "bbox": {"x0": 96, "y0": 212, "x1": 540, "y1": 700},
            "area_fraction": 0.1581,
            "mean_confidence": 0.88,
        },
    ],
    "species": {"label": "cat", "confidence": 0.97},
    "breed": {"label": "British Shorthair", "confidence": 0.62},
    "breed_top3": [
        {"label": "British Shorthair", "confidence": 0.62},
        {"label": "Russian Blue", "confidence": 0.21},
        {"label": "Bombay", "confidence": 0.05},
    ],
    "timings": {
        "decode_ms": 9.8,
        "queue_ms": 0.4,
        "inference_ms": 31.2,
        "render_ms": 14.5,
        "total_ms": 56.3,
        "batch_size": 1,
    },
}
BATCH_EXAMPLE = {
    "model_name": "pet-unet",
    "model_version": 2,
    "results": [
        {"filename": "two-cats.jpg", "ok": True, "result": JSON_EXAMPLE, "error": None},
        {
            "filename": "notes.txt",
            "ok": False,
            "result": None,
            "error": {
                "type": "about:blank",
                "title": "Unsupported Media Type",
                "status": 415,
                "detail": "not an image",
            },
        },
    ],
}


def _refuse_ignored_parameters(request: Request, output: OutputMode) -> None:
    """422 for a parameter the caller set explicitly that `output` would silently ignore.

    Raised as a validation error, so it leaves in the same problem shape as any other bad parameter:
    `detail` says it in a sentence, `errors` has one entry per such parameter.
    """
    ignored = ignored_parameters(output, set(request.query_params))
    if ignored:
        raise RequestValidationError(
            [
                {
                    "loc": ("query", name),
                    "msg": f"only applies to output={users_of(name)}, not output={output.value}",
                    "type": "parameter_not_used_by_output",
                }
                for name in ignored
            ]
        )


@router.post(
    "/segment",
    summary="Segment one pet photo",
    description=(
        "Send the photo as multipart field `file` or as the raw body with an `image/*` content type. "
        "`output=mask` (default) returns a palette PNG at the photo's size whose pixel values are class "
        "indices (0 pet, 1 background, 2 border); `overlay` the photo with class colours blended in; "
        "`cutout` an RGBA PNG of the pet (or on `background`); `alpha` an 8-bit greyscale PNG at the "
        "photo's size, the cut-out's matte (255 = opaque pet; a tight edge about one model pixel wide, "
        "translucent only where the model is undecided), for compositing yourself; `json` a summary: "
        "class shares, `pet_bbox`, one entry per separate pet in `pets`, `pet_found`, and `species`, "
        "`breed` and `breed_top3` when "
        "the model reports them (null otherwise; GET /v1/model says which).\n\n"
        "`opacity` applies only to `overlay` and `background` only to `cutout`: giving either with "
        "another output is a 422, so a mistaken call does not silently return something else.\n\n"
        "**On photos without a pet:** " + NON_PET_NOTE
    ),
    response_class=Response,
    responses={
        200: {
            "description": "PNG for mask/overlay/cutout/alpha, JSON for output=json. Header X-Model-Version.",
            "content": {
                "image/png": {"schema": _BINARY},
                # One example: the OpenAPI generator drops null values from examples, so a model
                # without species/breed (those fields null) is described in words instead.
                "application/json": {
                    "examples": {
                        "two cats": {
                            "summary": "Two cats side by side, model with species/breed outputs "
                            "(illustrative values)",
                            "description": "With a model that lacks the species/breed outputs, "
                            "`species`, `breed` and `breed_top3` are null (GET /v1/model: `labels` null).",
                            "value": JSON_EXAMPLE,
                        }
                    }
                },
            },
            "model": SegmentResult,
        },
        **_ERRORS,
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {"schema": _FORM_SCHEMA},
                "image/jpeg": {"schema": _BINARY},
                "image/png": {"schema": _BINARY},
                "image/*": {"schema": _BINARY},
            },
        }
    },
)
async def segment(
    request: Request,
    service: ServiceDep,
    settings: SettingsDep,
    output: Annotated[OutputMode, Query(description="What to return.")] = OutputMode.mask,
    opacity: Annotated[
        float, Query(ge=0.0, le=1.0, description="Class colour weight for `output=overlay` only.")
    ] = 0.5,
    background: Annotated[
        str | None,
        Query(
            pattern=r"^#?[0-9a-fA-F]{6}$",
            description="`output=cutout` only: composite on this colour (e.g. ffffff) instead of alpha.",
        ),
    ] = None,
) -> Response:
    _refuse_ignored_parameters(request, output)
    options = RenderOptions(
        output=output, opacity=opacity, background=parse_color(background) if background else None
    )
    # A decoding slot before the body is read: a burst of uploads waits unread or gets 503. Unavailable
    # (overloaded, stopping) becomes 503 + Retry-After in app/errors.py; the model headers come from
    # app.main._ModelHeaders.
    async with service.admission.slot() as slot:
        started = time.perf_counter()
        uploads = await read_uploads(request, max_bytes=settings.max_upload_bytes, max_files=1)
        upload_ms = (time.perf_counter() - started) * 1e3
        rendered = await service.segment(uploads[0].data, options, on_decoded=slot.photo_decoded)
    headers = {"Server-Timing": server_timing(upload_ms, rendered.result.timings)}
    if rendered.png is None:
        return Response(rendered.result.model_dump_json(), media_type="application/json", headers=headers)
    return Response(rendered.png, media_type="image/png", headers=headers)


def server_timing(upload_ms: float, timings: Timings) -> str:
    """W3C Server-Timing for any output (a PNG has no JSON `timings`): where the service's time went,
    reading the upload included, so a client can tell it from the network's."""
    stages = (
        ("upload", upload_ms),
        ("decode", timings.decode_ms),
        ("queue", timings.queue_ms),
        ("inference", timings.inference_ms),
        ("render", timings.render_ms),
        ("total", upload_ms + timings.total_ms),
    )
    return ", ".join(f"{name};dur={ms:.1f}" for name, ms in stages)


@router.post(
    "/segment/batch",
    summary="Segment several photos in one request",
    description=(
        "Repeat multipart field `file`. Returns one result per photo, with the same fields as "
        "`POST /segment?output=json` (pets, species, breed...), or that photo's own error."
    ),
    response_model=BatchResponse,
    responses={
        200: {"content": {"application/json": {"example": BATCH_EXAMPLE}}},
        **_ERRORS,
    },
    openapi_extra={
        "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": _BATCH_FORM_SCHEMA}}}
    },
)
async def segment_batch(request: Request, service: ServiceDep, settings: SettingsDep) -> Response:
    options = RenderOptions(output=OutputMode.json)

    async def one(filename: str | None, data: bytes, slot: Slot) -> BatchItem:
        try:
            rendered = await service.segment(data, options, on_decoded=slot.photo_decoded)
        except ImageError as exc:
            problem = Problem(title=exc.title, status=exc.status, detail=exc.detail)
            return BatchItem(filename=filename, ok=False, error=problem)
        except Unavailable as exc:
            problem = Problem(title="Service Unavailable", status=503, detail=str(exc))
            return BatchItem(filename=filename, ok=False, error=problem)
        return BatchItem(filename=filename, ok=True, result=rendered.result)

    async with service.admission.slot() as slot:  # Overloaded: 503 + Retry-After (app/errors.py)
        uploads = await read_uploads(
            request, max_bytes=settings.max_upload_bytes, max_files=settings.max_files_per_request
        )
        slot.expect(len(uploads))
        # Submitting all photos at once lets the batcher put them into the same forward pass.
        items = await asyncio.gather(*(one(upload.filename, upload.data, slot) for upload in uploads))
    body = BatchResponse(
        model_name=service.segmenter.name, model_version=service.segmenter.version, results=list(items)
    )
    return Response(body.model_dump_json(), media_type="application/json")
