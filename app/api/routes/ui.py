"""GET / — a small upload page for people, served entirely by the app (no CDN, no external fonts)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

from app.api.deps import SettingsDep
from app.errors import ProblemError

router = APIRouter(include_in_schema=False)

STATIC_DIR = Path(__file__).resolve().parents[2] / "static"
# The page's own assets; anything else under /static is a 404, so no path ever reaches the filesystem.
_ASSETS = {
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
    # Chelsea the cat, from scikit-image's sample data (CC0, Stefan van der Walt): a photo to try.
    "example.jpg": "image/jpeg",
}
_HEADERS = {
    # Only this origin may supply scripts, styles and images (plus the results' blob: URLs).
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' blob: data:; script-src 'self'; style-src 'self'; "
        "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}


@cache
def _read(name: str) -> bytes:
    return (STATIC_DIR / name).read_bytes()


@router.get("/", response_class=HTMLResponse)
async def upload_page(settings: SettingsDep) -> HTMLResponse:
    """The upload page, told whether to ask for an API key and how large an upload may be."""
    page = (
        _read("index.html")
        .decode("utf-8")
        .replace("{{api_key_required}}", "true" if settings.api_key is not None else "false")
        .replace("{{max_upload_bytes}}", str(settings.max_upload_bytes))
    )
    return HTMLResponse(page, headers=_HEADERS)


@router.get("/static/{name}")
async def asset(name: str) -> Response:
    media_type = _ASSETS.get(name)
    if media_type is None:
        raise ProblemError(404, f"no static file named {name!r}")
    return Response(_read(name), media_type=media_type, headers=_HEADERS)
