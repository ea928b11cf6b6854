"""Deployment files are validated against their schemas (no Docker engine or cluster here).

docker-compose.yml goes through the compose-spec validator, Kubernetes manifests
through the official OpenAPI-derived JSON schemas (strict: unknown fields fail),
Dockerfiles through a real parser; every image tag is pinned and every file a
deployment references exists in the repository.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import compose_spec
import kubernetes_validate
import pytest
import yaml
from dockerfile_parse import DockerfileParser

ROOT = Path(__file__).resolve().parents[2]
K8S_VERSION = "1.30.0"
PINNED = re.compile(r"^[\w.\-/]+:(?!latest$)[\w][\w.\-]*$")


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _k8s_docs() -> list[tuple[str, dict]]:
    docs = []
    for path in sorted((ROOT / "deploy/k8s").glob("*.yaml")):
        docs += [(path.name, d) for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def test_compose_file_is_valid_against_the_compose_spec() -> None:
    # PyYAML resolves the `<<` merge keys exactly as docker compose does before validation.
    spec = compose_spec.PyCompose.from_json(json.dumps(_compose()))
    spec.validate()
    assert {"triton", "triton-cpu", "ranking", "gateway", "qdrant", "redis", "prometheus", "grafana"} <= set(
        spec.service_names()
    )


def test_compose_rejects_a_broken_file() -> None:
    """Guards the validator itself: a service on an undefined network must fail."""
    broken = _compose()
    broken["services"]["gateway"]["networks"] = ["nowhere"]
    with pytest.raises(ValueError):
        compose_spec.PyCompose.from_json(json.dumps(broken)).validate()


def test_compose_images_are_pinned_and_referenced_files_exist() -> None:
    for name, svc in _compose()["services"].items():
        assert PINNED.match(svc["image"]), f"{name}: image {svc['image']!r} is not pinned"
        build = svc.get("build")
        if build:
            assert (ROOT / build["context"] / build["dockerfile"]).is_file(), f"{name}: missing Dockerfile"
        for volume in svc.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name}: bind mount {source} does not exist"


def test_dockerfiles_parse_pin_their_base_and_copy_existing_paths() -> None:
    dockerfiles = sorted((ROOT / "deploy/docker").glob("*.Dockerfile"))
    assert len(dockerfiles) >= 2
    for path in dockerfiles:
        parser = DockerfileParser(fileobj=path.open("rb"))
        assert PINNED.match(parser.baseimage), f"{path.name}: base image {parser.baseimage!r} not pinned"
        for instr in parser.structure:
            if instr["instruction"] == "COPY" and "--from" not in instr["value"]:
                *sources, _dest = instr["value"].split()
                for src in sources:
                    if "*" in src:
                        continue
                    assert (ROOT / src).exists(), f"{path.name}: COPY source {src} missing"
        if "ENTRYPOINT" in parser.content:
            for script in re.findall(r"deploy/docker/[\w.\-]+\.sh", parser.content):
                assert (ROOT / script).is_file()


def test_kubernetes_manifests_validate_strictly() -> None:
    docs = _k8s_docs()
    kinds = {d["kind"] for _, d in docs}
    assert {"Deployment", "StatefulSet", "Service", "HorizontalPodAutoscaler", "ConfigMap"} <= kinds
    for fname, doc in docs:
        if doc["kind"] in ("Kustomization", "ServiceMonitor"):  # not in the core schemas
            continue
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_kubernetes_validation_catches_typos() -> None:
    _, deployment = next((f, d) for f, d in _k8s_docs() if d["kind"] == "Deployment")
    deployment["spec"]["replicaz"] = 2
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)


def test_kubernetes_images_pinned_gpu_and_grpc_probes() -> None:
    docs = _k8s_docs()
    for fname, doc in docs:
        if doc["kind"] in ("Deployment", "StatefulSet"):
            for c in doc["spec"]["template"]["spec"]["containers"]:
                assert PINNED.match(c["image"]), f"{fname}: {c['image']} not pinned"
    triton = next(d for _, d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "triton")
    pod = triton["spec"]["template"]["spec"]
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert pod["nodeSelector"]
    for name in ("gateway", "ranking"):
        dep = next(d for _, d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == name)
        container = dep["spec"]["template"]["spec"]["containers"][0]
        assert "grpc" in container["readinessProbe"] and "grpc" in container["livenessProbe"]
    hpas = {d["spec"]["scaleTargetRef"]["name"] for _, d in docs if d["kind"] == "HorizontalPodAutoscaler"}
    assert {"gateway", "ranking", "triton"} <= hpas
    kustomization = yaml.safe_load((ROOT / "deploy/k8s/kustomization.yaml").read_text())
    for resource in kustomization["resources"]:
        assert (ROOT / "deploy/k8s" / resource).is_file()
    for _, sm in ((f, d) for f, d in docs if d["kind"] == "ServiceMonitor"):
        assert sm["apiVersion"] == "monitoring.coreos.com/v1" and sm["spec"]["endpoints"]


def _defined_metric_names() -> set[str]:
    """Metric names created by prometheus_client anywhere in the project's code."""
    names: set[str] = set()
    pattern = re.compile(r"(?:Counter|Histogram|Gauge|Summary|Info)\(\s*[\"']([a-z_:][a-z0-9_:]*)[\"']")
    for path in [*ROOT.glob("homesearch/**/*.py"), *ROOT.glob("services/**/*.py"), *ROOT.glob("gateway/**/*.py")]:
        names |= set(pattern.findall(path.read_text()))
    return names


def test_dashboard_queries_only_metrics_that_exist() -> None:
    dashboard = json.loads((ROOT / "deploy/grafana/dashboards/homesearch.json").read_text())
    panels = dashboard["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    defined = _defined_metric_names()
    # A histogram `x` is queried as x_bucket/x_count/x_sum; a counter `x_total` as itself.
    series = defined | {f"{m}{s}" for m in defined for s in ("_bucket", "_count", "_sum")}
    for panel in panels:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            for metric in re.findall(r"\b((?:grpc_server|homesearch|nv)_[a-z0-9_]+)", target["expr"]):
                if metric.startswith("nv_"):
                    continue  # Triton's own metrics
                assert metric in series, f"panel {panel['title']!r} queries {metric}, which no service defines"


def test_prometheus_scrapes_the_metrics_ports_compose_configures() -> None:
    prom = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    targets = {t for job in prom["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]}
    services = _compose()["services"]
    for name, var in (("gateway", "HOMESEARCH_GATEWAY_METRICS_PORT"), ("ranking", "HOMESEARCH_RANKING_METRICS_PORT")):
        assert f"{name}:{services[name]['environment'][var]}" in targets


def _ingress_sources(docs, app: str) -> set[str]:
    """App names whose pods a NetworkPolicy lets reach pods of ``app`` (namespace selectors as 'ns:<name>',
    a rule without ``from`` as '*')."""
    out: set[str] = set()
    for _, d in docs:
        if d["kind"] != "NetworkPolicy":
            continue
        sel = d["spec"]["podSelector"].get("matchLabels", {})
        if sel and sel.get("app.kubernetes.io/name") != app:
            continue
        for rule in d["spec"].get("ingress", []):
            if "from" not in rule:
                out.add("*")
            for peer in rule.get("from", []):
                if "podSelector" in peer:
                    out.add(peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"])
                if "namespaceSelector" in peer:
                    out.add("ns:" + peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"])
    return out


def test_network_policies_let_only_the_intended_callers_in() -> None:
    docs = _k8s_docs()
    deny = [d for _, d in docs if d["kind"] == "NetworkPolicy" and d["spec"]["podSelector"] == {}]
    assert deny and deny[0]["spec"]["policyTypes"] == ["Ingress"] and "ingress" not in deny[0]["spec"]
    assert _ingress_sources(docs, "gateway") == {"*", "ns:monitoring"}
    assert _ingress_sources(docs, "ranking") == {"gateway", "indexer", "ns:monitoring"}
    for internal in ("triton", "redis"):
        assert _ingress_sources(docs, internal) <= {"ranking", "ns:monitoring"}, internal
    assert _ingress_sources(docs, "qdrant") == {"ranking", "qdrant"}


def test_internal_credentials_come_from_secrets_never_inline() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    svc = compose["services"]
    assert set(svc["ranking"]["secrets"]) == {"redis_url", "ranking_service_tokens", "cache_hmac_key"}
    assert svc["gateway"]["secrets"] == ["gateway_ranking_token"]
    assert svc["ranking"]["environment"]["HOMESEARCH_RANKING_SERVICE_TOKENS_FILE"].startswith("/run/secrets/")
    assert "HOMESEARCH_RANKING_REDIS_URL" not in svc["ranking"]["environment"]
    assert "--user default off" in " ".join(svc["redis"]["command"])
    for _, d in _k8s_docs():
        if d["kind"] == "Deployment" and d["metadata"]["name"] in ("ranking", "gateway", "redis"):
            pod = d["spec"]["template"]["spec"]
            assert any(v.get("secret", {}).get("secretName") == "homesearch-internal" for v in pod["volumes"])
        if d["kind"] == "ConfigMap":
            assert not any("redis://" in str(v) and "@" in str(v) for v in d["data"].values())
    triton = (ROOT / "deploy/docker/triton.Dockerfile").read_text()
    assert "FROM nvcr.io/nvidia/tritonserver:25.08-py3" in triton  # includes the 2025 python-backend fixes
    assert "--http-restricted-api" in (ROOT / "deploy/docker/triton-entrypoint.sh").read_text()
