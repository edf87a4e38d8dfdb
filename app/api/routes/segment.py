"""POST /segment (one photo → PNG or JSON) and POST /segment/batch (several photos → one JSON)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from app.admission import Slot
from app.api.deps import ApiKeyDep, ServiceDep, SettingsDep
from app.api.uploads import FILE_FIELD, read_uploads
from app.batcher import Unavailable
from app.schemas import BatchItem, BatchResponse, OutputMode, Problem, RenderOptions, SegmentResult
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
        422: "Missing field, bad parameter, or form fields besides `file`; `errors` lists each one.",
        503: "Overloaded, warming up, shutting down, or the model worker stopped; see Retry-After.",
    }.items()
}


def _hex_color(value: str) -> tuple[int, int, int]:
    value = value.removeprefix("#")
    return int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16)


@router.post(
    "/segment",
    summary="Segment one pet photo",
    description=(
        "Send the photo as multipart field `file` or as the raw body with an `image/*` content type. "
        "`output=mask` (default) returns a palette PNG at the photo's size whose pixel values are class "
        "indices (0 pet, 1 background, 2 border); `overlay` the photo with class colours blended in; "
        "`cutout` an RGBA PNG of the pet (or on `background`); `json` a summary."
    ),
    response_class=Response,
    responses={
        200: {
            "description": "PNG for mask/overlay/cutout, JSON for output=json. Header X-Model-Version.",
            "content": {"image/png": {"schema": _BINARY}},
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
    opacity: Annotated[float, Query(ge=0.0, le=1.0, description="Class colour weight for overlay.")] = 0.5,
    background: Annotated[
        str | None,
        Query(
            pattern=r"^#?[0-9a-fA-F]{6}$", description="Cutout on this colour (e.g. ffffff) instead of alpha."
        ),
    ] = None,
) -> Response:
    options = RenderOptions(
        output=output, opacity=opacity, background=_hex_color(background) if background else None
    )
    # A decoding slot before the body is read: a burst of uploads waits unread or gets 503. Unavailable
    # (overloaded, stopping) becomes 503 + Retry-After in app/errors.py; the model headers come from
    # app.main._ModelHeaders.
    async with service.admission.slot() as slot:
        uploads = await read_uploads(request, max_bytes=settings.max_upload_bytes, max_files=1)
        rendered = await service.segment(uploads[0].data, options, on_decoded=slot.photo_decoded)
    if rendered.png is None:
        return Response(rendered.result.model_dump_json(), media_type="application/json")
    return Response(rendered.png, media_type="image/png")


@router.post(
    "/segment/batch",
    summary="Segment several photos in one request",
    description="Repeat multipart field `file`. Returns one JSON result per photo, or its own error.",
    response_model=BatchResponse,
    responses=_ERRORS,
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
