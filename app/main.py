"""Builds the FastAPI app: settings, routes, error mapping, metrics, and the model's lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from anyio import to_thread
from fastapi import FastAPI
from fastapi_offline import FastAPIOffline
from pydantic import ValidationError
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.routes import ops, segment, ui, v2
from app.api.v2_errors import install_protocol_errors
from app.errors import install_error_handlers
from app.metrics import Metrics, MetricsMiddleware
from app.settings import ModelDirError, Settings, describe_invalid, unknown_environment
from app.wiring import running_service

if TYPE_CHECKING:
    from app.service import SegmentationService

logger = logging.getLogger("app")
DOCS_ASSETS_URL = "/docs/assets"  # Swagger UI's script, style and icon


class _StartupErrorLine:
    """Replaces the traceback uvicorn prints for a bad model directory with one line saying what is wrong."""

    def __init__(self, app: ASGIApp, fastapi_app: FastAPI) -> None:
        self.app = app
        self.fastapi_app = fastapi_app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return

        async def send_short(message: Message) -> None:
            error = getattr(self.fastapi_app.state, "startup_error", None)
            if message["type"] == "lifespan.startup.failed" and error is not None:
                message = {**message, "message": f"petseg cannot start: {error}"}
            await send(message)

        await self.app(scope, receive, send_short)


class _ModelHeaders:
    """Once a model is loaded, every response names it (X-Model-Name, X-Model-Version), errors included."""

    def __init__(self, app: ASGIApp, fastapi_app: FastAPI) -> None:
        self.app = app
        self.fastapi_app = fastapi_app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_model(message: Message) -> None:
            service = getattr(self.fastapi_app.state, "service", None)
            if message["type"] == "http.response.start" and service is not None:
                headers = MutableHeaders(scope=message)
                headers.setdefault("X-Model-Name", service.segmenter.name)
                headers.setdefault("X-Model-Version", str(service.segmenter.version))
            await send(message)

        await self.app(scope, receive, send_with_model)


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    metrics: Metrics = app.state.metrics
    for line in unknown_environment():
        logger.warning("%s", line)
    try:
        async with running_service(settings, on_batch=metrics.observe_batch) as service:
            segmenter = service.segmenter
            metrics.queue_depth.set_function(lambda: service.batcher.depth)
            metrics.model.info(
                {
                    "name": segmenter.name,
                    "version": str(segmenter.version),
                    "path": str(segmenter.model_dir),
                    "backend": segmenter.backend,
                }
            )
            metrics.decoding.set_function(lambda: service.admission.active)
            metrics.decoding_waiting.set_function(lambda: service.admission.waiting)
            app.state.service = service
            logger.info(
                "loaded model %s v%d from %s on %s (%d stream%s)",
                segmenter.name,
                segmenter.version,
                segmenter.model_dir,
                segmenter.backend,
                segmenter.streams,
                "" if segmenter.streams == 1 else "s",
            )
            warm_up_task = asyncio.create_task(_warm_up(app, service))
            try:
                yield
            finally:
                app.state.ready = False
                warm_up_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await warm_up_task
    except ModelDirError as exc:
        app.state.startup_error = exc
        logger.error("petseg cannot start: %s", exc)
        raise


async def _warm_up(app: FastAPI, service: SegmentationService) -> None:
    """Runs after startup so /healthz answers meanwhile and /readyz says 503 until it is done."""
    app.state.not_ready_reason = "warming up"
    try:
        # The largest batch, on every stream: its memory is paid before /readyz, not under load.
        await to_thread.run_sync(service.segmenter.warm_up, service.batcher.max_batch_size)
    except Exception as exc:
        app.state.not_ready_reason = f"warm-up failed: {exc}"
        logger.exception("warm-up inference failed; the service stays not ready")
        return
    app.state.ready = True
    logger.info("warm-up done (a batch of %d on every stream); ready", service.batcher.max_batch_size)


def _log_to_stderr(level: str) -> None:
    """Show the service's own lines (model, backend, warm-up) next to uvicorn's, unless logging is
    already configured (a handler on `app` or the root logger), e.g. by an embedding application."""
    app_logger = logging.getLogger("app")
    app_logger.setLevel(level)
    if not app_logger.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)-9s %(message)s"))
        app_logger.addHandler(handler)
        app_logger.propagate = False


def create_app(settings: Settings | None = None) -> FastAPI:
    """A new app with its own settings and metrics registry; the model loads when its lifespan starts."""
    settings = settings or Settings()
    _log_to_stderr(settings.log_level.upper())
    # FastAPIOffline: /docs (Swagger UI) with its script, style and icon served from this service (a
    # maintained package ships them), not from a CDN, so the API reference works offline. No ReDoc: its
    # bundle still fetches a logo from its CDN, and one API viewer is enough.
    app = FastAPIOffline(
        title="PetSeg",
        summary="Pet-photo segmentation: PNG masks, overlays, cut-outs and JSON.",
        version="0.1.0",
        lifespan=_lifespan,
        redoc_url=None,
        static_url=DOCS_ASSETS_URL,
        swagger_ui_parameters={"validatorUrl": None},  # no badge fetched from validator.swagger.io
    )
    app.state.settings = settings
    app.state.metrics = Metrics()
    app.state.ready = False
    app.state.not_ready_reason = "loading model"
    app.state.startup_error = None
    install_error_handlers(app)
    app.include_router(segment.router)
    app.include_router(ops.router)
    app.include_router(ui.router)
    app.include_router(v2.router)
    install_protocol_errors(app)  # after every other handler: it reshapes their answers on /v2
    app.add_middleware(_ModelHeaders, fastapi_app=app)
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    app.add_middleware(_StartupErrorLine, fastapi_app=app)
    return app


try:
    app = create_app()
except ValidationError as _invalid:  # `uvicorn app.main:app` with a bad PETSEG_*: one line, no traceback
    raise SystemExit(f"petseg cannot start: {describe_invalid(_invalid)}") from None
