"""Probes, model metadata and metrics; open even when an API key is configured, so probes work."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.api.deps import ServiceDep, not_ready_reason
from app.schemas import ModelInfo, ModelLabels
from petseg_contract import BREED_NAMES, SPECIES_NAMES

router = APIRouter(tags=["ops"])


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Readiness: 200 only once the model is loaded and warmed up",
    responses={503: {"description": "Still loading or warming up, or the model worker has stopped."}},
)
async def readyz(request: Request) -> JSONResponse:
    reason = not_ready_reason(request.app)
    if reason is None:
        return JSONResponse({"status": "ready"})
    return JSONResponse({"status": "not ready", "detail": reason}, status_code=503)


@router.get("/v1/model", summary="Metadata of the loaded model", response_model=ModelInfo)
async def model_info(service: ServiceDep) -> ModelInfo:
    metadata = service.segmenter.metadata
    reports_labels = service.segmenter.has_labels
    labels = ModelLabels(species=list(SPECIES_NAMES), breeds=list(BREED_NAMES)) if reports_labels else None
    return ModelInfo(
        name=metadata["name"],
        version=int(metadata["version"]),
        input_size=int(metadata["input_size"]),
        classes=metadata["classes"],
        metrics=metadata.get("metrics", {}),
        created_at=metadata.get("created_at"),
        reports_labels=reports_labels,
        labels=labels,
        metadata=metadata,
        backend=service.segmenter.backend,
        max_batch_size=service.batcher.max_batch_size,
    )


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
