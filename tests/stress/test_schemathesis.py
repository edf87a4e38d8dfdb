"""Schemathesis fuzzes every operation of the OpenAPI document: no input makes the server fail."""

from __future__ import annotations

import pytest

from petseg_harness.server import ServerProcess
from stress.hostile import readyz
from stress.runs import schemathesis_run

pytest.importorskip("schemathesis")


def test_no_server_errors_on_generated_requests(stress_server: ServerProcess, tmp_path) -> None:
    result = schemathesis_run(stress_server.url, max_examples=15, workdir=tmp_path)
    assert result["passed"], result["output"]
    assert readyz(stress_server.url) == 200
