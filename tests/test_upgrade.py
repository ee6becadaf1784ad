"""Upgrades are proven equal to fresh installs (docs/upgrading.md).

For each release point snapshotted in tests/fixtures/upgrade/ (its `migrations/` and `db/`, no git
needed): a database is built by the loader from that release's files and filled by its seed (rows
in every table, written by the roles that write them, so triggers fire), then upgraded by today's
loader. Its `pg_dump --schema-only` must equal a fresh install's (same agents), and every row must
still be there, unchanged in the columns both releases have.
"""

from __future__ import annotations

import difflib
import hashlib
import tarfile
from collections import Counter
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from conftest import connect_as, drop_database, schema_dump, superuser_password
from nexus import migrate
from nexus.config import SUPERUSER, Config
from nexus.stack import Stack

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "upgrade"
RELEASES = sorted(p.name.removesuffix(".tar.gz") for p in FIXTURES.glob("*.tar.gz"))
# the loader's bookkeeping grows with every upgrade; partitions are counted through their parent
TABLES = """
    SELECT n.nspname, c.relname, array_agg(a.attname::text ORDER BY a.attnum)
      FROM pg_class AS c
      JOIN pg_namespace AS n ON n.oid = c.relnamespace
      JOIN pg_attribute AS a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
     WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
       AND n.nspname NOT IN ('pg_catalog', 'information_schema', %s)
       AND n.nspname NOT LIKE 'pg\\_%%'
     GROUP BY n.nspname, c.relname"""

Columns = dict[tuple[str, str], list[str]]


def _connect(st: Stack, cfg: Config) -> psycopg.Connection:
    return connect_as(cfg, SUPERUSER, superuser_password(st), autocommit=True)


def _params(st: Stack, cfg: Config) -> dict[str, str]:
    return {"host": cfg.pg_host, "port": str(cfg.pg_port), "dbname": cfg.database,
            "user": SUPERUSER, "password": superuser_password(st)}


def _columns(st: Stack, cfg: Config) -> Columns:
    with _connect(st, cfg) as conn:
        return {(s, t): cols for s, t, cols in conn.execute(TABLES, (migrate.META_SCHEMA,))}


def _rows(st: Stack, cfg: Config, columns: Columns) -> dict[str, Counter[str]]:
    """Per table, the digests of its rows read through `columns` (a multiset)."""
    rows = {}
    with _connect(st, cfg) as conn:
        for (schema, table), cols in sorted(columns.items()):
            query = sql.SQL("SELECT r::text FROM (SELECT {} FROM {}) AS r").format(
                sql.SQL(", ").join(map(sql.Identifier, cols)), sql.Identifier(schema, table))
            rows[f"{schema}.{table}"] = Counter(
                hashlib.sha256(r[0].encode()).hexdigest() for r in conn.execute(query))
    return rows


def _differences(before: dict[str, Counter[str]], after: dict[str, Counter[str]]) -> list[str]:
    out = []
    for table, rows in before.items():
        lost, new = rows - after[table], after[table] - rows
        if lost or new:
            out.append(f"{table}: {rows.total()} rows before, {after[table].total()} after; "
                       f"{lost.total()} lost or changed, {new.total()} new")
    return out


@pytest.mark.parametrize("release", RELEASES)
def test_an_upgraded_database_equals_a_fresh_install(stack: Stack, release: str,
                                                    tmp_path: Path) -> None:
    with tarfile.open(FIXTURES / f"{release}.tar.gz") as tar:
        tar.extractall(tmp_path, filter="data")
    old = replace(stack.cfg, database=f"nexus_upgrade_{release}")
    fresh = replace(stack.cfg, database=f"nexus_fresh_{release}")
    agents: list[tuple[str, str]] = []
    with stack.superuser_conn("postgres", autocommit=True) as conn:
        for cfg in (old, fresh):
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(cfg.database)))
    try:
        migrate.migrate(_params(stack, old), root=tmp_path)
        with _connect(stack, old) as conn:
            conn.execute((FIXTURES / f"{release}.sql").read_text())
            agents = conn.execute("SELECT agent_id, description FROM memory_system.agents "
                                  "ORDER BY created_at, agent_id").fetchall()
        # a fresh install, by today's loader (not the template: it holds pgTAP and test helpers)
        migrate.migrate(_params(stack, fresh))
        old_columns, new_columns = _columns(stack, old), _columns(stack, fresh)
        # the columns both releases have; a table today's schema lacks would lose its rows
        gone = sorted(f"{s}.{t}" for s, t in old_columns if (s, t) not in new_columns)
        assert not gone, f"tables of {release} that an upgrade would drop: {gone}"
        both = {key: [c for c in cols if c in new_columns[key]]
                for key, cols in old_columns.items()}
        before = _rows(stack, old, both)
        empty = sorted(table for table, rows in before.items() if not rows)
        assert not empty, f"tests/fixtures/upgrade/{release}.sql leaves tables empty: {empty}"

        result = migrate.migrate(_params(stack, old))
        assert result.applied == [p.stem for p in migrate.migration_files()
                                  if not (tmp_path / "migrations" / p.name).exists()]
        with _connect(stack, fresh) as conn:
            for agent_id, description in agents:
                conn.execute("SELECT memory_system.agent_add(%s, NULL, %s)",
                             (agent_id, description))
        upgraded, installed = schema_dump(stack, old), schema_dump(stack, fresh)
        diff = "\n".join(difflib.unified_diff(installed.splitlines(), upgraded.splitlines(),
                                              "fresh install", f"upgraded from {release}",
                                              lineterm="", n=2))
        if diff:
            pytest.fail(f"the schema upgraded from {release} differs from a fresh one:\n"
                        f"{diff[:8000]}", pytrace=False)
        changed = _differences(before, _rows(stack, old, both))
        if changed:
            pytest.fail(f"rows upgraded from {release} differ:\n" + "\n".join(changed),
                        pytrace=False)
    finally:
        drop_database(stack, old.database)
        drop_database(stack, fresh.database)
        with stack.superuser_conn("postgres", autocommit=True) as conn:
            for agent_id, _ in agents:
                conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(agent_id)))
