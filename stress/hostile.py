"""Send the hostile corpus to a running server and judge every answer (`python -m stress hostile`)."""

from __future__ import annotations

import io
import json
import select
import socket
import time
import urllib.parse
from dataclasses import dataclass

from PIL import Image

from petseg_harness.metrics import metric_samples
from stress.corpus import Case, build_corpus, multipart


@dataclass(frozen=True)
class Verdict:
    case: Case
    status: int  # 0: no HTTP answer (expected only where the client itself hung up)
    problem: str  # empty when the answer is right
    seconds: float

    @property
    def ok(self) -> bool:
        return not self.problem


def _address(url: str) -> tuple[str, int]:
    parsed = urllib.parse.urlsplit(url)
    return parsed.hostname or "127.0.0.1", parsed.port or 80


def _read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response (Content-Length or until close); (0, {}, b"") when nothing came."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return 0, {}, b""
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", "-1"))
    while length < 0 or len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return int(lines[0].split(" ", 2)[1]), headers, rest[: length if length >= 0 else None]


def _request_head(
    case: Case, host: str, content_type: str | None, length: int | None, extra: str = ""
) -> bytes:
    target = case.path + ("?" + urllib.parse.urlencode(case.params) if case.params else "")
    head = f"{case.method} {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n"
    if content_type is not None:
        head += f"Content-Type: {content_type}\r\n"
    if length is not None:
        head += f"Content-Length: {length}\r\n"
    return (head + extra + "\r\n").encode()


def send_case(url: str, case: Case, max_upload_bytes: int, timeout: float = 60.0) -> tuple[int, dict, bytes]:
    host, port = _address(url)
    with socket.create_connection((host, port), timeout=timeout) as sock:
        if case.raw == "declared-over-limit":
            sock.sendall(_request_head(case, host, "image/jpeg", max_upload_bytes + 1) + b"\xff\xd8" * 512)
            return _read_response(sock)
        if case.raw == "disconnect":
            sock.sendall(_request_head(case, host, "image/jpeg", 1_000_000) + b"\xff\xd8" * 5000)
            sock.shutdown(socket.SHUT_RDWR)
            return 0, {}, b""
        if case.raw == "slow-over-limit":
            sock.sendall(_request_head(case, host, "image/jpeg", None, "Transfer-Encoding: chunked\r\n"))
            chunk = b"\xff" * 256 * 1024
            sent = 0
            try:
                while sent <= max_upload_bytes + len(chunk):
                    if select.select([sock], [], [], 0)[0]:
                        break  # the server answered before the body ended, as it should
                    sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                    sent += len(chunk)
                    time.sleep(0.005)
                else:
                    sock.sendall(b"0\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError):
                pass
            return _read_response(sock)
        if case.parts:
            body, content_type = multipart(case.parts)
        else:
            body, content_type = case.body or b"", case.content_type
        length = len(body) if (body or case.method != "GET") else None
        sock.sendall(_request_head(case, host, content_type, length, _extra_headers(case)) + body)
        return _read_response(sock)


def _extra_headers(case: Case) -> str:
    return "".join(f"{k}: {v}\r\n" for k, v in case.headers.items())


def judge(case: Case, status: int, headers: dict[str, str], body: bytes) -> str:
    """Why this answer is wrong for this case, or '' when it is right."""
    if status >= 500:
        return f"server error {status}: {body[:200]!r}"
    if status not in case.expect:
        return f"status {status}, expected {sorted(case.expect)}: {body[:200]!r}"
    if 400 <= status < 500:
        if "json" not in headers.get("content-type", ""):
            return f"{status} without a JSON body ({headers.get('content-type')})"
        try:
            json.loads(body)
        except ValueError:
            return f"{status} body is not JSON: {body[:200]!r}"
    if status == 200 and case.size is not None:
        try:
            image = Image.open(io.BytesIO(body))
            image.load()
        except Exception as exc:
            return f"200 but not an image: {exc}"
        if image.format != "PNG" or image.size != case.size:
            return f"200 but {image.format} {image.size}, expected PNG {case.size}"
    return ""


def run_corpus(
    url: str, max_upload_bytes: int = 20 * 1024 * 1024, max_pixels: int = 40_000_000
) -> list[Verdict]:
    verdicts = []
    for case in build_corpus(max_upload_bytes, max_pixels):
        started = time.perf_counter()
        try:
            status, headers, body = send_case(url, case, max_upload_bytes)
            problem = judge(case, status, headers, body)
        except OSError as exc:
            status, problem = -1, f"transport error: {type(exc).__name__}: {exc}"
        verdicts.append(Verdict(case, status, problem, time.perf_counter() - started))
    return verdicts


def readyz(url: str) -> int:
    host, port = _address(url)
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(f"GET /readyz HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        return _read_response(sock)[0]


def server_errors_counted(url: str) -> int:
    """5xx answers the service itself counted (/metrics), including ones no client was left to read.

    /readyz is left out: its 503 while the model loads is its job, not an error.
    """
    host, port = _address(url)
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(f"GET /metrics HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        text = _read_response(sock)[2].decode()
    return int(
        sum(
            sample.value
            for sample in metric_samples(text, "petseg_http_requests_total")
            if sample.labels["status"].startswith("5") and sample.labels["route"] != "/readyz"
        )
    )


def report(verdicts: list[Verdict]) -> str:
    lines = [f"{'case':<58}{'status':>7}{'ms':>8}  verdict"]
    for v in verdicts:
        verdict = "ok" if v.ok else f"FAIL: {v.problem}"
        lines.append(f"{v.case.name[:57]:<58}{v.status:>7}{v.seconds * 1e3:>8.0f}  {verdict}")
    failed = sum(not v.ok for v in verdicts)
    server_errors = sum(v.status >= 500 for v in verdicts)
    lines.append(
        f"{len(verdicts)} cases, {len(verdicts) - failed} as expected, {failed} wrong, {server_errors} 5xx"
    )
    return "\n".join(lines)
