"""The Open Inference Protocol (KServe v2) REST endpoints for the loaded model, beside /segment.

Tensor-native callers (`tritonclient`, KServe's SDK, gateways) send the model's own input, uint8
photos at its input size, and get its outputs as tensors. Requests share the batcher, the upload
limit, the API key and the metrics with /segment; errors on /v2 paths take the protocol's
`{"error": "..."}` shape (app.api.v2_errors) instead of problem+json.
"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
from anyio import to_thread
from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from app import oip
from app.api.deps import ApiKeyDep, ServiceDep, SettingsDep, not_ready_reason
from app.api.uploads import read_body
from app.api.v2_errors import PREFIX
from app.batcher import Unavailable
from app.errors import ProblemError
from app.service import SegmentationService
from app.settings import Settings
from petseg_contract import BREED_NAMES, BREED_OUTPUT, INPUT_NAME, OUTPUT_NAME, SPECIES_NAMES, SPECIES_OUTPUT

# The model artifact is a SavedModel, whatever runtime executes it; KServe and Triton use this name.
PLATFORM = "tensorflow_savedmodel"
SERVER_NAME = "petseg"

router = APIRouter(prefix=PREFIX, tags=["open inference protocol (v2)"])


class ProtocolErrorBody(BaseModel):
    error: str


class TensorMetadata(BaseModel):
    name: str
    datatype: str
    shape: list[int] = Field(description="-1: any size (the batch).")


class ServerMetadata(BaseModel):
    name: str
    version: str
    extensions: list[str]


class ModelMetadata(BaseModel):
    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]


class Readiness(BaseModel):
    name: str | None = None
    ready: bool


_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ProtocolErrorBody, "description": why}
    for status, why in {
        400: "Malformed request, or a wrong input name, datatype, shape or size.",
        401: "Missing or wrong X-API-Key (when a key is configured).",
        404: "No such model or version.",
        413: "Request body over the upload limit.",
        415: "Unsupported Content-Encoding.",
        503: "Overloaded, warming up, shutting down, or the model worker stopped; see Retry-After.",
    }.items()
}
_TENSOR = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string"},
        "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
        "datatype": {"type": "string"},
        "parameters": {"type": "object"},
        "data": {"type": "array"},
    },
}
_INFER_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["inputs"],
                    "properties": {
                        "id": {"type": "string"},
                        "parameters": {"type": "object"},
                        "inputs": {"type": "array", "items": _TENSOR},
                        "outputs": {"type": "array", "items": _TENSOR},
                    },
                }
            },
            "application/octet-stream": {
                "schema": {
                    "type": "string",
                    "format": "binary",
                    "description": f"JSON header of {oip.HEADER_LENGTH} bytes, then the binary tensors.",
                }
            },
        },
    }
}
_INFER_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": (
            f"JSON outputs; with binary outputs, a JSON header of {oip.HEADER_LENGTH} bytes then the "
            "raw tensors (application/octet-stream)."
        ),
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    },
    **_ERRORS,
}


def model_tensors(service: SegmentationService) -> tuple[oip.TensorSpec, tuple[oip.TensorSpec, ...]]:
    """The model's input and outputs as the protocol describes them (the contract's names and types)."""
    segmenter = service.segmenter
    size = segmenter.input_size
    output_shapes = {
        OUTPUT_NAME: (-1, size, size, len(segmenter.metadata["classes"])),
        SPECIES_OUTPUT: (-1, len(SPECIES_NAMES)),
        BREED_OUTPUT: (-1, len(BREED_NAMES)),
    }
    inputs = oip.TensorSpec(INPUT_NAME, "UINT8", (-1, size, size, 3))
    outputs = tuple(oip.TensorSpec(name, "FP32", output_shapes[name]) for name in segmenter.output_names)
    return inputs, outputs


def _retry_after(settings: Settings) -> dict[str, str]:
    return {"Retry-After": str(settings.retry_after_seconds)}


def _loaded(request: Request) -> SegmentationService:
    service: SegmentationService | None = getattr(request.app.state, "service", None)
    if service is None:
        raise ProblemError(
            503, "the model is still loading", headers=_retry_after(request.app.state.settings)
        )
    return service


def _check_model(service: SegmentationService, name: str, version: str | None) -> None:
    """404 unless `name` (and `version`, when given) are the loaded model's."""
    segmenter = service.segmenter
    if name != segmenter.name:
        raise ProblemError(404, f"unknown model '{name}'; this server serves '{segmenter.name}'")
    if version is not None and version != str(segmenter.version):
        raise ProblemError(
            404, f"model '{name}' has no version '{version}'; the loaded version is '{segmenter.version}'"
        )


@router.get("", summary="Server metadata", response_model=ServerMetadata)
async def server_metadata(request: Request) -> ServerMetadata:
    return ServerMetadata(name=SERVER_NAME, version=request.app.version, extensions=[oip.BINARY_EXTENSION])


@router.get("/health/live", summary="Server liveness", response_model=dict[str, bool])
async def server_live() -> dict[str, bool]:
    return {"live": True}


@router.get("/health/ready", summary="Server readiness", response_model=dict[str, bool], responses=_ERRORS)
async def server_ready(request: Request) -> dict[str, bool]:
    reason = not_ready_reason(request.app)
    if reason is not None:
        raise ProblemError(503, f"not ready: {reason}", headers=_retry_after(request.app.state.settings))
    return {"ready": True}


def _model_metadata(request: Request, name: str, version: str | None) -> ModelMetadata:
    service = _loaded(request)
    _check_model(service, name, version)
    inputs, outputs = model_tensors(service)
    return ModelMetadata(
        name=service.segmenter.name,
        versions=[str(service.segmenter.version)],
        platform=PLATFORM,
        inputs=[TensorMetadata(**inputs.metadata())],
        outputs=[TensorMetadata(**spec.metadata()) for spec in outputs],
    )


@router.get("/models/{model_name}", summary="Model metadata", response_model=ModelMetadata, responses=_ERRORS)
async def model_metadata(request: Request, model_name: str) -> ModelMetadata:
    return _model_metadata(request, model_name, None)


@router.get(
    "/models/{model_name}/versions/{model_version}",
    summary="Model metadata (one version)",
    response_model=ModelMetadata,
    responses=_ERRORS,
)
async def model_version_metadata(request: Request, model_name: str, model_version: str) -> ModelMetadata:
    return _model_metadata(request, model_name, model_version)


def _model_ready(request: Request, name: str, version: str | None) -> Readiness:
    _check_model(_loaded(request), name, version)
    if not getattr(request.app.state, "ready", False):
        raise ProblemError(
            503, f"model '{name}' is warming up", headers=_retry_after(request.app.state.settings)
        )
    return Readiness(name=name, ready=True)


@router.get(
    "/models/{model_name}/ready", summary="Model readiness", response_model=Readiness, responses=_ERRORS
)
async def model_ready(request: Request, model_name: str) -> Readiness:
    return _model_ready(request, model_name, None)


@router.get(
    "/models/{model_name}/versions/{model_version}/ready",
    summary="Model readiness (one version)",
    response_model=Readiness,
    responses=_ERRORS,
)
async def model_version_ready(request: Request, model_name: str, model_version: str) -> Readiness:
    return _model_ready(request, model_name, model_version)


async def _infer(
    request: Request, service: SegmentationService, settings: Settings, name: str, version: str | None
) -> Response:
    _check_model(service, name, version)
    segmenter = service.segmenter
    inputs, outputs = model_tensors(service)
    body = await read_body(request, max_bytes=settings.max_upload_bytes)

    def decode() -> oip.InferRequest:
        inflated = oip.decode_content(
            body, request.headers.get("content-encoding"), settings.max_upload_bytes
        )
        return oip.parse_infer_request(
            inflated, request.headers.get(oip.HEADER_LENGTH), [inputs], [spec.name for spec in outputs]
        )

    try:
        # Inflating and parsing megabytes of JSON would stall other requests: off the event loop.
        parsed = await to_thread.run_sync(decode)
    except oip.BodyTooLarge as exc:
        raise ProblemError(413, str(exc)) from None
    except oip.UnsupportedEncoding as exc:
        raise ProblemError(415, str(exc)) from None
    except oip.ProtocolError as exc:
        raise ProblemError(400, str(exc)) from None
    images = parsed.inputs[INPUT_NAME]
    if not 1 <= len(images) <= settings.max_files_per_request:
        raise ProblemError(
            400,
            f"input '{INPUT_NAME}' holds {len(images)} photos; send 1 to {settings.max_files_per_request}",
        )
    results = await _run_through_batcher(service, images, settings)
    body, header_length = await to_thread.run_sync(
        oip.encode_infer_response,
        segmenter.name,
        str(segmenter.version),
        parsed.id,
        [(output, results[output], binary) for output, binary in parsed.outputs.items()],
    )
    if header_length is None:
        return Response(body, media_type="application/json")
    return Response(
        body, media_type="application/octet-stream", headers={oip.HEADER_LENGTH: str(header_length)}
    )


async def _run_through_batcher(
    service: SegmentationService, images: np.ndarray, settings: Settings
) -> dict[str, np.ndarray]:
    """Each photo through the shared batcher, so they ride in forward passes with /segment traffic;
    their outputs stacked back into the request's batch."""
    pending = [asyncio.ensure_future(service.batcher.submit(image)) for image in images]
    try:
        done = await asyncio.gather(*pending)
    except BaseException as exc:
        # After one refusal the others would only take room in the queue and time on the model.
        for future in pending:
            future.cancel()
        await asyncio.gather(*pending, return_exceptions=True)  # collected, so none logs as lost
        if isinstance(exc, Unavailable):  # overloaded, shutting down, or the model worker stopped
            raise ProblemError(503, str(exc), headers=_retry_after(settings)) from exc
        raise
    return {
        name: np.stack([result.outputs[name] for result in done]) for name in service.segmenter.output_names
    }


@router.post(
    "/models/{model_name}/infer",
    summary="Inference",
    dependencies=[ApiKeyDep],
    response_class=Response,
    responses=_INFER_RESPONSES,
    openapi_extra=_INFER_BODY,
)
async def infer(request: Request, service: ServiceDep, settings: SettingsDep, model_name: str) -> Response:
    return await _infer(request, service, settings, model_name, None)


@router.post(
    "/models/{model_name}/versions/{model_version}/infer",
    summary="Inference (one version)",
    dependencies=[ApiKeyDep],
    response_class=Response,
    responses=_INFER_RESPONSES,
    openapi_extra=_INFER_BODY,
)
async def infer_version(
    request: Request, service: ServiceDep, settings: SettingsDep, model_name: str, model_version: str
) -> Response:
    return await _infer(request, service, settings, model_name, model_version)
