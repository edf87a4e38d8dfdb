"""tf.distribute training: the replica arithmetic, and real runs through the CLI on CPU devices.

The runs use the tiny model of tests/conftest.py on the synthetic set: a mirrored run on 2 logical CPU
devices (interrupted by SIGTERM after its first epoch, then resumed), a multi-worker run of 2 local
processes talking over 127.0.0.1, and a mixed_bfloat16 run, each exported and checked like a release.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

import petseg_contract as contract
from petseg_harness.server import REPO
from petseg_harness.tiny_model import TINY_INPUT_SIZE, TINY_TRAIN_ARGS
from tests.conftest import run_cli
from training import distribute

SHORT = ["--steps-per-epoch", "2"]  # two global batches per epoch: enough to train, quick on 2 cores
RUN_TIMEOUT = 240


def tiny_args(epochs: int) -> list[str]:
    args = list(TINY_TRAIN_ARGS)
    args[args.index("--epochs") + 1] = str(epochs)
    return args + SHORT


def export_and_check(run: Path, output: Path) -> np.ndarray:
    """Export through the CLI, check metadata.json against the contract, reload, return probabilities."""
    # No --evaluate: scoring is test_export_cli's business; this checks the artefact and its contract.
    run_cli("export", "--run-dir", str(run), "--output", str(output), "--evaluate", "")
    meta = json.loads((output / "metadata.json").read_text())
    contract.check_metadata(meta)
    assert meta["signature"]["outputs"][contract.OUTPUT_NAME]["dtype"] == "float32"
    serve = tf.saved_model.load(str(output)).signatures[contract.SIGNATURE_NAME]
    images = tf.zeros((2, TINY_INPUT_SIZE, TINY_INPUT_SIZE, 3), tf.uint8)
    probs = serve(**{contract.INPUT_NAME: images})[contract.OUTPUT_NAME].numpy()
    assert probs.shape == (2, TINY_INPUT_SIZE, TINY_INPUT_SIZE, contract.NUM_CLASSES)
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-5)
    return probs


def history_epochs(run: Path) -> list[int]:
    return [int(line.split(",")[0]) for line in (run / "history.csv").read_text().splitlines()[1:]]


# --- replica arithmetic ---------------------------------------------------------------------------


def test_global_batch_splits_evenly_over_replicas_or_is_refused():
    assert distribute.per_replica_batch_size(32, 4) == 8
    with pytest.raises(ValueError, match="multiple of the 3 replicas"):
        distribute.per_replica_batch_size(32, 3)


def test_learning_rate_scales_linearly_with_replicas_unless_disabled():
    assert distribute.scaled_learning_rate(1e-3, 4) == pytest.approx(4e-3)
    assert distribute.scaled_learning_rate(1e-3, 4, scale=False) == 1e-3
    assert distribute.scaled_learning_rate(1e-3, None) == 1e-3


@pytest.mark.parametrize(
    ("global_batch", "photos", "replicas", "expected"),
    [
        (32, 368, 1, (32, 368)),  # one device: unchanged
        (32, 368, 2, (32, 368)),  # last batch of 16 splits 8/8
        (8, 6, 2, (6, 6)),  # split smaller than the batch: one even batch
        (8, 7, 2, (4, 7)),  # 4 + 3: the last batch still gives both replicas a photo
        (8, 5, 2, (4, 4)),  # no batch avoids a 1/0 share: the odd photo is left out
    ],
)
def test_validation_batches_never_give_a_replica_an_empty_share(global_batch, photos, replicas, expected):
    size, kept = distribute.eval_batching(global_batch, photos, replicas)
    assert (size, kept) == expected
    assert size % replicas == 0 and kept % size in (0, *range(replicas, size))


def test_the_chief_is_the_chief_task_or_worker_zero():
    workers = {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}
    assert distribute.is_chief_task({"cluster": workers, "task": {"type": "worker", "index": 0}})
    assert not distribute.is_chief_task({"cluster": workers, "task": {"type": "worker", "index": 1}})
    with_chief = {**workers, "chief": ["127.0.0.1:3"]}
    assert distribute.is_chief_task({"cluster": with_chief, "task": {"type": "chief", "index": 0}})
    assert not distribute.is_chief_task({"cluster": with_chief, "task": {"type": "worker", "index": 0}})
    assert distribute.is_chief_task({})  # no TF_CONFIG: a single machine


def test_multi_worker_without_tf_config_is_refused(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="TF_CONFIG"):
        distribute.create_strategy("multi-worker")


def test_mixed_precision_computes_in_bfloat16_but_keeps_every_output_float32():
    from training.model import build_unet

    with distribute.precision_policy("mixed_bfloat16"):
        model = build_unet(TINY_INPUT_SIZE, encoder_weights=None, alpha=0.35, decoder_scale=0.125)
    assert model.get_layer("up1").compute_dtype == "bfloat16"
    assert all(w.dtype == "float32" for w in model.weights)  # variables stay float32: exports load them
    assert {name: out.dtype for name, out in model.output.items()} == dict.fromkeys(model.output, "float32")


def test_train_help_documents_global_batch_and_distribution_options():
    out = run_cli("train", "--help").stdout
    for option in ("--strategy", "--virtual-devices", "--precision", "--no-scale-learning-rate"):
        assert option in out
    assert "per replica = global / replicas" in " ".join(out.split())


# --- a mirrored run on 2 logical CPU devices, interrupted and resumed -----------------------------


def start_cli(*args: str, env: dict | None = None, **popen) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "training", *args], cwd=REPO, env=env or os.environ.copy(), text=True, **popen
    )


def stop_after_data_loaded(proc: subprocess.Popen) -> str:
    """SIGTERM the run once it has logged its data (before its first epoch ends); return its stderr."""
    lines: queue.Queue = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(x) for x in proc.stderr] + [lines.put(None)])
    reader.start()
    seen = []
    try:
        while (line := lines.get(timeout=RUN_TIMEOUT)) is not None:
            seen.append(line)
            if "training.train: data:" in line:
                proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=RUN_TIMEOUT)
    finally:
        proc.kill()
        reader.join(timeout=10)
    return "".join(seen)


@pytest.fixture(scope="module")
def mirrored_run(tmp_path_factory, synthetic_root) -> dict:
    """Two epochs on 2 virtual CPUs, stopped by SIGTERM after the first, then the same command again."""
    run = tmp_path_factory.mktemp("mirrored") / "run"
    command = [
        "train", "--data-dir", str(synthetic_root), "--run-dir", str(run), *tiny_args(epochs=2),
        "--strategy", "mirrored", "--virtual-devices", "2",
    ]  # fmt: skip
    proc = start_cli(*command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    first_log = stop_after_data_loaded(proc)
    after_interrupt = {
        "returncode": proc.returncode,
        "log": first_log,
        "epochs": history_epochs(run),
        "backup": sorted(p.name for p in (run / "backup-frozen").iterdir()),
    }
    resumed = run_cli(*command, timeout=RUN_TIMEOUT)
    return {"run": run, "interrupted": after_interrupt, "resumed_log": resumed.stderr}


def test_sigterm_stops_a_mirrored_run_after_an_epoch_with_its_backup_kept(mirrored_run):
    stopped = mirrored_run["interrupted"]
    assert stopped["returncode"] == 143, stopped["log"][-3000:]
    assert stopped["epochs"] == [0]
    assert "latest.weights.h5" in stopped["backup"]


def test_the_rerun_resumes_from_the_backup_not_from_scratch(mirrored_run):
    run = mirrored_run["run"]
    assert history_epochs(run) == [0, 1]  # from scratch, the rerun would have logged epochs 0 and 1 again
    timing = json.loads((run / "timing.json").read_text())
    assert [row["epoch"] for row in timing] == [1, 2]
    assert not (run / "backup-frozen").exists()  # a finished fit removes its backup
    assert (run / "best.weights.h5").is_file()


def test_a_mirrored_run_records_its_strategy_and_replicas(mirrored_run):
    run = mirrored_run["run"]
    config = json.loads((run / "config.json").read_text())
    assert (config["strategy"], config["replicas_in_sync"], config["virtual_devices"]) == ("mirrored", 2, 2)
    for row in json.loads((run / "timing.json").read_text()):
        assert (row["strategy"], row["replicas_in_sync"]) == ("mirrored", 2)
    history = (run / "history.csv").read_text().splitlines()
    lr = float(history[1].split(",")[history[0].split(",").index("learning_rate")])
    assert lr == pytest.approx(2 * config["learning_rate"])  # linear scaling with 2 replicas


def test_a_mirrored_run_exports_a_model_that_holds_the_contract(mirrored_run, tmp_path):
    export_and_check(mirrored_run["run"], tmp_path / "mirrored-pet" / "1")


# --- two workers on loopback ports --------------------------------------------------------------


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def test_two_local_workers_train_an_epoch_and_the_chief_exports(synthetic_root, tmp_path):
    run, scratch = tmp_path / "run", tmp_path / "worker-tmp"
    scratch.mkdir()
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
    procs, logs = [], []
    try:
        for index in range(2):
            env = {
                **os.environ,
                "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}),
                "TMPDIR": str(scratch),  # where the non-chief keeps its private copy of the run
            }
            logs.append((tmp_path / f"worker{index}.log").open("w+"))
            procs.append(
                start_cli(
                    "train", "--data-dir", str(synthetic_root), "--run-dir", str(run), *tiny_args(epochs=1),
                    "--strategy", "multi-worker", env=env, stdout=logs[-1], stderr=subprocess.STDOUT,
                )
            )  # fmt: skip
        codes = [p.wait(timeout=RUN_TIMEOUT) for p in procs]
    finally:
        for p in procs:
            p.kill()
        output = []
        for log in logs:
            log.seek(0)
            output.append(log.read()[-3000:])
            log.close()
    assert codes == [0, 0], "\n---\n".join(output)

    config = json.loads((run / "config.json").read_text())
    assert (config["strategy"], config["replicas_in_sync"]) == ("multi-worker", 2)
    assert history_epochs(run) == [0]  # one history: written by the chief only
    assert [row["replicas_in_sync"] for row in json.loads((run / "timing.json").read_text())] == [2]
    assert not [p for p in scratch.iterdir() if p.name.startswith("petseg-worker-")]  # removed
    export_and_check(run, tmp_path / "multi-worker-pet" / "1")


# --- mixed precision ----------------------------------------------------------------------------


def test_a_mixed_bfloat16_run_exports_float32_probabilities(synthetic_root, tmp_path):
    run = tmp_path / "run"
    args = tiny_args(epochs=1)
    args[args.index("--steps-per-epoch") + 1] = "1"
    run_cli(
        "train", "--data-dir", str(synthetic_root), "--run-dir", str(run), *args,
        "--precision", "mixed_bfloat16", timeout=RUN_TIMEOUT,
    )  # fmt: skip
    assert json.loads((run / "config.json").read_text())["precision"] == "mixed_bfloat16"
    probs = export_and_check(run, tmp_path / "bf16-pet" / "1")
    assert probs.dtype == np.float32
