"""Retention by rule, applied by the worker's own heartbeat loop (sidecar.worker.Worker, run
in-process with FakeEmbedder: this test embeds nothing, so it loads no model) while an agent keeps
writing: the sweep goes in bounded batches, takes what the rule says, skips rows a writer holds and
loses nothing it should keep (docs/privacy.md, "Retention"). Then the read record's commit: a
recorded search alone commits without waiting for the WAL flush, a write after it with."""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
from collections.abc import Callable

import psycopg
import pytest

from conftest import NEXUS
from nexus import agents
from nexus.config import Config
from sidecar import config as sidecar_config
from sidecar.db import Outage
from sidecar.embedder import ModelInfo
from sidecar.metrics import Metrics
from sidecar.worker import Worker, make_pool
from tests.helpers import su, worker_env


class FakeEmbedder:
    """Stands in for the model: the heartbeat loop only reports what the worker runs."""
    info = ModelInfo("fake-embedder", "0", 384, "float32", 1, "test: no model")


OLD, RESCUED = 3000, 100  # old unimportant episodes the rule takes, and those a writer rescues


def _one(conn: psycopg.Connection, query: str, *params: object) -> object:
    return conn.execute(query, params or None).fetchone()[0]


def _write_meanwhile(dsn: str, rescue: list[int], rescued: list[int],
                     done: threading.Event) -> None:
    """The agent at work during the sweep: new episodes, old important ones, and a rescue of old
    unimportant ones (made important, each row held a moment) that the sweep must then keep."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        for i in range(30):
            conn.execute("INSERT INTO nexus_memory.zep_episodic_memory (content, importance) "
                         "SELECT format('new note %%s-%%s', %s::int, g), 0.1 "
                         "FROM generate_series(1, 10) AS g", (i,))
            conn.execute("INSERT INTO nexus_memory.zep_episodic_memory "
                         "(content, importance, created_at) "
                         "VALUES (%s, 0.9, now() - interval '400 days')", (f"old important {i}",))
            with conn.transaction():
                ids = rescue[i * len(rescue) // 30:(i + 1) * len(rescue) // 30]
                rows = conn.execute("UPDATE nexus_memory.zep_episodic_memory SET importance = 0.9 "
                                    "WHERE id = ANY (%s) RETURNING id", (ids,)).fetchall()
                conn.execute("SELECT pg_sleep(0.03)")
            rescued.extend(r[0] for r in rows)
    done.set()


async def _sweep_until(cfg: Config, done: threading.Event,
                       finished: Callable[[psycopg.Connection], bool]) -> tuple[list[int], Worker]:
    """Run the worker's heartbeat loop (a beat a second) until `finished`; the rule's removed
    counts seen meanwhile."""
    wcfg = sidecar_config.load(env=worker_env(cfg, 0, NEXUS_WORKER_HEARTBEAT_SECONDS="1"))
    pool = make_pool(wcfg)
    await pool.open()
    worker = Worker(wcfg, FakeEmbedder(), pool, Metrics(), Outage("PostgreSQL"))  # type: ignore[arg-type]
    stop = asyncio.Event()
    beats = asyncio.create_task(worker._heartbeats(stop))
    seen: list[int] = []
    try:
        with su(cfg) as conn:
            for _ in range(1200):
                removed = _one(conn, "SELECT removed FROM memory_system.retention_rules "
                                     "WHERE agent_id = 'keeper'")
                if not seen or seen[-1] != removed:
                    seen.append(removed)
                if done.is_set() and finished(conn):
                    break
                await asyncio.sleep(0.05)
    finally:
        stop.set()
        await beats
        await pool.close()
    return seen, worker


def _orphans(conn: psycopg.Connection, table: str, id_column: str, kind: str = "") -> int:
    """Rows of `table` (postings, queue items) of keeper's whose episode is gone."""
    return _one(conn, f"SELECT count(*) FROM {table} AS x WHERE x.agent_id = 'keeper' {kind} "
                      "AND NOT EXISTS (SELECT FROM nexus_memory.zep_episodic_memory AS e "
                      f"WHERE e.agent_id = x.agent_id AND e.id = x.{id_column})")


def test_retention_sweeps_in_batches_while_writes_go_on(fresh_db: Config) -> None:
    cfg = fresh_db
    with su(cfg) as conn:
        for name in ("keeper", "other"):
            agents.add(conn, cfg, name, "", None)
        insert = ("INSERT INTO nexus_memory.zep_episodic_memory "
                  "(agent_id, content, importance, created_at) ")
        conn.execute(insert + "SELECT 'keeper', format('old note %%s', g), 0.1, "
                     "now() - interval '200 days' - g * interval '1 minute' "
                     "FROM generate_series(1, %s) AS g", (OLD,))
        conn.execute(insert + "SELECT 'keeper', format('old kept note %s', g), 0.9, "
                     "now() - interval '300 days' FROM generate_series(1, 200) AS g")
        conn.execute(insert + "SELECT 'other', format('other old note %s', g), 0.1, "
                     "now() - interval '300 days' FROM generate_series(1, 500) AS g")
        # the newest of the old notes: the second batch's, so the rescue races the sweep
        rescue = [r[0] for r in conn.execute(
            "SELECT id FROM nexus_memory.zep_episodic_memory WHERE agent_id = 'keeper' "
            "AND content LIKE 'old note %%' ORDER BY created_at DESC LIMIT %s", (RESCUED,))]
        assert _one(conn, "SELECT memory_system.retention_set('keeper', 'episode', "
                          "'180 days', 0.3)") == OLD

    rescued: list[int] = []
    done = threading.Event()
    writer = threading.Thread(target=_write_meanwhile,
                              args=(agents.dsn(cfg, "keeper", True), rescue, rescued, done))
    writer.start()

    def nothing_left(conn: psycopg.Connection) -> bool:
        return _one(conn, "SELECT matching FROM memory_system.retention_list('keeper')") == 0

    try:
        seen, worker = asyncio.run(_sweep_until(cfg, done, nothing_left))
    finally:
        writer.join()
    removed = OLD - len(rescued)
    assert seen[-1] == removed, seen
    assert any(0 < n < removed for n in seen), f"one giant delete, not batches: {seen}"
    assert all(b - a <= 2000 for a, b in zip(seen, seen[1:], strict=False)), seen
    assert worker.metrics.retention_removed._value.get() == removed

    with su(cfg) as conn:
        counts = dict(conn.execute(
            "SELECT CASE WHEN content LIKE 'new note %' THEN 'new' "
            "WHEN content LIKE 'old important %' THEN 'old important' "
            "WHEN content LIKE 'old kept note %' THEN 'old kept' "
            "WHEN agent_id = 'other' THEN 'other' ELSE 'old unimportant' END, count(*) "
            "FROM nexus_memory.zep_episodic_memory GROUP BY 1").fetchall())
        assert counts == {"new": 300, "old important": 30, "old kept": 200, "other": 500,
                          **({"old unimportant": len(rescued)} if rescued else {})}
        assert _one(conn, "SELECT count(*) FROM nexus_memory.zep_episodic_memory "
                          "WHERE id = ANY (%s)", rescued) == len(rescued)
        # the removed episodes' derived copies went with them
        assert _orphans(conn, "nexus_memory.text_postings", "doc_id", "AND x.kind = 'e'") == 0
        assert _orphans(conn, "memory_system.embeddings_queue", "source_id") == 0
        assert _one(conn, "SELECT sum(docs) FROM nexus_memory.text_stats "
                          "WHERE agent_id = 'keeper'") == 300 + 30 + 200 + len(rescued)

    # the read record (docs/privacy.md, "Reads"): as the client sends it (extended protocol), on
    # a session that commits synchronously (the tests' server does not by default)
    with su(cfg) as conn:
        conn.execute("SELECT memory_system.reads_set(true, 'keeper')")
    search = ("SELECT current_setting('synchronous_commit') "
              "FROM nexus.memory_search(%s, limit_n => 1) LIMIT 1")
    with psycopg.connect(agents.dsn(cfg, "keeper", True), autocommit=True) as conn:
        conn.execute("SET synchronous_commit = on")
        assert _one(conn, search, "note") == "off", "a search alone waits for no WAL flush"
        assert _one(conn, "SHOW synchronous_commit") == "on", "for its own transaction only"
        with conn.transaction():
            assert _one(conn, search, "note") == "off"
            conn.execute("SELECT nexus.record_episode('acted on what it was shown')")
            assert _one(conn, "SHOW synchronous_commit") == "on", "a write after it does"
        assert _one(conn, "SELECT count(*) FROM nexus.read_log()") == 2
        # an agent records reads as itself only (it logged in as keeper: session_user)
        with su(cfg) as owner:
            owner.execute("SELECT memory_system.reads_set(true, 'other')")
        with pytest.raises(psycopg.Error) as refused:
            conn.execute("SELECT memory_system._record_read('memory_search', 'forged', '{}', '{}', "
                         "'other')")
        assert refused.value.sqlstate == "NX101"


def test_the_operator_commands(up_env: dict[str, str]) -> None:
    """`nexus retention` and `nexus reads` on the session's `nexus up` stack (conftest.up_env):
    a dry run counts and stores nothing, and the reads of an agent turned on are listed with
    exactly the ids its search returned (five commands: each starts a process)."""
    env = up_env

    def nexus(*args: str) -> str:
        done = subprocess.run([NEXUS, *args], env=env, capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    nexus("up", "--detach")
    with psycopg.connect(nexus("agent", "add", "ret_cli").strip(), autocommit=True) as conn:
        conn.execute("INSERT INTO nexus_memory.zep_episodic_memory "
                     "(content, importance, created_at) "
                     "SELECT format('an old invoice note %s', g), 0.1, now() - interval '1 year' "
                     "FROM generate_series(1, 3) AS g")
        out = nexus("retention", "set", "--agent", "ret_cli", "--kind", "episode", "--older-than",
                    "180d", "--importance-below", "0.3", "--dry-run")
        assert "would take 3 now" in out
        assert _one(conn, "SELECT count(*) FROM nexus.retention_rules()") == 0
        nexus("reads", "on", "--agent", "ret_cli")
        shown = [(k, i) for k, i in conn.execute(
            "SELECT kind, id FROM nexus.memory_search('invoice note', limit_n => 2)")]
    reads = json.loads(nexus("reads", "--agent", "ret_cli", "--since", "1h", "--json"))
    assert [(r["function"], list(zip(r["kinds"], r["ids"], strict=True))) for r in reads] == \
        [("memory_search", shown)]
    assert len(shown) == 2
