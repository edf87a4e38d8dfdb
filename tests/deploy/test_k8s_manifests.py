"""Kubernetes manifests under deploy/k8s validate against the Kubernetes OpenAPI schemas, offline.

`kubernetes-validate` ships the schemas of every Kubernetes release it supports, so no cluster and no
network is needed. The GPU overlay is a strategic-merge patch; it is applied here the way kustomize
does for these fields (maps merge, containers merge by name) and the result is validated too.
"""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
# Oldest release we promise (autoscaling/v2 HPA, policy/v1 PDB: 1.23+) and the newest the validator knows.
VERSIONS = ["1.27.0", kubernetes_validate.latest_version()]
LABELS = {"app.kubernetes.io/name": "petseg", "app.kubernetes.io/component": "api"}


def load(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def base_resources() -> list[dict]:
    kustomization = yaml.safe_load((K8S / "base" / "kustomization.yaml").read_text())
    docs = []
    for name in kustomization["resources"]:
        docs.extend(load(K8S / "base" / name))
    return docs


def by_kind(docs: list[dict]) -> dict[str, dict]:
    return {doc["kind"]: doc for doc in docs}


def strategic_merge(base, patch):
    """Enough of kustomize's strategic merge for our patch: dicts merge, named lists merge by name."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for key, value in patch.items():
            out[key] = strategic_merge(base[key], value) if key in base else copy.deepcopy(value)
        return out
    if (
        isinstance(base, list)
        and isinstance(patch, list)
        and all(isinstance(x, dict) and "name" in x for x in patch)
    ):
        out = [copy.deepcopy(x) for x in base]
        names = [x.get("name") for x in out]
        for item in patch:
            if item["name"] in names:
                i = names.index(item["name"])
                out[i] = strategic_merge(out[i], item)
            else:
                out.append(copy.deepcopy(item))
        return out
    return copy.deepcopy(patch)


def gpu_resources() -> list[dict]:
    kustomization = yaml.safe_load((K8S / "gpu" / "kustomization.yaml").read_text())
    assert kustomization["resources"] == ["../base"]
    docs = base_resources()
    for entry in kustomization["patches"]:
        (patch,) = load(K8S / "gpu" / entry["path"])
        for i, doc in enumerate(docs):
            if doc["kind"] == patch["kind"] and doc["metadata"]["name"] == patch["metadata"]["name"]:
                docs[i] = strategic_merge(doc, patch)
    for image in kustomization.get("images", []):
        for doc in docs:
            for container in doc.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
                name, _, _tag = container["image"].partition(":")
                if name == image["name"]:
                    container["image"] = f"{image.get('newName', name)}:{image['newTag']}"
    return docs


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("variant", ["base", "gpu"])
def test_manifests_validate_against_kubernetes_schema(variant, version):
    docs = base_resources() if variant == "base" else gpu_resources()
    assert {d["kind"] for d in docs} >= {"Deployment", "Service", "HorizontalPodAutoscaler"}
    for doc in docs:
        # strict: unknown fields (typos such as `readinessprobe`) fail too
        kubernetes_validate.validate(doc, version, strict=True)


def test_validator_rejects_a_broken_manifest():
    """Guard against a validator that silently accepts anything (e.g. schemas missing offline)."""
    deployment = copy.deepcopy(by_kind(base_resources())["Deployment"])
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessprobe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, VERSIONS[-1], strict=True)
    deployment = copy.deepcopy(by_kind(base_resources())["Deployment"])
    deployment["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, VERSIONS[-1], strict=False)


def container(docs: list[dict]) -> dict:
    (c,) = by_kind(docs)["Deployment"]["spec"]["template"]["spec"]["containers"]
    return c


def test_deployment_probes_resources_and_security():
    docs = base_resources()
    deployment = by_kind(docs)["Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    c = container(docs)
    assert deployment["spec"]["selector"]["matchLabels"] == LABELS
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001  # the Dockerfile's USER
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert {m["mountPath"] for m in c["volumeMounts"]} >= {"/tmp"}
    assert c["ports"][0]["containerPort"] == 8000
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["startupProbe"]["httpGet"]["path"] == "/readyz"
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(c["resources"][kind])
    assert "nvidia.com/gpu" not in c["resources"]["limits"]
    env = {e["name"]: e for e in c["env"]}
    assert env["PETSEG_TF_INTRA_OP_THREADS"]["value"] == str(c["resources"]["requests"]["cpu"])
    assert env["PETSEG_API_KEY"]["valueFrom"]["secretKeyRef"]["optional"] is True


def test_gpu_overlay_requests_a_gpu():
    docs = gpu_resources()
    c = container(docs)
    assert c["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert c["image"].endswith(":gpu")
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"  # the base survives the patch
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["PETSEG_GPU_MEMORY_GROWTH"] == "true"
    assert "PETSEG_TF_INTRA_OP_THREADS" in env


def test_service_and_hpa_target_the_deployment():
    kinds = by_kind(base_resources())
    deployment, service, hpa = kinds["Deployment"], kinds["Service"], kinds["HorizontalPodAutoscaler"]
    assert service["spec"]["selector"] == LABELS
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    ref = hpa["spec"]["scaleTargetRef"]
    assert (ref["kind"], ref["name"]) == ("Deployment", deployment["metadata"]["name"])
    assert hpa["spec"]["minReplicas"] <= deployment["spec"]["replicas"] <= hpa["spec"]["maxReplicas"]
    assert kinds["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"] == LABELS


# --- multi-worker training: deploy/k8s/training -------------------------------------------------


def training_resources() -> list[dict]:
    kustomization = yaml.safe_load((K8S / "training" / "kustomization.yaml").read_text())
    docs = []
    for name in kustomization["resources"]:
        docs.extend(load(K8S / "training" / name))
    return docs


@pytest.mark.parametrize("version", VERSIONS)
def test_training_manifests_validate_against_kubernetes_schema(version):
    docs = training_resources()
    assert {d["kind"] for d in docs} == {"Job", "Service", "PersistentVolumeClaim"}
    for doc in docs:
        kubernetes_validate.validate(doc, version, strict=True)


def trainer(docs: list[dict]) -> dict:
    (c,) = by_kind(docs)["Job"]["spec"]["template"]["spec"]["containers"]
    return c


def test_training_job_is_indexed_and_its_pods_are_reachable_through_the_headless_service():
    kinds = by_kind(training_resources())
    job, service = kinds["Job"], kinds["Service"]
    pod = job["spec"]["template"]
    env = {e["name"]: e.get("value") for e in trainer(list(kinds.values()))["env"]}
    assert job["spec"]["completionMode"] == "Indexed"
    assert job["spec"]["parallelism"] == job["spec"]["completions"] == int(env["WORKERS"])
    assert service["spec"]["clusterIP"] == "None"
    assert pod["spec"]["subdomain"] == service["metadata"]["name"] == env["SERVICE"]
    assert env["JOB_NAME"] == job["metadata"]["name"]  # pod hostnames are <job name>-<index>
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    assert service["spec"]["ports"][0]["port"] == int(env["PORT"])
    claim = pod["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"]
    assert kinds["PersistentVolumeClaim"]["metadata"]["name"] == claim
    assert kinds["PersistentVolumeClaim"]["spec"]["accessModes"] == ["ReadWriteMany"]  # shared run dir


def test_training_pods_build_tf_config_from_their_completion_index(tmp_path):
    """Run the container's real shell script, with `python` replaced by a stub that prints its setup."""
    c = trainer(training_resources())
    fake = tmp_path / "python"
    fake.write_text('#!/bin/sh\nprintf \'%s\\n\' "$TF_CONFIG" "$*"\n')
    fake.chmod(0o755)
    env = {e["name"]: e["value"] for e in c["env"]}
    for index in range(int(env["WORKERS"])):
        proc = subprocess.run(
            [*c["command"], *c["args"]],
            env={**env, "JOB_COMPLETION_INDEX": str(index), "PATH": f"{tmp_path}:/usr/bin:/bin"},
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        tf_config_line, argv = proc.stdout.splitlines()
        tf_config = json.loads(tf_config_line)
        assert tf_config == {
            "cluster": {"worker": ["petseg-train-0.petseg-train:2222", "petseg-train-1.petseg-train:2222"]},
            "task": {"type": "worker", "index": index},
        }
        assert "-m training train --strategy multi-worker" in argv
