"""Fixtures for the upload page: a real server on the tiny model, and headless Debian Chromium."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from petseg_harness.server import REPO, ServerProcess, running_service

ARTIFACTS = REPO / "artifacts" / "ui"  # git-ignored; screenshots land here
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
# Small enough that the page's own size check can be seen to refuse a photo, large enough for the others.
UPLOAD_LIMIT = 300_000


def _unavailable(reason: str) -> None:
    """CI runs as root, where `make test` installs Chromium: a missing browser there is a failure."""
    if os.environ.get("CI"):
        pytest.fail(f"browser test cannot run in CI: {reason}")
    pytest.skip(f"{reason} (as root, `make test` installs Debian's chromium and chromium-driver)")


@pytest.fixture(scope="session")
def ui_server(tmp_path_factory, tiny_model_dir: Path) -> Iterator[ServerProcess]:
    log = tmp_path_factory.mktemp("logs") / "ui.log"
    with running_service(tiny_model_dir, log, {"PETSEG_MAX_UPLOAD_BYTES": str(UPLOAD_LIMIT)}) as server:
        yield server


@pytest.fixture(scope="session")
def browser(tmp_path_factory):
    """Headless Chromium through chromedriver, with a fresh profile and no background network traffic."""
    if not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()):
        _unavailable(f"{CHROMIUM} or {CHROMEDRIVER} is missing")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _unavailable("selenium is not installed (it is in the `test` extra)")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-quic",
        "--window-size=1200,1000",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS.glob("*.png"):
        old.unlink()
    return ARTIFACTS
