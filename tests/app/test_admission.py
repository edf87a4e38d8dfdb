"""Admission control before decoding: a bound on uploads being read and decoded at once."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.requests import Request

from app.admission import Admission
from app.api.uploads import _parse_form
from app.batcher import Overloaded
from petseg_harness.metrics import metric_value
from petseg_harness.photos import make_photo
from petseg_harness.server import ServerProcess, running_service

PHOTO = make_photo(150, 100)


def test_a_full_backlog_is_refused_and_a_freed_slot_admits_the_next() -> None:
    async def scenario() -> None:
        admission = Admission(limit=1, backlog=1)
        order: list[str] = []
        first = admission.slot()
        slot = await first.__aenter__()

        async def second() -> None:
            async with admission.slot():
                order.append("second admitted")

        waiting = asyncio.create_task(second())
        await asyncio.sleep(0)  # let it start waiting
        assert (admission.active, admission.waiting) == (1, 1)
        with pytest.raises(Overloaded):
            async with admission.slot():
                pass
        slot.photo_decoded()  # the first photo is decoded: its slot goes to the waiting request
        await waiting
        assert order == ["second admitted"]
        await first.__aexit__(None, None, None)  # giving it back twice changes nothing
        assert (admission.active, admission.waiting) == (0, 0)

    asyncio.run(scenario())


def test_a_batch_holds_its_slot_until_every_photo_is_decoded() -> None:
    async def scenario() -> None:
        admission = Admission(limit=1, backlog=0)
        async with admission.slot() as slot:
            slot.expect(3)
            slot.photo_decoded()
            slot.photo_decoded()
            assert admission.active == 1
            slot.photo_decoded()
            assert admission.active == 0
        assert admission.active == 0

    asyncio.run(scenario())


def test_a_request_counts_as_arriving_from_admission_until_its_photo_is_decoded() -> None:
    on_the_way = []

    @contextlib.contextmanager
    def arriving() -> Iterator[None]:  # stands where the service puts the batcher's `arriving`
        on_the_way.append(1)
        try:
            yield
        finally:
            on_the_way.pop()

    async def scenario() -> None:
        admission = Admission(limit=2, backlog=0, holding=arriving)
        async with admission.slot() as slot:
            assert len(on_the_way) == 1  # body still being read: a forming batch may wait for it
            slot.photo_decoded()
            assert on_the_way == []  # decoded and about to be queued: nothing to wait for
        assert on_the_way == []

    asyncio.run(scenario())


def test_multipart_uploads_over_a_megabyte_stay_in_memory() -> None:
    boundary = "xyz"
    data = bytes(range(256)) * (12 * 1024)  # 3 MB: starlette alone would spool it to a temporary file
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n'
            "Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/",
        "headers": [(b"content-type", f"multipart/form-data; boundary={boundary}".encode())],
    }
    chunks = [body[i : i + 65536] for i in range(0, len(body), 65536)]

    async def receive() -> dict:
        chunk = chunks.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}

    async def scenario() -> None:
        async with _parse_form(Request(scope, receive), max_bytes=len(body), max_files=1) as form:
            upload = form["file"]
            assert not upload.file._rolled  # SpooledTemporaryFile: still its in-memory buffer
            assert await upload.read() == data

    asyncio.run(scenario())


@pytest.fixture(scope="module")
def one_slot_server(tmp_path_factory, model_dir: Path) -> Iterator[ServerProcess]:
    """One upload decoded at a time and none waiting: the second concurrent upload is refused."""
    env = {"PETSEG_MAX_DECODING": "1", "PETSEG_MAX_DECODING_WAITING": "0"}
    with running_service(model_dir, tmp_path_factory.mktemp("logs") / "one-slot.log", env) as running:
        yield running


def test_an_upload_burst_beyond_the_bound_gets_503_before_its_body_is_read(one_slot_server) -> None:
    url = one_slot_server.url
    host, port = url.removeprefix("http://").split(":")
    # A slow client: headers and half of its body sent, the rest held back, so it keeps its slot.
    slow = socket.create_connection((host, int(port)))
    head = (
        "POST /segment HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
        f"Content-Length: {len(PHOTO)}\r\n\r\n"
    )
    slow.sendall(head.encode() + PHOTO[: len(PHOTO) // 2])
    try:
        with httpx.Client(base_url=url, timeout=60) as http:
            deadline = time.monotonic() + 30
            while metric_value(http.get("/metrics").text, "petseg_decoding") < 1:  # the slow one is admitted
                assert time.monotonic() < deadline, "the slow upload never took its decoding slot"
                time.sleep(0.05)
            refused = http.post("/segment", content=PHOTO, headers={"content-type": "image/jpeg"})
            assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
            assert "decoded" in refused.json()["detail"]
            slow.sendall(PHOTO[len(PHOTO) // 2 :])
            answer = slow.recv(65536).split(b"\r\n", 1)[0]
            assert b" 200 " in answer + b" "
            assert http.post("/segment", content=PHOTO, headers={"content-type": "image/jpeg"}).is_success
    finally:
        slow.close()
