"""deploy/: alert rules unit-tested with promtool, configs checked with promtool and amtool,
and every metric an alert reads is one the sidecar really exports."""

from __future__ import annotations

import json
import re
import subprocess
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
