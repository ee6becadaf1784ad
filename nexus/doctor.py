"""`nexus doctor`: the plan's final validation checklist against the running stack, each item
with its evidence."""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psycopg

from nexus import backup, migrate
from nexus.stack import Stack

ALERTS = migrate.PROJECT_ROOT / "deploy" / "prometheus" / "alerts.yml"
PROMTOOL = migrate.PROJECT_ROOT / ".cache" / "prometheus" / "usr" / "bin" / "promtool"
REQUIRED_METRICS = ("embeddings_processed_total", "embeddings_queue_depth",
                    "embeddings_processing_latency_seconds", "embeddings_dead_total",
                    "api_requests_total", "api_latency_seconds")
STUCK_PENDING_MINUTES = 10
# the alerts docs/troubleshooting.md answers; others may be added beside them
REQUIRED_ALERTS = ("EmbeddingsQueueDepthHigh", "EmbeddingsWorkerDown", "EmbeddingsHighDLQRate",
                   "APIHighLatency")


@dataclass
class Check:
    name: str
    ok: bool
    evidence: str


def _http(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except (urllib.error.URLError, OSError) as exc:
        return 0, str(exc)


def _db_checks(conn: psycopg.Connection) -> list[Check]:
    applied = {r[0] for r in conn.execute(
        "SELECT migration_id FROM nexus_migrations._yoyo_migration").fetchall()}
    files = {p.stem for p in migrate.migration_files()}
    missing = sorted(files - applied)
    checks = [Check("schema at the latest migration", not missing,
                    f"{len(applied)} applied of {len(files)}"
                    + (f"; missing: {', '.join(missing)}" if missing else ""))]
    total, embedded, dead, expired, old = conn.execute(
        "SELECT * FROM memory_system.embedding_report(make_interval(mins => %s))",
        (STUCK_PENDING_MINUTES,)).fetchone()
    checks.append(Check("every episode embedded", embedded == total,
                        f"{embedded} of {total} episodes have a vector of their current content "
                        "(whitespace-only ones need none)"))
    checks.append(Check("nothing dead", dead == 0, f"{dead} dead items"))
    checks.append(Check("nothing stuck", expired == 0 and old == 0,
                        f"{expired} items with an expired lease, {old} pending for over "
                        f"{STUCK_PENDING_MINUTES} minutes"))
    return checks


def _alerts_check(path: Path = ALERTS) -> Check:
    """The alert rules parse (and pass promtool where installed) and include REQUIRED_ALERTS."""
    import yaml  # here: every `nexus` command imports this module, few run the doctor

    rules = [r["alert"] for g in yaml.safe_load(path.read_text())["groups"] for r in g["rules"]]
    if PROMTOOL.exists():
        result = subprocess.run([str(PROMTOOL), "check", "rules", str(path)],
                                capture_output=True, text=True)
        ok = result.returncode == 0
        detail = "promtool: valid" if ok else f"promtool: {result.stdout}{result.stderr}"
    else:
        ok, detail = True, "promtool not installed (make setup): parsed only"
    missing = [a for a in REQUIRED_ALERTS if a not in rules]
    if missing:
        detail += f"; missing: {', '.join(missing)}"
    return Check("alerts loaded", ok and not missing, f"{', '.join(rules)}; {detail}")


def _backup_check(stack: Stack) -> Check:
    backups = sorted((stack.cfg.home / "backups").glob("*/manifest.json"),
                     key=lambda p: p.stat().st_mtime)
    if not backups:
        return Check("last backup restorable", False,
                     f"no backup in {stack.cfg.home / 'backups'} (nexus backup)")
    directory: Path = backups[-1].parent
    try:
        manifest = backup.verify(directory)
    except backup.BackupError as exc:
        return Check("last backup restorable", False, str(exc))
    listing = subprocess.run(
        [stack.pg.bin("pg_restore"), "--list", str(directory / backup.PG_FILE)],
        capture_output=True, text=True)
    ok = listing.returncode == 0
    return Check("last backup restorable", ok,
                 f"{directory.name} of {manifest['created_at']}: checksums match, "
                 + ("pg_restore reads its table of contents" if ok else listing.stderr.strip()))


def run(stack: Stack) -> list[Check]:
    checks: list[Check] = []
    try:
        with stack.superuser_conn(autocommit=True) as conn:
            version = conn.execute("SHOW server_version").fetchone()[0]
            checks.append(Check("PostgreSQL reachable", True, f"PostgreSQL {version}"))
            checks += _db_checks(conn)
    except psycopg.Error as exc:
        checks.append(Check("PostgreSQL reachable", False, str(exc).strip()))
    base = f"http://127.0.0.1:{stack.cfg.http_port}"
    status, body = _http(f"{base}/health")
    try:
        health = json.loads(body)["status"]
    except (ValueError, KeyError, TypeError):
        health = f"no answer ({body[:100]})"
    checks.append(Check("health green", status == 200 and health == "ok",
                        f"GET /health: {status} {health}"))
    status, body = _http(f"{base}/metrics")
    missing = [m for m in REQUIRED_METRICS if m not in body]
    found = (f"missing {', '.join(missing)}" if missing
             else f"{len(REQUIRED_METRICS)} required present")
    checks.append(Check("metrics exported", status == 200 and not missing,
                        f"GET /metrics: {status}; {found}"))
    checks.append(_alerts_check())
    checks.append(_backup_check(stack))
    return checks


def report(checks: list[Check], out: Callable[[str], None] = print) -> bool:
    for c in checks:
        out(f"{'PASS' if c.ok else 'FAIL'}  {c.name:<32} {c.evidence}")
    ok = all(c.ok for c in checks)
    out("all checks passed" if ok else f"{sum(not c.ok for c in checks)} checks failed")
    return ok
