"""Static checks of Dockerfile, .dockerignore and docker-compose.yml (no engine needed).

The real build/run/compose test is scripts/container-test.sh (`make container-test`); these keep the
promises it relies on from regressing in ordinary CI.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = (REPO / "Dockerfile").read_text()
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per Dockerfile instruction, continuation lines joined, comments dropped."""
    lines, current = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        current += " " + line.removesuffix("\\").strip() if current else line.removesuffix("\\").strip()
        if not line.endswith("\\"):
            lines.append(current)
            current = ""
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in lines]


INSTR = instructions(DOCKERFILE)


def stages() -> list[list[tuple[str, str]]]:
    out: list[list[tuple[str, str]]] = []
    for op, arg in INSTR:
        if op == "FROM":
            out.append([])
        if out:
            out[-1].append((op, arg))
    return out


def test_dockerfile_is_multistage_with_gpu_default_and_cpu_build_arg():
    froms = [arg for op, arg in INSTR if op == "FROM"]
    assert len(froms) == 2 and froms[0].endswith("AS builder")
    assert ("ARG", "PYTHON_IMAGE=python:3.11-slim-bookworm") in INSTR
    assert ("ARG", "TF_VARIANT=gpu") in INSTR
    builder = " ".join(arg for op, arg in stages()[0] if op == "RUN")
    assert '".[serve,${TF_VARIANT}]"' in builder
    assert "train" not in re.findall(r"\.\[([^\]]*)\]", builder)[0]
    assert "# syntax=" not in DOCKERFILE  # BuildKit frontends are pulled from a registry


def test_final_stage_is_nonroot_readonly_friendly_with_healthcheck():
    final = stages()[-1]
    ops = dict(final)
    user = [arg for op, arg in final if op == "USER"][-1]
    assert re.fullmatch(r"[1-9]\d*(:\d+)?", user), "numeric non-root USER (runAsNonRoot can verify it)"
    assert ops["EXPOSE"] == "8000"
    health = ops["HEALTHCHECK"]
    assert "/readyz" in health and "CMD [" in health
    for op in ("ENTRYPOINT", "CMD"):
        json.loads(ops[op])  # exec form: the server is PID 1 and receives SIGTERM
    env = " ".join(arg for op, arg in final if op == "ENV")
    for knob in (
        "PETSEG_HOST=0.0.0.0",
        "PETSEG_MODEL_DIR=",
        "PETSEG_TF_INTRA_OP_THREADS=",
        "PETSEG_TF_INTER_OP_THREADS=",
        "PETSEG_GPU_MEMORY_GROWTH=true",
        "HOME=/tmp",
    ):
        assert knob in env, knob
    copies = [arg for op, arg in final if op == "COPY"]
    assert any(c.startswith("--from=builder /opt/venv") for c in copies)
    assert any(c.startswith("models/") for c in copies), "the released model is baked in"
    assert not any("training" in c or c.split()[0] == "." for c in copies), "only serving code in the image"


def test_dockerignore_keeps_runs_data_and_caches_out():
    """An allow-list: everything is ignored except what the Dockerfile copies; caches inside stay out."""
    rules = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert rules[0] == "*"
    allowed = {rule[1:].rstrip("/") for rule in rules if rule.startswith("!")}
    assert allowed == {"app", "petseg_contract", "models", "pyproject.toml", "README.md"}
    assert "**/__pycache__" in rules[rules.index("!README.md") :]
    copied = {
        arg.split()[0].rstrip("/") for op, arg in INSTR if op == "COPY" and not arg.startswith("--from")
    }
    assert copied <= allowed, f"the Dockerfile copies what .dockerignore leaves out: {copied - allowed}"


def service(name: str) -> dict:
    return COMPOSE["services"][name]


def test_compose_gpu_service_reserves_a_gpu():
    svc = service("petseg")
    assert "profiles" not in svc  # `docker compose up` starts it
    (device,) = svc["deploy"]["resources"]["reservations"]["devices"]
    assert device["capabilities"] == ["gpu"] and device["driver"] == "nvidia"
    assert svc["build"]["args"]["TF_VARIANT"] == "gpu"


def test_compose_cpu_profile_is_the_same_service_without_gpu():
    gpu, cpu = service("petseg"), service("petseg-cpu")
    assert cpu["profiles"] == ["cpu"]
    assert cpu["build"]["args"]["TF_VARIANT"] == "cpu"
    assert "reservations" not in cpu["deploy"]["resources"]
    for key in ("healthcheck", "restart", "ports", "volumes", "read_only", "tmpfs", "stop_grace_period"):
        assert cpu[key] == gpu[key], key


@pytest.mark.parametrize("name", ["petseg", "petseg-cpu"])
def test_compose_service_settings(name):
    svc = service(name)
    assert svc["restart"] in ("unless-stopped", "always")
    assert "/readyz" in " ".join(svc["healthcheck"]["test"])
    assert svc["ports"] == ["${PETSEG_PUBLISH_PORT:-8000}:8000"]
    assert any(v.endswith(":/mnt/models:ro") for v in svc["volumes"])
    assert "replicas" in svc["deploy"]
    assert svc["read_only"] is True and svc["tmpfs"] == ["/tmp"]
    assert {"PETSEG_MODEL_DIR", "PETSEG_TF_INTRA_OP_THREADS", "PETSEG_API_KEY"} <= set(svc["environment"])


def compose_commands() -> list[list[str]]:
    """Compose CLIs installed here: v1 `docker-compose` and/or the v2 plugin `docker compose`."""
    found = []
    if shutil.which("docker-compose"):
        found.append(["docker-compose"])
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
        if probe.returncode == 0:
            found.append(["docker", "compose"])
    return found


@pytest.mark.parametrize("profile", [[], ["--profile", "cpu"]])
def test_installed_compose_cli_accepts_the_file(profile):
    commands = compose_commands()
    if not commands:
        pytest.skip("neither docker-compose (v1) nor docker compose (v2) installed")
    for command in commands:
        proc = subprocess.run(
            [*command, "-f", str(REPO / "docker-compose.yml"), *profile, "config", "-q"],
            capture_output=True,
            text=True,
            cwd=REPO,
        )
        assert proc.returncode == 0, (command, proc.stderr)


def test_compose_memory_limits_match_the_kubernetes_manifests():
    """The bound docs/runtime.md states, held by both deployments alike (docs/evidence.md has the peak)."""

    def k8s_limit(path: str) -> str:
        (deployment,) = [
            d for d in yaml.safe_load_all((REPO / path).read_text()) if d and d["kind"] == "Deployment"
        ]
        (container,) = [
            c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "petseg"
        ]
        return container["resources"]["limits"]["memory"]

    for svc, manifest in (
        ("petseg-cpu", "deploy/k8s/base/deployment.yaml"),
        ("petseg", "deploy/k8s/gpu/deployment-gpu.yaml"),
    ):
        limit = service(svc)["deploy"]["resources"]["limits"]["memory"]  # "${PETSEG_MEMORY_LIMIT:-3g}"
        assert limit.split(":-")[1].rstrip("}").removesuffix("g") + "Gi" == k8s_limit(manifest), svc
