"""The local Redis server (Debian's redis-server), on its own port, with a password."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import redis

from nexus.config import Config
from nexus.ports import ServerError, port_free
from nexus.supervisor import process_alive


class RedisServer:
    def __init__(self, cfg: Config, password: str) -> None:
        self.cfg = cfg
        self.password = password
        self.dir = cfg.home / "redis"
        self.conf = self.dir / "redis.conf"
        self.pidfile = self.dir / "redis.pid"
        self.log = cfg.home / "log" / "redis.log"

    @property
    def url(self) -> str:
        """URL without the password (it lives in the secret file)."""
        return f"redis://127.0.0.1:{self.cfg.redis_port}/0"

    def client(self, **kwargs: object) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.cfg.redis_port, password=self.password,
                           socket_timeout=2, socket_connect_timeout=2, **kwargs)

    def pid(self) -> int | None:
        """Pid of the running server, or None (an exited one, not yet reaped, is not running)."""
        try:
            pid = int(self.pidfile.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        return pid if process_alive(pid) else None

    def healthy(self) -> bool:
        try:
            return bool(self.client().ping())
        except redis.RedisError:
            return False

    def _write_conf(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.log.parent.mkdir(parents=True, exist_ok=True)
        lines = [
            f"port {self.cfg.redis_port}",
            "bind 127.0.0.1",
            "protected-mode yes",
            "daemonize yes",
            f"pidfile {self.pidfile}",
            f"logfile {self.log}",
            f"dir {self.dir}",
            # a cache of PostgreSQL: reconciliation rebuilds it, so no persistence locally
            'save ""',
            "appendonly no",
            f"requirepass {self.password}",
        ]
        fd = os.open(self.conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("\n".join(lines) + "\n")

    def start(self) -> None:
        if self.pid() is not None:
            return
        binary = shutil.which("redis-server")
        if binary is None:
            raise ServerError("redis-server is not installed (run: make setup)")
        if not port_free("127.0.0.1", self.cfg.redis_port):
            raise ServerError(
                f"port {self.cfg.redis_port} is already in use: "
                "set NEXUS_REDIS_PORT (or --redis-port) to a free port"
            )
        self._write_conf()
        result = subprocess.run([binary, str(self.conf)], capture_output=True, text=True,
                                start_new_session=True)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.healthy():
                return
            time.sleep(0.1)
        tail = self.log.read_text()[-2000:] if self.log.exists() else ""
        raise ServerError(f"Redis did not start:\n{result.stderr}{tail}")

    def stop(self) -> None:
        pid = self.pid()
        if pid is None:
            return
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and process_alive(pid):
            time.sleep(0.05)
        Path(self.pidfile).unlink(missing_ok=True)
