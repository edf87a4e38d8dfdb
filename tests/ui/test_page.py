"""GET / and its assets, in-process: the page needs no model, so no lifespan runs here."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings


@pytest.fixture
def client(tmp_path) -> TestClient:
    # Without `with`, the lifespan (model loading) never starts; the page does not depend on it.
    return TestClient(create_app(Settings(model_dir=tmp_path, max_upload_bytes=5_000_000)))


def test_the_root_serves_the_upload_page(client):
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    for element in ('id="file"', 'type="file"', 'value="mask"', 'value="overlay"', 'value="cutout"'):
        assert element in response.text


def test_everything_the_page_loads_comes_from_the_app(client):
    page = client.get("/").text
    references = re.findall(r'(?:src|href)="([^"]*)"', page)
    assert references, "the page references its script and stylesheet"
    for reference in references:
        assert not re.match(r"^(https?:)?//", reference), reference
        if reference.startswith("/static/"):
            assert client.get(reference).status_code == 200, reference
    assert "default-src 'self'" in client.get("/").headers["content-security-policy"]


def test_assets_have_their_content_types(client):
    assert client.get("/static/app.js").headers["content-type"].startswith("text/javascript")
    assert client.get("/static/style.css").headers["content-type"].startswith("text/css")
    assert client.get("/static/example.jpg").headers["content-type"] == "image/jpeg"


def test_only_the_pages_own_assets_are_served(client):
    for path in ("/static/index.html", "/static/..%2Fsettings.py", "/static/nothing.js"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.headers["content-type"] == "application/problem+json"


def test_the_page_knows_the_upload_limit(client):
    assert 'data-max-upload-bytes="5000000"' in client.get("/").text


def test_the_page_asks_for_an_api_key_only_when_one_is_configured(client, tmp_path):
    assert 'data-api-key-required="false"' in client.get("/").text
    guarded = TestClient(create_app(Settings(model_dir=tmp_path, api_key="secret")))
    page = guarded.get("/")
    assert page.status_code == 200, "the page itself stays open; /segment asks for the key"
    assert 'data-api-key-required="true"' in page.text


def test_the_page_is_not_part_of_the_api_reference(client):
    assert "/" not in client.get("/openapi.json").json()["paths"]
