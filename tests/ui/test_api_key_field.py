"""The upload page of a service with an API key: pressing Enter in the key field never reloads the page."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from petseg_harness.server import ServerProcess, running_service
from tests.app.conftest import API_KEY

try:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError:  # pragma: no cover - the `test` extra installs it
    if os.environ.get("CI"):
        raise
    pytest.skip("selenium is not installed (it is in the `test` extra)", allow_module_level=True)

PHOTO_SIZE = (120, 90)


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory, tiny_model_dir: Path) -> Iterator[ServerProcess]:
    log = tmp_path_factory.mktemp("logs") / "ui-keyed.log"
    with running_service(tiny_model_dir, log, {"PETSEG_API_KEY": API_KEY}) as running:
        yield running


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("keyed") / "dog.jpg"
    image = Image.new("RGB", PHOTO_SIZE, (40, 60, 80))
    image.paste((220, 180, 120), (30, 20, 90, 70))
    image.save(path)
    return path


@pytest.fixture
def page(browser, keyed_server):
    """A fresh load of the page, marked so that a reload would show (the mark would be gone)."""
    browser.get(f"{keyed_server.url}/")
    WebDriverWait(browser, 30).until(lambda d: "tiny-pet" in d.find_element(By.ID, "model-info").text)
    browser.execute_script("window.notReloaded = true;")
    assert browser.find_element(By.ID, "api-key").is_displayed()
    return browser


def result_size(browser) -> list[int] | None:
    return browser.execute_script(
        """
        const img = document.getElementById('result-image');
        return !img.hidden && img.complete && img.naturalWidth > 0
            ? [img.naturalWidth, img.naturalHeight] : null;
        """
    )


def test_enter_in_the_key_field_segments_the_chosen_photo_without_reloading(page, photo):
    page.find_element(By.ID, "file").send_keys(str(photo))
    WebDriverWait(page, 30).until(lambda d: "API key" in d.find_element(By.ID, "error").text)  # no key: 401
    page.find_element(By.ID, "api-key").send_keys(API_KEY, Keys.ENTER)
    WebDriverWait(page, 60).until(result_size)
    assert tuple(result_size(page)) == PHOTO_SIZE
    assert page.execute_script("return window.notReloaded") is True
    assert page.find_element(By.ID, "api-key").get_attribute("value") == API_KEY
    assert page.find_element(By.ID, "photo-preview").is_displayed()
    assert not page.find_element(By.ID, "error").is_displayed()


def test_enter_in_the_key_field_without_a_photo_does_nothing(page, photo):
    page.find_element(By.ID, "api-key").send_keys(API_KEY, Keys.ENTER)
    page.find_element(By.ID, "file").send_keys(str(photo))  # the key typed before Enter is still used
    WebDriverWait(page, 60).until(result_size)
    assert page.execute_script("return window.notReloaded") is True
    assert not page.find_element(By.ID, "error").is_displayed()
