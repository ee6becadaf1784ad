"""Imports from an existing memory store, and our own JSONL export.

`nexus import legacy` reads the old store: PostgreSQL tables of episodes and working memory, and
Redis working-memory keys (a live server or an RDB file). `nexus export` / `nexus import jsonl`
move one agent's memories in our own format. Either way, source rows are streamed with COPY into
session staging tables, and the SQL in db/functions/import/ turns them into memories in batches
of committed transactions, recording each source row in memory_system.import_rows. So:

- a second run imports nothing twice (the ledger is checked row by row);
- a crash loses nothing (what committed is in the ledger, the rest is imported by the next run);
- validation reads the source again and compares every row's checksum with the target's;
- `nexus import rollback ID` deletes what an import wrote and puts back what it replaced.

Memory stays flat as the source grows: rows go from one COPY to another without being held.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import psycopg
import redis
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

BATCH_ROWS = 10_000
EXPORT_VERSION = 1
KINDS = ("episode", "semantic", "working_memory", "checkpoint")
# staged columns per kind, in COPY order (memory_system.import_stage, db/functions/import/)
STAGE_COLUMNS = {
    "episode": ("source_ref", "agent_id", "episode_uuid", "session_id", "action_type", "source",
                "content", "metadata", "tags", "importance", "valid_at", "created_at",
                "updated_at"),
    "semantic": ("source_ref", "agent_id", "content", "metadata", "tags", "importance",
                 "source_episode_uuid", "created_at", "updated_at"),
    "working_memory": ("source_ref", "agent_id", "context_key", "value", "expires_at",
                       "created_at", "updated_at", "priority"),
    "checkpoint": ("source_ref", "agent_id", "checkpoint_name", "state", "metadata", "created_at"),
}


class ImportFailed(RuntimeError):
    """A problem found before anything is written (bad DSN, table, mapping, RDB), or a refusal."""


# -- the legacy layout and the mapping file ------------------------------------------------------
# target field -> source column of the plan's layout. `id` and `content`/`context_key`+`value` are
# required; the others are used when the table has them. A mapping file names its own columns, and
# every column it names must exist.
LEGACY_TABLES: dict[str, dict[str, Any]] = {
    "episodes": {
        "table": "episodic_memory",
        "required": ("id", "content"),
        "columns": {"id": "id", "agent_id": "agent_id", "episode_uuid": "episode_uuid",
                    "session_id": "session_id", "action_type": "action_type", "source": "source",
                    "content": "content", "metadata": "metadata", "tags": "tags",
                    "importance": "importance", "valid_at": "valid_at",
                    "created_at": "created_at", "updated_at": "updated_at"},
    },
    "working_memory": {
        "table": "working_memory",
        "required": ("id", "context_key", "value"),
        "columns": {"id": "id", "agent_id": "agent_id", "context_key": "context_key",
                    "value": "value", "expires_at": "expires_at", "created_at": "created_at",
                    "updated_at": "updated_at"},
    },
}
REDIS_PATTERN = "working_memory:{agent}:{key}"


@dataclass
class TableMap:
    part: str                      # episodes | working_memory
    table: str                     # possibly schema-qualified
    columns: dict[str, str]        # target field -> source column (only those present)
    enabled: bool = True


@dataclass
class Mapping:
    tables: dict[str, TableMap]
    redis_pattern: str = REDIS_PATTERN
    explicit: set[str] = field(default_factory=set)   # parts whose columns a mapping file named


def load_mapping(path: Path | None) -> Mapping:
    """The plan's layout, adapted by a TOML mapping file ([episodes], [working_memory], [redis])."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(path.read_text())
        except FileNotFoundError as exc:
            raise ImportFailed(f"mapping file {path} does not exist") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ImportFailed(f"mapping file {path} is not valid TOML: {exc}") from exc
        unknown = set(data) - {*LEGACY_TABLES, "redis"}
        if unknown:
            raise ImportFailed(f"mapping file {path}: unknown section(s) {sorted(unknown)}; "
                               f"expected [episodes], [working_memory], [redis]")
    tables, explicit = {}, set()
    for part, spec in LEGACY_TABLES.items():
        section = dict(data.get(part, {}))
        enabled = bool(section.pop("enabled", True))
        table = str(section.pop("table", spec["table"]))
        unknown_fields = set(section) - set(spec["columns"])
        if unknown_fields:
            raise ImportFailed(f"mapping file [{part}]: unknown field(s) {sorted(unknown_fields)}; "
                               f"fields are table, enabled, {', '.join(spec['columns'])}")
        columns = dict(spec["columns"])
        if section:
            explicit.add(part)
            columns.update({k: str(v) for k, v in section.items()})
        tables[part] = TableMap(part, table, columns, enabled)
    pattern = str(data.get("redis", {}).get("pattern", REDIS_PATTERN))
    if "{key}" not in pattern:
        raise ImportFailed(f"redis pattern {pattern!r} must contain {{key}}")
    return Mapping(tables, pattern, explicit)


# -- connections ---------------------------------------------------------------------------------
def describe_dsn(dsn: str) -> str:
    """host:port/dbname of a DSN, with no user or password: safe to print and store."""
    try:
        p = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError as exc:
        raise ImportFailed(f"the legacy DSN is not a valid connection string: {exc}") from exc
    return f"{p.get('host', 'localhost')}:{p.get('port', '5432')}/{p.get('dbname', '')}"


def connect_source(dsn: str) -> psycopg.Connection:
    try:
        conn = psycopg.connect(dsn, connect_timeout=10, autocommit=True)
    except psycopg.Error as exc:
        raise ImportFailed(f"cannot connect to the legacy database {describe_dsn(dsn)}: "
                           f"{str(exc).strip()}") from exc
    conn.execute("SET TIME ZONE 'UTC'")
    # one snapshot for counting, importing and nothing else: repeatable read per statement is enough
    return conn


def _table_columns(conn: psycopg.Connection, table: str) -> list[str] | None:
    row = conn.execute("SELECT to_regclass(%s)::oid", (table,)).fetchone()
    if row is None or row[0] is None:
        return None
    return [r[0] for r in conn.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = %s AND attnum > 0 AND NOT attisdropped "
        "ORDER BY attnum", (row[0],))]


def resolve_tables(conn: psycopg.Connection, mapping: Mapping) -> dict[str, TableMap]:
    """Check the legacy tables and columns; keep only the default columns the tables have."""
    resolved = {}
    for part, tm in mapping.tables.items():
        if not tm.enabled:
            continue
        have = _table_columns(conn, tm.table)
        if have is None:
            raise ImportFailed(f"table {tm.table} not found in the legacy database "
                               f"(set [{part}] table = \"...\" in a mapping file, "
                               f"or enabled = false)")
        spec = LEGACY_TABLES[part]
        if part in mapping.explicit:
            named = {f: c for f, c in tm.columns.items() if f not in spec["columns"] or
                     c != spec["columns"][f]}
            unknown = sorted(c for c in named.values() if c not in have)
            if unknown:
                raise ImportFailed(f"mapping [{part}] names column(s) {unknown} that table "
                                   f"{tm.table} does not have; it has: {', '.join(have)}")
        columns = {f: c for f, c in tm.columns.items() if c in have}
        missing = [f for f in spec["required"] if f not in columns]
        if missing:
            raise ImportFailed(f"table {tm.table} has no column for {missing} "
                               f"(map them in [{part}] of a mapping file); "
                               f"it has: {', '.join(have)}")
        resolved[part] = TableMap(part, tm.table, columns)
    return resolved


def _col(tm: TableMap, f: str, cast: str = "text") -> sql.Composable:
    if f not in tm.columns:
        return sql.SQL("NULL::text")
    return sql.SQL("{}::{}").format(sql.Identifier(tm.columns[f]), sql.SQL(cast))


def _table_ident(table: str) -> sql.Composable:
    return sql.Identifier(*table.split(".", 1))


def _agent_expr(tm: TableMap, agent: str | None) -> sql.Composable:
    if "agent_id" in tm.columns:
        if agent is None:
            return _col(tm, "agent_id")
        return sql.SQL("coalesce({}, {})").format(_col(tm, "agent_id"), sql.Literal(agent))
    return sql.Literal(agent)


def _ref_expr(source_name: str, tm: TableMap) -> sql.Composable:
    return sql.SQL("{} || {}").format(sql.Literal(f"{source_name}/{tm.table}/"), _col(tm, "id"))


def _live_filter(tm: TableMap) -> sql.Composable:
    if "expires_at" not in tm.columns:
        return sql.SQL("true")
    return sql.SQL("({0} IS NULL OR {0} > now())").format(sql.Identifier(tm.columns["expires_at"]))


def episode_query(tm: TableMap, source_name: str, agent: str | None,
                  part: int = 0, parts: int = 1) -> sql.Composable:
    """The source's episodes in staging column order; with parts > 1, one of `parts` disjoint
    slices (by a hash of the source id), for parallel writers."""
    fields = [_ref_expr(source_name, tm), _agent_expr(tm, agent)]
    fields += [_col(tm, f) for f in STAGE_COLUMNS["episode"][2:]]
    where = sql.SQL("true") if parts == 1 else sql.SQL("abs(hashtext({}) % {}) = {}").format(
        _col(tm, "id"), sql.Literal(parts), sql.Literal(part))
    return sql.SQL("SELECT {} FROM {} WHERE {} ORDER BY {}").format(
        sql.SQL(", ").join(fields), _table_ident(tm.table), where,
        sql.Identifier(tm.columns["id"]))


def episode_check_query(tm: TableMap, source_name: str, agent: str | None) -> sql.Composable:
    return sql.SQL("SELECT 'episode', {}, {}, sha256(convert_to({}, 'UTF8')) FROM {}").format(
        _agent_expr(tm, agent), _ref_expr(source_name, tm), _col(tm, "content"),
        _table_ident(tm.table))


def working_memory_query(tm: TableMap, source_name: str, agent: str | None) -> sql.Composable:
    fields = [_ref_expr(source_name, tm), _agent_expr(tm, agent)]
    fields += [_col(tm, f) for f in STAGE_COLUMNS["working_memory"][2:-1]]
    fields.append(sql.SQL("0"))
    return sql.SQL("SELECT {} FROM {} WHERE {} ORDER BY {}").format(
        sql.SQL(", ").join(fields), _table_ident(tm.table), _live_filter(tm),
        sql.Identifier(tm.columns["id"]))


def copy_between(src: psycopg.Connection, query: sql.Composable, dst: psycopg.Connection,
                 table: str, columns: Iterable[str], progress: Progress | None = None,
                 schema: str = "pg_temp") -> int:
    """Stream a query's rows from one server into a table of another, without holding them."""
    rows = 0
    copy_in = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(schema, table), sql.SQL(", ").join(map(sql.Identifier, columns)))
    with src.cursor().copy(sql.SQL("COPY ({}) TO STDOUT").format(query)) as out, \
            dst.cursor().copy(copy_in) as into:
        for data in out:
            into.write(data)
            n = bytes(data).count(b"\n")
            rows += n
            if progress:
                progress.add(n)
    return rows


# -- Redis ---------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def redis_source(url: str | None, rdb: Path | None) -> Iterator[list[redis.Redis]]:
    """Clients on the legacy Redis: the live server's database of the URL, or every database of
    an RDB file, loaded by a private redis-server (any RDB version this redis-server reads)."""
    if url is None and rdb is None:
        yield []
        return
    if url is not None:
        client = redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=5)
        try:
            client.ping()
        except redis.RedisError as exc:
            raise ImportFailed(f"cannot reach the legacy Redis: {exc}") from exc
        yield [client]
        return
    assert rdb is not None
    if not rdb.is_file():
        raise ImportFailed(f"RDB file {rdb} does not exist")
    binary = shutil.which("redis-server")
    if binary is None:
        raise ImportFailed("reading an RDB file needs redis-server (make setup installs it)")
    with tempfile.TemporaryDirectory(prefix="nexus-rdb-") as tmp:
        shutil.copyfile(rdb, Path(tmp) / "dump.rdb")
        port = _free_port()
        proc = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", tmp,
             "--dbfilename", "dump.rdb", "--save", "", "--appendonly", "no", "--daemonize", "no"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=10)
        try:
            deadline = time.monotonic() + 60
            while True:
                if proc.poll() is not None:
                    out = (proc.stdout.read() if proc.stdout else "")[-600:]
                    reason = next((ln for ln in out.splitlines() if "#" in ln), out.strip())
                    raise ImportFailed(f"cannot read RDB file {rdb}: {reason.strip()}")
                try:
                    if client.ping() and client.info("persistence").get("loading") == 0:
                        break
                except redis.BusyLoadingError:
                    pass
                except redis.ConnectionError:
                    pass
                if time.monotonic() > deadline:
                    raise ImportFailed(f"redis-server did not load RDB file {rdb} within 60 s")
                time.sleep(0.05)
            dbs = sorted(int(name[2:]) for name in client.info("keyspace"))
            yield [redis.Redis(host="127.0.0.1", port=port, db=n, socket_timeout=10) for n in dbs]
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


def _pattern_regex(pattern: str) -> tuple[str, re.Pattern[str]]:
    glob, rx = "", ""
    for part in re.split(r"(\{agent\}|\{key\})", pattern):
        if part == "{agent}":
            glob, rx = glob + "*", rx + r"(?P<agent>[^:]+)"
        elif part == "{key}":
            glob, rx = glob + "*", rx + r"(?P<key>.+)"
        else:
            glob += re.sub(r"([*?\[\]\\])", r"\\\1", part)
            rx += re.escape(part)
    return glob, re.compile(rx + r"\Z", re.S)


# the Redis types a working-memory key may have (others are skipped)
REDIS_TYPES = ("string", "hash", "list", "set", "zset")


def _redis_value(client: redis.Redis, name: bytes) -> str | None:
    kind = client.type(name).decode()
    if kind == "string":
        return client.get(name).decode("utf-8", "replace")
    if kind == "hash":
        return json.dumps({k.decode(): v.decode("utf-8", "replace")
                           for k, v in sorted(client.hgetall(name).items())})
    if kind == "list":
        return json.dumps([v.decode("utf-8", "replace") for v in client.lrange(name, 0, -1)])
    if kind in ("set", "zset"):
        items = client.smembers(name) if kind == "set" else client.zrange(name, 0, -1)
        return json.dumps(sorted(v.decode("utf-8", "replace") for v in items))
    return None


def redis_agents(clients: list[redis.Redis], pattern: str, agent: str | None) -> set[str]:
    """The agents of the Redis keys an import would read: key names and types only, no values."""
    glob, rx = _pattern_regex(pattern)
    found: set[str] = set()
    for client in clients:
        for name in client.scan_iter(match=glob, count=1000):
            m = rx.match(name.decode("utf-8", "replace"))
            who = (m.groupdict().get("agent") or agent) if m else None
            if who is not None and who not in found and client.type(name).decode() in REDIS_TYPES:
                found.add(who)
    return found


def redis_rows(clients: list[redis.Redis], pattern: str,
               agent: str | None) -> Iterator[tuple[Any, ...]]:
    """Working-memory rows from Redis keys matching the pattern, in staging column order."""
    glob, rx = _pattern_regex(pattern)
    for client in clients:
        yield from _redis_rows(client, glob, rx, agent)


def _redis_rows(client: redis.Redis, glob: str, rx: re.Pattern[str],
                agent: str | None) -> Iterator[tuple[Any, ...]]:
    for name in sorted(client.scan_iter(match=glob, count=1000)):
        m = rx.match(name.decode("utf-8", "replace"))
        if not m:
            continue
        who = m.groupdict().get("agent") or agent
        value = _redis_value(client, name)
        if value is None or who is None:
            continue
        ttl = client.pttl(name)
        expires = (datetime.now(UTC) + timedelta(milliseconds=ttl)).isoformat() if ttl > 0 else None
        yield (f"redis/{name.decode('utf-8', 'replace')}", who, m.group("key"), value, expires,
               None, None, 1)


def copy_rows(dst: psycopg.Connection, table: str, columns: Iterable[str],
              rows: Iterable[tuple[Any, ...]]) -> int:
    n = 0
    copy_in = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier("pg_temp", table), sql.SQL(", ").join(map(sql.Identifier, columns)))
    with dst.cursor().copy(copy_in) as into:
        for row in rows:
            into.write_row(row)
            n += 1
    return n


# -- progress on a terminal ----------------------------------------------------------------------
class Progress:
    """A progress bar on a terminal (nothing otherwise); several threads may add to it."""

    def __init__(self, label: str, total: int | None, stream: IO[str] | None = None) -> None:
        self.label, self.total, self.done = label, total, 0
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty()
        self.t0 = self.last = time.monotonic()
        self.lock = threading.Lock()

    def add(self, n: int) -> None:
        with self.lock:
            self.done += n
            now = time.monotonic()
            if self.tty and now - self.last >= 0.2:
                self.last = now
                self._draw()

    def _draw(self, end: str = "") -> None:
        rate = self.done / max(time.monotonic() - self.t0, 1e-6)
        if self.total:
            share = min(self.done / self.total, 1.0)
            bar = "#" * int(share * 30)
            text = f"{self.label:<16} [{bar:<30}] {self.done:,}/{self.total:,} {rate:,.0f} rows/s"
        else:
            text = f"{self.label:<16} {self.done:,} rows {rate:,.0f} rows/s"
        self.stream.write("\r" + text + end)
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self._draw("\n")


# -- the target side -----------------------------------------------------------------------------
LOCK_CLASS = "hashtext('nexus_import')"


def begin_import(conn: psycopg.Connection, fmt: str, source: str) -> int:
    """Register an import and hold its lock (rollback refuses while it is held)."""
    conn.execute("SET TIME ZONE 'UTC'")
    row = conn.execute("INSERT INTO memory_system.imports (format, source) VALUES (%s, %s) "
                       "RETURNING import_id", (fmt, source)).fetchone()
    assert row is not None
    import_id = int(row[0])
    conn.commit()
    conn.execute(f"SELECT pg_advisory_lock({LOCK_CLASS}, %s::integer)", (import_id,))
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
    conn.execute(f"SELECT pg_advisory_unlock({LOCK_CLASS}, %s::integer)", (import_id,))
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
                _table_ident(tm.table))).fetchone()[0])  # type: ignore[index]
            agents |= {r[0] for r in src.execute(sql.SQL("SELECT DISTINCT {} FROM {}").format(
                _agent_expr(tm, opts.agent), _table_ident(tm.table)))}
        agents |= redis_agents(rds, mapping.redis_pattern, opts.agent)
        check_agents(target, agents, create_agent)
        target.commit()

        import_id = begin_import(target, "legacy", source + (" + redis" if rds else ""))

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
                             ("kind", "agent_id", "source_ref", "sha256"))
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
                _table_ident(tables["working_memory"].table),
                _live_filter(tables["working_memory"]))).fetchone()[0])  # type: ignore[index]
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


# -- our own JSONL format ------------------------------------------------------------------------
EXPORT_QUERIES = {
    "episode": """
        SELECT jsonb_build_object('type', 'episode', 'uuid', episode_uuid, 'session_id', session_id,
                                  'action_type', action_type, 'source', source, 'content', content,
                                  'metadata', metadata, 'tags', tags, 'importance', importance,
                                  'valid_at', valid_at, 'created_at', created_at,
                                  'updated_at', updated_at)::text
          FROM nexus_memory.zep_episodic_memory WHERE agent_id = %s
         ORDER BY created_at, episode_uuid""",
    "semantic": """
        SELECT jsonb_build_object('type', 'semantic', 'content', m.content, 'metadata', m.metadata,
                                  'tags', m.tags, 'importance', m.importance,
                                  'source_episode_uuid', e.episode_uuid,
                                  'created_at', m.created_at, 'updated_at', m.updated_at)::text
          FROM nexus_memory.semantic_memories AS m
          LEFT JOIN nexus_memory.zep_episodic_memory AS e
            ON e.agent_id = m.agent_id AND e.id = m.source_episode_id
         WHERE m.agent_id = %s
         ORDER BY m.created_at, m.content_sha256""",
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
                rec.get("valid_at"), rec.get("created_at"), rec.get("updated_at"))
    if kind == "semantic":
        ref = "fact/" + hashlib.sha256(rec["content"].encode()).hexdigest()
        return (ref, agent, rec["content"], js(rec.get("metadata")), js(rec.get("tags")),
                rec.get("importance"), rec.get("source_episode_uuid"), rec.get("created_at"),
                rec.get("updated_at"))
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
    if header.get("version") != EXPORT_VERSION:
        f.close()
        raise ImportFailed(f"{path} is export version {header.get('version')}; "
                           f"this nexus reads version {EXPORT_VERSION}")

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
        copy_rows(target, f"nexus_import_{kind}", STAGE_COLUMNS[kind], buffers[kind])
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
        f"           {LOCK_CLASS}, i.import_id::integer) THEN 'interrupted' ELSE i.state END, "
        "       i.started_at, i.finished_at, "
        "       (SELECT count(*) FROM memory_system.import_rows AS r "
        "         WHERE r.import_id = i.import_id), "
        "       (i.report ->> 'ok')::boolean "
        "  FROM memory_system.imports AS i ORDER BY i.import_id").fetchall()
    conn.rollback()
    keys = ("import_id", "format", "source", "state", "started_at", "finished_at", "rows", "ok")
    return [dict(zip(keys, r, strict=True)) for r in rows]


def summary(report: dict[str, Any]) -> str:
    """The validation report as a table for people."""
    lines = [f"import {report['import_id']} from {report.get('source', '?')}: "
             + ("OK, every source row is in NEXUS with an equal checksum" if report["ok"]
                else "VALIDATION FAILED")]
    lines.append(f"  {'kind':<15}{'source':>9}{'target':>9}{'equal':>9}{'missing':>9}"
                 f"{'mismatch':>9}{'rejected':>9}{'embedded':>10}")
    for kind, k in report["kinds"].items():
        if not k["source"] and not k["rejected"]:
            continue
        emb = "-" if k["embedded"] is None else f"{k['embedded'] / max(k['target'], 1):.0%}"
        lines.append(f"  {kind:<15}{k['source']:>9}{k['target']:>9}{k['equal']:>9}{k['missing']:>9}"
                     f"{k['mismatched']:>9}{k['rejected']:>9}{emb:>10}")
        for what, refs in k["examples"].items():
            for ref in refs:
                lines.append(f"    {what}: {json.dumps(ref) if isinstance(ref, dict) else ref}")
    for kind, r in report.get("import", {}).items():
        extra = {k: v for k, v in r.items()
                 if k not in ("staged", "written", "rejected", "skipped") and v}
        lines.append(f"  this run, {kind}: {r['written']} written, {r['skipped']} already there, "
                     f"{r['rejected']} rejected" + (f", {extra}" if extra else ""))
    if not report["ok"]:
        lines.append(f"  to undo this import: nexus import rollback {report['import_id']}")
    return "\n".join(lines)
