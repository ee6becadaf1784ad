"""deploy/: alert rules unit-tested with promtool, configs checked with promtool and amtool,
and every metric an alert reads is one the sidecar really exports."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sidecar.metrics import Metrics

ROOT = Path(__file__).resolve().parents[1]
PROMETHEUS = ROOT / "deploy" / "prometheus"
PROMTOOL = ROOT / ".cache" / "prometheus" / "usr" / "bin" / "promtool"
AMTOOL = ROOT / ".cache" / "alertmanager" / "usr" / "bin" / "amtool"


def run(*cmd: object, cwd: Path = PROMETHEUS) -> str:
    result = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def test_the_tools_are_installed_by_make() -> None:
    assert PROMTOOL.exists() and AMTOOL.exists(), "scripts/install-system-deps unpacks them"


def test_alert_rules_fire_and_do_not_fire() -> None:
    out = run(PROMTOOL, "test", "rules", "alerts_test.yml")
    assert "SUCCESS" in out


def test_rules_and_prometheus_config_are_valid() -> None:
    assert "4 rules found" in run(PROMTOOL, "check", "rules", "alerts.yml")
    run(PROMTOOL, "check", "config", "prometheus.yml")


def test_alertmanager_config_is_valid() -> None:
    run(AMTOOL, "check-config", ROOT / "deploy" / "alertmanager" / "alertmanager.yml")


def exported_sample_names() -> set[str]:
    suffixes = {"counter": ("_total",), "gauge": ("",), "info": ("_info",),
                "histogram": ("_bucket", "_count", "_sum")}
    names = {"up"}  # Prometheus's own, per scrape target
    for family in Metrics().registry.collect():
        names |= {family.name + s for s in suffixes[family.type]}
    return names


def alert_rules() -> list[dict]:
    doc = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def test_the_four_alerts_exist() -> None:
    assert [r["alert"] for r in alert_rules()] == [
        "EmbeddingsQueueDepthHigh", "EmbeddingsWorkerDown", "EmbeddingsHighDLQRate",
        "APIHighLatency"]


def metric_names(expr: str) -> set[str]:
    """The metrics a PromQL expression reads."""
    # drop label matchers, ranges and grouping clauses; what is left that is not a call is a metric
    expr = re.sub(r"\{[^}]*\}|\bby\s*\([^)]*\)|\[[^\]]*\]", "", expr)
    return set(re.findall(r"\b[a-zA-Z_:][a-zA-Z0-9_:]*\b(?!\s*\()", expr))


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda r: r["alert"])
def test_every_metric_an_alert_reads_is_exported(rule: dict) -> None:
    metrics = metric_names(rule["expr"])
    assert metrics, rule["expr"]
    assert metrics <= exported_sample_names(), metrics - exported_sample_names()


GRAFANA = ROOT / "deploy" / "grafana"


def dashboard_panels() -> list[dict]:
    return json.loads((GRAFANA / "dashboards" / "nexus.json").read_text())["panels"]


@pytest.mark.parametrize("panel", dashboard_panels(), ids=lambda p: p["title"])
def test_every_dashboard_panel_reads_exported_metrics(panel: dict) -> None:
    datasources = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())["datasources"]
    assert panel["targets"], "a panel without a query"
    for target in panel["targets"]:
        metrics = metric_names(target["expr"])
        assert metrics, target["expr"]
        assert metrics <= exported_sample_names(), metrics - exported_sample_names()
        assert target["datasource"]["uid"] == datasources[0]["uid"]


def test_the_dashboard_covers_what_operators_watch() -> None:
    exprs = " ".join(t["expr"] for p in dashboard_panels() for t in p["targets"])
    for metric in ("embeddings_queue_depth", "embeddings_processed_total",
                   "embeddings_processing_latency_seconds_bucket", "api_latency_seconds_bucket",
                   "embeddings_dead_total", "embeddings_failures_total",
                   "embed_cache_lookups_total", "cache_errors_total"):
        assert metric in exprs, metric
    provider = yaml.safe_load(
        (GRAFANA / "provisioning" / "dashboards" / "nexus.yml").read_text())["providers"][0]
    assert provider["type"] == "file"


# -- docker compose (Docker does not run here: the file is checked as data) --------------------
DEPLOY = ROOT / "deploy"


def compose() -> dict:
    return yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())


def test_compose_services_and_network() -> None:
    doc = compose()
    assert set(doc["services"]) == {"postgres", "redis", "migrate", "sidecar", "mcp",
                                    "prometheus", "alertmanager", "grafana"}
    assert list(doc["networks"]) == ["nexus"]
    for name, service in doc["services"].items():
        assert service["networks"] == ["nexus"], name
    assert {"pgdata", "prometheus-data", "grafana-data"} <= set(doc["volumes"])


def test_every_long_running_service_has_a_health_check_and_waits_on_health() -> None:
    services = compose()["services"]
    one_shot = {name for name, s in services.items() if s.get("restart") == "no"}
    assert one_shot == {"migrate"}
    for name, service in services.items():
        if name not in one_shot:
            assert service.get("healthcheck", {}).get("test"), f"{name} has no health check"
        for dependency, spec in service.get("depends_on", {}).items():
            expected = ("service_completed_successfully" if dependency in one_shot
                        else "service_healthy")
            assert spec["condition"] == expected, (name, dependency)


def test_images_are_pinned() -> None:
    for name, service in compose()["services"].items():
        image = service["image"]
        repository, _, tag = image.rpartition(":")
        assert repository and tag and tag != "latest", f"{name}: {image} is not pinned"
        assert re.search(r"\d", tag), f"{name}: {image} is not pinned to a version"
    assert compose()["services"]["postgres"]["image"].startswith("pgvector/pgvector:")
    assert compose()["services"]["redis"]["image"].startswith("redis:7.4")


def test_secrets_are_files_never_literals() -> None:
    doc = compose()
    declared = doc["secrets"]
    for name, spec in declared.items():
        assert set(spec) == {"file"} and spec["file"] == f"./secrets/{name}", name
    for name, service in doc["services"].items():
        mounted = set(service.get("secrets", []))
        assert mounted <= set(declared), name
        for key, value in (service.get("environment") or {}).items():
            if "PASSWORD" in key:
                assert key.endswith("_FILE"), f"{name}: {key} holds a literal password"
                secret = str(value).removeprefix("/run/secrets/")
                assert secret in mounted, f"{name}: {key} points at {value}, not mounted"
    text = (DEPLOY / "docker-compose.yml").read_text()
    assert "requirepass \"$$(cat /run/secrets/redis_password)\"" in text


def test_the_mcp_service_serves_http_with_its_own_secret_only() -> None:
    mcp = compose()["services"]["mcp"]
    assert mcp["command"][:3] == ["nexus", "mcp", "--http"]
    port = mcp["command"][mcp["command"].index("--port") + 1]
    assert mcp["ports"] == [f"${{MCP_PORT:-{port}}}:{port}"]
    assert f"127.0.0.1:{port}/health" in " ".join(mcp["healthcheck"]["test"])
    # nexus_app and nothing else: no owner, worker or Redis password
    assert mcp["secrets"] == ["nexus_app_password"]
    assert mcp["environment"]["NEXUS_APP_PASSWORD_FILE"] == "/run/secrets/nexus_app_password"
    assert mcp["environment"]["NEXUS_EMBED_URL"] == "http://sidecar:58080"
    assert mcp["depends_on"] == {"migrate": {"condition": "service_completed_successfully"},
                                 "sidecar": {"condition": "service_healthy"}}


def test_every_variable_is_documented_in_env_example() -> None:
    used = set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)", (DEPLOY / "docker-compose.yml").read_text()))
    documented = set(re.findall(r"^([A-Z_][A-Z0-9_]*)=", (DEPLOY / ".env.example").read_text(),
                                re.MULTILINE))
    assert used <= documented, used - documented
    assert not re.search(r"PASSWORD\s*=", (DEPLOY / ".env.example").read_text())


def test_secrets_init_writes_what_compose_mounts(tmp_path: Path) -> None:
    nexus = Path(sys.executable).parent / "nexus"
    result = subprocess.run([str(nexus), "secrets", "init", "--compose"], capture_output=True,
                            text=True, env={"PATH": "/usr/bin:/bin", "NEXUS_HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    files = {p.name: p for p in (tmp_path / "secrets").iterdir()}
    assert set(files) == set(compose()["secrets"])
    for path in files.values():
        assert path.stat().st_mode & 0o777 == 0o600
        assert re.fullmatch(r"[A-Za-z0-9]{32}\n", path.read_text())


def test_the_sidecar_image_installs_cpu_torch_first_and_runs_unprivileged() -> None:
    text = (DEPLOY / "sidecar" / "Dockerfile").read_text()
    torch_line = text.index("torch==2.13.0")
    assert "download.pytorch.org/whl/cpu" in text[:text.index("\n", torch_line)]
    assert torch_line < text.index("pip install -e .")
    assert re.search(r"^USER 10001$", text, re.MULTILINE)
    assert "HEALTHCHECK" in text
    assert re.search(r"^FROM python:3\.11\.\d+-slim-bookworm$", text, re.MULTILINE)
