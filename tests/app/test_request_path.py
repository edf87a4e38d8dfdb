"""What a request costs besides its photo's work: no thread hand-offs it does not need (docs/runtime.md)."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from app.api.routes import ops, segment, ui, v2


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    for sub in dependant.dependencies:
        if sub.call is not None:
            yield sub.call
        yield from _calls(sub)


def _runs_on_event_loop(call: Callable[..., Any]) -> bool:
    # FastAPI awaits coroutine functions (and objects whose __call__ is one, like its security
    # schemes) on the event loop; any other callable goes to its thread pool, a hand-off per request.
    return inspect.iscoroutinefunction(call) or inspect.iscoroutinefunction(type(call).__call__)


def test_every_route_dependency_runs_on_the_event_loop() -> None:
    # The routers the app includes; each route's dependant holds its router's dependencies too.
    routes = [
        route for router in (segment.router, ops.router, ui.router, v2.router) for route in router.routes
    ]
    assert routes
    in_thread_pool = {
        f"{route.path}: {getattr(call, '__qualname__', call)}"
        for route in routes
        if isinstance(route, APIRoute)
        for call in _calls(route.dependant)
        if not _runs_on_event_loop(call)
    }
    assert in_thread_pool == set()
