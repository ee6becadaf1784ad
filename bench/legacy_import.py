"""Importing a legacy store: 100,000 and 1,000,000 episodes through `nexus import legacy`.

The legacy table (the plan's `episodic_memory`: id, agent, session, action, content of about 30
words, metadata, tags, importance, time) lives in a database of its own on the same server. Each
size is imported into a fresh clone of the migrated database by a process of its own (what
`nexus import legacy` runs), which reports its peak RSS (VmHWM); rows per second count the whole
command: reading, staging, writing with every trigger (validation, full-text and BM25 postings,
embedding queue), and validation by checksums.

Baselines, in the same run, on the same rows:
- a bare COPY of the same SELECT from the legacy database into a plain table (no index, no
  trigger): the speed of moving the bytes;
- `INSERT ... SELECT` of the same rows into the episodes table itself, one statement per 10,000
  rows, every trigger on: what the table costs whoever writes to it. The importer's own overhead is
  the import ÷ this.
- a bare COPY of the same rows into a copy of the episodes table's columns with their defaults and
  generated columns (content checksum and full-text vector) but no index, constraint or trigger:
  the ceiling the table's own definition sets for any writer (`import.schema_ceiling_ratio`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import psycopg
from psycopg import sql

from bench.harness import BenchDb, Benchmark, Figure, cloned_database, ratio
from nexus import secrets
from nexus.config import SUPERUSER
from nexus.imports import copy_between
from nexus.stack import Stack

SIZES = (100_000, 1_000_000)
LEGACY_DB = "bench_legacy"
COPY_TARGET = 0.5
RSS_TARGET_MB = 200
JOBS = 2
COLUMNS = ("id", "agent_id", "session_id", "action_type", "content", "metadata", "tags",
           "importance", "created_at")
PLAIN_TABLE = ("CREATE TABLE {} (id bigint, agent_id text, session_id text, action_type text, "
               "content text, metadata jsonb, tags text[], importance real, "
               "created_at timestamptz)")

IMPORT = """
import json, sys
from pathlib import Path
import psycopg
from nexus import imports
opts = imports.LegacyOptions(pg=sys.argv[1], mapping=Path(sys.argv[2]), source_name="bench",
                              jobs=int(sys.argv[4]))
with psycopg.connect(sys.argv[3]) as conn:
    report = imports.import_legacy(conn, opts)
peak = [l for l in open('/proc/self/status') if l.startswith('VmHWM:')][0].split()[1]
print(json.dumps({"ok": report["ok"], "episodes": report["kinds"]["episode"]["equal"],
                  "peak_rss_mb": int(peak) / 1024}))
"""

# about 30 words per episode from a vocabulary of 5,000 made-up words, frequent ones more often
LEGACY_ROWS = """
INSERT INTO {table} (agent_id, session_id, action_type, content, metadata, tags, importance,
                     created_at)
SELECT 'agent' || (g %% 10), 's' || (g %% 500),
       (ARRAY['observation', 'action', 'message'])[1 + g %% 3],
       (SELECT string_agg('w' || floor(5000 * power(random(), 3))::int, ' ')
          FROM generate_series(1, 24 + g %% 12) AS k WHERE g > 0),
       jsonb_build_object('n', g, 'source', 'legacy'), ARRAY['t' || (g %% 13), 'legacy'],
       (g %% 10) / 10.0, timestamptz '2025-01-01' + g * interval '1 second'
  FROM generate_series(%s::integer, %s::integer) AS g
"""


def dsn(st: Stack, dbname: str) -> str:
    cfg = st.cfg
    return (f"postgresql://{SUPERUSER}:{secrets.password(cfg, SUPERUSER)}@{cfg.pg_host}:"
            f"{cfg.pg_port}/{dbname}")


def make_legacy(st: Stack) -> None:
    with st.superuser_conn("postgres", autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(LEGACY_DB)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(LEGACY_DB)))
    with st.superuser_conn(LEGACY_DB, autocommit=True) as conn:
        for size in SIZES:
            table = f"episodes_{size}"
            conn.execute(sql.SQL(
                "CREATE TABLE {} (id bigserial PRIMARY KEY, agent_id text, session_id text, "
                "action_type text, content text, metadata jsonb, tags text[], importance real, "
                "created_at timestamptz)").format(sql.Identifier(table)))
            for lo in range(1, size + 1, 100_000):
                conn.execute(sql.SQL(LEGACY_ROWS).format(table=sql.Identifier(table)),
                             (lo, min(lo + 99_999, size)))
            conn.execute(sql.SQL("VACUUM ANALYZE {}").format(sql.Identifier(table)))


def copy_legacy(src: psycopg.Connection, dst: psycopg.Connection, size: int, table: str) -> None:
    copy_between(src, sql.SQL("SELECT * FROM {}").format(sql.Identifier(f"episodes_{size}")),
                 dst, table, COLUMNS, schema="public")


# the two COPY baselines: a plain table, and the episodes table's columns with their defaults and
# generated columns but no index, constraint, trigger or row security
PLAIN_COPY = sql.SQL(PLAIN_TABLE).format(sql.Identifier("timed_copy"))
SCHEMA_COPY = sql.SQL("CREATE TABLE timed_copy (LIKE nexus_memory.zep_episodic_memory"
                      " INCLUDING DEFAULTS INCLUDING GENERATED)")


def timed_copy(st: Stack, bdb: BenchDb, size: int, create: sql.Composable) -> float:
    """Seconds to COPY the legacy rows into a table of the target database made by `create`
    (named timed_copy, dropped afterwards)."""
    with st.superuser_conn(LEGACY_DB, autocommit=True) as src, \
            st.superuser_conn(bdb.name) as dst:
        dst.execute(create)
        dst.commit()
        started = time.perf_counter()
        copy_legacy(src, dst, size, "timed_copy")
        dst.commit()
        seconds = time.perf_counter() - started
        dst.execute("DROP TABLE timed_copy")
        dst.commit()
    return seconds


def table_insert(bdb: BenchDb) -> float:
    """Seconds to INSERT ... SELECT the 100k rows (copied over first) into the episodes table,
    10,000 rows per committed statement, every trigger on; undone afterwards."""
    with bdb.superuser() as conn:
        conn.execute("CREATE TABLE staged AS SELECT * FROM plain_src")
        started = time.perf_counter()
        for lo in range(1, SIZES[0] + 1, 10_000):
            conn.execute(
                "INSERT INTO nexus_memory.zep_episodic_memory (agent_id, session_id, action_type, "
                "content, metadata, tags, importance, created_at) "
                "SELECT agent_id, session_id, action_type, content, metadata, tags, importance, "
                "created_at FROM staged WHERE id BETWEEN %s AND %s", (lo, lo + 9_999))
        seconds = time.perf_counter() - started
        conn.execute("TRUNCATE nexus_memory.zep_episodic_memory CASCADE")
        conn.execute("TRUNCATE memory_system.embeddings_queue")
        conn.execute("DROP TABLE staged, plain_src")
    return seconds


def run_import(st: Stack, bdb: BenchDb, size: int, mapping: str) -> dict[str, float]:
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", IMPORT, dsn(st, LEGACY_DB), mapping,
                          dsn(st, bdb.name), str(JOBS)],
                         capture_output=True, text=True, timeout=7200, env=dict(os.environ))
    if out.returncode != 0:
        raise RuntimeError(f"import of {size} rows failed: {out.stderr[-2000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["seconds"] = time.perf_counter() - started
    assert result["ok"] and result["episodes"] == size, result
    return result


def bench_import(st: Stack) -> list[Figure]:
    make_legacy(st)
    home = st.cfg.home
    runs: dict[int, dict[str, float]] = {}
    try:
        for size in SIZES:
            mapping = home / f"mapping_{size}.toml"
            mapping.write_text(f'[episodes]\ntable = "episodes_{size}"\n\n'
                               '[working_memory]\nenabled = false\n')
            with cloned_database(st, "bench_import") as bdb:
                with bdb.superuser() as conn:
                    for i in range(10):
                        conn.execute("SELECT memory_system.agent_add(%s)", (f"agent{i}",))
                copy_seconds = timed_copy(st, bdb, size, PLAIN_COPY)
                schema_seconds = timed_copy(st, bdb, size, SCHEMA_COPY)
                if size == SIZES[0]:
                    with st.superuser_conn(LEGACY_DB, autocommit=True) as src, \
                            st.superuser_conn(bdb.name) as dst:
                        dst.execute(sql.SQL(PLAIN_TABLE).format(sql.Identifier("plain_src")))
                        copy_legacy(src, dst, size, "plain_src")
                        dst.commit()
                    insert_seconds = table_insert(bdb)
                runs[size] = run_import(st, bdb, size, str(mapping))
                runs[size]["copy_seconds"] = copy_seconds
                runs[size]["schema_seconds"] = schema_seconds
    finally:
        with st.superuser_conn("postgres", autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(LEGACY_DB)))

    small, big = runs[SIZES[0]], runs[SIZES[-1]]
    rate = {n: n / r["seconds"] for n, r in runs.items()}
    copy_rate = {n: n / r["copy_seconds"] for n, r in runs.items()}
    insert_rate = SIZES[0] / insert_seconds
    copy_ratio = rate[SIZES[-1]] / copy_rate[SIZES[-1]]
    ceiling = big["copy_seconds"] / big["schema_seconds"]
    flat = big["peak_rss_mb"] < RSS_TARGET_MB and big["peak_rss_mb"] < small["peak_rss_mb"] * 1.25
    return [
        Figure("import.rows_per_s_1m", rate[SIZES[-1]], "rows/s", baseline=copy_rate[SIZES[-1]],
               ratio=copy_ratio,
               note=f"nexus import legacy, {JOBS} writers, validation included "
                    f"({big['seconds']:.0f} s); baseline: bare COPY of the same rows "
                    f"({big['copy_seconds']:.1f} s)"),
        Figure("import.copy_ratio", copy_ratio, "ratio",
               note=f"import ÷ bare COPY at 1M; target >= {COPY_TARGET}: "
                    f"{'met' if copy_ratio >= COPY_TARGET else 'MISSED'} (100k: "
                    f"{rate[SIZES[0]] / copy_rate[SIZES[0]]:.2f})"),
        Figure("import.schema_ceiling_ratio", ceiling, "ratio",
               note=f"bare COPY into the episodes table's columns with their generated checksum "
                    f"and full-text vector, no index or trigger, ÷ bare COPY, 1M rows "
                    f"({big['schema_seconds']:.1f} vs {big['copy_seconds']:.1f} s): the most any "
                    f"writer of this table can reach, indexes and BM25 postings not counted"),
        Figure("import.table_insert_ratio", rate[SIZES[0]] / insert_rate, "ratio",
               baseline=insert_rate,
               note=f"import ÷ INSERT...SELECT into the episodes table with its triggers, 100k "
                    f"rows ({rate[SIZES[0]]:,.0f} vs {insert_rate:,.0f} rows/s): what the "
                    f"table costs anyone vs the importer's own overhead"),
        Figure("import.peak_rss_mb_100k", small["peak_rss_mb"], "MB",
               note=f"peak RSS of the importing process; target < {RSS_TARGET_MB} MB"),
        Figure("import.peak_rss_mb_1m", big["peak_rss_mb"], "MB", baseline=small["peak_rss_mb"],
               ratio=ratio(big["peak_rss_mb"], small["peak_rss_mb"]),
               note=f"flat as rows grow (baseline: 100k): {'met' if flat else 'MISSED'}"),
    ]


BENCHMARKS = [
    Benchmark("import.legacy", ("import.rows_per_s_1m", "import.copy_ratio",
                                "import.schema_ceiling_ratio", "import.table_insert_ratio",
                                "import.peak_rss_mb_100k", "import.peak_rss_mb_1m"),
              bench_import),
]
