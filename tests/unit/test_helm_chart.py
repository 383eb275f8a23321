"""The Helm chart (deploy/helm/ragloop), rendered by the real helm (built by `make deploy-check` into
deploy/.tools): every role and the gateway get a Deployment probed on /healthz, KEDA never scales a
role past the partitions of the topics it consumes (and the chart refuses values that would), the
chart's partition table is the topic plan's, and the trainer Job lands on the GPU pool.
Schema validation of the same renders is `make deploy-check` (kubernetes-validate)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from streams.runtime import ROLES
from streams.topics import TOPICS
from tests.support import unavailable

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy/helm/ragloop"
KUBE = "1.33.0"
WITH_CRDS = ["--api-versions", "keda.sh/v1alpha1", "--api-versions", "monitoring.coreos.com/v1"]
KEYS = ["--set", "secrets.apiKeys=key=default"]


def helm() -> str:
    built = ROOT / "deploy/.tools/helm"
    found = str(built) if built.exists() else shutil.which("helm")
    if found is None:
        unavailable(f"helm is not at {built} nor on PATH; `make deploy-check` builds it")
    return found


def render(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([helm(), "template", "ragloop", str(CHART), "--kube-version", KUBE, *args],
                          capture_output=True, text=True, timeout=120)


def manifests(*args: str) -> list[dict[str, Any]]:
    result = render(*args)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def of_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["labels"]["app.kubernetes.io/component"]: doc for doc in docs if doc["kind"] == kind}


def test_every_role_and_the_gateway_run_as_a_deployment_probed_on_healthz() -> None:
    deployments = of_kind(manifests(*KEYS), "Deployment")
    assert set(deployments) == {*ROLES, "gateway"}
    for component, deployment in deployments.items():
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        assert container["args"] == ["worker", component]
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            assert container[probe]["httpGet"] == {"path": "/healthz", "port": "http"}
        assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True


def test_the_charts_partition_table_is_the_topic_plan() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["topicPartitions"] == {name: topic.partitions for name, topic in TOPICS.items()}
    assert set(values["roles"]) == set(ROLES)


@pytest.mark.parametrize("values", [[], ["-f", str(CHART / "values-large.yaml")]])
def test_keda_never_scales_a_role_past_the_partitions_of_its_topics(values: list[str]) -> None:
    docs = manifests(*KEYS, *WITH_CRDS, *values)
    scaled = of_kind(docs, "ScaledObject")
    assert scaled and not set(of_kind(docs, "HorizontalPodAutoscaler")) - {"gateway"}
    for role, scaled_object in scaled.items():
        triggers = scaled_object["spec"]["triggers"]
        assert {t["type"] for t in triggers} == {"kafka"}
        ceiling = max(TOPICS[t["metadata"]["topic"]].partitions for t in triggers)
        assert 1 <= scaled_object["spec"]["maxReplicaCount"] <= ceiling, role
        assert scaled_object["spec"]["scaleTargetRef"]["name"] == f"ragloop-{role}"


def test_without_keda_each_role_falls_back_to_a_cpu_hpa_under_the_same_ceiling() -> None:
    docs = manifests(*KEYS)
    assert not of_kind(docs, "ScaledObject") and not of_kind(docs, "ServiceMonitor")
    hpas = of_kind(docs, "HorizontalPodAutoscaler")
    assert set(hpas) == {"gateway", *(role for role in ROLES if role != "trainer")}  # the trainer has one partition: no scaling
    assert hpas["agent"]["spec"]["maxReplicas"] <= TOPICS["chat.requests"].partitions
    assert hpas["agent"]["spec"]["metrics"][0]["resource"]["name"] == "cpu"


def test_values_asking_more_replicas_than_partitions_are_refused_naming_the_role() -> None:
    result = render(*KEYS, "--set", "roles.feedback.autoscaling.maxReplicas=7")
    assert result.returncode != 0
    assert "roles.feedback.autoscaling.maxReplicas is 7 but its topics have at most 6 partition(s)" in result.stderr


def test_a_release_without_api_keys_is_refused_unless_a_secret_is_named() -> None:
    result = render()
    assert result.returncode != 0 and "secrets.apiKeys (RAGLOOP_API_KEYS) is empty" in result.stderr
    docs = manifests("--set", "secrets.existingSecret=mine")
    assert not [d for d in docs if d["kind"] == "Secret"]
    env_from = of_kind(docs, "Deployment")["agent"]["spec"]["template"]["spec"]["containers"][0]["envFrom"]
    assert {"secretRef": {"name": "mine"}} in env_from


def test_large_puts_the_trainer_job_on_the_gpu_pool_with_budgets_and_service_monitors() -> None:
    docs = manifests("-f", str(CHART / "values-large.yaml"), "--set", "trainerJob.enabled=true")
    job = next(d for d in docs if d["kind"] == "Job")["spec"]["template"]["spec"]
    container = job["containers"][0]
    assert container["args"][:2] == ["train", "--from-feedback"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1 and container["image"].startswith("ghcr.io/ragloop/ragloop-gpu:")
    assert job["nodeSelector"] == {"node-pool": "gpu"} and job["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert set(of_kind(docs, "PodDisruptionBudget")) == set(of_kind(docs, "ServiceMonitor")) == {*ROLES, "gateway"}
    assert of_kind(docs, "Ingress")


def test_the_values_schema_names_exactly_the_roles_and_refuses_others() -> None:
    import json

    schema = json.loads((CHART / "values.schema.json").read_text())
    assert set(schema["properties"]["roles"]["propertyNames"]["enum"]) == set(ROLES)
    result = render(*KEYS, "--set", "roles.indexer.enabled=true")
    assert result.returncode != 0 and "value must be one of" in result.stderr
    memory = render(*KEYS, "--set", "config.RAGLOOP_BROKER_URL=memory://")
    assert memory.returncode != 0 and "RAGLOOP_BROKER_URL" in memory.stderr
