"""Faults heal by themselves: the short versions of bench/faults.py (which measures how fast).

A stack of the module's own (PostgreSQL and Redis are stopped hard here: no other test is
disturbed), the sidecar with two replicas, two agents writing all along. For each fault: every
acknowledged episode ends embedded exactly once with the content's checksum, no queue item is
left behind, the cache holds PostgreSQL's working memory again, and the log says once per replica
that the server went away and once that it is back.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.faults import REPLICAS, Rig, wait_until
from conftest import TEST_SETTINGS
from nexus import config
from nexus.ports import free_port
from nexus.stack import Stack

LEASE = 6
HEARTBEAT = 2
SETTLE = 90


@pytest.fixture(scope="module")
def rig() -> Iterator[Rig]:
    home = Path(tempfile.mkdtemp(prefix="nexus-faults-"))
    os.chmod(home, 0o755)
    cfg = config.load(env={}, home=home, pg_port=free_port(), redis_port=free_port(),
                      database="nexus_faults", worker_replicas=0)
    # a hard stop is a crash: a commit must be on disk (the WAL) before it is acknowledged, or an
    # acknowledged episode is rightly lost; fsync may stay off (the OS keeps what was written)
    st = Stack.from_config(cfg, memory_budget_mb=512,
                           extra_settings={**TEST_SETTINGS, "synchronous_commit": "on"})
    r: Rig | None = None
    try:
        st.up()
        r = Rig(st, st.cfg, lease=LEASE, heartbeat=HEARTBEAT)
        r.add_agents()
        r.start()
        yield r
    finally:
        if r is not None:
            assert r.stop() == 0, r.tail()
        st.down()
        shutil.rmtree(st.cfg.home, ignore_errors=True)
        shutil.rmtree(home, ignore_errors=True)


def writes(r: Rig, n: int = 3) -> None:
    """Return once each agent has had `n` more episodes acknowledged (they write all along, one
    every WRITE_EVERY): written before the fault, or after it healed."""
    marks = [len(w.episodes) for w in r.writers]

    def written() -> bool:
        """each agent's next writes acknowledged"""
        return all(len(w.episodes) >= m + n for w, m in zip(r.writers, marks, strict=True))
    wait_until(written, timeout=60)


def settled(r: Rig) -> None:
    outcome = r.settle(timeout=SETTLE)
    assert outcome.episodes > 0
    assert (outcome.lost, outcome.stuck) == (0, 0), (outcome, r.queue_states(), r.tail())

    def mirrored() -> bool:
        """Redis holding PostgreSQL's working memory (the write-through lags its commit)"""
        return r.cache_differences() == 0
    wait_until(mirrored, timeout=30)


def test_postgresql_stopped_hard_heals_and_is_logged_once(rig: Rig) -> None:
    offset = rig.log_size()
    with rig.writing():
        writes(rig)
        outage = rig.postgresql_outage(4)
        writes(rig)
    settled(rig)
    log = rig.log_since(offset)
    assert log.count("PostgreSQL unreachable") == REPLICAS, log
    assert log.count("PostgreSQL is back after") == REPLICAS, log
    assert outage["wrong_answers"] == 0, "/health said 503 down, and since when, all along"
    assert outage["quiet_lines"] == 0, "nothing logged while nothing changed"


def test_postgresql_restarted_during_complete_batch_holds_nothing_back(rig: Rig) -> None:
    offset = rig.log_size()
    with rig.writing():
        writes(rig)
        rig.postgresql_restart_mid_complete()
        writes(rig)
    settled(rig)  # without the hand-back, heartbeats would extend the dead batch's lease forever
    assert "items held when the connection was lost" in rig.log_since(offset)


def test_redis_killed_and_restarted_empty_is_refilled(rig: Rig) -> None:
    offset = rig.log_size()
    with rig.writing():
        writes(rig)
        rig.redis_restart_empty(3)  # returns once every key is back and /health is ok
        writes(rig)
    assert not any(w.failures for w in rig.writers), "no agent write failed for Redis"
    settled(rig)
    log = rig.log_since(offset)
    assert log.count("Redis unreachable") == REPLICAS, log
    assert log.count("Redis is back after") == REPLICAS, log


def test_a_replica_killed_mid_batch_is_restarted_and_its_batch_done(rig: Rig) -> None:
    with rig.writing():
        writes(rig)
        killed = rig.kill_replica_mid_batch()
    assert killed["held"] > 0 and killed["restarted"]
    settled(rig)
