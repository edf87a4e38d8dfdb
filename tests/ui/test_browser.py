"""The upload page in a real headless Chromium against a real server: photo in, result shown, errors said."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.ui.conftest import UPLOAD_LIMIT

try:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError:  # pragma: no cover - the `test` extra installs it
    if os.environ.get("CI"):
        raise
    pytest.skip("selenium is not installed (it is in the `test` extra)", allow_module_level=True)

PHOTO_SIZE = (200, 150)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("uploads")
    photo = Image.new("RGB", PHOTO_SIZE, (40, 60, 80))
    photo.paste((220, 180, 120), (50, 40, 150, 110))
    photo.save(folder / "cat.jpg", quality=90)
    (folder / "notes.txt").write_text("shopping list: kibble, catnip\n")
    noise = np.random.default_rng(0).integers(0, 256, (400, 400, 3), dtype=np.uint8)
    Image.fromarray(noise).save(folder / "huge.png")
    assert (folder / "huge.png").stat().st_size > UPLOAD_LIMIT
    return {"photo": folder / "cat.jpg", "text": folder / "notes.txt", "huge": folder / "huge.png"}


@pytest.fixture(scope="module")
def page(browser, ui_server):
    browser.get(f"{ui_server.url}/")
    WebDriverWait(browser, 30).until(lambda d: "tiny-pet" in d.find_element(By.ID, "model-info").text)
    # Remember whether the busy indicator ever showed, however briefly a tiny model makes it.
    browser.execute_script(
        """
        window.busySeen = false;
        const busy = document.getElementById('busy');
        new MutationObserver(() => { if (!busy.hidden) window.busySeen = true; })
            .observe(busy, {attributes: true});
        """
    )
    return browser


def upload(browser, path: Path) -> None:
    browser.find_element(By.ID, "file").send_keys(str(path))


def result_size(browser) -> tuple[int, int] | None:
    """The shown result's natural size once it has loaded, else None."""
    return browser.execute_script(
        """
        const img = document.getElementById('result-image');
        return !img.hidden && img.complete && img.naturalWidth > 0
            ? [img.naturalWidth, img.naturalHeight] : null;
        """
    )


def error_text(browser) -> str:
    error = browser.find_element(By.ID, "error")
    return error.text if error.is_displayed() else ""


def test_a_photo_gives_a_result_at_the_photos_size(page, files, artifacts):
    page.find_element(By.CSS_SELECTOR, "input[name=output][value=overlay]").click()
    upload(page, files["photo"])
    size = WebDriverWait(page, 60).until(lambda d: result_size(d) or error_text(d))
    page.save_screenshot(str(artifacts / "result.png"))
    print(f"screenshot: {artifacts / 'result.png'}")
    assert tuple(size) == PHOTO_SIZE, f"page said: {size}"
    assert page.find_element(By.ID, "photo-preview").is_displayed()
    assert page.execute_script("return window.busySeen") is True
    assert not page.find_element(By.ID, "busy").is_displayed()


def test_the_result_can_be_downloaded_as_png(page):
    link = page.find_element(By.ID, "download")
    assert link.is_displayed()
    assert link.get_attribute("href").startswith("blob:")
    assert link.get_attribute("download") == "cat.overlay.png"


def test_switching_to_cutout_renders_again(page):
    page.find_element(By.CSS_SELECTOR, "input[name=output][value=cutout]").click()
    WebDriverWait(page, 60).until(
        lambda d: (
            d.find_element(By.ID, "download").get_attribute("download") == "cat.cutout.png" and result_size(d)
        )
    )
    assert tuple(result_size(page)) == PHOTO_SIZE


def test_a_non_image_shows_the_services_error(page, files, artifacts):
    upload(page, files["text"])
    message = WebDriverWait(page, 30).until(error_text)
    page.save_screenshot(str(artifacts / "not-an-image.png"))
    assert "not an image" in message
    assert result_size(page) is None
    assert not page.find_element(By.ID, "download").is_displayed()


def test_a_photo_over_the_limit_is_refused_with_the_limit(page, files):
    upload(page, files["huge"])
    message = WebDriverWait(page, 30).until(error_text)
    assert "too large" in message and "293 KB" in message
    assert result_size(page) is None


def test_the_example_photo_can_be_tried_with_one_click(page, artifacts):
    page.find_element(By.CSS_SELECTOR, "input[name=output][value=overlay]").click()
    page.find_element(By.ID, "example").click()
    WebDriverWait(page, 60).until(
        lambda d: (
            d.find_element(By.ID, "download").get_attribute("download") == "example.overlay.png"
            and result_size(d)
        )
    )
    page.save_screenshot(str(artifacts / "example.png"))
    assert tuple(result_size(page)) == (451, 300)
