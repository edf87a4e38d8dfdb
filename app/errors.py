"""Every error leaves as an RFC 9457 problem JSON body; nothing leaks a stack trace.

One shape (schemas.Problem): `type`, `title`, `status` and `detail`, always a sentence for people; a 422
adds `errors`, one {loc, msg, type} per invalid input, for programs.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from app.batcher import Unavailable
from petseg_contract.photos import ImageError

logger = logging.getLogger(__name__)

PROBLEM_CONTENT_TYPE = "application/problem+json"


class ProblemError(Exception):
    """An error with its HTTP status, a short title and a human detail."""

    def __init__(self, status: int, detail: str, *, title: str | None = None, headers: dict | None = None):
        super().__init__(detail)
        self.status = status
        self.title = title or HTTPStatus(status).phrase
        self.detail = detail
        self.headers = headers or {}


def problem_body(status: int, title: str, detail: str, errors: list[dict] | None = None) -> dict:
    body: dict = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    if errors is not None:
        body["errors"] = errors
    return body


def problem_response(
    status: int,
    title: str,
    detail: str,
    headers: Mapping[str, str] | None = None,
    errors: list[dict] | None = None,
) -> JSONResponse:
    return JSONResponse(
        problem_body(status, title, detail, errors),
        status_code=status,
        headers=headers,
        media_type=PROBLEM_CONTENT_TYPE,
    )


def validation_detail(errors: list[dict]) -> str:
    """`query.opacity: Input should be ...; body.file: Field required` — the 422 errors as one sentence."""
    parts = []
    for error in errors:
        where = ".".join(str(part) for part in error["loc"])
        parts.append(f"{where}: {error['msg']}" if where else str(error["msg"]))
    return "; ".join(parts) or "invalid request"


def install_error_handlers(app: FastAPI) -> None:
    """Map domain, validation and HTTP errors to problem responses."""

    @app.exception_handler(ProblemError)
    async def _problem(_: Request, exc: ProblemError) -> JSONResponse:
        return problem_response(exc.status, exc.title, exc.detail, exc.headers)

    @app.exception_handler(ImageError)
    async def _image(_: Request, exc: ImageError) -> JSONResponse:
        return problem_response(exc.status, exc.title, exc.detail)

    @app.exception_handler(Unavailable)
    async def _unavailable(request: Request, exc: Unavailable) -> JSONResponse:
        retry_after = str(request.app.state.settings.retry_after_seconds)
        return problem_response(503, "Service Unavailable", str(exc), {"Retry-After": retry_after})

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": list(error.get("loc", ())), "msg": error.get("msg", ""), "type": error.get("type", "")}
            for error in exc.errors()
        ]
        return problem_response(422, "Invalid request", validation_detail(errors), errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        title = HTTPStatus(exc.status_code).phrase
        return problem_response(exc.status_code, title, str(exc.detail), exc.headers)

    @app.exception_handler(ClientDisconnect)
    async def _gone(request: Request, _: ClientDisconnect) -> JSONResponse:
        # The client hung up mid-upload: nobody will read this answer, and it is not a server error.
        logger.info("client disconnected during %s %s", request.method, request.url.path)
        return problem_response(499, "Client Closed Request", "the client hung up before the upload ended")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(500, "Internal Server Error", "unexpected error; see the service log")
