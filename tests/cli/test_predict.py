"""`petseg predict`: run as a user runs it (a subprocess) against the tiny exported model."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from petseg_harness.photos import make_photo

REPO = Path(__file__).resolve().parents[2]


def petseg(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`petseg ARGS` (as `python -m app`, so an uninstalled checkout works too)."""
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        cwd=REPO,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
    )


def write_photo(path: Path, width: int, height: int, fmt: str = "JPEG") -> Path:
    path.write_bytes(make_photo(width, height, fmt=fmt))
    return path


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("photos")
    notes = folder / "notes.txt"
    notes.write_text("not a photo\n")
    return {
        "cat": write_photo(folder / "cat.jpg", 200, 150),
        "dog": write_photo(folder / "dog.png", 64, 48, "PNG"),
        "notes": notes,
        "missing": folder / "missing.jpg",
    }


@pytest.fixture(scope="module")
def batch_run(tmp_path_factory, tiny_model_dir, photos) -> tuple[subprocess.CompletedProcess, Path]:
    """One batch with two good photos, a text file and a missing file, as overlays."""
    out = tmp_path_factory.mktemp("out") / "results"
    proc = petseg(
        "predict",
        str(photos["cat"]),
        str(photos["notes"]),
        str(photos["missing"]),
        str(photos["dog"]),
        "--output",
        "overlay",
        "--out",
        str(out),
        "--model",
        str(tiny_model_dir),
    )
    return proc, out


def test_help_names_both_commands():
    proc = petseg("--help")
    assert proc.returncode == 0
    assert "serve" in proc.stdout and "predict" in proc.stdout


def test_predict_help_explains_outputs_and_options():
    proc = petseg("predict", "--help")
    assert proc.returncode == 0
    for word in (
        "PHOTO",
        "--output",
        "mask",
        "overlay",
        "cutout",
        "alpha",
        "json",
        "--out",
        "--model",
        "examples",
    ):
        assert word in proc.stdout


def test_unreadable_files_do_not_stop_the_batch(batch_run, photos):
    proc, out = batch_run
    assert proc.returncode == 1, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["cat.overlay.png", "dog.overlay.png"]
    assert f"{photos['notes']}: unsupported media type: not an image" in proc.stderr
    assert f"{photos['missing']}: cannot read: No such file or directory" in proc.stderr
    assert "2 of 4 photos failed" in proc.stderr


def test_written_results_are_listed_on_stdout(batch_run, photos):
    proc, out = batch_run
    assert f"{photos['cat']} -> {out / 'cat.overlay.png'}" in proc.stdout
    assert f"{photos['dog']} -> {out / 'dog.overlay.png'}" in proc.stdout


def test_a_progress_bar_is_shown_for_many_files(batch_run):
    proc, _ = batch_run
    assert "4/4" in proc.stderr and "photo" in proc.stderr


def test_overlays_have_each_photos_own_size(batch_run):
    _, out = batch_run
    with Image.open(out / "cat.overlay.png") as cat, Image.open(out / "dog.overlay.png") as dog:
        assert (cat.format, cat.mode, cat.size) == ("PNG", "RGB", (200, 150))
        assert (dog.format, dog.mode, dog.size) == ("PNG", "RGB", (64, 48))


def test_every_output_mode_writes_its_own_file(tmp_path, tiny_model_dir, photos):
    for output in ("mask", "cutout", "alpha", "json"):
        proc = petseg(
            "predict", str(photos["cat"]), "--output", output, "--out", str(tmp_path), "--model",
            str(tiny_model_dir),
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
    with Image.open(tmp_path / "cat.mask.png") as mask:
        assert (mask.mode, mask.size) == ("P", (200, 150))
        assert set(np.unique(np.asarray(mask))) <= {0, 1, 2}
    with Image.open(tmp_path / "cat.cutout.png") as cutout, Image.open(tmp_path / "cat.alpha.png") as alpha:
        assert (cutout.mode, cutout.size) == ("RGBA", (200, 150))
        assert (alpha.mode, alpha.size) == ("L", (200, 150))
        assert np.array_equal(np.asarray(alpha), np.asarray(cutout)[..., 3]), "the cut-out's own matte"
    result = json.loads((tmp_path / "cat.json").read_text())
    assert (result["width"], result["height"], result["model_name"]) == (200, 150, "tiny-pet")
    assert set(result["class_fractions"]) == {"pet", "background", "border"}
    assert result["pet_found"] is bool(result["pets"])
    for field in ("species", "breed", "breed_top3"):
        assert field in result


def test_the_model_can_come_from_the_environment(tmp_path, tiny_model_dir, photos):
    proc = petseg(
        "predict", str(photos["dog"]), "--out", str(tmp_path), env={"PETSEG_MODEL_DIR": str(tiny_model_dir)}
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "dog.mask.png").is_file()


def test_photos_sharing_a_name_do_not_overwrite_each_other(tmp_path, tiny_model_dir):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = write_photo(tmp_path / "a" / "pet.jpg", 40, 30)
    second = write_photo(tmp_path / "b" / "pet.jpg", 50, 20)
    out = tmp_path / "out"
    proc = petseg("predict", str(first), str(second), "--out", str(out), "--model", str(tiny_model_dir), "-q")
    assert proc.returncode == 0, proc.stderr
    with Image.open(out / "pet.mask.png") as one, Image.open(out / "pet-2.mask.png") as two:
        assert {one.size, two.size} == {(40, 30), (50, 20)}


def test_a_missing_model_is_one_clear_line(tmp_path, photos):
    proc = petseg("predict", str(photos["cat"]), "--model", str(tmp_path / "nowhere"), "--out", str(tmp_path))
    assert proc.returncode == 2
    assert "petseg: no model:" in proc.stderr and "--model" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_bad_options_are_refused_before_any_work(photos):
    proc = petseg("predict", str(photos["cat"]), "--output", "gif")
    assert proc.returncode == 2
    assert "invalid choice: 'gif'" in proc.stderr


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            ["--output", "mask", "--background", "ffffff"],
            "--background only applies to --output cutout, not mask",
        ),
        (["--output", "json", "--opacity", "0.3"], "--opacity only applies to --output overlay, not json"),
    ],
)
def test_an_option_the_output_ignores_is_refused(photos, options: list[str], message: str):
    proc = petseg("predict", str(photos["cat"]), *options)
    assert proc.returncode == 2
    assert message in proc.stderr


def test_masks_are_exactly_what_the_service_answers(tmp_path, tiny_model_dir, photos):
    """Same decode and rendering code: the CLI's mask PNG equals POST /segment's bytes."""
    from fastapi.testclient import TestClient

    from app.main import create_app
    from app.settings import Settings

    proc = petseg("predict", str(photos["cat"]), "--out", str(tmp_path), "--model", str(tiny_model_dir))
    assert proc.returncode == 0, proc.stderr
    with TestClient(create_app(Settings(model_dir=tiny_model_dir))) as client:
        deadline = time.monotonic() + 60
        while client.get("/readyz").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.1)
        answer = client.post(
            "/segment?output=mask", files={"file": ("cat.jpg", photos["cat"].read_bytes(), "image/jpeg")}
        )
    assert answer.status_code == 200, answer.text
    assert (tmp_path / "cat.mask.png").read_bytes() == answer.content
    assert Image.open(io.BytesIO(answer.content)).size == (200, 150)


def test_tensorflow_import_notices_are_not_printed(batch_run):
    proc, _ = batch_run
    assert "oneDNN" not in proc.stderr and "absl::InitializeLog" not in proc.stderr


@pytest.mark.parametrize("command", ["predict", "serve"])
def test_a_bad_setting_is_one_line_and_exit_status_2(photos, command):
    args = ["predict", str(photos["cat"])] if command == "predict" else ["serve"]
    proc = petseg(*args, env={"PETSEG_PORT": "eighty"})
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "petseg: invalid setting PETSEG_PORT='eighty': Input should be a valid integer, "
        "unable to parse string as an integer"
    ]


def test_an_unknown_setting_is_reported_with_the_closest_name(tmp_path, photos):
    proc = petseg(
        "predict", str(photos["cat"]), "--model", str(tmp_path / "nowhere"), env={"PETSEG_MODEL_DRI": "x"}
    )
    assert "warning: PETSEG_MODEL_DRI is not a PetSeg setting" in proc.stderr
    assert "did you mean PETSEG_MODEL_DIR?" in proc.stderr


def test_serve_listens_where_the_settings_say_and_reports_unknown_ones_once(tmp_path, tiny_model_dir):
    from petseg_harness.server import running_service

    # The harness configures `petseg serve` only through PETSEG_* (PETSEG_HOST/PETSEG_PORT included):
    # answering on its port proves serve reads them.
    log = tmp_path / "serve.log"
    with running_service(tiny_model_dir, log, {"PETSEG_LOG_LEVL": "debug"}) as server:
        assert httpx.get(f"http://127.0.0.1:{server.port}/readyz", timeout=10).status_code == 200
    assert server.process.returncode == 0
    text = log.read_text()
    assert "oneDNN" not in text
    assert text.count("PETSEG_LOG_LEVL is not a PetSeg setting") == 1, text


@pytest.mark.parametrize("text", ["ffffff", "#ffffff", "#FFFFFF", "white"])
def test_colours_are_read_with_or_without_a_hash(text):
    from app.imaging import parse_color

    assert parse_color(text) == (255, 255, 255)


@pytest.mark.parametrize("text", ["fffff", "#12345g", "not-a-colour", ""])
def test_unreadable_colours_are_refused(text):
    from app.imaging import parse_color

    with pytest.raises(ValueError):
        parse_color(text)


def test_predict_help_states_every_exit_status():
    proc = petseg("predict", "--help")
    text = " ".join(proc.stdout.split())
    assert "exit status is then 1" in text and "Exit status 2: nothing was tried" in text


def test_serve_runs_uvicorn_with_the_settings_listen_address_and_drain_timeout():
    from app.cli import uvicorn_options
    from app.settings import Settings

    settings = Settings(host="0.0.0.0", port=9001, drain_timeout_seconds=25, log_level="warning")
    options = uvicorn_options(settings)
    assert options == {
        "host": "0.0.0.0",
        "port": 9001,
        "log_level": "warning",
        "timeout_graceful_shutdown": 25,
    }
