"""`nexus import legacy`: the whole import of an old store, from checks to validation."""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from nexus.imports.common import (
    ADAPTATIONS,
    API_MAX_CONTENT_BYTES,
    BATCH_ROWS,
    IMPORT_MAX_CONTENT_BYTES,
    STAGE_COLUMNS,
    ImportFailed,
)
from nexus.imports.ledger import (
    begin_import,
    check_agents,
    finish,
    stage_checks_from,
    validate,
    wait_embedded,
    write_batches,
)
from nexus.imports.legacy_pg import (
    TableMap,
    agent_expr,
    connect_source,
    describe_dsn,
    episode_check_query,
    episode_query,
    live_filter,
    load_mapping,
    resolve_tables,
    table_ident,
    working_memory_query,
)
from nexus.imports.legacy_redis import redis_agents, redis_rows, redis_source
from nexus.imports.staging import Progress, copy_between, copy_rows


# -- nexus import legacy -------------------------------------------------------------------------
@dataclass
class LegacyOptions:
    pg: str
    redis_url: str | None = None
    redis_rdb: Path | None = None
    mapping: Path | None = None
    agent: str | None = None
    source_name: str = "legacy"
    batch: int = BATCH_ROWS
    wait: float | None = None
    # parallel writers of episodes: the work is the server's (text index, queue), one core each
    jobs: int = 2
    # what to adapt instead of rejecting (ADAPTATIONS): metadata that is not a JSON object is
    # kept as {"legacy_metadata": text}; content over the API's limit is kept whole up to
    # max_content_bytes. Each adapted row is counted and listed in the report.
    adapt: frozenset[str] = frozenset()
    max_content_bytes: int = IMPORT_MAX_CONTENT_BYTES

    def adapt_options(self) -> dict[str, Any] | None:
        """What memory_system.imports.adapt records for the SQL that writes the rows."""
        unknown = sorted(self.adapt - set(ADAPTATIONS))
        if unknown:
            raise ImportFailed(f"--adapt {', '.join(unknown)}: can adapt "
                               f"{', '.join(ADAPTATIONS)}")
        if self.max_content_bytes < API_MAX_CONTENT_BYTES:
            raise ImportFailed(f"--max-content-bytes must be at least the API's limit, "
                               f"{API_MAX_CONTENT_BYTES}")
        options: dict[str, Any] = {}
        if "metadata" in self.adapt:
            options["metadata"] = True
        if "oversize" in self.adapt:
            options["max_content_bytes"] = self.max_content_bytes
        return options or None


def _episode_writer(target: psycopg.Connection, import_id: int, tm: TableMap, opts: LegacyOptions,
                    part: int, progress: Progress) -> dict[str, int]:
    """One parallel writer: its slice of the source, staged in its own session, then written."""
    with psycopg.connect(target.info.dsn, password=target.info.password) as conn, \
            connect_source(opts.pg) as src:
        conn.execute("SET TIME ZONE 'UTC'")
        conn.execute("SELECT memory_system.import_stage()")
        copy_between(src, episode_query(tm, opts.source_name, opts.agent, part, opts.jobs),
                     conn, "nexus_import_episode", STAGE_COLUMNS["episode"])
        conn.commit()
        return write_batches(conn, import_id, "episode", opts.batch, progress=progress)


def import_episodes(target: psycopg.Connection, import_id: int, tm: TableMap,
                    opts: LegacyOptions, total: int) -> dict[str, int]:
    """The source's episodes, by `opts.jobs` writers in parallel (each a session of its own)."""
    progress = Progress("episodes", total)
    with ThreadPoolExecutor(max_workers=opts.jobs) as pool:
        parts = list(pool.map(lambda j: _episode_writer(target, import_id, tm, opts, j, progress),
                              range(opts.jobs)))
    progress.close()
    return {k: sum(p[k] for p in parts) for k in parts[0]}


def import_legacy(target: psycopg.Connection, opts: LegacyOptions,
                  create_agent: Callable[[str], None] | None = None) -> dict[str, Any]:
    """The whole legacy import: checks, staging, batches, validation. Returns the report."""
    mapping = load_mapping(opts.mapping)
    adapt = opts.adapt_options()
    if opts.redis_url and opts.redis_rdb:
        raise ImportFailed("give --redis or --redis-rdb, not both")
    source = describe_dsn(opts.pg)
    with connect_source(opts.pg) as src, redis_source(opts.redis_url, opts.redis_rdb) as rds:
        # everything that can be wrong with the source is found before anything is written
        tables = resolve_tables(src, mapping)
        if not tables and not rds:
            raise ImportFailed("nothing to import: every table is disabled and no Redis is given")
        agents: set[str | None] = set()
        counts: dict[str, int] = {}
        for part, tm in tables.items():
            counts[part] = int(src.execute(sql.SQL("SELECT count(*) FROM {}").format(
                table_ident(tm.table))).fetchone()[0])  # type: ignore[index]
            agents |= {r[0] for r in src.execute(sql.SQL("SELECT DISTINCT {} FROM {}").format(
                agent_expr(tm, opts.agent), table_ident(tm.table)))}
        agents |= redis_agents(rds, mapping.redis_pattern, opts.agent)
        check_agents(target, agents, create_agent)
        target.commit()

        import_id = begin_import(target, "legacy", source + (" + redis" if rds else ""), adapt)

        def stage_working_memory() -> int:
            target.execute("TRUNCATE pg_temp.nexus_import_working_memory")
            if "working_memory" in tables:
                copy_between(src, working_memory_query(tables["working_memory"], opts.source_name,
                                                       opts.agent),
                             target, "nexus_import_working_memory", STAGE_COLUMNS["working_memory"])
            live = redis_rows(rds, mapping.redis_pattern, opts.agent)
            copy_rows(target, "nexus_import_working_memory", STAGE_COLUMNS["working_memory"], live)
            row = target.execute("SELECT memory_system.import_dedupe_working_memory()").fetchone()
            return int(row[0])  # type: ignore[index]

        def fill_checks() -> None:
            target.execute("TRUNCATE pg_temp.nexus_import_check")
            if "episodes" in tables:
                query = episode_check_query(tables["episodes"], opts.source_name, opts.agent)
                copy_between(src, query, target, "nexus_import_check",
                             ("kind", "agent_id", "source_ref", "sha256", "meta_sha256"))
            stage_working_memory()
            stage_checks_from(target, ["working_memory"])
            target.commit()

        results: dict[str, Any] = {}
        if "episodes" in tables:
            results["episode"] = import_episodes(target, import_id, tables["episodes"], opts,
                                                 counts["episodes"])
        superseded = stage_working_memory()
        target.commit()
        results["working_memory"] = write_batches(target, import_id, "working_memory", opts.batch,
                                                  "working memory")
        results["working_memory"]["superseded_by_redis"] = superseded
        if "working_memory" in tables:
            live = int(src.execute(sql.SQL("SELECT count(*) FROM {} WHERE {}").format(
                table_ident(tables["working_memory"].table),
                live_filter(tables["working_memory"]))).fetchone()[0])  # type: ignore[index]
            results["working_memory"]["expired_not_imported"] = counts["working_memory"] - live
        fill_checks()
        if opts.wait is not None:
            report = wait_embedded(target, import_id, opts.wait)
        else:
            report = validate(target, import_id)
        report["import"] = results
        report["source"] = source
        target.execute("UPDATE memory_system.imports SET report = %s WHERE import_id = %s",
                       (json.dumps(report), import_id))
        finish(target, import_id, report)
        return report


