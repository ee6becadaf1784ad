"""The local stack: embedded PostgreSQL + pgvector, Redis, migrations, role logins."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, replace
from pathlib import Path

import psycopg
from psycopg import sql

from sidecar import db, migrate, secrets
from sidecar.config import APP, LOGIN_ROLES, READONLY, SUPERUSER, WORKER, Config
from sidecar.pgserver import PgServer, ServerError, reachable_by_server_user
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
            self.start_worker()
        except BaseException:
            self.down()
            raise

    def down(self) -> None:
        self.stop_worker()
        self.redis.stop()
        self.pg.stop()

    # -- the embedding worker (a supervisor of WORKER_REPLICAS processes) -----------------
    @property
    def worker_pidfile(self) -> Path:
        return self.cfg.home / "run" / "worker.pid"

    def worker_pid(self) -> int | None:
        try:
            pid = int(self.worker_pidfile.read_text())
            os.kill(pid, 0)
        except (FileNotFoundError, ValueError, ProcessLookupError):
            return None
        return pid

    def worker_health(self) -> dict | None:
        """The worker's /health document, or None if it does not answer."""
        url = f"http://127.0.0.1:{self.cfg.http_port}/health"
        try:
            with urllib.request.urlopen(url, timeout=3) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:  # 503 still carries the document
            return json.loads(exc.read())
        except (urllib.error.URLError, OSError, ValueError):
            return None

    def start_worker(self, timeout: float = 180) -> None:
        if self.cfg.worker_replicas <= 0 or self.worker_pid() is not None:
            return
        log_path = self.cfg.home / "log" / "worker.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.worker_pidfile.parent.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, NEXUS_HOME=str(self.cfg.home), NEXUS_PG_HOST=self.cfg.pg_host,
                   NEXUS_PG_PORT=str(self.cfg.pg_port), NEXUS_REDIS_PORT=str(self.cfg.redis_port),
                   NEXUS_DB=self.cfg.database, WORKER_REPLICAS=str(self.cfg.worker_replicas),
                   NEXUS_HTTP_PORT=str(self.cfg.http_port))
        with log_path.open("ab") as log:
            proc = subprocess.Popen([sys.executable, "-m", "sidecar.cli", "worker"], env=env,
                                    stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
        self.worker_pidfile.write_text(str(proc.pid))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                self.worker_pidfile.unlink(missing_ok=True)
                tail = log_path.read_text(errors="replace")[-2000:]
                raise ServerError(f"the embedding worker did not start:\n{tail}")
            if self.worker_health() is not None:
                return
            time.sleep(0.5)
        raise ServerError(f"the embedding worker did not answer within {timeout:.0f} s "
                          f"(see {log_path})")

    def stop_worker(self, timeout: float = 90) -> None:
        pid = self.worker_pid()
        if pid is None:
            return
        os.kill(pid, signal.SIGTERM)  # it stops claiming, finishes its batch, releases the rest
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.worker_pid() is not None:
            time.sleep(0.2)
        if self.worker_pid() is not None:
            os.kill(pid, signal.SIGKILL)  # leases bring its items back
        self.worker_pidfile.unlink(missing_ok=True)

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
        worker: dict[str, object] = {"replicas": self.cfg.worker_replicas, "pid": None}
        worker_ok = True
        if self.cfg.worker_replicas > 0:
            worker["pid"] = self.worker_pid()
            worker["http_port"] = self.cfg.http_port
            doc = self.worker_health() if worker["pid"] else None
            worker["health"] = doc["status"] if doc else None
            worker_ok = doc is not None and doc["status"] != "down"
        worker["healthy"] = worker_ok
        return {
            "healthy": pg_ok and redis_ok and worker_ok,
            "home": str(self.cfg.home),
            "postgresql": {"pid": pg_pid, "port": self.cfg.pg_port, "healthy": pg_ok},
            "redis": {"pid": redis_pid, "port": self.cfg.redis_port, "healthy": redis_ok},
            "worker": worker,
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
