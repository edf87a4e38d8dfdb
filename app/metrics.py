"""Prometheus collectors for one app instance, plus the ASGI middleware that counts requests."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


class Metrics:
    """Collectors in their own registry, so several apps in one process (tests) never clash."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "petseg_http_requests",
            "HTTP requests by route and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "petseg_http_request_duration_seconds",
            "HTTP request latency by route.",
            ["method", "route"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "petseg_batch_size",
            "Photos per model forward pass.",
            buckets=_BATCH_BUCKETS,
            registry=self.registry,
        )
        self.inference = Histogram(
            "petseg_inference_duration_seconds",
            "Model forward pass time per batch.",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "petseg_queue_depth", "Photos waiting for the model.", registry=self.registry
        )
        self.model = Info("petseg_model", "The loaded model.", registry=self.registry)

    def observe_batch(self, size: int, seconds: float) -> None:
        self.batch_size.observe(size)
        self.inference.observe(seconds)


class MetricsMiddleware:
    """Counts every HTTP request by its route template (not its raw path, which would explode labels)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            route = _route_template(scope)
            self.metrics.requests.labels(scope["method"], route, str(status)).inc()
            self.metrics.latency.labels(scope["method"], route).observe(time.perf_counter() - started)


def _route_template(scope: Scope) -> str:
    """The matched route's path template; "unmatched" only for paths that no route or mount serves."""
    route = scope.get("route")
    if route is None:
        # FastAPI's own API routes set scope["route"]; Starlette routes (/openapi.json, the docs pages)
        # and mounts (the docs' assets) only set the endpoint they dispatched to, so look that up.
        endpoint = scope.get("endpoint")
        routes = getattr(scope.get("app"), "routes", ())
        if endpoint is not None:
            route = next(
                (r for r in routes if endpoint in (getattr(r, "endpoint", None), getattr(r, "app", None))),
                None,
            )
    return getattr(route, "path", None) or "unmatched"
