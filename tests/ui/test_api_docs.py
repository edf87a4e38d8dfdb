"""/docs in a real browser: Swagger UI renders the API from assets the service serves, with no CDN."""

from __future__ import annotations

import os

import pytest

try:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError:  # pragma: no cover - the `test` extra installs it
    if os.environ.get("CI"):
        raise
    pytest.skip("selenium is not installed (it is in the `test` extra)", allow_module_level=True)


def test_api_docs_render_from_the_services_own_assets(browser, ui_server):
    browser.get(f"{ui_server.url}/docs")
    WebDriverWait(browser, 60).until(
        lambda d: "PetSeg" in d.find_element(By.CSS_SELECTOR, ".swagger-ui .info .title").text
    )
    loaded = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert loaded and all(url.startswith(ui_server.url) for url in loaded), loaded
