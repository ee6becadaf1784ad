"""The tooling's settings: the runtime's table (sidecar/config.py) and what only the tooling reads
(the local PostgreSQL's memory, the MCP server, the roles it logs in as), written the same way."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import ClassVar

from sidecar import config as runtime
from sidecar.config import WORKER, ConfigError, setting

__all__ = ["APP", "LOGIN_ROLES", "READONLY", "SUPERUSER", "WORKER", "Config", "ConfigError",
           "describe", "load", "settings"]

# The fixed roles of a NEXUS database (the runtime's own: WORKER)
SUPERUSER = "nexus_superuser"
APP = "nexus_app"
READONLY = "nexus_ro"
LOGIN_ROLES = (SUPERUSER, APP, WORKER, READONLY)


@dataclass(frozen=True)
class Config(runtime.Config):
    pg_memory_mb: int | None = setting("NEXUS_PG_MEMORY_MB", None, "memory the local PostgreSQL "
                                       "is sized for (MB)", "all of the machine's")
    mcp_host: str = setting("NEXUS_MCP_HOST", "127.0.0.1", "address of the MCP server (HTTP)")
    mcp_port: int = setting("NEXUS_MCP_PORT", 58100, "port of the MCP server (0: nexus up starts "
                            "none)")
    embed_url: str | None = setting("NEXUS_EMBED_URL", None, "the /embed that recall and search "
                                    "use", "this stack's sidecar")
    agent_dsn: str | None = setting("NEXUS_AGENT_DSN", None, "nexus mcp (stdio) without --agent: "
                                    "the agent's connection string", "none")

    SECRET_ENV: ClassVar[dict[str, str]] = {
        SUPERUSER: "NEXUS_SUPERUSER_PASSWORD_FILE", APP: "NEXUS_APP_PASSWORD_FILE",
        READONLY: "NEXUS_RO_PASSWORD_FILE", **runtime.Config.SECRET_ENV}

    @property
    def secrets_dir(self) -> Path:
        return self.home / "secrets"

    @property
    def sidecar_url(self) -> str:
        return self.embed_url or f"http://{self.http_host}:{self.http_port}"

    def agent_secret_file(self, agent: str) -> Path:
        return self.secrets_dir / "agents" / f"{agent}_password"


def load(env: dict[str, str] | None = None, **overrides: object) -> Config:
    """The runtime's settings and the tooling's, from the environment; `overrides` (the command
    line's, None: not given) win over it."""
    given = {name: value for name, value in overrides.items() if value is not None}
    if "home" in given:
        given["home"] = Path(given["home"]).absolute()  # type: ignore[arg-type]
    return replace(runtime.load(env, Config), **given)


def describe(name: str) -> str:
    """A setting's variable and default, for help texts: 'NEXUS_PG_PORT, 55432'."""
    field = next(f for f in fields(Config) if f.name == name)
    return f"{field.metadata['env']}, {field.metadata['shown'] or field.default}"


def settings() -> list[tuple[str, str, str]]:
    return runtime.settings(Config)
