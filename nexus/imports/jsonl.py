"""Our own JSONL format: `nexus export` and `nexus import jsonl`."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import psycopg

from nexus.imports.common import (
    BATCH_ROWS,
    EXPORT_VERSION,
    KINDS,
    READ_VERSIONS,
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
from nexus.imports.staging import copy_rows

# -- our own JSONL format ------------------------------------------------------------------------
# the staging columns a file fills: the legacy sources' and, for rows a space holds, the author
# (the agent that wrote each: kept by an import, which runs as the owner)
JSONL_COLUMNS = {**STAGE_COLUMNS, "episode": (*STAGE_COLUMNS["episode"], "author"),
                 "semantic": (*STAGE_COLUMNS["semantic"], "author")}
EXPORT_QUERIES = {
    "episode": """
        SELECT jsonb_build_object('type', 'episode', 'uuid', episode_uuid, 'session_id', session_id,
                                  'action_type', action_type, 'source', source, 'content', content,
                                  'metadata', metadata, 'tags', tags, 'importance', importance,
                                  'valid_at', valid_at, 'created_at', created_at,
                                  'updated_at', updated_at, 'author', author)::text
          FROM nexus_memory.zep_episodic_memory WHERE agent_id = %s
         ORDER BY created_at, episode_uuid""",
    "semantic": """
        SELECT jsonb_build_object('type', 'semantic', 'uuid', m.fact_uuid, 'content', m.content,
                                  'metadata', m.metadata, 'tags', m.tags,
                                  'importance', m.importance,
                                  'source_episode_uuid', e.episode_uuid, 'key', m.fact_key,
                                  'valid_from', m.valid_from, 'valid_to', m.valid_to,
                                  'ended_by', m.ended_by, 'ended_at', m.ended_at,
                                  'superseded_by', n.fact_uuid, 'author', m.author,
                                  'created_at', m.created_at, 'updated_at', m.updated_at)::text
          FROM nexus_memory.semantic_memories AS m
          LEFT JOIN nexus_memory.zep_episodic_memory AS e
            ON e.agent_id = m.agent_id AND e.id = m.source_episode_id
          LEFT JOIN nexus_memory.semantic_memories AS n
            ON n.agent_id = m.agent_id AND n.id = m.superseded_by
         WHERE m.agent_id = %s
         ORDER BY m.created_at, m.fact_uuid""",
    "working_memory": """
        SELECT jsonb_build_object('type', 'working_memory', 'key', context_key, 'value', value,
                                  'expires_at', expires_at, 'created_at', created_at,
                                  'updated_at', updated_at)::text
          FROM nexus_memory.working_memory_contexts
         WHERE agent_id = %s AND (expires_at IS NULL OR expires_at > now())
         ORDER BY context_key""",
    "checkpoint": """
        SELECT jsonb_build_object('type', 'checkpoint', 'name', checkpoint_name, 'state', state,
                                  'metadata', metadata, 'created_at', created_at)::text
          FROM consciousness.consciousness_checkpoints WHERE agent_id = %s
         ORDER BY created_at, checkpoint_name, id""",
}


def export_agent(conn: psycopg.Connection, agent: str, out: IO[str]) -> dict[str, int]:
    """One agent's memories as JSONL: a header line, then one line per row, in a stable order."""
    known = conn.execute("SELECT 1 FROM memory_system.agents WHERE agent_id = %s", (agent,))
    if known.fetchone() is None:
        raise ImportFailed(f"agent {agent} is not registered")
    conn.execute("SET TIME ZONE 'UTC'")
    conn.commit()
    out.write(json.dumps({"type": "nexus-export", "version": EXPORT_VERSION, "agent": agent},
                         sort_keys=True) + "\n")
    counts = {}
    # one snapshot for the whole export
    conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    with conn.transaction():
        for kind, query in EXPORT_QUERIES.items():
            n = 0
            with conn.cursor(name=f"export_{kind}") as cur:
                cur.itersize = 2000
                cur.execute(query, (agent,))
                for (line,) in cur:
                    out.write(line + "\n")
                    n += 1
            counts[kind] = n
    return counts


def _jsonl_row(kind: str, agent: str, rec: dict[str, Any]) -> tuple[Any, ...]:
    def js(v: Any) -> str | None:
        return None if v is None else json.dumps(v)

    if kind == "episode":
        return (str(rec["uuid"]), agent, rec["uuid"], rec.get("session_id"),
                rec.get("action_type"), rec.get("source"), rec["content"],
                js(rec.get("metadata")), js(rec.get("tags")), rec.get("importance"),
                rec.get("valid_at"), rec.get("created_at"), rec.get("updated_at"),
                rec.get("author"))
    if kind == "semantic":
        # known by uuid; a version 1 file has none, and its facts are known by their content
        ref = "fact/" + (rec.get("uuid") or hashlib.sha256(rec["content"].encode()).hexdigest())
        return (ref, agent, rec["content"], js(rec.get("metadata")), js(rec.get("tags")),
                rec.get("importance"), rec.get("source_episode_uuid"), rec.get("created_at"),
                rec.get("updated_at"), rec.get("uuid"), rec.get("key"), rec.get("valid_from"),
                rec.get("valid_to"), rec.get("ended_by"), rec.get("ended_at"),
                rec.get("superseded_by"), rec.get("author"))
    if kind == "working_memory":
        return ("wm/" + rec["key"], agent, rec["key"], json.dumps(rec["value"]),
                rec.get("expires_at"), rec.get("created_at"), rec.get("updated_at"), 0)
    name = rec.get("name") or "default"
    return (f"checkpoint/{name}/{rec.get('created_at')}", agent, name, json.dumps(rec["state"]),
            js(rec.get("metadata")), rec.get("created_at"))


def read_jsonl(path: Path) -> tuple[str, Iterator[tuple[int, dict[str, Any]]]]:
    """The header's agent, and the records (line number, object) after it."""
    try:
        f = path.open(encoding="utf-8")
    except OSError as exc:
        raise ImportFailed(f"cannot read {path}: {exc.strerror}") from exc
    first = f.readline()
    try:
        header = json.loads(first)
    except json.JSONDecodeError:
        header = None
    if not isinstance(header, dict) or header.get("type") != "nexus-export":
        f.close()
        raise ImportFailed(f"{path} is not a NEXUS export: its first line is not the header")
    if header.get("version") not in READ_VERSIONS:
        f.close()
        raise ImportFailed(f"{path} is export version {header.get('version')}; this nexus reads "
                           f"versions {', '.join(map(str, READ_VERSIONS))}")

    def records() -> Iterator[tuple[int, dict[str, Any]]]:
        with f:
            for lineno, line in enumerate(f, 2):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ImportFailed(f"{path}:{lineno}: not JSON: {exc.msg}") from exc
                if not isinstance(rec, dict) or rec.get("type") not in KINDS:
                    raise ImportFailed(f"{path}:{lineno}: unknown record type "
                                       f"{rec.get('type') if isinstance(rec, dict) else rec!r}")
                yield lineno, rec

    return str(header["agent"]), records()


def import_jsonl(target: psycopg.Connection, path: Path, agent: str | None = None,
                 create_agent: Callable[[str], None] | None = None,
                 batch: int = BATCH_ROWS, wait: float | None = None) -> dict[str, Any]:
    file_agent, records = read_jsonl(path)
    agent = agent or file_agent
    # a whole pass first: a broken line is found before anything is written
    for _lineno, _rec in records:
        pass
    check_agents(target, [agent], create_agent)
    target.commit()
    import_id = begin_import(target, "jsonl", path.name)
    buffers: dict[str, list[tuple[Any, ...]]] = {k: [] for k in KINDS}

    def flush(kind: str) -> None:
        copy_rows(target, f"nexus_import_{kind}", JSONL_COLUMNS[kind], buffers[kind])
        buffers[kind].clear()

    for lineno, rec in read_jsonl(path)[1]:
        kind = rec["type"]
        try:
            buffers[kind].append(_jsonl_row(kind, agent, rec))
        except (KeyError, TypeError, AttributeError) as exc:
            target.rollback()
            raise ImportFailed(f"{path}:{lineno}: {kind} record lacks {exc}") from exc
        if len(buffers[kind]) >= 5000:
            flush(kind)
    for kind in KINDS:
        flush(kind)
    target.execute("SELECT memory_system.import_dedupe_working_memory()")
    target.commit()
    results = {kind: write_batches(target, import_id, kind, batch) for kind in KINDS}
    # a fact superseded by one written in a later batch: linked once both are in
    target.execute("SELECT memory_system.import_link_facts()")
    target.execute("TRUNCATE pg_temp.nexus_import_check")
    stage_checks_from(target, KINDS)
    target.commit()
    report = wait_embedded(target, import_id, wait) if wait is not None \
        else validate(target, import_id)
    report["import"] = results
    report["source"] = path.name
    target.execute("UPDATE memory_system.imports SET report = %s WHERE import_id = %s",
                   (json.dumps(report), import_id))
    finish(target, import_id, report)
    return report


