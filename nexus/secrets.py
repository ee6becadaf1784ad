"""Password files: generated once (32 alphanumeric characters, mode 600), read when needed
(through the runtime's one reader of secret files, sidecar.config.read_secret)."""

from __future__ import annotations

import os
import secrets
import string
from pathlib import Path

from nexus.config import LOGIN_ROLES, Config
from sidecar.config import read_secret as read

__all__ = ["generate", "init", "password", "read", "write_new"]

ALPHABET = string.ascii_letters + string.digits
LENGTH = 32


def generate() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))


def write_new(path: Path) -> bool:
    """Create `path` with a fresh password unless it exists. Returns True if created."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as f:
        f.write(generate() + "\n")
    return True


# the production compose file (deploy/docker-compose.yml) also needs Grafana's admin password
COMPOSE_ONLY = ("grafana_admin",)


def init(cfg: Config, compose: bool = False) -> list[Path]:
    """Generate every missing password of the stack (and of the compose deployment, if asked).
    Returns the files it created."""
    created = []
    for name in (*LOGIN_ROLES, "redis", *(COMPOSE_ONLY if compose else ())):
        path = cfg.secret_file(name)
        if write_new(path):
            created.append(path)
    return created


def password(cfg: Config, name: str) -> str:
    return cfg.password(name)
