"""Every bad or odd upload in the generated corpus gets its expected answer, never a 5xx."""

from __future__ import annotations

import pytest

from petseg_harness.server import ServerProcess
from stress.corpus import build_corpus
from stress.hostile import judge, readyz, send_case, server_errors_counted
from tests.stress.conftest import MAX_UPLOAD_BYTES

CORPUS = build_corpus(max_upload_bytes=MAX_UPLOAD_BYTES)


def test_corpus_is_broad() -> None:
    assert len(CORPUS) >= 40
    assert len({case.name for case in CORPUS}) == len(CORPUS)


@pytest.mark.parametrize("case", CORPUS, ids=[case.name for case in CORPUS])
def test_answer_is_expected(stress_server: ServerProcess, case) -> None:
    status, headers, body = send_case(stress_server.url, case, MAX_UPLOAD_BYTES)
    assert judge(case, status, headers, body) == ""


def test_server_is_still_ready_after_the_corpus(stress_server: ServerProcess) -> None:
    for case in CORPUS:  # the whole corpus again, back to back, then the probe
        send_case(stress_server.url, case, MAX_UPLOAD_BYTES)
    assert readyz(stress_server.url) == 200
    assert stress_server.process.poll() is None
    assert server_errors_counted(stress_server.url) == 0  # not even for clients that hung up
