"""The worker under `nexus up` with one replica (the default): a replica killed with kill -9 is
restarted by its supervisor, what it held comes back, and `nexus status` never calls a dead worker
alive; `nexus down` afterwards is quick. Real stack, real model."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import psycopg

from conftest import NEXUS, own_stack_env, process_alive
from tests.test_worker import wait_for

KILLS = 3
# written before each kill: enough that the kill lands mid-stream at bf16 speed (~150 a second)
PER_KILL = 800
EPISODES = KILLS * PER_KILL


def status(env: dict[str, str]) -> dict:
    result = subprocess.run([NEXUS, "status", "--json"], env=env, capture_output=True, text=True,
                            timeout=60)
    return json.loads(result.stdout)


def test_kill_9_of_the_only_replica_loses_nothing_and_status_tells_the_truth() -> None:
    with own_stack_env("nexus-supervise-", WORKER_REPLICAS="1", NEXUS_WORKER_POLL_SECONDS="1",
                       NEXUS_WORKER_BATCH="16") as env:
        up = subprocess.run([NEXUS, "up", "--detach"], env=env, capture_output=True, text=True,
                            timeout=300)
        assert up.returncode == 0, up.stderr
        dsn = subprocess.run([NEXUS, "agent", "add", "steady"], env=env, capture_output=True,
                             text=True, timeout=60).stdout.strip()
        su_dsn = status(env)["dsns"]["nexus_superuser"]
        with psycopg.connect(dsn, autocommit=True) as agent, \
                psycopg.connect(su_dsn, autocommit=True) as su:
            def embedded() -> int:
                return su.execute("SELECT count(*) FROM nexus_memory.episode_embeddings"
                                  ).fetchone()[0]

            killed = []
            for round_ in range(KILLS):
                pid = status(env)["worker"]["replica_pids"][0]
                before = embedded()
                agent.cursor().executemany(
                    "SELECT nexus.record_episode(%s)",
                    [(f"Episode {i}: the courier left parcel {i} at door {i % 37} on floor "
                      f"{i % 9}, and the customer confirmed it by message.",)
                     for i in range(round_ * PER_KILL, (round_ + 1) * PER_KILL)])
                wait_for(lambda b=before: embedded() > b + 16, timeout=120)  # mid-stream
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
                wait_for(restarted, timeout=120)
            wait_for(lambda: embedded() == EPISODES, timeout=600)
            w = status(env)["worker"]
            assert w["restarts"] == KILLS and w["state"] == "running", w
            states = dict(su.execute("SELECT state, count(*) FROM memory_system.embeddings_queue "
                                     "GROUP BY state").fetchall())
            assert states == {"done": EPISODES}, states
            # exactly once: one vector per episode, each of the content it has now
            exact = su.execute(
                "SELECT count(*) FROM nexus_memory.zep_episodic_memory AS e "
                "JOIN nexus_memory.episode_embeddings AS x ON x.agent_id = e.agent_id "
                " AND x.episode_id = e.id AND x.content_sha256 = e.content_sha256").fetchone()[0]
            assert exact == EPISODES
        supervisor = status(env)["worker"]["pid"]
        started = time.monotonic()
        down = subprocess.run([NEXUS, "down"], env=env, capture_output=True, text=True,
                              timeout=60)
        took = time.monotonic() - started
        assert down.returncode == 0, down.stderr
        assert not process_alive(supervisor)
        assert took < 15, f"nexus down took {took:.1f} s after the crashes"
