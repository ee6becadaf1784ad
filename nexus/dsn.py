"""Connections, connection strings and role passwords.

Connection strings printed for people carry no password: they point at a per-role
pgpass file (mode 600) with libpq's `passfile` parameter, so they work in psql and any
libpq driver without putting a secret on a terminal or in a log.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote

import psycopg
from psycopg import sql

from nexus import secrets
from nexus.config import Config


def connect(cfg: Config, role: str, password: str, dbname: str | None = None,
            **kwargs: object) -> psycopg.Connection:
    return psycopg.connect(
        host=cfg.pg_host, port=cfg.pg_port, dbname=dbname or cfg.database,
        user=role, password=password, connect_timeout=10, **kwargs,
    )


def _pgpass_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace(":", "\\:")


def write_pgpass(cfg: Config, role: str, password: str, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    line = ":".join(_pgpass_escape(v) for v in
                    (cfg.pg_host, str(cfg.pg_port), cfg.database, role, password))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(line + "\n")
    return path


def dsn(cfg: Config, role: str, passfile: Path | None = None,
        password: str | None = None) -> str:
    """A libpq URL for `role`; with a passfile (no secret in it) or, if asked, the password."""
    auth = quote(role, safe="")
    if password is not None:
        auth += ":" + quote(password, safe="")
    url = f"postgresql://{auth}@{cfg.pg_host}:{cfg.pg_port}/{quote(cfg.database, safe='')}"
    if passfile is not None:
        url += "?passfile=" + quote(str(passfile), safe="/")
    return url


def role_dsn(cfg: Config, role: str, secret_file: Path, show_password: bool = False,
             write: bool = True) -> str:
    """`role`'s connection string; its pgpass file is (re)written unless `write` is False (a
    read-only command only names it)."""
    password = secrets.read(secret_file)
    if show_password:
        return dsn(cfg, role, password=password)
    passfile = secret_file.with_suffix(".pgpass")
    if write:
        write_pgpass(cfg, role, password, passfile)
    return dsn(cfg, role, passfile=passfile)


def set_password(conn: psycopg.Connection, role: str, password: str) -> None:
    """Enable login for `role` with `password`, sending only its SCRAM verifier to the server."""
    verifier = conn.pgconn.encrypt_password(password.encode(), role.encode(), b"scram-sha-256")
    conn.execute(
        sql.SQL("ALTER ROLE {} WITH LOGIN PASSWORD {}").format(
            sql.Identifier(role), sql.Literal(verifier.decode())
        )
    )
