"""The local stack: embedded PostgreSQL + pgvector, Redis, migrations, role logins."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import psycopg
from psycopg import sql

from nexus import migrate, secrets
from nexus.config import APP, LOGIN_ROLES, READONLY, SUPERUSER, WORKER, Config
from nexus.dsn import connect, role_dsn, set_password
from nexus.pgserver import PgServer, reachable_by_server_user
from nexus.ports import ServerError
from nexus.redisserver import RedisServer
from nexus.supervisor import process_alive, state_file

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


def _terminate(pid_of: Callable[[], int | None], timeout: float) -> int | None:
    """SIGTERM to the process `pid_of()` names (a process group leader), then SIGKILL to its
    group if it is still alive after `timeout` seconds. Returns the pid it stopped, if any."""
    pid = pid_of()
    if pid is None:
        return None
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and pid_of() is not None:
        time.sleep(0.1)
    if pid_of() is not None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
    return pid


@dataclass
class Stack:
    cfg: Config
    pg: PgServer
    redis: RedisServer
    _children: dict[str, subprocess.Popen] = field(default_factory=dict, repr=False)
    _exits: dict[str, int] = field(default_factory=dict, repr=False)

    @classmethod
    def from_config(cls, cfg: Config, **pg_options: object) -> Stack:
        cfg = resolve_home(cfg)
        os.chmod(cfg.home, 0o755)
        secrets.init(cfg)
        return cls(cfg, PgServer(cfg, **pg_options),  # type: ignore[arg-type]
                   RedisServer(cfg, secrets.password(cfg, "redis")))

    def superuser_conn(self, dbname: str | None = None, **kwargs: object) -> psycopg.Connection:
        return connect(self.cfg, SUPERUSER, secrets.password(self.cfg, SUPERUSER), dbname,
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
            # the MCP server (it needs PostgreSQL only) starts while the worker loads its model
            with ThreadPoolExecutor(1) as pool:
                mcp = pool.submit(self.start_mcp)
                self.start_worker()
                mcp.result()
        except BaseException:
            self.down()
            raise

    def down(self) -> None:
        self.stop_mcp()
        self.stop_worker()
        self.redis.stop()
        self.pg.stop()

    # -- the processes it starts: the worker's supervisor (nexus worker), the MCP server --------
    def _pidfile(self, name: str) -> Path:
        return self.cfg.home / "run" / f"{name}.pid"

    def _pid(self, name: str) -> int | None:
        """The pid of process `name` if it is alive (a zombie is not: it is reaped here if
        ours, and its exit code kept)."""
        child = self._children.get(name)
        if child is not None and child.poll() is not None:
            self._exits[name] = child.returncode
            del self._children[name]
        try:
            pid = int(self._pidfile(name).read_text())
        except (FileNotFoundError, ValueError):
            return None
        return pid if process_alive(pid) else None

    def _start(self, name: str, what: str, command: list[str], env: dict[str, str],
               ready: Callable[[], bool], timeout: float, interval: float) -> None:
        """Start `command` in a session of its own (logged to log/<name>.log, pid in
        run/<name>.pid) and wait until `ready()`; ServerError with its log's end if it exits or
        is not ready in `timeout` seconds."""
        log_path = self.cfg.home / "log" / f"{name}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._pidfile(name).parent.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, NEXUS_HOME=str(self.cfg.home), NEXUS_PG_HOST=self.cfg.pg_host,
                   NEXUS_PG_PORT=str(self.cfg.pg_port), NEXUS_DB=self.cfg.database, **env)
        with log_path.open("ab") as log:
            proc = subprocess.Popen([sys.executable, "-m", "nexus.cli", *command], env=env,
                                    stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        self._children[name] = proc
        self._exits.pop(name, None)
        self._pidfile(name).write_text(str(proc.pid))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                self._pidfile(name).unlink(missing_ok=True)
                tail = log_path.read_text(errors="replace")[-2000:]
                raise ServerError(f"{what} did not start:\n{tail}")
            if ready():
                return
            time.sleep(interval)
        raise ServerError(f"{what} did not answer within {timeout:.0f} s (see {log_path})")

    def _stop(self, name: str, timeout: float) -> None:
        """SIGTERM to process `name`; after `timeout` seconds its whole group is killed."""
        _terminate(lambda: self._pid(name), timeout)
        child = self._children.pop(name, None)
        if child is not None:
            child.wait()
        self._pidfile(name).unlink(missing_ok=True)

    # the embedding worker: its supervisor (nexus worker), WORKER_REPLICAS replicas
    def worker_pid(self) -> int | None:
        return self._pid("worker")

    def worker_exit_code(self) -> int | None:
        """How the supervisor this process started ended (None: running, or not ours)."""
        return self._exits.get("worker")

    def start_worker(self, timeout: float = 180) -> None:
        if self.cfg.worker_replicas <= 0 or self.worker_pid() is not None:
            return
        state_file(self.cfg).unlink(missing_ok=True)
        self._start("worker", "the embedding worker", ["worker"],
                    {"NEXUS_REDIS_PORT": str(self.cfg.redis_port),
                     "WORKER_REPLICAS": str(self.cfg.worker_replicas),
                     "NEXUS_HTTP_PORT": str(self.cfg.http_port)},
                    lambda: self.worker_health() is not None, timeout, 0.2)

    def stop_worker(self, timeout: float = 12) -> None:
        """The supervisor drains its replicas; leases bring back what a killed one held."""
        self._stop("worker", timeout)

    def worker_state(self) -> dict | None:
        """What the supervisor last wrote of its replicas (pids, state, restarts)."""
        try:
            return json.loads(state_file(self.cfg).read_text())
        except (FileNotFoundError, ValueError):
            return None

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

    # the MCP server over HTTP (nexus mcp --http), with the worker whose /embed it uses
    @property
    def mcp_url(self) -> str | None:
        if self.cfg.mcp_port <= 0 or self.cfg.worker_replicas <= 0:
            return None
        return f"http://{self.cfg.mcp_host}:{self.cfg.mcp_port}/mcp"

    def mcp_pid(self) -> int | None:
        return self._pid("mcp")

    def mcp_healthy(self) -> bool:
        url = f"http://{self.cfg.mcp_host}:{self.cfg.mcp_port}/health"
        try:
            with urllib.request.urlopen(url, timeout=3) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def start_mcp(self, timeout: float = 60) -> None:
        if self.mcp_url is None or self.mcp_pid() is not None:
            return
        self._start("mcp", "the MCP server", ["mcp", "--http"],
                    {"NEXUS_EMBED_URL": self.cfg.sidecar_url, "NEXUS_MCP_HOST": self.cfg.mcp_host,
                     "NEXUS_MCP_PORT": str(self.cfg.mcp_port)},
                    self.mcp_healthy, timeout, 0.2)

    def stop_mcp(self, timeout: float = 10) -> None:
        self._stop("mcp", timeout)

    @property
    def maintenance_file(self) -> Path:
        return self.cfg.home / "run" / "maintenance"

    @contextlib.contextmanager
    def maintenance(self) -> Iterator[None]:
        """While a command stops parts of the stack on purpose (a restore), the watchdog leaves
        them alone: it restarts nothing while this process holds the maintenance file."""
        self.maintenance_file.parent.mkdir(parents=True, exist_ok=True)
        self.maintenance_file.write_text(str(os.getpid()))
        try:
            yield
        finally:
            self.maintenance_file.unlink(missing_ok=True)

    def in_maintenance(self) -> bool:
        try:
            return process_alive(int(self.maintenance_file.read_text()))
        except (FileNotFoundError, ValueError):
            return False

    @property
    def watch_file(self) -> Path:
        """Where the watchdog (nexus/watch.py) keeps each component's state and restarts."""
        return self.cfg.home / "run" / "stack.json"

    def restarts(self) -> dict[str, int]:
        try:
            doc = json.loads(self.watch_file.read_text())
        except (FileNotFoundError, ValueError):
            return {}
        return {name: part["restarts"] for name, part in doc.items()}

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
            result.logins = apply_role_passwords(conn, self.cfg)
        return result

    def conninfo(self, role: str) -> dict[str, str]:
        return {"host": self.cfg.pg_host, "port": str(self.cfg.pg_port),
                "dbname": self.cfg.database, "user": role,
                "password": secrets.password(self.cfg, role)}

    def dsns(self, show_password: bool = False, write: bool = True) -> dict[str, str]:
        return {role: role_dsn(self.cfg, role, self.cfg.secret_file(role), show_password, write)
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
        worker = self.worker_status()
        worker_ok = worker["healthy"]
        restarts = self.restarts()
        worker["stack_restarts"] = restarts.get("worker", 0)
        mcp_ok = self.mcp_url is None or self.mcp_healthy()
        return {
            "healthy": pg_ok and redis_ok and worker_ok and mcp_ok,
            "home": str(self.cfg.home),
            "postgresql": {"pid": pg_pid, "port": self.cfg.pg_port, "healthy": pg_ok,
                           "restarts": restarts.get("postgresql", 0)},
            "redis": {"pid": redis_pid, "port": self.cfg.redis_port, "healthy": redis_ok,
                      "restarts": restarts.get("redis", 0)},
            "worker": worker,
            "dsns": self.dsns(write=False) if pg_ok else {},
            "redis_url": self.redis.url,
            "redis_password_file": str(self.cfg.secret_file("redis")),
            "mcp_url": self.mcp_url,
            "mcp": {"pid": self.mcp_pid(), "healthy": mcp_ok},
        }

    def worker_status(self) -> dict[str, object]:
        """The worker as it is: running, restarting (with the count), starting or down."""
        worker: dict[str, object] = {"replicas": self.cfg.worker_replicas, "pid": None,
                                     "state": "disabled", "restarts": 0, "healthy": True}
        if self.cfg.worker_replicas <= 0:
            return worker
        pid = self.worker_pid()
        state = self.worker_state() if pid else None
        replicas = (state or {}).get("replicas", [])
        live = [r for r in replicas if r["pid"] and process_alive(r["pid"])]
        doc = self.worker_health() if pid else None
        if pid is None:
            name = "down"
        elif not replicas:
            name = "starting"
        elif len(live) == len(replicas):
            name = "running"
        else:
            name = "restarting"
        worker.update(pid=pid, state=name, http_port=self.cfg.http_port,
                      restarts=sum(r["restarts"] for r in replicas),
                      replica_pids=[r["pid"] for r in live],
                      health=doc["status"] if doc else None,
                      healthy=name == "running" and doc is not None and doc["status"] != "down")
        return worker

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
            set_password(conn, role, secrets.read(path))
            done.append(role)
    return done
