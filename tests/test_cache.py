"""The Redis mirror against real servers: write-through after commit, writes while Redis is down,
reconciliation after Redis restarts empty, corrupted and orphaned keys, expiry, the fast path.

The module runs its own redis-server (so stopping it disturbs no other test) and the mirror thread
in-process (sidecar.cache.MirrorThread, the code `nexus worker` runs, without the model)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import psycopg
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from conftest import NEXUS, clone_template, drop_database
from nexus import agents, client, secrets
from nexus.config import Config
from nexus.ports import free_port
from nexus.redisserver import RedisServer
from nexus.stack import Stack
from sidecar import cache
from sidecar.metrics import Metrics
from tests.helpers import su, wait_for


@dataclass
class Env:
    cfg: Config
    server: RedisServer
    metrics: Metrics
    mirror: cache.MirrorThread | None = None

    def redis(self) -> redis.Redis:
        return self.server.client()

    def agent(self, name: str) -> psycopg.Connection:
        return psycopg.connect(agents.dsn(self.cfg, name), autocommit=True)

    def start_mirror(self, interval: int = 3600) -> None:
        cfg = replace(self.cfg, reconcile_seconds=interval)
        self.mirror = cache.MirrorThread(cfg, self.metrics)
        self.mirror.start()
        wait_for(lambda: self.metrics.reconcile_runs._value.get() >= 1, timeout=30)

    def stop_mirror(self) -> None:
        if self.mirror is not None:
            self.mirror.stop()
            self.mirror.join(15)
            assert not self.mirror.is_alive()
            self.mirror = None

    def reconcile(self) -> cache.Report:
        with cache.worker_conn(self.cfg) as conn:
            return cache.Mirror(conn, self.redis()).reconcile()


@pytest.fixture(scope="module")
def env(stack: Stack) -> Iterator[Env]:
    home = Path(tempfile.mkdtemp(prefix="nexus-cache-"))
    home.chmod(0o755)
    cfg = replace(clone_template(stack, "nexus_cache_t"), redis_port=free_port())
    server = RedisServer(replace(cfg, home=home), secrets.password(cfg, "redis"))
    server.start()
    with su(cfg) as conn:
        for name in ("keeper", "other"):
            agents.add(conn, cfg, name, "", None)
    e = Env(cfg, server, Metrics())
    try:
        yield e
    finally:
        e.stop_mirror()
        server.stop()
        shutil.rmtree(home, ignore_errors=True)
        drop_database(stack, cfg.database)


def pg_state(cfg: Config) -> dict[str, object]:
    """What Redis must hold, read from PostgreSQL as the superuser."""
    with su(cfg) as conn:
        wm = {cache.wm_key(a, k): {"a": a, "k": k, "v": v, "x": "" if x is None else str(x)}
              for a, k, v, x in conn.execute(
                  "SELECT agent_id, context_key, value::text, memory_system._epoch_ms(expires_at) "
                  "FROM nexus_memory.working_memory_contexts "
                  "WHERE expires_at IS NULL OR expires_at > clock_timestamp()")}
        recent = {cache.recent_key(a): json.loads(doc) for a, doc, _ in conn.execute(
            "SELECT * FROM memory_system.cache_recent_episodes("
            "ARRAY(SELECT agent_id FROM memory_system.agents), 50)") if doc is not None}
    return {"wm": wm, "recent": recent}


def redis_state(r: redis.Redis) -> dict[str, object]:
    wm = {}
    for name in r.scan_iter(match="nexus:wm:*"):
        name = name.decode()
        if name.startswith("nexus:wm:idx:"):
            continue
        h = {k.decode(): v.decode() for k, v in r.hgetall(name).items()}
        h.pop("id", None)
        wm[name] = h
    recent = {n.decode(): json.loads(r.get(n)) for n in r.scan_iter(match="nexus:recent:*")}
    return {"wm": wm, "recent": recent}


def indexed_ids(r: redis.Redis) -> set[int]:
    return {int(i) for n in r.scan_iter(match="nexus:wm:idx:*") for i in r.hkeys(n)}


def test_write_through_after_commit(env: Env) -> None:
    env.start_mirror()
    try:
        r = env.redis()
        with env.agent("keeper") as conn:
            conn.execute("SELECT nexus.working_memory_set('task', '{\"step\": 1}')")
            wait_for(lambda: r.hget("nexus:wm:keeper:task", "v") == b'{"step": 1}', timeout=10)
            conn.execute("SELECT nexus.working_memory_set('task', '{\"step\": 2}', '1 hour')")
            wait_for(lambda: r.hget("nexus:wm:keeper:task", "v") == b'{"step": 2}', timeout=10)
            ttl = r.pttl("nexus:wm:keeper:task")
            assert 3_500_000 < ttl <= 3_600_000, ttl  # Redis expires it with PostgreSQL
            episode = conn.execute(
                "SELECT nexus.record_episode('the cache saw this')").fetchone()[0]
            wait_for(lambda: (r.get("nexus:recent:keeper") or b"").find(b"the cache saw") > 0,
                     timeout=10)
            assert json.loads(r.get("nexus:recent:keeper"))[0]["id"] == episode
            # a rolled-back write is never mirrored
            with conn.transaction(force_rollback=True):
                conn.execute("SELECT nexus.working_memory_set('ghost', '1')")
            conn.execute("SELECT nexus.working_memory_delete('task')")
            wait_for(lambda: not r.exists("nexus:wm:keeper:task"), timeout=10)
            assert not r.exists("nexus:wm:keeper:ghost")
        assert env.metrics.cache_writes.labels("wm", "set")._value.get() >= 2
    finally:
        env.stop_mirror()


def test_writes_while_redis_is_down_then_one_reconcile(env: Env) -> None:
    env.start_mirror(interval=3600)
    try:
        env.server.stop()
        with env.agent("keeper") as conn, env.agent("other") as other:
            for i in range(300):
                conn.execute("SELECT nexus.working_memory_set(%s, %s)",
                             (f"k{i}", json.dumps({"i": i})))
            for i in range(40):
                other.execute("SELECT nexus.record_episode(%s)",
                              (f"written while Redis was down {i}",))
            conn.execute("SELECT nexus.working_memory_set('short', '\"x\"', '1 hour')")
        # PostgreSQL has every write: none failed, none lost
        with su(env.cfg) as conn:
            kept = conn.execute("SELECT count(*) FROM nexus_memory.working_memory_contexts "
                                "WHERE agent_id = 'keeper' AND context_key ~ '^k'").fetchone()[0]
            assert kept == 300
            assert conn.execute("SELECT count(*) FROM nexus_memory.zep_episodic_memory "
                                "WHERE agent_id = 'other'").fetchone()[0] == 40
        wait_for(lambda: env.metrics.cache_errors._value.get() >= 1, timeout=15)
    finally:
        env.stop_mirror()
    # Redis comes back empty (no persistence): one reconcile restores it exactly
    env.server.start()
    r = env.redis()
    assert r.dbsize() == 0
    report = env.reconcile()
    assert report.written >= 301 and report.recent_fixed >= 2
    assert redis_state(r) == pg_state(env.cfg)
    with su(env.cfg) as conn:
        live = {i for (i,) in conn.execute("SELECT id FROM nexus_memory.working_memory_contexts")}
    assert indexed_ids(r) == live
    again = env.reconcile()
    assert (again.dirty_ranges, again.written, again.deleted, again.recent_fixed) == (0, 0, 0, 0)


def test_corrupted_and_orphaned_keys_are_repaired(env: Env) -> None:
    r = env.redis()
    env.reconcile()
    r.hset("nexus:wm:keeper:k7", "v", '{"i": "tampered"}')
    r.delete("nexus:wm:keeper:k8")
    r.delete("nexus:wm:keeper:k9")
    r.set("nexus:wm:keeper:k9", "not even a hash")
    r.set("nexus:recent:other", "[]")
    # rows deleted while nobody listened: their keys must go
    with su(env.cfg) as conn:
        gone = [i for (i,) in conn.execute(
            "DELETE FROM nexus_memory.working_memory_contexts "
            "WHERE agent_id = 'keeper' AND context_key IN ('k1', 'k2', 'k3') RETURNING id")]
    assert len(gone) == 3 and r.exists("nexus:wm:keeper:k1")
    report = env.reconcile()
    assert report.written == 3 and report.deleted == 3 and report.recent_fixed == 1
    assert r.hget("nexus:wm:keeper:k7", "v") == b'{"i": 7}'
    assert not r.exists("nexus:wm:keeper:k1") and not set(gone) & indexed_ids(r)
    assert redis_state(r) == pg_state(env.cfg)
    # only the ranges that differed were read
    assert report.dirty_ranges == 1 and report.rows_read <= 10_000


def test_nexus_reconcile_command(env: Env) -> None:
    r = env.redis()
    env.reconcile()
    r.delete("nexus:wm:keeper:k12")
    run = subprocess.run(
        [NEXUS, "reconcile", "--json"], capture_output=True, text=True, timeout=120,
        env={"PATH": os.environ["PATH"], "NEXUS_HOME": str(env.cfg.home),
             "NEXUS_DB": env.cfg.database, "NEXUS_PG_PORT": str(env.cfg.pg_port),
             "NEXUS_REDIS_PORT": str(env.cfg.redis_port)})
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert (report["dirty_ranges"], report["written"], report["deleted"]) == (1, 1, 0)
    assert r.hget("nexus:wm:keeper:k12", "v") == b'{"i": 12}'


def test_fast_path_reads_redis_and_falls_back(env: Env) -> None:
    r = env.redis()
    env.reconcile()
    with env.agent("keeper") as conn:
        assert client.working_memory_get(conn, r, "keeper", "k9") == {"i": 9}
        # served from Redis: a value only Redis has proves the cache answered
        r.hset("nexus:wm:keeper:k9", "v", '{"i": "from redis"}')
        assert client.working_memory_get(conn, r, "keeper", "k9") == {"i": "from redis"}
        # absent from Redis, or Redis down: PostgreSQL answers
        r.delete("nexus:wm:keeper:k10")
        assert client.working_memory_get(conn, r, "keeper", "k10") == {"i": 10}
        # a client that gives up at once (redis-py's default retries a refused connection
        # for 4.5 s): the fallback is the same
        down = redis.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=0.5,
                           retry=Retry(NoBackoff(), 0))
        assert client.working_memory_get(conn, down, "keeper", "k11") == {"i": 11}
        assert client.working_memory_get(conn, None, "keeper", "nope") is None
    env.reconcile()


def test_a_listening_agent_learns_nothing_of_others_from_the_channels(env: Env) -> None:
    """Any role may LISTEN: an agent listening on every channel the product uses, while two other
    agents write episodes and working memory (mirror leading, worker wake-ups), receives only
    empty wake-ups: no agent name, no row id, no key."""
    with su(env.cfg) as conn:
        agents.add(conn, env.cfg, "eavesdropper", "", None)
    env.start_mirror()
    try:
        r = env.redis()
        with env.agent("eavesdropper") as spy, env.agent("keeper") as a, \
                env.agent("other") as b:
            for channel in ("nexus_cache", "nexus_embeddings"):
                spy.execute(f"LISTEN {channel}")
            for i in range(40):
                for who, conn in (("keeper", a), ("other", b)):
                    conn.execute("SELECT nexus.record_episode(%s, session => 'secret-session')",
                                 (f"{who} private note {i}",))
                    conn.execute("SELECT nexus.working_memory_set(%s, %s::jsonb)",
                                 (f"secret-key-{i}", json.dumps({"n": i})))
                    if i % 10 == 9:
                        conn.execute("SELECT nexus.working_memory_delete(%s)", (f"secret-key-{i}",))
            heard = list(spy.notifies(timeout=2, stop_after=10_000))
            wait_for(lambda: r.hget("nexus:wm:other:secret-key-38", "v") == b'{"n": 38}',
                     timeout=15)
            wait_for(lambda: not r.exists("nexus:wm:other:secret-key-39"), timeout=15)
        assert {n.channel for n in heard} == {"nexus_cache", "nexus_embeddings"}
        assert {n.payload for n in heard} == {""}, "a payload carried something"
    finally:
        env.stop_mirror()


def test_the_outbox_stays_empty_without_a_mirror_and_is_drained_with_one(env: Env) -> None:
    """Changes are queued only while a mirror leads (it reconciles when it takes the lead), and
    the mirror drains what is queued; no agent can read the queue."""
    def queued() -> int:
        with su(env.cfg) as conn:
            return conn.execute("SELECT count(*) FROM memory_system.cache_outbox").fetchone()[0]
    with env.agent("keeper") as conn:
        conn.execute("SELECT nexus.working_memory_set('unmirrored', '1')")
        assert queued() == 0
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT * FROM memory_system.cache_outbox")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT * FROM memory_system.cache_outbox_drain(10)")
    env.start_mirror()
    try:
        r = env.redis()
        wait_for(lambda: r.hget("nexus:wm:keeper:unmirrored", "v") == b"1", timeout=15)
        with env.agent("keeper") as conn:
            conn.execute("SELECT nexus.working_memory_set('mirrored', '2')")
        wait_for(lambda: r.hget("nexus:wm:keeper:mirrored", "v") == b"2", timeout=15)
        wait_for(lambda: queued() == 0, timeout=15)
    finally:
        env.stop_mirror()
