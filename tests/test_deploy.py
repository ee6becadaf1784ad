"""deploy/: alert rules unit-tested with promtool, configs checked with promtool and amtool,
and every metric an alert reads is one the sidecar really exports."""

from __future__ import annotations

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


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda r: r["alert"])
def test_every_metric_an_alert_reads_is_exported(rule: dict) -> None:
    # drop label matchers and grouping clauses; what is left that is not a function call is a metric
    expr = re.sub(r"\{[^}]*\}|\bby\s*\([^)]*\)|\[[^\]]*\]", "", rule["expr"])
    metrics = set(re.findall(r"\b[a-zA-Z_:][a-zA-Z0-9_:]*\b(?!\s*\()", expr))
    assert metrics, rule["expr"]
    assert metrics <= exported_sample_names(), metrics - exported_sample_names()
