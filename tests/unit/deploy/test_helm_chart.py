"""deploy/helm/xpstream: the chart renders and its manifests hold what production needs.

The chart is rendered by deploy/helm/render.py on every run (no helm needed), and every document is
checked structurally. Where helm is installed (``make helm``, or on PATH), ``helm lint`` passes and
``helm template`` gives exactly the same documents; without it that one test skips and says why.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from xpcore.kafka.principals import ADMIN, ROLES, acl_entries
from xpcore.kafka.topics import ALL_TOPICS, EVENTS, EXPOSURES, REGISTRY

ROOT = Path(__file__).resolve().parents[3]
HELM_DIR = ROOT / "deploy" / "helm"
CHART = HELM_DIR / "xpstream"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"helm_{name}", HELM_DIR / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


render = load("render")
VALUES = yaml.safe_load((CHART / "values.yaml").read_text())
DOCS = render.documents(render.render_chart())


def of_kind(kind: str, docs: list[dict[str, Any]] = DOCS) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    spec = doc["spec"]
    if doc["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return spec["template"]["spec"]["containers"]


def test_every_document_is_a_named_kubernetes_object() -> None:
    kinds = Counter(d["kind"] for d in DOCS)
    assert kinds["Deployment"] == 3 and kinds["CronJob"] == 6 and kinds["KafkaTopic"] == len(ALL_TOPICS)
    for doc in DOCS:
        assert doc["apiVersion"] and doc["metadata"]["name"], doc
    names = [(d["kind"], d["metadata"]["name"]) for d in DOCS]
    assert len(names) == len(set(names))


def test_generated_templates_are_current() -> None:
    result = subprocess.run(
        [sys.executable, str(HELM_DIR / "generate.py"), "--check"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr


def test_the_chart_carries_the_grafana_dashboards_unchanged() -> None:
    configmap = of_kind("ConfigMap")["xp-grafana-dashboards"]
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    for name in ("xpstream-health.json", "xpstream-results.json"):
        source = (ROOT / "deploy" / "grafana" / name).read_text()
        assert (CHART / "dashboards" / name).read_text() == source, (
            f"copy deploy/grafana/{name} into the chart"
        )
        assert json.loads(configmap["data"][name]) == json.loads(source)


def test_no_secret_values_only_secret_references() -> None:
    assert not of_kind("Secret")
    for doc in DOCS:
        if doc["kind"] not in ("Deployment", "CronJob"):
            continue
        for container in containers(doc):
            for env in container["env"]:
                name = env["name"]
                if any(word in name for word in ("PASSWORD", "KEYS", "TOKENS", "SECRET", "SIGNING_KEY")):
                    assert "value" not in env and "secretKeyRef" in env["valueFrom"], (
                        doc["metadata"]["name"],
                        name,
                    )
    text = yaml.safe_dump(VALUES)
    assert "password:" not in text.lower().replace("password_sha256_hex", "")


def test_assignment_service_has_readiness_hpa_and_pdb() -> None:
    deployment = of_kind("Deployment")["xp-assignment"]
    (container,) = containers(deployment)
    assert container["args"] == ["xp", "assign", "serve"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["resources"]["requests"]["cpu"] and container["resources"]["requests"]["memory"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    hpa = of_kind("HorizontalPodAutoscaler")["xp-assignment"]
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "xp-assignment",
    }
    assert hpa["spec"]["minReplicas"] >= 2 and hpa["spec"]["maxReplicas"] > hpa["spec"]["minReplicas"]
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    pdb = of_kind("PodDisruptionBudget")["xp-assignment"]
    assert pdb["spec"]["minAvailable"] < hpa["spec"]["minReplicas"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()


def test_workers_scale_on_their_groups_lag_within_the_partitions() -> None:
    deployment = of_kind("Deployment")["xp-worker"]
    (container,) = containers(deployment)
    assert container["args"] == ["xp", "stream", "run"]
    env = {e["name"]: e for e in container["env"]}
    assert "replicas" not in deployment["spec"]  # KEDA's HPA owns it; helm upgrade must not reset it
    scaled = of_kind("ScaledObject")["xp-worker"]
    assert scaled["spec"]["scaleTargetRef"]["name"] == "xp-worker"
    topics = of_kind("KafkaTopic")
    partitions = {t["spec"]["topicName"]: t["spec"]["partitions"] for t in topics.values()}
    assert partitions[EXPOSURES] == partitions[EVENTS]  # co-partitioned by unit id
    assert (
        1 <= scaled["spec"]["minReplicaCount"] <= scaled["spec"]["maxReplicaCount"] <= partitions[EXPOSURES]
    )
    triggers = scaled["spec"]["triggers"]
    assert {t["metadata"]["topic"] for t in triggers} == {EXPOSURES, EVENTS}
    for trigger in triggers:
        assert trigger["type"] == "kafka"
        assert trigger["metadata"]["consumerGroup"] == env["XP_STREAM_GROUP_ID"]["value"]
        assert int(trigger["metadata"]["lagThreshold"]) > 0
        assert trigger["authenticationRef"]["name"] in of_kind("TriggerAuthentication")


def test_topics_have_the_configs_the_code_creates() -> None:
    topics = {t["spec"]["topicName"]: t for t in of_kind("KafkaTopic").values()}
    assert set(topics) == {spec.name for spec in ALL_TOPICS}
    for spec in ALL_TOPICS:
        config = topics[spec.name]["spec"]["config"]
        assert dict(spec.config).items() <= {k: str(v) for k, v in config.items()}.items(), spec.name
    assert topics[REGISTRY]["spec"]["config"]["cleanup.policy"] == "compact"
    assert all(t["spec"]["replicas"] >= 3 for t in topics.values())


def test_kafka_users_have_exactly_the_acls_of_principals_py() -> None:
    users = of_kind("KafkaUser")
    prefix = VALUES["kafka"]["userPrefix"]
    assert {u["metadata"]["labels"]["xpstream.io/role"] for u in users.values()} == set(ROLES) - {ADMIN}
    expected = acl_entries(lambda logical: logical, "")
    for user in users.values():
        role = user["metadata"]["labels"]["xpstream.io/role"]
        assert user["metadata"]["name"] == prefix + role
        got = sorted(
            (
                a["resource"]["type"].upper(),
                a["resource"]["name"],
                a["resource"]["patternType"].upper(),
                op.upper(),
            )
            for a in user["spec"]["authorization"]["acls"]
            for op in a["operations"]
        )
        want = sorted(
            (e.resource_type, e.name, e.pattern, e.operation)
            for e in expected
            if e.principal == f"User:{role}"
        )
        assert got == want, role
    # each pod connects as its own role
    for name, role in (("xp-assignment", "service"), ("xp-worker", "worker"), ("xp-dashboard", "dashboard")):
        env = {e["name"]: e for e in containers(of_kind("Deployment")[name])[0]["env"]}
        assert env["XP_KAFKA_SASL_USERNAME"]["value"] == prefix + role
        assert env["XP_KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == prefix + role


def test_clickhouse_installation_is_the_cluster_the_ddl_targets() -> None:
    (chi,) = of_kind("ClickHouseInstallation").values()
    (cluster,) = chi["spec"]["configuration"]["clusters"]
    assert cluster["name"] == VALUES["clickhouse"]["cluster"]
    assert cluster["layout"]["replicasCount"] >= 2 and cluster["layout"]["shardsCount"] >= 1
    password = chi["spec"]["configuration"]["users"]["xp/password_sha256_hex"]
    assert password["valueFrom"]["secretKeyRef"]["name"]
    assert chi["spec"]["configuration"]["profiles"]["xp/distributed_foreground_insert"] == 1


def test_cronjobs_are_those_of_deploy_k8s() -> None:
    plain = {
        d["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["name"]: d
        for d in yaml.safe_load_all((ROOT / "deploy" / "k8s" / "cronjobs.yaml").read_text())
        if d and d["kind"] == "CronJob"
    }
    charted = {name.removeprefix("xp-"): d for name, d in of_kind("CronJob").items()}
    assert set(charted) == set(plain)
    for job, doc in charted.items():
        assert doc["spec"]["schedule"] == plain[job]["spec"]["schedule"]
        assert containers(doc)[0]["args"] == containers(plain[job])[0]["args"]
        assert containers(doc)[0]["resources"]["requests"]


def test_switches_turn_parts_off() -> None:
    off = render.documents(
        render.render_chart(
            {
                "worker": {"keda": {"enabled": False}},
                "kafka": {"strimzi": {"enabled": False}},
                "clickhouse": {"altinity": {"enabled": False}},
                "dashboard": {"enabled": False},
            }
        )
    )
    kinds = {d["kind"] for d in off}
    assert not kinds & {"ScaledObject", "TriggerAuthentication", "Kafka", "KafkaTopic", "KafkaUser"}
    assert "ClickHouseInstallation" not in kinds
    assert set(of_kind("Deployment", off)) == {"xp-assignment", "xp-worker"}
    assert of_kind("Deployment", off)["xp-worker"]["spec"]["replicas"] == VALUES["worker"]["replicas"]


def test_a_template_outside_the_subset_fails_loudly(tmp_path: Path) -> None:
    chart = tmp_path / "chart"
    shutil.copytree(CHART, chart)
    (chart / "templates" / "odd.yaml").write_text("a: {{ .Values.image.tag | upper }}\n")
    with pytest.raises(render.TemplateError, match="unsupported function upper"):
        render.render_chart(chart=chart)
    (chart / "templates" / "odd.yaml").write_text("a: {{ .Values.no.such }}\n")
    with pytest.raises(render.TemplateError, match="missing value"):
        render.render_chart(chart=chart)


def helm_binary() -> str | None:
    local = ROOT / ".tools" / "bin" / "helm"
    return str(local) if local.exists() else shutil.which("helm")


OFF = {
    "worker.keda.enabled": False,
    "kafka.strimzi.enabled": False,
    "clickhouse.altinity.enabled": False,
    "dashboard.enabled": False,
}


def nested(flat: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for path, value in flat.items():
        *parents, last = path.split(".")
        target = out
        for part in parents:
            target = target.setdefault(part, {})
        target[last] = value
    return out


@pytest.mark.parametrize("overrides", [{}, OFF], ids=["defaults", "parts-off"])
def test_helm_lint_and_template_agree_with_the_python_render(overrides: dict[str, Any]) -> None:
    helm = helm_binary()
    if helm is None:
        pytest.skip(
            "helm is not installed (`make helm` builds it, ~3 min): "
            "the chart was checked by the Python render only"
        )
    env = {**os.environ, "HELM_CACHE_HOME": "/tmp/xp-helm-cache", "HELM_CONFIG_HOME": "/tmp/xp-helm-config"}
    sets = [arg for path, value in overrides.items() for arg in ("--set", f"{path}={str(value).lower()}")]
    lint = subprocess.run(
        [helm, "lint", "--strict", str(CHART), *sets], capture_output=True, text=True, timeout=120, env=env
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr
    template = subprocess.run(
        [helm, "template", "xp", str(CHART), *sets], capture_output=True, text=True, timeout=120, env=env
    )
    assert template.returncode == 0, template.stderr
    by_helm = [d for d in yaml.safe_load_all(template.stdout) if d]

    def key(doc: dict[str, Any]) -> tuple[str, str]:
        return doc["kind"], doc["metadata"]["name"]

    by_python = render.documents(render.render_chart(nested(overrides)))
    assert sorted(by_helm, key=key) == sorted(by_python, key=key)


def test_every_environment_variable_is_a_setting_xpstream_reads() -> None:
    documented = (ROOT / "docs" / "configuration.md").read_text()  # generated from the settings classes
    names = {
        env["name"]
        for doc in DOCS
        if doc["kind"] in ("Deployment", "CronJob")
        for container in containers(doc)
        for env in container["env"]
    }
    assert len(names) > 15
    assert sorted(n for n in names if f"`{n}`" not in documented) == []


def test_the_plain_cronjobs_work_as_written() -> None:
    """deploy/k8s/cronjobs.yaml (issue #21): every job reaches ClickHouse and (all but export) Kafka with
    documented settings, every mount has its volume, and the quality reports land on a claim the file
    defines, not in the pod's scratch space."""
    documents = [d for d in yaml.safe_load_all((ROOT / "deploy" / "k8s" / "cronjobs.yaml").read_text()) if d]
    claims = {d["metadata"]["name"] for d in documents if d["kind"] == "PersistentVolumeClaim"}
    documented = (ROOT / "docs" / "configuration.md").read_text()
    for doc in (d for d in documents if d["kind"] == "CronJob"):
        pod = doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        container = pod["containers"][0]
        env = {e["name"]: e for e in container["env"]}
        name = container["name"]
        assert "XP_CLICKHOUSE_URL" in env, f"{name}: XP_CLICKHOUSE_URL missing"
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
        for variable in env:
            assert f"`{variable}`" in documented, f"{name}: {variable} is not a documented setting"
        assert set(mounts.values()) <= set(volumes), name
        if name == "export":  # ClickHouse only: no Kafka principal at all; the exports file on a mount
            assert not [v for v in env if v.startswith("XP_KAFKA_")], f"{name}: needs no Kafka"
            exports_file = env["XP_EXPORT_FILE"]["value"]
            assert volumes[mounts[exports_file.rsplit("/", 1)[0]]]["configMap"]["name"]
            continue
        for needed in ("XP_KAFKA_BOOTSTRAP", "XP_KAFKA_SASL_USERNAME", "XP_KAFKA_SASL_PASSWORD"):
            assert needed in env, f"{name}: {needed} missing"
        assert env["XP_KAFKA_SECURITY_PROTOCOL"]["value"] in ("SASL_SSL", "SSL")
        ca = env["XP_KAFKA_SSL_CA_LOCATION"]["value"]
        assert any(ca.startswith(path + "/") for path in mounts), f"{name}: the CA file is not on a mount"
        if name == "quality":
            reports = env["XP_QUALITY_REPORT_DIR"]["value"]
            volume = volumes[mounts[reports]]
            assert volume["persistentVolumeClaim"]["claimName"] in claims
    charted = of_kind("PersistentVolumeClaim")
    assert any(name.endswith("-quality-reports") for name in charted)
    quality = next(d for n, d in of_kind("CronJob").items() if n.endswith("quality"))
    env = {e["name"]: e for e in containers(quality)[0]["env"] if isinstance(e, dict)}
    assert env["XP_QUALITY_REPORT_DIR"]["value"] == "/var/lib/xpstream/reports"
