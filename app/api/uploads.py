"""Reads uploaded photos from a request, enforcing the size limit while the bytes arrive."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from fastapi import Request
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Message

from app.errors import ProblemError

FILE_FIELD = "file"


@dataclass(frozen=True)
class Upload:
    filename: str | None
    data: bytes


def _too_large(limit: int) -> ProblemError:
    return ProblemError(413, f"request body exceeds the limit of {limit} bytes", title="Upload too large")


def _limited(request: Request, limit: int) -> Request:
    """The same request whose body stream fails with 413 as soon as more than `limit` bytes arrived."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    received = 0

    async def receive() -> Message:
        nonlocal received
        message = await request.receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise _too_large(limit)
        return message

    return Request(request.scope, receive)


@contextlib.asynccontextmanager
async def _multipart_form(request: Request, max_files: int) -> AsyncIterator[FormData]:
    """The parsed form, closed on exit. Starlette answers every multipart problem with a bare 400, which
    the API reserves for corrupt images; here each gets its own status and a message that says what to do."""
    try:
        form = await request.form(max_files=max_files, max_fields=max_files)
    except StarletteHTTPException as exc:
        reason = str(exc.detail)
        if reason.startswith("Too many files"):
            raise ProblemError(
                413,
                f"at most {max_files} photo(s) per request on this endpoint; send the others separately",
                title="Too many files",
            ) from None
        if reason.startswith("Too many fields"):
            raise ProblemError(
                422,
                f"too many form fields besides '{FILE_FIELD}' (at most {max_files}); send only the photos",
                title="Invalid request",
            ) from None
        raise ProblemError(
            400, f"malformed multipart body: {reason}", title="Malformed multipart body"
        ) from None
    try:
        yield form
    finally:
        await form.close()


async def read_uploads(request: Request, *, max_bytes: int, max_files: int) -> list[Upload]:
    """Photos from a multipart form (repeated field `file`) or from a raw `image/*` body."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    limited = _limited(request, max_bytes)
    if content_type == "multipart/form-data":
        async with _multipart_form(limited, max_files) as form:
            values = form.getlist(FILE_FIELD)
            if not values:
                raise ProblemError(
                    422, f"multipart form field '{FILE_FIELD}' is missing", title="Invalid request"
                )
            files = [value for value in values if isinstance(value, UploadFile)]
            if len(files) != len(values):
                raise ProblemError(
                    422, f"form field '{FILE_FIELD}' must be a file upload", title="Invalid request"
                )
            return [Upload(file.filename, await file.read()) for file in files]
    if content_type.startswith("image/"):
        chunks = [chunk async for chunk in limited.stream()]
        return [Upload(None, b"".join(chunks))]
    raise ProblemError(
        415,
        f"send the photo as multipart field '{FILE_FIELD}' or as a raw image/* body, not '{content_type}'",
        title="Unsupported media type",
    )


async def read_body(request: Request, *, max_bytes: int) -> bytes:
    """The whole request body, refused with 413 as soon as more than `max_bytes` arrived."""
    return b"".join([chunk async for chunk in _limited(request, max_bytes).stream()])
