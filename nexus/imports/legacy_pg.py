"""The legacy PostgreSQL store: its layout, the mapping file, the queries that read it."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from nexus.imports.common import STAGE_COLUMNS, ImportFailed

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


def table_ident(table: str) -> sql.Composable:
    return sql.Identifier(*table.split(".", 1))


def agent_expr(tm: TableMap, agent: str | None) -> sql.Composable:
    if "agent_id" in tm.columns:
        if agent is None:
            return _col(tm, "agent_id")
        return sql.SQL("coalesce({}, {})").format(_col(tm, "agent_id"), sql.Literal(agent))
    return sql.Literal(agent)


def _ref_expr(source_name: str, tm: TableMap) -> sql.Composable:
    return sql.SQL("{} || {}").format(sql.Literal(f"{source_name}/{tm.table}/"), _col(tm, "id"))


def live_filter(tm: TableMap) -> sql.Composable:
    if "expires_at" not in tm.columns:
        return sql.SQL("true")
    return sql.SQL("({0} IS NULL OR {0} > now())").format(sql.Identifier(tm.columns["expires_at"]))


def episode_query(tm: TableMap, source_name: str, agent: str | None,
                  part: int = 0, parts: int = 1) -> sql.Composable:
    """The source's episodes in staging column order; with parts > 1, one of `parts` disjoint
    slices (by a hash of the source id), for parallel writers."""
    fields = [_ref_expr(source_name, tm), agent_expr(tm, agent)]
    fields += [_col(tm, f) for f in STAGE_COLUMNS["episode"][2:]]
    where = sql.SQL("true") if parts == 1 else sql.SQL("abs(hashtext({}) % {}) = {}").format(
        _col(tm, "id"), sql.Literal(parts), sql.Literal(part))
    return sql.SQL("SELECT {} FROM {} WHERE {} ORDER BY {}").format(
        sql.SQL(", ").join(fields), table_ident(tm.table), where,
        sql.Identifier(tm.columns["id"]))


def episode_check_query(tm: TableMap, source_name: str, agent: str | None) -> sql.Composable:
    """Per source episode: kind, agent, identity, checksum of its content and of its metadata
    text (what an adapted row keeps under "legacy_metadata")."""
    return sql.SQL("SELECT 'episode', {}, {}, sha256(convert_to({}, 'UTF8')), "
                   "sha256(convert_to({}, 'UTF8')) FROM {}").format(
        agent_expr(tm, agent), _ref_expr(source_name, tm), _col(tm, "content"),
        _col(tm, "metadata"), table_ident(tm.table))


def working_memory_query(tm: TableMap, source_name: str, agent: str | None) -> sql.Composable:
    fields = [_ref_expr(source_name, tm), agent_expr(tm, agent)]
    fields += [_col(tm, f) for f in STAGE_COLUMNS["working_memory"][2:-1]]
    fields.append(sql.SQL("0"))
    return sql.SQL("SELECT {} FROM {} WHERE {} ORDER BY {}").format(
        sql.SQL(", ").join(fields), table_ident(tm.table), live_filter(tm),
        sql.Identifier(tm.columns["id"]))


