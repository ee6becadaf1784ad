"""Agent roles: each agent logs in as its own role; the SQL functions do the work."""

from __future__ import annotations

import psycopg

from nexus import secrets
from nexus.config import Config
from nexus.dsn import role_dsn


def add(conn: psycopg.Connection, cfg: Config, name: str, description: str = "",
        orchestrator: str | None = "nexus_app") -> str:
    """Register agent `name` with a fresh password (kept in its secret file). Returns its DSN."""
    path = cfg.agent_secret_file(name)
    created = secrets.write_new(path)
    password = secrets.read(path)
    verifier = conn.pgconn.encrypt_password(password.encode(), name.encode(), b"scram-sha-256")
    try:
        conn.execute("SELECT memory_system.agent_add(%s, %s, %s, %s)",
                     (name, verifier.decode(), description, orchestrator))
    except psycopg.Error:
        if created:
            path.unlink(missing_ok=True)
        raise
    return dsn(cfg, name)


def remove(conn: psycopg.Connection, cfg: Config, name: str, delete_memories: bool) -> int:
    row = conn.execute("SELECT memory_system.agent_remove(%s, %s)",
                       (name, delete_memories)).fetchone()
    for path in (cfg.agent_secret_file(name), cfg.agent_secret_file(name).with_suffix(".pgpass")):
        path.unlink(missing_ok=True)
    return int(row[0]) if row else 0


def list_agents(conn: psycopg.Connection) -> list[tuple[str, str, str]]:
    rows = conn.execute(
        "SELECT agent_id, description, created_at::text FROM memory_system.agents "
        "WHERE kind = 'agent' ORDER BY agent_id"
    ).fetchall()
    return [(r[0], r[1], r[2]) for r in rows]


def dsn(cfg: Config, name: str, show_password: bool = False) -> str:
    return role_dsn(cfg, name, cfg.agent_secret_file(name), show_password)
