"""Settings: every knob a typed field read from PETSEG_*, bad values named in one line, unknown names
reported, and every field documented in docs/configuration.md."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from app.settings import Settings, describe_invalid, unknown_environment
from petseg_harness.server import REPO

CONFIGURATION_DOC = REPO / "docs" / "configuration.md"


def _default(value: object) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, Path):
        return str(value.relative_to(REPO)) if value.is_relative_to(REPO) else str(value)
    return str(value)


def settings_table() -> str:
    """The documentation's table, generated from the Settings fields themselves."""
    rows = ["| Variable | Default | Meaning |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        rows.append(f"| `PETSEG_{name.upper()}` | `{_default(field.default)}` | {field.description} |")
    return "\n".join(rows)


def test_every_setting_is_documented_with_its_default_and_meaning() -> None:
    assert all(field.description for field in Settings.model_fields.values())
    table = settings_table()
    assert table in CONFIGURATION_DOC.read_text(), f"update {CONFIGURATION_DOC} with:\n\n{table}\n"


def test_serving_settings_come_from_the_environment(monkeypatch) -> None:
    for name, value in {"HOST": "0.0.0.0", "PORT": "9123", "DRAIN_TIMEOUT_SECONDS": "30"}.items():
        monkeypatch.setenv(f"PETSEG_{name}", value)
    monkeypatch.setenv("PETSEG_IMAGING_THREADS", "3")
    settings = Settings()
    assert (settings.host, settings.port, settings.drain_timeout_seconds) == ("0.0.0.0", 9123, 30)
    assert settings.imaging_thread_count == 3


def test_zero_imaging_threads_means_one_per_core() -> None:
    assert Settings(imaging_threads=0).imaging_thread_count == (os.cpu_count() or 2)


@pytest.mark.parametrize("port", ["eighty", "70000", "-1"])
def test_a_bad_port_is_described_in_one_line_naming_the_variable(monkeypatch, port: str) -> None:
    monkeypatch.setenv("PETSEG_PORT", port)
    with pytest.raises(ValidationError) as caught:
        Settings()
    line = describe_invalid(caught.value)
    assert "\n" not in line and f"PETSEG_PORT={port!r}" in line


def test_unknown_petseg_variables_are_reported_with_the_closest_name() -> None:
    environ = {"PETSEG_MAX_BATCH_SIZ": "8", "PETSEG_MAX_BATCH_SIZE": "8", "PETSEG_REPLICAS": "2", "HOME": "/"}
    (line,) = unknown_environment(environ)  # PETSEG_REPLICAS is docker-compose's, not a typo
    assert line.startswith("PETSEG_MAX_BATCH_SIZ ") and "did you mean PETSEG_MAX_BATCH_SIZE?" in line


def test_the_service_warns_about_unknown_variables_at_startup(model_dir: Path, monkeypatch, caplog) -> None:
    from fastapi.testclient import TestClient

    from app.main import create_app

    monkeypatch.setenv("PETSEG_QUEUE_CAPACTY", "4")
    with caplog.at_level("WARNING", logger="app"), TestClient(create_app(Settings(model_dir=model_dir))):
        pass
    assert any(
        "PETSEG_QUEUE_CAPACTY" in r.message and "PETSEG_QUEUE_CAPACITY" in r.message for r in caplog.records
    )


def test_uvicorn_with_a_bad_setting_stops_with_one_clear_line() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "uvicorn", "app.main:app", "--port", "0"],
        cwd=REPO,
        env={**os.environ, "PETSEG_MAX_BATCH_SIZE": "many"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "petseg cannot start: invalid setting PETSEG_MAX_BATCH_SIZE='many'" in proc.stderr
