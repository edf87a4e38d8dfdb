"""The upload page in a real headless Chromium against a real server: photo in, result shown, errors said."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from petseg_harness.photos import make_photo
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
    (folder / "cat.jpg").write_bytes(make_photo(*PHOTO_SIZE, quality=90))
    (folder / "notes.txt").write_text("shopping list: kibble, catnip\n")
    noise = np.random.default_rng(0).integers(0, 256, (400, 400, 3), dtype=np.uint8)
    Image.fromarray(noise).save(folder / "huge.png")
    assert (folder / "huge.png").stat().st_size > UPLOAD_LIMIT
    return {"photo": folder / "cat.jpg", "text": folder / "notes.txt", "huge": folder / "huge.png"}


@pytest.fixture
def page(browser, ui_server):
    """The upload page freshly loaded for each test, so no test sees what an earlier one left behind."""
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


def choose_output(browser, output: str) -> None:
    browser.find_element(By.CSS_SELECTOR, f"input[name=output][value={output}]").click()


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


def wait_for_result(browser, download_name: str) -> tuple[int, int]:
    """The size of the result once the one named `download_name` has loaded; fails on a shown error."""
    WebDriverWait(browser, 60).until(
        lambda d: (
            (d.find_element(By.ID, "download").get_attribute("download") == download_name and result_size(d))
            or error_text(d)
        )
    )
    assert not error_text(browser), f"page said: {error_text(browser)}"
    return tuple(result_size(browser))


def test_a_photo_gives_a_result_at_the_photos_size(page, files, artifacts):
    choose_output(page, "overlay")
    upload(page, files["photo"])
    size = wait_for_result(page, "cat.overlay.png")
    page.save_screenshot(str(artifacts / "result.png"))
    print(f"screenshot: {artifacts / 'result.png'}")
    assert size == PHOTO_SIZE
    assert page.find_element(By.ID, "photo-preview").is_displayed()
    assert page.execute_script("return window.busySeen") is True
    assert not page.find_element(By.ID, "busy").is_displayed()


def test_the_result_can_be_downloaded_as_png(page, files):
    choose_output(page, "overlay")
    upload(page, files["photo"])
    wait_for_result(page, "cat.overlay.png")
    link = page.find_element(By.ID, "download")
    assert link.is_displayed()
    assert link.get_attribute("href").startswith("blob:")


def test_switching_the_output_renders_the_same_photo_again(page, files):
    upload(page, files["photo"])
    wait_for_result(page, "cat.mask.png")
    choose_output(page, "cutout")
    assert wait_for_result(page, "cat.cutout.png") == PHOTO_SIZE


def test_a_non_image_shows_the_services_error_in_place_of_the_result(page, files, artifacts):
    upload(page, files["photo"])
    wait_for_result(page, "cat.mask.png")
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
    choose_output(page, "overlay")
    page.find_element(By.ID, "example").click()
    assert wait_for_result(page, "example.overlay.png") == (451, 300)
    page.save_screenshot(str(artifacts / "example.png"))
