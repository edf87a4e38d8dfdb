"""The upload page's summary line (pets, species, breed) and its alpha-matte choice, in real Chromium.

Each test opens the page afresh, so none depends on what another left on screen.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from petseg_harness.server import ServerProcess, running_service

try:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError:  # pragma: no cover - the `test` extra installs it
    if os.environ.get("CI"):
        raise
    pytest.skip("selenium is not installed (it is in the `test` extra)", allow_module_level=True)

PHOTO_SIZE = (180, 120)


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("insights") / "pets.jpg"
    image = Image.new("RGB", PHOTO_SIZE, (40, 60, 80))
    image.paste((220, 180, 120), (15, 20, 80, 100))
    image.paste((200, 160, 110), (100, 25, 165, 105))
    image.save(path, quality=90)
    return path


@pytest.fixture(scope="module")
def every_region_server(tmp_path_factory, tiny_model_dir: Path) -> Iterator[ServerProcess]:
    """The service counting every pet region however small, so the barely trained tiny model finds some."""
    log = tmp_path_factory.mktemp("logs") / "ui-every-region.log"
    with running_service(tiny_model_dir, log, {"PETSEG_MIN_PET_FRACTION": "0"}) as server:
        yield server


def open_page(browser, server: ServerProcess):
    """A fresh load of the upload page, once it knows the model."""
    browser.get(f"{server.url}/")
    WebDriverWait(browser, 30).until(lambda d: "tiny-pet" in d.find_element(By.ID, "model-info").text)
    return browser


@pytest.fixture
def page(browser, ui_server):
    return open_page(browser, ui_server)


def served_summary(ui_server, photo: Path) -> dict:
    response = httpx.post(
        f"{ui_server.url}/segment", params={"output": "json"}, files={"file": photo.read_bytes()}, timeout=60
    )
    assert response.status_code == 200, response.text
    return response.json()


def insights_text(browser) -> str:
    element = browser.find_element(By.ID, "insights")
    return element.text if element.is_displayed() else ""


@pytest.mark.parametrize("server_name", ["ui_server", "every_region_server"])
def test_the_page_says_how_many_pets_the_service_found(request, browser, server_name, photo, artifacts):
    server = request.getfixturevalue(server_name)
    page = open_page(browser, server)
    summary = served_summary(server, photo)
    page.find_element(By.ID, "file").send_keys(str(photo))
    text = WebDriverWait(page, 60).until(insights_text)
    page.save_screenshot(str(artifacts / f"insights-{server_name}.png"))
    count = len(summary["pets"])
    if not summary["pet_found"]:
        assert text == "No pet found in this photo."
    else:
        assert text.startswith(f"{count} pet{'s' if count > 1 else ''} found")
        assert "mistake people or objects" in page.find_element(By.ID, "insights").get_attribute("title")


@pytest.mark.parametrize("server_name", ["ui_server", "every_region_server"])
def test_species_and_breed_are_shown_when_reported_for_a_photo_with_a_pet(
    request, browser, server_name, photo
):
    """Shown when the model reports them and a pet was found; a "no pet" photo gets no breed guess."""
    server = request.getfixturevalue(server_name)
    page = open_page(browser, server)
    summary = served_summary(server, photo)
    page.find_element(By.ID, "file").send_keys(str(photo))
    text = WebDriverWait(page, 60).until(insights_text)
    if summary["species"] is not None and summary["pet_found"]:
        assert f"{summary['species']['label']} (" in text
        assert f"breed: {summary['breed']['label']} (" in text
        assert all(b["label"] in text for b in summary["breed_top3"])
    else:
        assert "breed:" not in text and " · " not in text


def test_the_alpha_matte_is_offered_and_shown_as_greyscale_at_the_photos_size(page, photo):
    page.find_element(By.CSS_SELECTOR, "input[name=output][value=alpha]").click()
    page.find_element(By.ID, "file").send_keys(str(photo))
    WebDriverWait(page, 60).until(
        lambda d: d.find_element(By.ID, "download").get_attribute("download") == "pets.alpha.png"
    )
    shown = WebDriverWait(page, 30).until(
        lambda d: d.execute_script(
            """
            const img = document.getElementById('result-image');
            if (img.hidden || !img.complete || img.naturalWidth === 0) return null;
            const canvas = document.createElement('canvas');
            canvas.width = img.naturalWidth;
            canvas.height = img.naturalHeight;
            const context = canvas.getContext('2d');
            context.drawImage(img, 0, 0);
            const data = context.getImageData(0, 0, canvas.width, canvas.height).data;
            let grey = true;
            for (let i = 0; i < data.length; i += 4) {
                if (data[i] !== data[i + 1] || data[i] !== data[i + 2] || data[i + 3] !== 255) grey = false;
            }
            return [img.naturalWidth, img.naturalHeight, grey];
            """
        )
    )
    assert shown == [*PHOTO_SIZE, True]
