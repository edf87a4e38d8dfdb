"""A generated corpus of bad and odd uploads, each with the statuses a correct service may answer.

Everything is built in memory (no binary fixtures). Bad inputs must get a 4xx JSON problem; odd but
valid photos a 200 PNG of the photo's own (oriented) size. Two cases need a raw socket and are marked
`raw`: over-limit bodies (declared, or sent slowly without a length), and a client that hangs up.
"""

from __future__ import annotations

import io
import struct
import uuid
import zlib
from dataclasses import dataclass, field

from PIL import Image

from petseg_harness.photos import make_photo

OK = frozenset({200})


@dataclass(frozen=True)
class Case:
    name: str
    expect: frozenset[int]
    method: str = "POST"
    path: str = "/segment"
    params: dict[str, str] = field(default_factory=dict)
    # Either a raw body with its content type, or multipart parts (field, filename, bytes, content type).
    body: bytes | None = None
    content_type: str | None = None
    parts: tuple[tuple[str, str | None, bytes, str | None], ...] = ()
    headers: dict[str, str] = field(default_factory=dict)
    size: tuple[int, int] | None = None  # a 200 must be a PNG of this (width, height)
    raw: str = ""  # a case the runner writes by hand on the socket, see stress.hostile


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def raw_png(width: int, height: int, bit_depth: int, color_type: int, rows: bytes | None = None) -> bytes:
    """A PNG written by hand, for what Pillow will not write (16-bit RGB, bombs)."""
    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    if rows is None:
        channels = {0: 1, 2: 3, 4: 2, 6: 4}[color_type]
        row = b"\x00" + bytes((width * channels * bit_depth + 7) // 8)
        compressor = zlib.compressobj(9)
        # Compressing one row at a time keeps memory flat even for 30000x30000.
        rows = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", rows)
        + _png_chunk(b"IEND", b"")
    )


def png_bomb(side: int = 30000) -> bytes:
    """side x side 1-bit greyscale of zeros: a ~100 KB file that would decode to side² pixels."""
    return raw_png(side, side, 1, 0)


def sixteen_bit_rgb(width: int = 64, height: int = 48) -> bytes:
    row = b"\x00" + b"".join(struct.pack(">HHH", x * 1000, 30000, 65535 - x * 1000) for x in range(width))
    return raw_png(width, height, 16, 2, zlib.compress(row * height))


def jpeg_with_orientation(orientation: int, width: int = 160, height: int = 90) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return make_photo(width, height, exif=exif.tobytes())


def jpeg_with_huge_exif() -> bytes:
    exif = Image.Exif()
    exif[0x010E] = "x" * 60000  # ImageDescription: the APP1 segment near its 64 KiB ceiling
    return make_photo(exif=exif.tobytes())


def jpeg_claiming(width: int, height: int) -> bytes:
    """A JPEG whose frame header claims width x height, followed by nothing useful."""
    data = bytearray(make_photo(16, 16))
    sof = data.index(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, height, width)
    return bytes(data[: sof + 40])


def animated_gif() -> bytes:
    frames = [Image.new("RGB", (80, 60), color) for color in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return buffer.getvalue()


def multipage_tiff() -> bytes:
    pages = [Image.new("RGB", (100, 70), (i * 80, 100, 50)) for i in range(3)]
    buffer = io.BytesIO()
    pages[0].save(buffer, format="TIFF", save_all=True, append_images=pages[1:])
    return buffer.getvalue()


def palette_with_transparency() -> bytes:
    image = Image.new("P", (90, 60), 0)
    image.putpalette([0, 0, 0, 200, 150, 100] + [0] * 762)
    image.paste(1, (20, 10, 70, 50))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", transparency=0)
    return buffer.getvalue()


def zip_archive() -> bytes:
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("cat.jpg", make_photo())
    return buffer.getvalue()


def pdf_document() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (50, 50), (255, 0, 0)).save(buffer, format="PDF")
    return buffer.getvalue()


def corrupt_crc_png() -> bytes:
    data = bytearray(make_photo(60, 40, fmt="PNG"))
    data[29] ^= 0xFF  # inside IHDR's CRC
    return bytes(data)


def multipart(parts: tuple[tuple[str, str | None, bytes, str | None], ...]) -> tuple[bytes, str]:
    """Encode parts by hand, so odd filenames and part headers go out exactly as written."""
    boundary = uuid.uuid4().hex
    chunks = []
    for name, filename, data, content_type in parts:
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        head = f"--{boundary}\r\nContent-Disposition: {disposition}\r\n"
        if content_type:
            head += f"Content-Type: {content_type}\r\n"
        chunks.append(head.encode() + b"\r\n" + data + b"\r\n")
    return b"".join(chunks) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def build_corpus(max_upload_bytes: int = 20 * 1024 * 1024, max_pixels: int = 40_000_000) -> list[Case]:
    """Every case, for a service configured with these limits."""
    jpeg = make_photo(150, 100)
    png = make_photo(150, 100, fmt="PNG")

    def file(
        name: str,
        data: bytes,
        expect: frozenset[int],
        filename: str = "photo.jpg",
        content_type: str | None = "image/jpeg",
        **kw,
    ) -> Case:
        return Case(name, expect, parts=(("file", filename, data, content_type),), **kw)

    def body(name: str, data: bytes, content_type: str | None, expect: frozenset[int], **kw) -> Case:
        return Case(name, expect, body=data, content_type=content_type, **kw)

    bad = frozenset({400, 415})
    over_pixels = int((max_pixels * 1.2) ** 0.5) + 1
    cases = [
        # Not images at all.
        body("empty raw body, image/jpeg", b"", "image/jpeg", frozenset({400, 415})),
        body("empty body, no content type", b"", None, frozenset({415})),
        body("plain text body", b"hello, I am a cat", "text/plain", frozenset({415})),
        body("json body", b'{"image": "cat.jpg"}', "application/json", frozenset({415})),
        body("text sent as image/jpeg", b"definitely not a jpeg", "image/jpeg", frozenset({415})),
        body("random bytes as image/png", bytes(range(256)) * 8, "image/png", frozenset({415})),
        file("zero-byte file", b"", frozenset({400, 415})),
        file(
            "HTML file",
            b"<!doctype html><html><body><img src=x onerror=alert(1)></body></html>",
            frozenset({415}),
            "page.html",
            "text/html",
        ),
        file(
            "SVG image",
            b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect/></svg>',
            frozenset({415}),
            "cat.svg",
            "image/svg+xml",
        ),
        file(
            "XML with an entity bomb",
            b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaa">]><l>&a;</l>',
            frozenset({415}),
            "cat.xml",
            "application/xml",
        ),
        file("ZIP archive", zip_archive(), frozenset({415}), "cats.zip", "application/zip"),
        file("PDF document", pdf_document(), frozenset({415}), "cat.pdf", "application/pdf"),
        file(
            "ICO (a format Pillow reads but the service does not accept)",
            make_photo(32, 32, fmt="ICO"),
            frozenset({415}),
            "cat.ico",
            "image/x-icon",
        ),
        # Broken images.
        file("truncated JPEG (half)", jpeg[: len(jpeg) // 2], bad),
        file("JPEG header only", jpeg[:120], bad),
        file("truncated PNG (half)", png[: len(png) // 2], bad, "cat.png", "image/png"),
        file("PNG with a bad IHDR checksum", corrupt_crc_png(), bad, "cat.png", "image/png"),
        file("JPEG that claims 65000x65000", jpeg_claiming(65000, 65000), frozenset({400, 413})),
        # Pixel bombs: tiny files, huge pixel counts.
        file("30000x30000 PNG bomb", png_bomb(30000), frozenset({413}), "bomb.png", "image/png"),
        file(
            f"{over_pixels}x{over_pixels} PNG over max_pixels",
            png_bomb(over_pixels),
            frozenset({413}),
            "big.png",
            "image/png",
        ),
        # Odd but valid photos: a 200 with a mask of the photo's own size.
        file("1x1 PNG", make_photo(1, 1, fmt="PNG"), OK, "dot.png", "image/png", size=(1, 1)),
        file("1x1 JPEG", make_photo(1, 1), OK, size=(1, 1)),
        file("2000x1 strip", make_photo(2000, 1, fmt="PNG"), OK, "strip.png", "image/png", size=(2000, 1)),
        file("huge EXIF block (60 KB)", jpeg_with_huge_exif(), OK, size=(120, 90)),
        file("EXIF orientation 3 (180°)", jpeg_with_orientation(3), OK, size=(160, 90)),
        file("EXIF orientation 6 (90° cw)", jpeg_with_orientation(6), OK, size=(90, 160)),
        file("EXIF orientation 8 (90° ccw)", jpeg_with_orientation(8), OK, size=(90, 160)),
        file("EXIF orientation 5 (transpose)", jpeg_with_orientation(5), OK, size=(90, 160)),
        file("EXIF orientation 0 (invalid)", jpeg_with_orientation(0), OK, size=(160, 90)),
        file("EXIF orientation 99 (invalid)", jpeg_with_orientation(99), OK, size=(160, 90)),
        file("CMYK JPEG", make_photo(100, 80, mode="CMYK"), OK, size=(100, 80)),
        file("greyscale JPEG", make_photo(100, 80, mode="L"), OK, size=(100, 80)),
        file(
            "16-bit greyscale PNG",
            make_photo(64, 48, mode="I;16", fmt="PNG"),
            OK,
            "g16.png",
            "image/png",
            size=(64, 48),
        ),
        file("16-bit RGB PNG", sixteen_bit_rgb(64, 48), OK, "rgb16.png", "image/png", size=(64, 48)),
        file(
            "palette PNG with transparency",
            palette_with_transparency(),
            OK,
            "p.png",
            "image/png",
            size=(90, 60),
        ),
        file("RGBA PNG", make_photo(90, 60, mode="RGBA", fmt="PNG"), OK, "a.png", "image/png", size=(90, 60)),
        file("LA PNG", make_photo(90, 60, mode="LA", fmt="PNG"), OK, "la.png", "image/png", size=(90, 60)),
        file("animated GIF (first frame)", animated_gif(), OK, "anim.gif", "image/gif", size=(80, 60)),
        file("multi-page TIFF (first page)", multipage_tiff(), OK, "pages.tif", "image/tiff", size=(100, 70)),
        file("WebP", make_photo(100, 60, fmt="WEBP"), OK, "cat.webp", "image/webp", size=(100, 60)),
        file("BMP", make_photo(100, 60, fmt="BMP"), OK, "cat.bmp", "image/bmp", size=(100, 60)),
        file("progressive JPEG", make_photo(150, 100, progressive=True), OK, size=(150, 100)),
        # Content types that lie, filenames that are odd.
        body("JPEG bytes labelled image/png", jpeg, "image/png", OK, size=(150, 100)),
        body("JPEG bytes as application/octet-stream", jpeg, "application/octet-stream", frozenset({415})),
        file("JPEG part labelled text/plain", jpeg, OK, "cat.txt", "text/plain", size=(150, 100)),
        file("JPEG part without a content type", jpeg, OK, "cat.jpg", None, size=(150, 100)),
        file("unicode filename", jpeg, OK, "chat noir 🐈‍⬛ été.jpg", size=(150, 100)),
        file("path traversal filename", jpeg, OK, "../../../etc/passwd", size=(150, 100)),
        file("4000-character filename", jpeg, OK, "c" * 4000 + ".jpg", size=(150, 100)),
        # Malformed requests.
        Case("multipart without the file field", frozenset({422}), parts=(("comment", None, b"cute", None),)),
        Case("multipart with file as a text field", frozenset({422}), parts=(("file", None, b"cat", None),)),
        Case(
            "two files to /segment",
            frozenset({413}),  # more files than the endpoint takes
            parts=(("file", "a.jpg", jpeg, "image/jpeg"), ("file", "b.jpg", jpeg, "image/jpeg")),
        ),
        Case(
            "17 files to /segment/batch",
            frozenset({413}),
            path="/segment/batch",
            parts=tuple(("file", f"{i}.jpg", jpeg, "image/jpeg") for i in range(17)),
        ),
        Case(
            "1000 form fields",
            frozenset({422}),  # form fields besides `file`
            parts=tuple((f"f{i}", None, b"x", None) for i in range(1000)),
        ),
        body("multipart without a boundary", b"--x\r\n\r\n", "multipart/form-data", frozenset({400, 422})),
        body(
            "multipart with a wrong boundary",
            b'--nope\r\nContent-Disposition: form-data; name="file"\r\n\r\nabc\r\n--nope--\r\n',
            "multipart/form-data; boundary=other",
            frozenset({400, 422}),
        ),
        body(
            "multipart cut in the middle",
            multipart((("file", "a.jpg", jpeg, "image/jpeg"),))[0][:500],
            "multipart/form-data; boundary=x",
            frozenset({400, 422}),
        ),
        Case("over-limit upload (declared Content-Length)", frozenset({413}), raw="declared-over-limit"),
        Case("over-limit upload sent slowly (chunked)", frozenset({413}), raw="slow-over-limit"),
        Case("client disconnects mid-upload", frozenset({0}), raw="disconnect"),
        # Query values.
        file("output=banana", jpeg, frozenset({422}), params={"output": "banana"}),
        file("output empty", jpeg, frozenset({422}), params={"output": ""}),
        file("opacity=2", jpeg, frozenset({422}), params={"output": "overlay", "opacity": "2"}),
        file("opacity=-0.1", jpeg, frozenset({422}), params={"output": "overlay", "opacity": "-0.1"}),
        file("opacity=nan", jpeg, frozenset({422}), params={"output": "overlay", "opacity": "nan"}),
        file("opacity=abc", jpeg, frozenset({422}), params={"output": "overlay", "opacity": "abc"}),
        file(
            "background=zzzzzz", jpeg, frozenset({422}), params={"output": "cutout", "background": "zzzzzz"}
        ),
        file(
            "background=#fff (short)",
            jpeg,
            frozenset({422}),
            params={"output": "cutout", "background": "#fff"},
        ),
        file("unknown parameter is ignored", jpeg, OK, params={"colour": "mauve"}, size=(150, 100)),
        # Wrong methods and paths.
        Case("GET /segment", frozenset({405}), method="GET"),
        Case("PUT /segment", frozenset({405}), method="PUT", body=jpeg, content_type="image/jpeg"),
        Case(
            "POST to an unknown path",
            frozenset({404}),
            path="/segmentation",
            body=jpeg,
            content_type="image/jpeg",
        ),
        # The batch endpoint answers per photo.
        Case(
            "batch with one bad photo among good",
            OK,
            path="/segment/batch",
            parts=(("file", "a.jpg", jpeg, "image/jpeg"), ("file", "b.txt", b"nope", "text/plain")),
        ),
    ]
    return cases
