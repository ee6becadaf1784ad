"""The stack under `nexus up` (what `make run` runs; the session's, conftest.up_env): a replica
killed with kill -9 is restarted by its supervisor, what it held comes back, and `nexus status`
never calls a dead worker alive; /health follows PostgreSQL and Redis, and the watchdog restarts
a server that dies; `nexus down` stops everything. Real stack, real model."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from bench.harness import write_waiting, writes_blocked
from conftest import NEXUS, process_alive
from nexus import config
from nexus.stack import Stack
from tests.helpers import http, wait_for

KILLS = 2
BATCH = 8  # conftest.up_env's NEXUS_WORKER_BATCH
# written before each kill: the replica holds three batches (bench.harness.writes_blocked)
PER_KILL = 4 * BATCH
EPISODES = KILLS * PER_KILL


def status(env: dict[str, str]) -> dict:
    result = subprocess.run([NEXUS, "status", "--json"], env=env, capture_output=True, text=True,
                            timeout=60)
    return json.loads(result.stdout)


def nexus(env: dict[str, str], *args: str) -> str:
    result = subprocess.run([NEXUS, *args], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture
def env(up_env: dict[str, str]) -> dict[str, str]:
    """The session's `nexus up` stack (conftest.up_env), up."""
    nexus(up_env, "up", "--detach")
    return up_env


def test_kill_9_of_the_only_replica_loses_nothing_and_status_tells_the_truth(env) -> None:
    dsn = nexus(env, "agent", "add", "steady").strip()
    su_dsn = status(env)["dsns"]["nexus_superuser"]
    log = Path(env["NEXUS_HOME"]) / "log" / "worker.log"
    log_from = log.stat().st_size if log.exists() else 0
    with psycopg.connect(dsn, autocommit=True) as agent, \
            psycopg.connect(su_dsn, autocommit=True) as su, \
            psycopg.connect(su_dsn, autocommit=True) as blocker:
        def embedded() -> int:
            return su.execute("SELECT count(*) FROM nexus_memory.episode_embeddings "
                              "WHERE agent_id = 'steady'").fetchone()[0]

        killed = []
        for round_ in range(KILLS):
            pid = status(env)["worker"]["replica_pids"][0]
            with writes_blocked(blocker):
                agent.cursor().executemany(
                    "SELECT nexus.record_episode(%s)",
                    [(f"Episode {i}: the courier left parcel {i} at door {i % 37} on floor "
                      f"{i % 9}, and the customer confirmed it by message.",)
                     for i in range(round_ * PER_KILL, (round_ + 1) * PER_KILL)])
                # mid-batch by construction: a write waits on the lock, two more batches in hand
                wait_for(lambda: write_waiting(su), timeout=120, interval=0.1)
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                seen = status(env)["worker"]
                assert pid not in seen["replica_pids"], "a killed replica was reported alive"
                assert seen["state"] != "running" or seen["replica_pids"], seen

            def restarted() -> bool:
                """a new replica running"""
                w = status(env)["worker"]
                assert not set(w["replica_pids"]) & set(killed), w
                return w["state"] == "running" and bool(w["replica_pids"])
            wait_for(restarted, timeout=120, interval=0.5)
        wait_for(lambda: embedded() == EPISODES, timeout=600)
        w = status(env)["worker"]
        assert w["restarts"] == KILLS and w["state"] == "running", w
        # the supervisor ended each killed replica's leases as it reaped it (they were held
        # mid-batch), not the leases' timeout
        with log.open("rb") as f:
            f.seek(log_from)
            said = f.read().decode(errors="replace")
        ended = re.findall(r"ended ([0-9]+) leases of 1 dead worker", said)
        assert len(ended) == KILLS and all(int(n) > 0 for n in ended), said[-2000:]
        states = dict(su.execute("SELECT state, count(*) FROM memory_system.embeddings_queue "
                                 "WHERE agent_id = 'steady' GROUP BY state").fetchall())
        assert states == {"done": EPISODES}, states
        # exactly once: one vector per episode, each of the content it has now
        exact = su.execute(
            "SELECT count(*) FROM nexus_memory.zep_episodic_memory AS e "
            "JOIN nexus_memory.episode_embeddings AS x ON x.agent_id = e.agent_id "
            " AND x.episode_id = e.id AND x.content_sha256 = e.content_sha256 "
            "WHERE e.agent_id = 'steady'").fetchone()[0]
        assert exact == EPISODES


def test_health_follows_postgresql_and_redis_and_down_stops_everything(env) -> None:
    """/health tracks the servers, the stack's watchdog restarts a server that dies, and
    `nexus down` (after the crashes of the other test, when run with it) stops every process:
    the servers, the worker's supervisor and replica, the MCP server."""
    cfg = config.load(env=env)
    st = Stack.from_config(cfg)

    def health(expected: str, code: int) -> Callable[[], bool]:
        def check() -> bool:
            """/health reaching the expected status"""
            status, body = http(cfg.http_port, "/health")
            return status == code and json.loads(body)["status"] == expected
        check.__doc__ = f"/health {expected} ({code})"
        return check

    assert status(env)["healthy"] and status(env)["worker"]["health"] == "ok"
    dsn = nexus(env, "agent", "add", "upagent").strip()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO nexus_memory.zep_episodic_memory (content) "
                     "VALUES ('embedded by the worker nexus up started')")

        def embedded() -> bool:
            """the episode's vector"""
            return conn.execute("SELECT count(*) FROM nexus_memory.episode_embeddings"
                                ).fetchone()[0] == 1
        wait_for(embedded, timeout=60)

    wait_for(health("ok", 200))
    nexus(env, "backup")
    doctor = subprocess.run([NEXUS, "doctor"], env=env, capture_output=True, text=True)
    assert doctor.returncode == 0, doctor.stdout
    assert doctor.stdout.count("PASS") == 9 and "all checks passed" in doctor.stdout
    redis_pid = st.redis.pid()
    os.kill(redis_pid, signal.SIGSTOP)  # Redis hangs: degraded, not down
    wait_for(health("degraded", 200), timeout=30)
    os.kill(redis_pid, signal.SIGCONT)
    wait_for(health("ok", 200), timeout=30)

    def restarted(name: str) -> Callable[[], bool]:
        def check() -> bool:
            """the watchdog of `nexus up --detach` restarting it"""
            doc = status(env)
            return doc[name]["restarts"] == 1 and doc["healthy"]
        return check
    os.kill(redis_pid, signal.SIGKILL)
    wait_for(restarted("redis"), timeout=60, interval=0.5)
    st.pg.stop()
    wait_for(restarted("postgresql"), timeout=90, interval=0.5)
    wait_for(health("ok", 200), timeout=60)
    pids = [st.pg.pid(), st.redis.pid(), st.worker_pid(), status(env)["mcp"]["pid"],
            *status(env)["worker"]["replica_pids"]]
    nexus(env, "down")
    assert all(pids) and not any(process_alive(pid) for pid in pids)
