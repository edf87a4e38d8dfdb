"""The optional KServe InferenceService (deploy/k8s/kserve) is well formed, offline.

kubernetes-validate bundles only the core Kubernetes schemas, not KServe's CRD. KServe's predictor is
its own fields (replicas, timeout, ...) with a Kubernetes PodSpec inlined, so the manifest is checked
in two parts: the KServe fields against a small JSON schema written here from the v1beta1 API, and
everything else, wrapped in a Pod, strictly against the Kubernetes schemas like the other manifests
(so an unknown or misspelled field fails either way). Then the fields PetSeg relies on are checked.
"""

from __future__ import annotations

import copy

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.deploy.test_k8s_manifests import K8S, VERSIONS, base_resources, container, load

KSERVE = K8S / "kserve"
PREDICTOR_CONTAINER = "kserve-container"  # the name KServe looks for; any other is a sidecar
_REPLICAS = {"type": "integer", "minimum": 0}
_STRINGS = {"type": "object", "additionalProperties": {"type": "string"}}
# The InferenceService fields this manifest may use: serving.kserve.io/v1beta1 InferenceService,
# spec.predictor's ComponentExtensionSpec (the PodSpec part is validated as a Pod below).
KSERVE_PREDICTOR_FIELDS = {
    "minReplicas": _REPLICAS,
    "maxReplicas": _REPLICAS,
    "scaleTarget": {"type": "integer", "minimum": 1},
    "scaleMetric": {"enum": ["cpu", "memory", "concurrency", "rps"]},
    "containerConcurrency": {"type": "integer", "minimum": 0},
    "timeout": {"type": "integer", "minimum": 1},
    "canaryTrafficPercent": {"type": "integer", "minimum": 0, "maximum": 100},
    "labels": _STRINGS,
    "annotations": _STRINGS,
}
INFERENCE_SERVICE_SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "serving.kserve.io/v1beta1"},
        "kind": {"const": "InferenceService"},
        "metadata": {
            "type": "object",
            "required": ["name"],
            "properties": {
                # A DNS-1035 label: KServe derives Service and host names from it.
                "name": {"type": "string", "pattern": "^[a-z]([-a-z0-9]{0,43}[a-z0-9])?$"},
                "labels": _STRINGS,
                "annotations": {
                    **_STRINGS,
                    "properties": {
                        "serving.kserve.io/deploymentMode": {"enum": ["Serverless", "RawDeployment"]},
                        "serving.kserve.io/autoscalerClass": {"enum": ["hpa", "external", "none"]},
                    },
                },
            },
        },
        "spec": {
            "type": "object",
            "required": ["predictor"],
            "additionalProperties": False,
            "properties": {
                "predictor": {
                    "type": "object",
                    "required": ["containers"],
                    "properties": {
                        **KSERVE_PREDICTOR_FIELDS,
                        "containers": {
                            "type": "array",
                            "minItems": 1,
                            "contains": {"properties": {"name": {"const": PREDICTOR_CONTAINER}}},
                        },
                    },
                }
            },
        },
    },
}


def inference_service() -> dict:
    kustomization = yaml.safe_load((KSERVE / "kustomization.yaml").read_text())
    assert kustomization["resources"] == ["inferenceservice.yaml"]
    (doc,) = load(KSERVE / "inferenceservice.yaml")
    return doc


def predictor_pod(doc: dict) -> dict:
    """The predictor's PodSpec part (every field that is not KServe's own), as a Pod."""
    spec = {k: v for k, v in doc["spec"]["predictor"].items() if k not in KSERVE_PREDICTOR_FIELDS}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": doc["metadata"]["name"]}, "spec": spec}


def validate(doc: dict, version: str) -> None:
    jsonschema.validate(doc, INFERENCE_SERVICE_SCHEMA)
    kubernetes_validate.validate(predictor_pod(doc), version, strict=True)


def predictor_container(doc: dict) -> dict:
    (c,) = doc["spec"]["predictor"]["containers"]
    return c


@pytest.mark.parametrize("version", VERSIONS)
def test_inference_service_validates(version) -> None:
    validate(inference_service(), version)


@pytest.mark.parametrize(
    "break_it",
    [
        lambda d: d["spec"]["predictor"].update(minReplica=1),  # misspelled KServe field
        lambda d: d["spec"]["predictor"].update(maxReplicas="four"),
        lambda d: d.update(kind="InferenceServices"),
        lambda d: predictor_container(d).update(name="petseg"),  # KServe would treat it as a sidecar
        lambda d: predictor_container(d).update(readinessprobe={}),  # misspelled container field
        lambda d: predictor_container(d)["ports"][0].update(containerPort="8000"),
    ],
)
def test_validation_rejects_a_broken_inference_service(break_it) -> None:
    doc = copy.deepcopy(inference_service())
    break_it(doc)
    with pytest.raises((jsonschema.ValidationError, kubernetes_validate.ValidationError)):
        validate(doc, VERSIONS[-1])


def test_predictor_serves_the_protocol_on_port_8000_with_v2_probes() -> None:
    c = predictor_container(inference_service())
    assert [p["containerPort"] for p in c["ports"]] == [8000]
    for probe in ("startupProbe", "readinessProbe"):
        assert c[probe]["httpGet"] == {"path": "/v2/health/ready", "port": 8000}
    assert c["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": 8000}


def test_predictor_runs_the_petseg_image_as_the_deployment_does() -> None:
    doc = inference_service()
    c, deployed = predictor_container(doc), container(base_resources())
    assert c["image"] == deployed["image"]
    assert c["env"] == deployed["env"]
    assert c["resources"] == deployed["resources"]
    assert c["securityContext"] == deployed["securityContext"]
    pod = doc["spec"]["predictor"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 10001
    assert 1 <= pod["minReplicas"] <= pod["maxReplicas"]
