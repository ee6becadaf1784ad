"""Password files: generated once (32 alphanumeric characters, mode 600), read when needed."""

from __future__ import annotations

import os
import secrets
import string
from pathlib import Path

from sidecar.config import LOGIN_ROLES, Config

ALPHABET = string.ascii_letters + string.digits
LENGTH = 32


class SecretError(RuntimeError):
    pass


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


def read(path: Path) -> str:
    try:
        value = path.read_text().strip()
    except FileNotFoundError:
        raise SecretError(f"secret file {path} is missing (run: nexus secrets init)") from None
    if not value:
        raise SecretError(f"secret file {path} is empty")
    return value


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
    return read(cfg.secret_file(name))
