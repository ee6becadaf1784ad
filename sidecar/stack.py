"""The local stack: embedded PostgreSQL + pgvector, Redis, migrations, role logins."""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path

import psycopg
from psycopg import sql

from sidecar import db, migrate, secrets
from sidecar.config import APP, LOGIN_ROLES, READONLY, SUPERUSER, WORKER, Config
from sidecar.pgserver import PgServer, reachable_by_server_user
from sidecar.redisserver import RedisServer

FALLBACK_HOME = Path("/var/lib/nexus")


def resolve_home(cfg: Config) -> Config:
    """As root, the state directory must be reachable by the `postgres` user; if the project
    lives somewhere it cannot reach (a private /root), use /var/lib/nexus/<name>-<hash>."""
    cfg.home.mkdir(parents=True, exist_ok=True)
    if reachable_by_server_user(cfg.home):
        return cfg
    digest = hashlib.sha256(str(cfg.home).encode()).hexdigest()[:8]
    home = FALLBACK_HOME / f"{cfg.home.parent.name}-{digest}"
    home.mkdir(parents=True, exist_ok=True)
    os.chmod(FALLBACK_HOME, 0o755)
    os.chmod(home, 0o755)
    return replace(cfg, home=home)


@dataclass
class Stack:
    cfg: Config
    pg: PgServer
    redis: RedisServer

    @classmethod
    def from_config(cls, cfg: Config, **pg_options: object) -> Stack:
        cfg = resolve_home(cfg)
        os.chmod(cfg.home, 0o755)
        secrets.init(cfg)
        return cls(cfg, PgServer(cfg, **pg_options),  # type: ignore[arg-type]
                   RedisServer(cfg, secrets.password(cfg, "redis")))

    def superuser_conn(self, dbname: str | None = None, **kwargs: object) -> psycopg.Connection:
        return db.connect(self.cfg, SUPERUSER, secrets.password(self.cfg, SUPERUSER), dbname,
                          **kwargs)

    def up(self) -> None:
        """Install, initialise if needed, start both servers and migrate. Idempotent."""
        self.pg.install()
        if not self.pg.initialized():
            self.pg.init(secrets.password(self.cfg, SUPERUSER))
        self.pg.start()
        try:
            self.ensure_database()
            self.migrate()
            self.redis.start()
        except BaseException:
            self.down()
            raise

    def down(self) -> None:
        self.redis.stop()
        self.pg.stop()

    def ensure_database(self) -> None:
        with self.superuser_conn("postgres", autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                  (self.cfg.database,)).fetchone()
            if not exists:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(
                    sql.Identifier(self.cfg.database)))

    def migrate(self) -> migrate.MigrateResult:
        result = migrate.migrate(self.conninfo(SUPERUSER))
        with self.superuser_conn(autocommit=True) as conn:
            apply_role_passwords(conn, self.cfg)
        return result

    def conninfo(self, role: str) -> dict[str, str]:
        return {"host": self.cfg.pg_host, "port": str(self.cfg.pg_port),
                "dbname": self.cfg.database, "user": role,
                "password": secrets.password(self.cfg, role)}

    def dsns(self, show_password: bool = False) -> dict[str, str]:
        return {role: db.role_dsn(self.cfg, role, self.cfg.secret_file(role), show_password)
                for role in LOGIN_ROLES}

    def status(self) -> dict[str, object]:
        pg_pid, redis_pid = self.pg.pid(), self.redis.pid()
        pg_ok = False
        if pg_pid is not None:
            try:
                with self.superuser_conn() as conn:
                    pg_ok = conn.execute("SELECT true").fetchone() == (True,)
            except psycopg.Error:
                pg_ok = False
        redis_ok = redis_pid is not None and self.redis.healthy()
        return {
            "healthy": pg_ok and redis_ok,
            "home": str(self.cfg.home),
            "postgresql": {"pid": pg_pid, "port": self.cfg.pg_port, "healthy": pg_ok},
            "redis": {"pid": redis_pid, "port": self.cfg.redis_port, "healthy": redis_ok},
            "dsns": self.dsns() if pg_ok else {},
            "redis_url": self.redis.url,
            "redis_password_file": str(self.cfg.secret_file("redis")),
        }

    def wait_healthy(self, timeout: float = 30) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.status()["healthy"]:
                return True
            time.sleep(0.2)
        return False


def apply_role_passwords(conn: psycopg.Connection, cfg: Config) -> list[str]:
    """Enable login for the fixed roles whose secret file exists. Returns the roles set."""
    done = []
    for role in (APP, WORKER, READONLY):
        path = cfg.secret_file(role)
        if path.exists():
            db.set_password(conn, role, secrets.read(path))
            done.append(role)
    return done
