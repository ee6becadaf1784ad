"""Connections of the sidecar (the tooling's connection strings and pgpass files: nexus/dsn.py)."""

from __future__ import annotations

import psycopg

from sidecar.config import Config


def connect(cfg: Config, role: str, password: str, dbname: str | None = None,
            **kwargs: object) -> psycopg.Connection:
    return psycopg.connect(
        host=cfg.pg_host, port=cfg.pg_port, dbname=dbname or cfg.database,
        user=role, password=password, connect_timeout=10, **kwargs,
    )
