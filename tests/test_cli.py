"""The `nexus` command end to end: secrets, up/status/down, agents, foreground Ctrl-C, ports."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import psycopg
import pytest

from conftest import NEXUS, own_stack_env, process_alive


@pytest.fixture(scope="module")
def env():
    with own_stack_env("nexus-cli-", WORKER_REPLICAS="0") as env:
        yield env


def nexus(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([NEXUS, *args], env=env, capture_output=True, text=True, timeout=300)
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_secrets_init_makes_strong_private_files(env) -> None:
    first = nexus(env, "secrets", "init")
    secrets_dir = Path(env["NEXUS_HOME"]) / "secrets"
    files = sorted(secrets_dir.glob("*_password"))
    assert [f.name for f in files] == sorted(
        f"{n}_password"
        for n in ("nexus_superuser", "nexus_app", "nexus_worker", "nexus_ro", "redis"))
    for f in files:
        assert f.stat().st_mode & 0o777 == 0o600
        assert re.fullmatch(r"[A-Za-z0-9]{32}\n", f.read_text())
    assert first.stdout.count("created") == 5
    contents = [f.read_text() for f in files]
    second = nexus(env, "secrets", "init")
    assert "created" not in second.stdout
    assert [f.read_text() for f in files] == contents


def test_up_status_agents_down(env) -> None:
    up = nexus(env, "up", "--detach")
    secrets_dir = Path(env["NEXUS_HOME"]) / "secrets"
    for f in secrets_dir.glob("*_password"):
        assert f.read_text().strip() not in up.stdout + up.stderr, "a password was printed"

    status = json.loads(nexus(env, "status", "--json").stdout)
    assert status["healthy"] is True
    assert set(status["dsns"]) == {"nexus_superuser", "nexus_app", "nexus_worker", "nexus_ro"}
    assert status["redis_url"] == f"redis://127.0.0.1:{env['NEXUS_REDIS_PORT']}/0"
    with psycopg.connect(status["dsns"]["nexus_ro"]) as conn:
        assert conn.execute("SELECT current_user").fetchone()[0] == "nexus_ro"

    dsn = nexus(env, "agent", "add", "scout").stdout.strip()
    assert dsn == nexus(env, "agent", "dsn", "scout").stdout.strip()
    with psycopg.connect(dsn) as conn:
        conn.execute("INSERT INTO nexus_memory.zep_episodic_memory (content) VALUES ('seen')")
        conn.commit()
        assert conn.execute("SELECT nexus.current_agent()").fetchone()[0] == "scout"
    assert "scout" in nexus(env, "agent", "list").stdout
    # spaces (docs/spaces.md): create, members, list, drop refused while it has members, revoke
    nexus(env, "space", "create", "crew", "--owner", "scout")
    assert nexus(env, "space", "members", "crew").stdout == "scout\twrite\n"
    assert nexus(env, "space", "list").stdout.startswith("crew\tscout\t0\t1\t0\t")
    assert "crew" not in nexus(env, "agent", "list").stdout, "a space is no agent"
    # forgetting in a space the agent writes, verified in the space's memory (docs/privacy.md)
    with psycopg.connect(dsn) as conn:
        conn.execute("SELECT nexus.record_episode('crew secret', tags => '{gone}', "
                     "space => 'crew')")
        conn.commit()
    forgot = nexus(env, "forget", "--agent", "scout", "--space", "crew", "--tag", "gone")
    assert forgot.stdout.startswith("forgot 1 episode")
    assert "verified: nothing left" in forgot.stdout
    busy = nexus(env, "space", "drop", "crew", check=False)
    assert busy.returncode == 2 and "NX084" in busy.stderr
    nexus(env, "space", "revoke", "crew", "scout")
    assert "dropped space crew (0 memory rows" in nexus(env, "space", "drop", "crew").stdout
    again = nexus(env, "agent", "add", "scout", check=False)
    assert again.returncode == 2 and "NX004" in again.stderr
    refused = nexus(env, "agent", "remove", "scout", check=False)
    assert refused.returncode == 2 and "NX005" in refused.stderr
    removed = nexus(env, "agent", "remove", "scout", "--delete-memories")
    assert "1 memory rows deleted" in removed.stdout
    assert "scout" not in nexus(env, "agent", "list").stdout

    # a second `up` on a running stack is harmless; a taken port is a clear error
    nexus(env, "up", "--detach")
    other = dict(env, NEXUS_HOME=env["NEXUS_HOME"] + "-other")
    clash = nexus(other, "up", "--detach", check=False)
    assert clash.returncode == 2
    assert f"port {env['NEXUS_PG_PORT']}" in clash.stderr and "NEXUS_PG_PORT" in clash.stderr
    shutil.rmtree(other["NEXUS_HOME"], ignore_errors=True)

    pids = (status["postgresql"]["pid"], status["redis"]["pid"])
    nexus(env, "down")
    assert not any(process_alive(p) for p in pids)
    stopped = nexus(env, "status", "--json", check=False)
    assert stopped.returncode == 1 and json.loads(stopped.stdout)["healthy"] is False


def test_redis_port_taken_is_a_clear_error(env) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        taken = s.getsockname()[1]
        result = nexus(dict(env, NEXUS_REDIS_PORT=str(taken)), "up", "--detach", check=False)
    assert result.returncode == 2
    assert f"port {taken}" in result.stderr and "NEXUS_REDIS_PORT" in result.stderr
    status = json.loads(nexus(env, "status", "--json", check=False).stdout)
    assert status["postgresql"]["pid"] is None, "a failed up must not leave PostgreSQL running"


def test_foreground_up_stops_everything_on_ctrl_c(env) -> None:
    proc = subprocess.Popen([NEXUS, "up"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        status = {}
        while time.monotonic() < deadline:
            result = nexus(env, "status", "--json", check=False)
            status = json.loads(result.stdout)
            if status["healthy"]:
                break
            time.sleep(0.5)
        assert status.get("healthy"), "stack did not come up"
        pids = [status["postgresql"]["pid"], status["redis"]["pid"]]
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        output, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, output
    assert "Stopped." in output
    assert not any(process_alive(p) for p in pids), "a server outlived Ctrl-C"


def test_psql_is_the_stack_s_own_as_an_agent_or_a_role(env, up_env, tmp_path) -> None:
    """`nexus psql` refuses while the stack is down (this module's), and on a running one (the
    session's, conftest.up_env, so that no stack is started for it) opens the stack's own psql
    as an agent or a role."""
    nexus(env, "down")
    stopped = nexus(env, "psql", "clerk", check=False)
    assert stopped.returncode == 2 and "not running" in stopped.stderr
    env = up_env
    nexus(env, "up", "--detach")
    nexus(env, "agent", "add", "clerk")
    out = nexus(env, "psql", "clerk", "--", "-Atc",
                "SELECT current_user, current_setting('server_version_num')").stdout
    user, server = out.strip().split("|")
    assert user == "clerk"
    version = nexus(env, "psql", "clerk", "--", "--version").stdout
    assert re.match(rf"psql \(PostgreSQL\) {int(server) // 10000}\.", version), version
    piped = subprocess.run([NEXUS, "psql", "clerk", "--", "-At"], env=env, text=True,
                           input="SELECT nexus.current_agent();", capture_output=True,
                           timeout=60)
    assert piped.returncode == 0 and piped.stdout.strip() == "clerk", piped.stderr
    script = tmp_path / "answer.sql"
    script.write_text("SELECT 40 + 2;\n")
    assert nexus(env, "psql", "clerk", "--", "-At", "-f", str(script)).stdout.strip() == "42"
    for role, login in (("ro", "nexus_ro"), ("app", "nexus_app"),
                        ("superuser", "nexus_superuser")):
        out = nexus(env, "psql", "--role", role, "--", "-Atc", "SELECT current_user").stdout
        assert out.strip() == login
    failed = nexus(env, "psql", "clerk", "--", "-c", "SELECT 1/0", check=False)
    assert failed.returncode == 1 and "division by zero" in failed.stderr
    for args, says in ((["nobody"], "no agent 'nobody'"),
                       ([], "needs an agent or a role"),
                       (["clerk", "--role", "ro"], "not both")):
        refused = nexus(env, "psql", *args, check=False)
        assert refused.returncode == 2 and says in refused.stderr, refused.stderr
