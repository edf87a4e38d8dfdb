"""Dependencies as Annotated aliases, so route signatures read as what they need."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, FastAPI, Request, Security
from fastapi.security import APIKeyHeader

from app.errors import ProblemError
from app.service import SegmentationService
from app.settings import Settings

_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="Needed when configured.")


# The dependencies are `async def` although none of them awaits: FastAPI runs a plain `def` dependency
# in its thread pool, and these three would cost every /segment request three thread hand-offs (waking
# a pool thread, then the event loop) for a few attribute reads.


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def not_ready_reason(app: FastAPI) -> str | None:
    """Why the service cannot segment now (None: it can): loading, warming up, or its model worker stopped."""
    service = getattr(app.state, "service", None)
    if service is not None and service.batcher.failure is not None:
        return service.batcher.failure
    if getattr(app.state, "ready", False):
        return None
    return getattr(app.state, "not_ready_reason", "starting")


async def get_ready_service(request: Request) -> SegmentationService:
    """The service once the model is loaded and warmed up; 503 (with Retry-After) before that."""
    service = getattr(request.app.state, "service", None)
    if service is None or not request.app.state.ready:
        retry_after = str(request.app.state.settings.retry_after_seconds)
        raise ProblemError(
            503, "the model is still loading or warming up", headers={"Retry-After": retry_after}
        )
    return service


async def require_api_key(
    settings: Annotated[Settings, Depends(get_settings)],
    supplied: Annotated[str | None, Security(_api_key_header)] = None,
) -> None:
    """Check X-API-Key when a key is configured; constant-time so timing does not reveal the key."""
    if settings.api_key is None:
        return
    expected = settings.api_key.get_secret_value().encode()
    if supplied is None or not hmac.compare_digest(supplied.encode(), expected):
        raise ProblemError(
            401, "missing or wrong X-API-Key header", headers={"WWW-Authenticate": "X-API-Key"}
        )


SettingsDep = Annotated[Settings, Depends(get_settings)]
ServiceDep = Annotated[SegmentationService, Depends(get_ready_service)]
ApiKeyDep = Depends(require_api_key)
