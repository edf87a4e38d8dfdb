"""Errors on Open Inference Protocol paths (/v2) in the protocol's `{"error": "..."}` shape.

The rest of the API answers errors as problem+json (app/errors.py); protocol clients such as
`tritonclient` read the `error` field instead, so on /v2 paths the same errors are reshaped.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

PREFIX = "/v2"


Handler = Callable[[Request, Exception], Response | Awaitable[Response]]


def install_protocol_errors(app: FastAPI) -> None:
    """Answer errors on /v2 paths as `{"error": "..."}`, keeping status and headers; others untouched.

    Wraps every exception handler the app has so far (call it after the others are installed), so
    errors raised by shared dependencies (API key, readiness), the upload limit, unknown /v2 routes
    and unexpected failures all take the protocol's shape without a second set of handlers.
    """
    for key, handler in list(app.exception_handlers.items()):
        app.exception_handlers[key] = _protocol_shaped(handler)


def _on_protocol_path(request: Request) -> bool:
    path = request.url.path
    return path == PREFIX or path.startswith(PREFIX + "/")


def _protocol_shaped(handler: Handler) -> Callable[[Request, Exception], Awaitable[Response]]:
    async def shaped(request: Request, exc: Exception) -> Response:
        response = handler(request, exc)
        if inspect.isawaitable(response):
            response = await response
        if not isinstance(response, Response) or not _on_protocol_path(request):
            return response
        return _as_protocol_error(response)

    return shaped


def _as_protocol_error(response: Response) -> JSONResponse:
    """A problem+json (or any) error response as the protocol's `{"error": message}`."""
    try:
        problem = json.loads(bytes(response.body))
    except ValueError:
        problem = bytes(response.body).decode(errors="replace")
    if isinstance(problem, dict):
        detail = problem.get("detail")
        message = detail if isinstance(detail, str) and detail else problem.get("title") or str(problem)
        if detail and not isinstance(detail, str):
            message = f"{message}: {json.dumps(detail)}"
    else:
        message = str(problem)
    headers = {
        key: value
        for key, value in response.headers.items()
        if key.lower() not in ("content-length", "content-type")
    }
    return JSONResponse({"error": message}, status_code=response.status_code, headers=headers)
