"""The one place that reads the runtime's environment: each setting written once, below (variable,
type, default, meaning), for `load`, help texts and the tooling's own table (nexus/config.py).
Secrets are read from files (`*_PASSWORD_FILE`, Docker secrets style), never the environment.
"""

from __future__ import annotations

import contextlib
import os
import types
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, TypeVar, get_type_hints

# the role the runtime logs in as, and what `python -m sidecar` exits with when it refuses its
# configuration: starting it again cannot help (a supervisor gives up)
WORKER = "nexus_worker"
CONFIG_ERROR = 2


class ConfigError(ValueError):
    """A setting that cannot be used; the message names its variable."""


def setting(env: str, default: Any, help: str, shown: str | None = None) -> Any:
    """A field of the table: read from `env`; `shown` is how help texts write the default."""
    return field(default=default, metadata={"env": env, "help": help, "shown": shown})


@dataclass(frozen=True)
class Config:
    home: Path = setting("NEXUS_HOME", Path(".nexus"), "state directory (secrets, data, logs)",
                         "./.nexus")
    pg_host: str = setting("NEXUS_PG_HOST", "127.0.0.1", "PostgreSQL host")
    pg_port: int = setting("NEXUS_PG_PORT", 55432, "PostgreSQL port")
    database: str = setting("NEXUS_DB", "nexus", "database name")
    redis_host: str = setting("NEXUS_REDIS_HOST", "127.0.0.1", "Redis host")
    redis_port: int = setting("NEXUS_REDIS_PORT", 56379, "Redis port")
    worker_replicas: int = setting("WORKER_REPLICAS", 1, "worker processes sharing this machine "
                                   "(each sizes its torch threads to its share of the cores)")
    worker_batch: int = setting("NEXUS_WORKER_BATCH", 32, "items claimed and encoded together")
    worker_lease_seconds: int = setting("NEXUS_WORKER_LEASE_SECONDS", 300,
                                        "lease of a claimed batch; at least twice the heartbeat")
    worker_heartbeat_seconds: int = setting("NEXUS_WORKER_HEARTBEAT_SECONDS", 30,
                                            "heartbeat (extends the leases held)")
    worker_poll_seconds: float = setting("NEXUS_WORKER_POLL_SECONDS", 5.0,
                                         "polling interval when no notification arrives")
    worker_threads: int | None = setting("NEXUS_WORKER_THREADS", None, "torch threads per "
                                         "worker process; auto: the cores but one, shared", "auto")
    reconcile_seconds: int = setting("NEXUS_RECONCILE_SECONDS", 300,
                                     "how often the Redis mirror is reconciled")
    embed_model: str | None = setting("NEXUS_EMBED_MODEL", None, "a local sentence-transformers "
                                      "folder", "the packaged all-MiniLM-L6-v2")
    embed_dtype: str = setting("NEXUS_EMBED_DTYPE", "auto", "auto, float32 or bfloat16")
    http_host: str = setting("NEXUS_HTTP_HOST", "127.0.0.1", "address of the HTTP endpoints")
    http_port: int = setting("NEXUS_HTTP_PORT", 58080, "port of the HTTP endpoints (0: none)")
    health_max_queue: int = setting("NEXUS_HEALTH_MAX_QUEUE", 1000,
                                    "pending items above which /health says degraded")
    embed_max_chars: int = setting("NEXUS_EMBED_MAX_CHARS", 8192,
                                   "longest text POST /embed accepts")
    # password files named by SECRET_ENV's variables (default: secrets/<name>_password in home)
    secret_files: dict[str, Path] = field(default_factory=dict)

    SECRET_ENV: ClassVar[dict[str, str]] = {WORKER: "NEXUS_WORKER_PASSWORD_FILE",
                                            "redis": "REDIS_PASSWORD_FILE"}

    def secret_file(self, name: str) -> Path:
        """Path of the password file of a fixed role (or 'redis')."""
        return self.secret_files.get(name) or self.home / "secrets" / f"{name}_password"

    def password(self, name: str) -> str:
        return read_secret(self.secret_file(name))


def read_secret(path: Path) -> str:
    try:
        value = path.read_text().strip()
    except FileNotFoundError:
        raise ConfigError(f"secret file {path} is missing (run: nexus secrets init)") from None
    if not value:
        raise ConfigError(f"secret file {path} is empty")
    return value


def _parse(env: str, hint: Any, raw: str) -> object:
    """`raw` as the field's type; an optional integer (torch threads) also takes `auto`: None."""
    optional = isinstance(hint, types.UnionType)
    kind = next(t for t in hint.__args__ if t is not type(None)) if optional else hint
    if kind not in (int, float):
        return kind(raw)
    if optional and raw == "auto":
        return None
    with contextlib.suppress(ValueError):
        value = kind(raw)
        if not optional or value >= 1:
            return value
    wanted = "a positive integer or auto" if optional else {int: "an integer",
                                                             float: "a number"}[kind]
    raise ConfigError(f"{env} must be {wanted}, got {raw!r}")


C = TypeVar("C", bound=Config)


def load(env: dict[str, str] | None = None, cls: type[C] = Config) -> C:  # type: ignore[assignment]
    """Build the configuration from the environment (or the mapping given); an unset or empty
    variable takes the default."""
    env = dict(os.environ if env is None else env)
    hints = get_type_hints(cls)
    values: dict[str, object] = {}
    for f in fields(cls):
        raw = env.get(f.metadata.get("env", ""))
        if raw:
            values[f.name] = _parse(f.metadata["env"], hints[f.name], raw)
    values["secret_files"] = {name: Path(env[var]) for name, var in cls.SECRET_ENV.items()
                              if env.get(var)}
    values["home"] = Path(values.get("home", cls.home)).absolute()  # type: ignore[arg-type]
    return cls(**values)  # type: ignore[arg-type]


def settings(cls: type[Config] = Config) -> list[tuple[str, str, str]]:
    """(variable, default, meaning) of every setting, in the table's order."""
    return [(f.metadata["env"], f.metadata["shown"] or str(f.default), f.metadata["help"])
            for f in fields(cls) if "env" in f.metadata]
