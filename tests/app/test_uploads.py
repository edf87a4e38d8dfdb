"""The streaming upload limit, read straight from a request whose body arrives in scripted chunks.

No server: a Starlette Request over a receive() that hands out the chunks one by one and counts them, so
each test can say how much of the body was read before the limit answered 413.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
from starlette.requests import Request
from starlette.types import Message

from app.api.uploads import Upload, read_uploads
from app.errors import ProblemError

LIMIT = 1000
CHUNK = 100


class ScriptedBody:
    """An ASGI receive() that sends `chunks` as the request body, then reports a disconnect."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks
        self.sent = 0  # how many body chunks the server has asked for

    async def __call__(self) -> Message:
        if self.sent == len(self.chunks):
            return {"type": "http.disconnect"}
        self.sent += 1
        return {
            "type": "http.request",
            "body": self.chunks[self.sent - 1],
            "more_body": self.sent < len(self.chunks),
        }


def request(body: ScriptedBody, content_type: str, content_length: int | None) -> Request:
    headers = [(b"content-type", content_type.encode())]
    if content_length is not None:
        headers.append((b"content-length", str(content_length).encode()))
    scope = {"type": "http", "method": "POST", "path": "/segment", "query_string": b"", "headers": headers}
    return Request(scope, body)


def read(
    body: ScriptedBody, content_type: str = "image/jpeg", content_length: int | None = None
) -> list[Upload]:
    return asyncio.run(
        read_uploads(request(body, content_type, content_length), max_bytes=LIMIT, max_files=4)
    )


def split(data: bytes) -> list[bytes]:
    return [data[i : i + CHUNK] for i in range(0, len(data), CHUNK)]


def multipart(data: bytes, size: int) -> tuple[bytes, str]:
    """A one-file multipart body of exactly `size` bytes (the file is `data` padded to fit)."""
    boundary = uuid.uuid4().hex
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="cat.jpg"\r\n\r\n'.encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    padded = data + b"\0" * (size - len(head) - len(data) - len(tail))
    return head + padded + tail, f"multipart/form-data; boundary={boundary}"


@pytest.mark.parametrize("declared", [True, False], ids=["with Content-Length", "chunked"])
def test_a_raw_body_exactly_at_the_limit_is_read_whole(declared: bool) -> None:
    data = bytes(range(256)) * 3 + bytes(LIMIT - 768)
    body = ScriptedBody(split(data))
    uploads = read(body, content_length=LIMIT if declared else None)
    assert uploads == [Upload(None, data)]


def test_a_declared_length_over_the_limit_is_refused_before_any_body_is_read() -> None:
    body = ScriptedBody(split(bytes(LIMIT + 1)))
    with pytest.raises(ProblemError) as refused:
        read(body, content_length=LIMIT + 1)
    assert refused.value.status == 413
    assert body.sent == 0


def test_a_body_without_a_length_is_refused_as_soon_as_it_crosses_the_limit() -> None:
    body = ScriptedBody(split(bytes(5 * LIMIT)))
    with pytest.raises(ProblemError) as refused:
        read(body, content_length=None)
    assert refused.value.status == 413
    assert body.sent == LIMIT // CHUNK + 1  # the chunk that crossed it, and not one more


def test_a_body_longer_than_its_declared_length_is_refused_as_soon_as_it_crosses_the_limit() -> None:
    body = ScriptedBody(split(bytes(5 * LIMIT)))
    with pytest.raises(ProblemError) as refused:
        read(body, content_length=LIMIT)  # a client that lies about its length
    assert refused.value.status == 413
    assert body.sent == LIMIT // CHUNK + 1


def test_a_multipart_body_exactly_at_the_limit_is_read_whole() -> None:
    data, content_type = multipart(b"\xff\xd8 a photo", LIMIT)
    uploads = read(ScriptedBody(split(data)), content_type, content_length=None)
    assert len(uploads) == 1 and uploads[0].filename == "cat.jpg"
    assert uploads[0].data.startswith(b"\xff\xd8 a photo") and len(uploads[0].data) > LIMIT // 2


def test_a_multipart_body_over_the_limit_is_refused_as_soon_as_it_crosses_it() -> None:
    data, content_type = multipart(b"\xff\xd8 a photo", 5 * LIMIT)
    body = ScriptedBody(split(data))
    with pytest.raises(ProblemError) as refused:
        read(body, content_type, content_length=None)
    assert refused.value.status == 413
    assert body.sent == LIMIT // CHUNK + 1
