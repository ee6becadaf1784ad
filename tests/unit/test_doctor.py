"""`nexus doctor`'s alert check: the four alerts the runbook answers must be there; a fifth one
beside them is fine (it used to fail the check: exactly four were required)."""

from __future__ import annotations

from pathlib import Path

import yaml

from nexus import doctor


def rules_file(tmp_path: Path, alerts: list[str]) -> Path:
    rules = [{"alert": a, "expr": "vector(1) > 0", "for": "5m", "labels": {"severity": "page"},
              "annotations": {"summary": a}} for a in alerts]
    path = tmp_path / "alerts.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "nexus", "rules": rules}]}))
    return path


def test_the_shipped_rules_pass() -> None:
    check = doctor._alerts_check()
    assert check.ok, check.evidence


def test_a_fifth_alert_is_fine_a_missing_one_is_not(tmp_path: Path) -> None:
    five = doctor._alerts_check(rules_file(tmp_path, [*doctor.REQUIRED_ALERTS, "DiskAlmostFull"]))
    assert five.ok, five.evidence
    three = doctor._alerts_check(rules_file(tmp_path, list(doctor.REQUIRED_ALERTS[1:])))
    assert not three.ok and f"missing: {doctor.REQUIRED_ALERTS[0]}" in three.evidence
