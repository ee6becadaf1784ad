"""The one place that reads the environment.

Every setting has a default that works on a laptop; secrets are read from files
(`*_PASSWORD_FILE`, Docker secrets style), never from the environment or the repo.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

# The fixed roles of a NEXUS database, and the secret file each one's password lives in.
SUPERUSER = "nexus_superuser"
APP = "nexus_app"
WORKER = "nexus_worker"
READONLY = "nexus_ro"
LOGIN_ROLES = (SUPERUSER, APP, WORKER, READONLY)

# Environment variable that may point at each secret file, Docker secrets style.
SECRET_ENV = {
    SUPERUSER: "NEXUS_SUPERUSER_PASSWORD_FILE",
    APP: "NEXUS_APP_PASSWORD_FILE",
    WORKER: "NEXUS_WORKER_PASSWORD_FILE",
    READONLY: "NEXUS_RO_PASSWORD_FILE",
    "redis": "REDIS_PASSWORD_FILE",
}


def _int(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise SystemExit(f"{name} must be an integer, got {raw!r}") from None


def _threads(env: dict[str, str], name: str) -> int | None:
    """A thread count, or None for `auto` (or unset): follow the machine's cores."""
    if (env.get(name) or "auto") == "auto":
        return None
    value = _int(env, name, 1)
    if value < 1:
        raise SystemExit(f"{name} must be a positive integer or auto, got {env[name]!r}")
    return value


@dataclass(frozen=True)
class Config:
    home: Path
    pg_host: str = "127.0.0.1"
    pg_port: int = 55432
    redis_port: int = 56379
    database: str = "nexus"
    # memory to size PostgreSQL for (MB); default: all of the machine's memory
    pg_memory_mb: int | None = None
    redis_host: str = "127.0.0.1"
    secret_files: dict[str, Path] = field(default_factory=dict)
    # embedding workers
    worker_replicas: int = 1
    worker_batch: int = 32
    worker_lease_seconds: int = 300
    worker_heartbeat_seconds: int = 30
    reconcile_seconds: int = 300
    worker_poll_seconds: float = 5.0
    # torch threads per worker process; None: follow the cores (sidecar.embedder.auto_threads)
    worker_threads: int | None = None
    embed_model: str | None = None
    embed_dtype: str = "auto"       # auto | float32 | bfloat16
    embed_device: str = "cpu"       # cpu | cuda
    http_host: str = "127.0.0.1"
    http_port: int = 58080
    health_max_queue: int = 1000
    embed_max_chars: int = 8192
    # the MCP server over HTTP (nexus mcp --http; nexus up starts it; port 0: not started)
    mcp_host: str = "127.0.0.1"
    mcp_port: int = 58100
    # where the MCP server and the client reach /embed (default: this stack's sidecar)
    embed_url: str | None = None
    # nexus mcp (stdio) without --agent: the agent's connection string
    agent_dsn: str | None = None

    @property
    def sidecar_url(self) -> str:
        return self.embed_url or f"http://{self.http_host}:{self.http_port}"

    @property
    def secrets_dir(self) -> Path:
        return self.home / "secrets"

    def secret_file(self, name: str) -> Path:
        """Path of the password file of a fixed role (or 'redis')."""
        return self.secret_files.get(name) or self.secrets_dir / f"{name}_password"

    def agent_secret_file(self, agent: str) -> Path:
        return self.secrets_dir / "agents" / f"{agent}_password"


def load(env: dict[str, str] | None = None, **overrides: object) -> Config:
    """Build the configuration from the environment (or the mapping given)."""
    env = dict(os.environ if env is None else env)
    home = Path(env.get("NEXUS_HOME") or Path.cwd() / ".nexus").absolute()
    secret_files = {name: Path(env[var]) for name, var in SECRET_ENV.items() if env.get(var)}
    values: dict[str, object] = {
        "home": home,
        "pg_host": env.get("NEXUS_PG_HOST", "127.0.0.1"),
        "pg_port": _int(env, "NEXUS_PG_PORT", 55432),
        "redis_port": _int(env, "NEXUS_REDIS_PORT", 56379),
        "database": env.get("NEXUS_DB", "nexus"),
        "pg_memory_mb": _int(env, "NEXUS_PG_MEMORY_MB", 0) or None,
        "redis_host": env.get("NEXUS_REDIS_HOST", "127.0.0.1"),
        "worker_replicas": _int(env, "WORKER_REPLICAS", 1),
        "worker_batch": _int(env, "NEXUS_WORKER_BATCH", 32),
        "worker_lease_seconds": _int(env, "NEXUS_WORKER_LEASE_SECONDS", 300),
        "worker_heartbeat_seconds": _int(env, "NEXUS_WORKER_HEARTBEAT_SECONDS", 30),
        "reconcile_seconds": _int(env, "NEXUS_RECONCILE_SECONDS", 300),
        "worker_poll_seconds": float(_int(env, "NEXUS_WORKER_POLL_SECONDS", 5)),
        "worker_threads": _threads(env, "NEXUS_WORKER_THREADS"),
        "embed_model": env.get("NEXUS_EMBED_MODEL") or None,
        "embed_dtype": env.get("NEXUS_EMBED_DTYPE") or "auto",
        "embed_device": env.get("NEXUS_EMBED_DEVICE") or "cpu",
        "http_host": env.get("NEXUS_HTTP_HOST", "127.0.0.1"),
        "http_port": _int(env, "NEXUS_HTTP_PORT", 58080),
        "health_max_queue": _int(env, "NEXUS_HEALTH_MAX_QUEUE", 1000),
        "embed_max_chars": _int(env, "NEXUS_EMBED_MAX_CHARS", 8192),
        "mcp_host": env.get("NEXUS_MCP_HOST", "127.0.0.1"),
        "mcp_port": _int(env, "NEXUS_MCP_PORT", 58100),
        "embed_url": env.get("NEXUS_EMBED_URL") or None,
        "agent_dsn": env.get("NEXUS_AGENT_DSN") or None,
        "secret_files": secret_files,
    }
    values.update({k: v for k, v in overrides.items() if v is not None})
    return Config(**values)  # type: ignore[arg-type]
