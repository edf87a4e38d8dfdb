"""Builds the FastAPI app: settings, routes, error mapping, metrics, and the model's lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from anyio import to_thread
from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.routes import ops, segment, ui, v2
from app.api.v2_errors import install_protocol_errors
from app.errors import install_error_handlers
from app.metrics import Metrics, MetricsMiddleware
from app.settings import ModelDirError, Settings

logger = logging.getLogger("app")


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


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    # TensorFlow is imported here, not at module import, so `import app.main` stays cheap.
    from app.batcher import Batcher
    from app.segmenter import Segmenter, configure_tensorflow
    from app.service import SegmentationService

    settings: Settings = app.state.settings
    metrics: Metrics = app.state.metrics
    configure_tensorflow(settings)
    try:
        segmenter = await to_thread.run_sync(lambda: Segmenter.load(settings.model_version_dir))
    except ModelDirError as exc:
        app.state.startup_error = exc
        logger.error("petseg cannot start: %s", exc)
        raise
    batcher = Batcher(
        segmenter.predict,
        max_batch_size=settings.max_batch_size,
        max_wait_s=settings.max_batch_wait_ms / 1000.0,
        capacity=settings.queue_capacity,
        on_batch=metrics.observe_batch,
    )
    metrics.queue_depth.set_function(lambda: batcher.depth)
    metrics.model.info(
        {"name": segmenter.name, "version": str(segmenter.version), "path": str(segmenter.model_dir)}
    )
    app.state.service = SegmentationService(settings, segmenter, batcher)
    batcher.start()
    logger.info("loaded model %s v%d from %s", segmenter.name, segmenter.version, segmenter.model_dir)

    async def warm_up() -> None:
        # Warm-up runs after startup so /healthz answers meanwhile and /readyz says 503 until it is done.
        app.state.not_ready_reason = "warming up"
        try:
            await to_thread.run_sync(segmenter.warm_up)
        except Exception as exc:
            app.state.not_ready_reason = f"warm-up failed: {exc}"
            logger.exception("warm-up inference failed; the service stays not ready")
            return
        app.state.ready = True
        logger.info("warm-up done; ready")

    warm_up_task = asyncio.create_task(warm_up())
    try:
        yield
    finally:
        app.state.ready = False
        warm_up_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await warm_up_task
        await batcher.stop()


def create_app(settings: Settings | None = None) -> FastAPI:
    """A new app with its own settings and metrics registry; the model loads when its lifespan starts."""
    settings = settings or Settings()
    logging.getLogger("app").setLevel(settings.log_level.upper())
    app = FastAPI(
        title="PetSeg",
        summary="Pet-photo segmentation: PNG masks, overlays, cut-outs and JSON.",
        version="0.1.0",
        lifespan=_lifespan,
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
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    app.add_middleware(_StartupErrorLine, fastapi_app=app)
    return app


app = create_app()
