"""The one schema loader, shared by the CLI, the Makefile and the tests.

1. yoyo-migrations applies the frozen, versioned files in `migrations/` (tables, indexes,
   roles), each in its own transaction, bookkept in schema `nexus_migrations`.
2. Then, in one transaction, the repeatable files: `db/functions/**.sql`, `db/policies/*.sql`
   and last `db/grants.sql`. They are CREATE OR REPLACE / DROP IF EXISTS, so re-running is safe.

A database that has a migration this code does not know was migrated by a newer release: the
loader refuses it (MigrationError) before changing anything, so an older runtime never runs
against, or rewrites the functions of, a newer schema.

`root` (default: this source tree) is the directory holding `migrations/` and `db/`; the
upgrade test builds databases from the snapshot of an older release with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlencode

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from yoyo import get_backend, read_migrations
from yoyo.backends import DatabaseBackend

PROJECT_ROOT = Path(__file__).resolve().parents[1]
MIGRATIONS_DIR = PROJECT_ROOT / "migrations"
META_SCHEMA = "nexus_migrations"
MIN_SERVER_VERSION = 160000


class MigrationError(RuntimeError):
    pass


@dataclass
class MigrateResult:
    applied: list[str]
    repeatables: int
    # the fixed roles whose login was enabled from their secret files (set by the caller)
    logins: list[str] = field(default_factory=list)


def repeatable_files(root: Path = PROJECT_ROOT) -> list[Path]:
    db_dir = root / "db"
    functions = sorted((db_dir / "functions").rglob("*.sql"))
    policies = sorted((db_dir / "policies").glob("*.sql"))
    return [*functions, *policies, db_dir / "grants.sql"]


def migration_files(root: Path = PROJECT_ROOT) -> list[Path]:
    return sorted((root / "migrations").glob("*.sql"))


def _yoyo_url(params: dict[str, str]) -> str:
    params = dict(params)
    user = quote(params.pop("user", ""), safe="")
    password = params.pop("password", None)
    host = params.pop("host", "localhost")
    port = params.pop("port", "5432")
    dbname = quote(params.pop("dbname", ""), safe="")
    auth = user + (":" + quote(password, safe="") if password else "")
    query = urlencode({"schema": META_SCHEMA, **params})
    return f"postgresql+psycopg://{auth}@{host}:{port}/{dbname}?{query}"


def _preflight(conn: psycopg.Connection) -> None:
    version = conn.info.server_version
    if version < MIN_SERVER_VERSION:
        raise MigrationError(f"PostgreSQL 16 or newer is required (server is {version})")
    # pgvector, and btree_gist for the facts' exclusion constraint (PostgreSQL's contrib)
    for name, what in (("vector", "the pgvector extension ('vector')"),
                       ("btree_gist", "the btree_gist extension (PostgreSQL's contrib)")):
        row = conn.execute("SELECT default_version FROM pg_available_extensions WHERE name = %s",
                           (name,)).fetchone()
        if row is None:
            raise MigrationError(f"{what} is not available on this server")
    schema = sql.Identifier(META_SCHEMA)
    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(schema))
    conn.execute(sql.SQL("REVOKE ALL ON SCHEMA {} FROM PUBLIC").format(schema))


def _refuse_unknown(backend: DatabaseBackend, known: set[str]) -> None:
    """Raise MigrationError if the database has applied a migration whose hash is not `known`."""
    if not set(backend.get_applied_migration_hashes()) - known:
        return
    rows = backend.execute(backend.format_sql(
        "SELECT {quoted.migration_hash}, {quoted.migration_id} FROM {0.migration_table_quoted}"
        " ORDER BY {quoted.applied_at_utc}")).fetchall()
    unknown = [migration_id for digest, migration_id in rows if digest not in known]
    raise MigrationError(
        f"the database has migrations this code does not know: {', '.join(unknown)}. "
        "A newer release of NEXUS memory migrated it; run that release (or a later one) "
        "against it: an older runtime must not run against a newer schema")


def apply_repeatables(conn: psycopg.Connection, root: Path = PROJECT_ROOT) -> int:
    files = repeatable_files(root)
    with conn.transaction():
        # SQL-language bodies may name functions defined by a later file
        conn.execute("SET LOCAL check_function_bodies = off")
        for path in files:
            try:
                conn.execute(path.read_text())
            except psycopg.Error as exc:
                raise MigrationError(f"{path.relative_to(root)}: {exc}") from exc
    return len(files)


def migrate(conninfo: str | dict[str, str], root: Path = PROJECT_ROOT) -> MigrateResult:
    """Bring the database at `conninfo` to the latest schema. Applying twice is a no-op."""
    params = conninfo_to_dict(conninfo) if isinstance(conninfo, str) else dict(conninfo)
    params = {k: str(v) for k, v in params.items() if v is not None}
    with psycopg.connect(**params, autocommit=True) as conn:
        _preflight(conn)
    backend = get_backend(_yoyo_url(params))
    try:
        with backend.lock():
            migrations = read_migrations(str(root / "migrations"))
            _refuse_unknown(backend, {m.hash for m in migrations})
            pending = backend.to_apply(migrations)
            applied = [m.id for m in pending]
            backend.apply_migrations(pending)
    finally:
        backend.connection.close()
    with psycopg.connect(**params, autocommit=True) as conn:
        count = apply_repeatables(conn, root)
    return MigrateResult(applied=applied, repeatables=count)
