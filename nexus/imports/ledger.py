"""The target side: the imports ledger, committed batches, validation, rollback, listing."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from typing import Any

import psycopg
from psycopg import sql

from nexus.imports.common import BATCH_ROWS, ImportFailed
from nexus.imports.staging import Progress

# -- the target side -----------------------------------------------------------------------------
# an import's advisory lock: (hashtext(LOCK_NAME), import_id), as memory_system.import_rollback
# takes it
LOCK_NAME = "nexus_import"


def begin_import(conn: psycopg.Connection, fmt: str, source: str,
                 adapt: dict[str, Any] | None = None) -> int:
    """Register an import (with what it may adapt instead of rejecting, memory_system.imports.adapt)
    and hold its lock (rollback refuses while it is held)."""
    conn.execute("SET TIME ZONE 'UTC'")
    row = conn.execute("INSERT INTO memory_system.imports (format, source, adapt) "
                       "VALUES (%s, %s, %s) RETURNING import_id",
                       (fmt, source, json.dumps(adapt) if adapt else None)).fetchone()
    assert row is not None
    import_id = int(row[0])
    conn.commit()
    conn.execute("SELECT pg_advisory_lock(hashtext(%s), %s::integer)", (LOCK_NAME, import_id))
    conn.execute("SELECT memory_system.import_stage()")
    conn.commit()
    return import_id


def check_agents(conn: psycopg.Connection, agents_wanted: Iterable[str | None],
                 create: Callable[[str], None] | None) -> None:
    wanted = set(agents_wanted)
    if None in wanted:
        raise ImportFailed("some source rows have no agent: give --agent NAME for them")
    have = {r[0] for r in conn.execute("SELECT agent_id FROM memory_system.agents")}
    missing = sorted(a for a in wanted if a not in have)  # type: ignore[misc]
    if missing and create is None:
        raise ImportFailed(f"agent(s) not registered: {', '.join(missing)} "
                           f"(nexus agent add NAME for each, or --create-agents)")
    for name in missing:
        assert create is not None
        create(name)


def write_batches(conn: psycopg.Connection, import_id: int, kind: str,
                  batch: int = BATCH_ROWS, label: str | None = None,
                  progress: Progress | None = None) -> dict[str, int]:
    """Turn the staged rows of one kind into memories, one committed transaction per batch
    (retried when it loses a deadlock to a parallel writer)."""
    row = conn.execute(sql.SQL("SELECT coalesce(min(n), 1), coalesce(max(n), 0), count(*) FROM {}")
                       .format(sql.Identifier("pg_temp", f"nexus_import_{kind}"))).fetchone()
    assert row is not None
    lo, hi, staged = int(row[0]), int(row[1]), int(row[2])
    conn.commit()
    own = progress is None
    bar = Progress(label or kind, hi - lo + 1 if hi >= lo else 0) if progress is None else progress
    written = rejected = 0
    for start in range(lo, hi + 1, batch):
        end = min(start + batch - 1, hi)
        for attempt in range(5):
            try:
                w, r = conn.execute(
                    "SELECT written, rejected FROM memory_system.import_batch(%s, %s, %s, %s)",
                    (import_id, kind, start, end)).fetchone()  # type: ignore[misc]
                conn.commit()
                break
            except (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure):
                conn.rollback()
                if attempt == 4:
                    raise
                time.sleep(0.1 * (attempt + 1))
        written, rejected = written + int(w), rejected + int(r)
        bar.add(end - start + 1)
    if own:
        bar.close()
    return {"staged": staged, "written": written, "rejected": rejected,
            "skipped": staged - written - rejected}


def stage_checks_from(conn: psycopg.Connection, kinds: Iterable[str]) -> None:
    """Source checksums of staged rows (working memory from both sources, JSONL files)."""
    conn.execute("SELECT memory_system.import_check_staged(%s)", (list(kinds),))


def finish(conn: psycopg.Connection, import_id: int, report: dict[str, Any]) -> None:
    conn.execute("UPDATE memory_system.imports SET state = %s, finished_at = now() "
                 "WHERE import_id = %s", ("done" if report["ok"] else "failed", import_id))
    conn.commit()
    conn.execute("SELECT pg_advisory_unlock(hashtext(%s), %s::integer)", (LOCK_NAME, import_id))
    conn.commit()


def validate(conn: psycopg.Connection, import_id: int) -> dict[str, Any]:
    row = conn.execute("SELECT memory_system.import_validate(%s)", (import_id,)).fetchone()
    conn.commit()
    assert row is not None
    return dict(row[0])


def wait_embedded(conn: psycopg.Connection, import_id: int, timeout: float) -> dict[str, Any]:
    """Wait until the embedding queue has drained (or the time is up), then validate."""
    deadline = time.monotonic() + timeout
    progress: Progress | None = None
    first = 0
    while True:
        row = conn.execute("SELECT count(*) FROM memory_system.embeddings_queue "
                           "WHERE state IN ('pending', 'processing')").fetchone()
        conn.commit()
        depth = int(row[0])  # type: ignore[index]
        if progress is None:
            progress, first = Progress("embedding", depth), depth
        progress.add(max(first - depth - progress.done, 0))
        if depth == 0 or time.monotonic() > deadline:
            progress.close()
            return validate(conn, import_id)
        time.sleep(1)


# -- rollback and listing ------------------------------------------------------------------------
def rollback(conn: psycopg.Connection, import_id: int) -> dict[str, Any]:
    row = conn.execute("SELECT memory_system.import_rollback(%s)", (import_id,)).fetchone()
    conn.commit()
    assert row is not None
    return dict(row[0])


def list_imports(conn: psycopg.Connection) -> list[dict[str, Any]]:
    # a running import holds its lock: one whose lock is free was interrupted (run it again, or
    # roll it back)
    rows = conn.execute(
        "SELECT i.import_id, i.format, i.source, "
        "       CASE WHEN i.state = 'running' AND pg_try_advisory_xact_lock("
        "           hashtext(%s), i.import_id::integer) THEN 'interrupted' ELSE i.state END, "
        "       i.started_at, i.finished_at, "
        "       (SELECT count(*) FROM memory_system.import_rows AS r "
        "         WHERE r.import_id = i.import_id), "
        "       (i.report ->> 'ok')::boolean "
        "  FROM memory_system.imports AS i ORDER BY i.import_id", (LOCK_NAME,)).fetchall()
    conn.rollback()
    keys = ("import_id", "format", "source", "state", "started_at", "finished_at", "rows", "ok")
    return [dict(zip(keys, r, strict=True)) for r in rows]


