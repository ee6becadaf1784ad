"""Config parsing (sidecar/config.py, and the tooling's extension nexus/config.py): defaults,
types, bad values named by their variable, and password files (`*_FILE`)."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from nexus import config as tooling
from sidecar import config
from sidecar.config import WORKER, ConfigError


def test_an_empty_environment_gives_every_default(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = config.load(env={})
    assert cfg.home == tmp_path / ".nexus"
    assert (cfg.pg_host, cfg.pg_port, cfg.database) == ("127.0.0.1", 55432, "nexus")
    assert (cfg.http_port, cfg.worker_batch, cfg.worker_threads) == (58080, 32, None)
    assert cfg.worker_poll_seconds == 5.0 and isinstance(cfg.worker_poll_seconds, float)
    assert tooling.describe("pg_port") == "NEXUS_PG_PORT, 55432"
    assert tooling.describe("worker_threads") == "NEXUS_WORKER_THREADS, auto"


def test_each_variable_is_parsed_as_its_type() -> None:
    cfg = config.load(env={"NEXUS_PG_PORT": "6000", "NEXUS_WORKER_POLL_SECONDS": "0.25",
                           "NEXUS_WORKER_THREADS": "3", "NEXUS_EMBED_MODEL": "/models/m",
                           "NEXUS_HOME": "/srv/nexus", "NEXUS_DB": "", "WORKER_REPLICAS": "2"})
    assert cfg.pg_port == 6000 and cfg.worker_replicas == 2
    assert cfg.worker_poll_seconds == 0.25
    assert cfg.worker_threads == 3
    assert cfg.embed_model == "/models/m"
    assert cfg.home == Path("/srv/nexus")
    assert cfg.database == "nexus", "an empty variable takes the default"
    assert config.load(env={"NEXUS_WORKER_THREADS": "auto"}).worker_threads is None


def test_overrides_win_and_none_means_not_given() -> None:
    cfg = tooling.load(env={"NEXUS_HTTP_PORT": "7000"}, http_port=None, pg_port=7001)
    assert (cfg.http_port, cfg.pg_port) == (7000, 7001)


@pytest.mark.parametrize(("variable", "value", "message"), [
    ("NEXUS_PG_PORT", "fivefivefour", "NEXUS_PG_PORT must be an integer, got 'fivefivefour'"),
    ("NEXUS_WORKER_POLL_SECONDS", "soon", "NEXUS_WORKER_POLL_SECONDS must be a number"),
    ("NEXUS_WORKER_BATCH", "1.5", "NEXUS_WORKER_BATCH must be an integer"),
    ("NEXUS_WORKER_THREADS", "0", "NEXUS_WORKER_THREADS must be a positive integer or auto"),
    ("NEXUS_WORKER_THREADS", "many", "NEXUS_WORKER_THREADS must be a positive integer or auto"),
])
def test_a_bad_value_is_an_error_naming_its_variable(variable: str, value: str,
                                                      message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        config.load(env={variable: value})


def test_password_files_default_to_home_and_follow_their_file_variables(tmp_path: Path) -> None:
    given = tmp_path / "worker.secret"
    given.write_text("s3cret\n")
    cfg = config.load(env={"NEXUS_HOME": str(tmp_path), "NEXUS_WORKER_PASSWORD_FILE": str(given)})
    assert cfg.secret_file(WORKER) == given
    assert cfg.password(WORKER) == "s3cret"
    assert cfg.secret_file("redis") == tmp_path / "secrets" / "redis_password"
    with pytest.raises(ConfigError, match="redis_password is missing"):
        cfg.password("redis")
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "redis_password").write_text("\n")
    with pytest.raises(ConfigError, match="is empty"):
        cfg.password("redis")


def test_the_runtime_reads_only_its_own_settings_and_the_tooling_extends_them(
        tmp_path: Path) -> None:
    runtime = {f.name for f in fields(config.Config)}
    assert not runtime & {"mcp_host", "mcp_port", "embed_url", "agent_dsn", "pg_memory_mb"}
    su_file = tmp_path / "su"
    cfg = tooling.load(env={"NEXUS_MCP_PORT": "9000", "NEXUS_PG_MEMORY_MB": "512",
                            "NEXUS_HTTP_PORT": "9001",
                            "NEXUS_SUPERUSER_PASSWORD_FILE": str(su_file)})
    assert isinstance(cfg, config.Config)
    assert (cfg.mcp_port, cfg.pg_memory_mb, cfg.http_port) == (9000, 512, 9001)
    assert cfg.sidecar_url == "http://127.0.0.1:9001"
    assert cfg.secret_file(tooling.SUPERUSER) == su_file
    # the runtime ignores the tooling's password variables
    assert config.load(env={"NEXUS_SUPERUSER_PASSWORD_FILE": str(su_file)}).secret_files == {}
    assert tooling.describe("mcp_port") == "NEXUS_MCP_PORT, 58100"
    variables = [env for env, _, _ in tooling.settings()]
    assert len(variables) == len(set(variables)) and "NEXUS_MCP_PORT" in variables


def test_the_runtime_knows_its_release_s_newest_migration() -> None:
    """A worker runs only against a database migrated to sidecar.db.SCHEMA: a new migration must
    move it (and so a worker of an older release refuses the newer schema)."""
    from sidecar.db import SCHEMA

    newest = max(p.stem for p in (Path(__file__).parents[2] / "migrations").glob("[0-9]*.sql"))
    assert newest == SCHEMA
