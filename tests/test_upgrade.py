"""Upgrades are proven equal to fresh installs (docs/upgrading.md).

For each release point snapshotted in tests/fixtures/upgrade/ (its `migrations/` and `db/`, no git
needed): a database is built by the loader from that release's files and filled by its seed (rows
in every table, written by the roles that write them, so triggers fire), then upgraded by today's
loader. Its `pg_dump --schema-only` must equal a fresh install's (same agents, spaces and days of
the read record), and every row must still be there, unchanged in the columns both releases have.
Derived data, which a migration may rebuild (0025 re-indexes keyed facts), is checked by what it
must equal instead: generated columns their expression, the BM25 postings and statistics a recount
from the memories; the embedding queue may gain work, never lose any.
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
# the loader's bookkeeping grows with every upgrade; partitions are counted through their parent;
# generated columns are checked against their expression (GENERATED), not row by row
TABLES = """
    SELECT n.nspname, c.relname, array_agg(a.attname::text ORDER BY a.attnum)
      FROM pg_class AS c
      JOIN pg_namespace AS n ON n.oid = c.relnamespace
      JOIN pg_attribute AS a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
     WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND a.attgenerated = ''
       AND n.nspname NOT IN ('pg_catalog', 'information_schema', %s)
       AND n.nspname NOT LIKE 'pg\\_%%'
     GROUP BY n.nspname, c.relname"""
GENERATED = """
    SELECT format('%%I.%%I', n.nspname, c.relname), a.attname, pg_get_expr(d.adbin, d.adrelid)
      FROM pg_attribute AS a
      JOIN pg_class AS c ON c.oid = a.attrelid
      JOIN pg_namespace AS n ON n.oid = c.relnamespace
      JOIN pg_attrdef AS d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
     WHERE a.attgenerated = 's' AND c.relkind IN ('r', 'p') AND NOT c.relispartition
       AND n.nspname NOT IN ('pg_catalog', 'information_schema', %s)"""
# Derived from the memories, so a migration may rebuild them (0025 re-indexes keyed facts): checked
# against a recount (RECOUNT), not row by row
DERIVED = {"nexus_memory.text_postings", "nexus_memory.text_stats"}
# work a migration may add (0025 queues keyed facts to be embedded again): no item may go or change
QUEUE = "memory_system.embeddings_queue"
# The postings and statistics as they must be: recounted from content_tsv (as db/tests/07_search.sql
# does), store texts under t and facts under the kind of their validity now (_fact_kind, 0022)
DOCS = """
    WITH docs AS (
        SELECT agent_id, 'e'::"char" AS kind, id, content_tsv FROM nexus_memory.zep_episodic_memory
        UNION ALL
        SELECT agent_id, memory_system._fact_kind(valid_from, valid_to), id, content_tsv
          FROM nexus_memory.semantic_memories
        UNION ALL
        SELECT agent_id, 't', id, content_tsv FROM nexus_memory.store_texts),
    terms AS (
        SELECT d.agent_id, l.lexeme, d.kind, d.id AS doc_id,
               coalesce(array_length(l.positions, 1), 1) AS tf
          FROM docs AS d, unnest(d.content_tsv) AS l)"""
RECOUNT = {
    # postings the recount has and the table lacks, and the reverse
    "postings": DOCS + """,
    expected AS (
        SELECT *, sum(tf) OVER (PARTITION BY agent_id, kind, doc_id) AS dl FROM terms),
    actual AS (
        SELECT agent_id, lexeme, kind, doc_id, tf, dl FROM nexus_memory.text_postings)
    SELECT 'missing', * FROM (TABLE expected EXCEPT ALL TABLE actual) AS m
    UNION ALL
    SELECT 'extra', * FROM (TABLE actual EXCEPT ALL TABLE expected) AS x""",
    # agents whose documents and tokens (summed over their slots) differ from the recount
    "statistics": DOCS + """
    SELECT agent_id, coalesce(s.docs, 0) AS docs, coalesce(s.tokens, 0) AS tokens,
           coalesce(x.docs, 0) AS recounted_docs, coalesce(w.tokens, 0) AS recounted_tokens
      FROM (SELECT agent_id, sum(docs) AS docs, sum(tokens) AS tokens
              FROM nexus_memory.text_stats GROUP BY agent_id) AS s
      FULL JOIN (SELECT agent_id, count(*) AS docs FROM docs GROUP BY agent_id) AS x
           USING (agent_id)
      LEFT JOIN (SELECT agent_id, sum(tf) AS tokens FROM terms GROUP BY agent_id) AS w
           USING (agent_id)
     WHERE (coalesce(s.docs, 0), coalesce(s.tokens, 0))
           <> (coalesce(x.docs, 0), coalesce(w.tokens, 0))""",
}
# what the rows of an (upgraded) database put in its schema: its agents, its spaces (rows of both
# tables), the days of its read record (partitions)
REGISTRY = (
    "SELECT agent_id, description FROM memory_system.agents WHERE kind = 'agent' "
    "ORDER BY created_at, agent_id",
    "SELECT space_id, name, reader_role, writer_role, owner, owner_may_grant, description "
    "FROM memory_system.spaces ORDER BY created_at",
    "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits AS i "
    "JOIN pg_class AS c ON c.oid = i.inhrelid WHERE i.inhparent = 'memory_system.reads'::regclass "
    "AND pg_get_expr(c.relpartbound, c.oid) <> 'DEFAULT'",
)

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
    """Tables whose rows differ, but the derived ones (_derived_drift checks them) and work queued
    anew."""
    out = []
    for table, rows in before.items():
        if table in DERIVED:
            continue
        lost = rows - after[table]
        new = after[table] - rows if table != QUEUE else Counter()
        if lost or new:
            out.append(f"{table}: {rows.total()} rows before, {after[table].total()} after; "
                       f"{lost.total()} lost or changed, {new.total()} new")
    return out


def _derived_drift(st: Stack, cfg: Config) -> list[str]:
    """Derived data that differs from what it must be: generated columns from their expression
    (computed afresh), the BM25 postings and statistics from a recount."""
    out = []
    with _connect(st, cfg) as conn:
        for table, column, expression in conn.execute(GENERATED, (migrate.META_SCHEMA,)).fetchall():
            query = sql.SQL("SELECT count(*) FROM {} WHERE {} IS DISTINCT FROM ({})").format(
                sql.SQL(table), sql.Identifier(column), sql.SQL(expression))
            n = conn.execute(query).fetchone()[0]
            if n:
                out.append(f"{table}.{column}: {n} rows differ from {expression}")
        for what, query in RECOUNT.items():
            rows = conn.execute(query).fetchall()
            if rows:
                out.append(f"{what}: {len(rows)} rows differ from a recount, e.g. {rows[:5]}")
    return out


def _register(st: Stack, upgraded: Config, fresh: Config) -> None:
    """Gives the fresh install what the upgraded database's rows put in its schema: its agents and
    spaces (their vector partitions; their roles are the cluster's, made by the old release) and
    the days of its read record (partitions the sweep makes)."""
    with _connect(st, upgraded) as conn:
        agents, spaces, days = (conn.execute(query).fetchall() for query in REGISTRY)
    with _connect(st, fresh) as conn:
        for agent_id, description in agents:
            conn.execute("SELECT memory_system.agent_add(%s, NULL, %s)", (agent_id, description))
        for space in spaces:
            conn.execute("INSERT INTO memory_system.agents (agent_id, kind) VALUES (%s, 'space')",
                         space[:1])
            conn.execute("INSERT INTO memory_system.spaces (space_id, name, reader_role, "
                         "writer_role, owner, owner_may_grant, description) "
                         "VALUES (%s, %s, %s, %s, %s, %s, %s)", space)
        for name, bound in days:
            conn.execute(sql.SQL("CREATE TABLE nexus_parts.{} PARTITION OF memory_system.reads {}")
                         .format(sql.Identifier(name), sql.SQL(bound)))


def _roles(st: Stack) -> set[str]:
    with st.superuser_conn("postgres", autocommit=True) as conn:
        return {r for r, in conn.execute("SELECT rolname FROM pg_roles")}


@pytest.mark.parametrize("release", RELEASES)
def test_an_upgraded_database_equals_a_fresh_install(stack: Stack, release: str,
                                                    tmp_path: Path) -> None:
    with tarfile.open(FIXTURES / f"{release}.tar.gz") as tar:
        tar.extractall(tmp_path, filter="data")
    old = replace(stack.cfg, database=f"nexus_upgrade_{release}")
    fresh = replace(stack.cfg, database=f"nexus_fresh_{release}")
    # the roles of the seed's agents and spaces are the cluster's: dropped at the end
    roles = _roles(stack)
    with stack.superuser_conn("postgres", autocommit=True) as conn:
        for cfg in (old, fresh):
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(cfg.database)))
    try:
        migrate.migrate(_params(stack, old), root=tmp_path)
        with _connect(stack, old) as conn:
            conn.execute((FIXTURES / f"{release}.sql").read_text())
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
        _register(stack, old, fresh)
        upgraded, installed = schema_dump(stack, old), schema_dump(stack, fresh)
        diff = "\n".join(difflib.unified_diff(installed.splitlines(), upgraded.splitlines(),
                                              "fresh install", f"upgraded from {release}",
                                              lineterm="", n=2))
        if diff:
            pytest.fail(f"the schema upgraded from {release} differs from a fresh one:\n"
                        f"{diff[:8000]}", pytrace=False)
        changed = _differences(before, _rows(stack, old, both)) + _derived_drift(stack, old)
        if changed:
            pytest.fail(f"rows upgraded from {release} differ:\n" + "\n".join(changed),
                        pytrace=False)
    finally:
        drop_database(stack, old.database)
        drop_database(stack, fresh.database)
        with stack.superuser_conn("postgres", autocommit=True) as conn:
            for role in sorted(_roles(stack) - roles):
                conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
