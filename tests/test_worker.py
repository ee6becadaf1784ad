"""The embedding worker with the real model, PostgreSQL and Redis: end to end, crashes,
replicas, draining, poison items, /health, /metrics and /embed."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Callable, Iterator

import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bench.harness import write_waiting, writes_blocked
from conftest import NEXUS, clone_template, connect_as, drop_database
from nexus import agents, secrets
from nexus.config import Config
from nexus.ports import free_port
from tests.helpers import (
    http,
    queue_states,
    signal_delivered,
    start_worker,
    stop,
    su,
    wait_for,
    worker_env,
)

WORDS = ["memory", "agent", "river", "planet", "quiet", "signal", "orange", "harbor",
         "lantern", "theory", "garden", "copper", "window", "thunder", "fabric", "mirror"]


def sentence(i: int, n: int = 20) -> str:
    return " ".join(WORDS[(i * 7 + k * 3) % len(WORDS)] for k in range(n)) + f" number {i}."


def add_agent(cfg: Config, name: str) -> str:
    with su(cfg) as conn:
        agents.add(conn, cfg, name)
    return name


def insert(cfg: Config, agent: str, texts: list[str]) -> None:
    password = secrets.read(cfg.agent_secret_file(agent))
    with connect_as(cfg, agent, password) as conn, conn.cursor() as cur:
        cur.executemany("INSERT INTO nexus_memory.zep_episodic_memory (content) VALUES (%s)",
                        [(t,) for t in texts])


def all_done(cfg: Config, total: int) -> Callable[[], bool]:
    def check() -> bool:
        """every queue item done"""
        return queue_states(cfg) == {"done": total}
    return check


def vectors_match_content(cfg: Config) -> int:
    with su(cfg) as conn:
        return conn.execute(
            "SELECT count(*) FROM nexus_memory.zep_episodic_memory AS e "
            "JOIN nexus_memory.episode_embeddings AS x "
            "  ON x.agent_id = e.agent_id AND x.episode_id = e.id "
            " AND x.content_sha256 = e.content_sha256").fetchone()[0]


# Small batches: a worker holds at most three of them (see bench.harness.writes_blocked)
BATCH = 4


def held_by_worker(cfg: Config) -> dict[str, int]:
    """Items in processing, by the worker holding them."""
    with su(cfg) as conn:
        return dict(conn.execute("SELECT lease_owner, count(*) FROM memory_system.embeddings_queue "
                                 "WHERE state = 'processing' GROUP BY 1").fetchall())


def running_workers(cfg: Config) -> int:
    with su(cfg) as conn:
        return conn.execute("SELECT count(*) FROM memory_system.worker_heartbeats "
                            "WHERE stopped_at IS NULL").fetchone()[0]


def holding(cfg: Config, count: int) -> Callable[[], bool]:
    def check() -> bool:
        """`count` items claimed and a batch's write waiting on the lock"""
        with su(cfg) as conn:
            return sum(held_by_worker(cfg).values()) == count and write_waiting(conn)
    check.__doc__ = f"{count} items claimed and a batch's write waiting on the lock"
    return check


@pytest.fixture(scope="module")
def served(stack) -> Iterator[tuple[Config, int]]:
    """One worker on one fresh database, shared by the tests that only need it running."""
    cfg = clone_template(stack, "nexus_worker_served")
    proc, port = start_worker(cfg)
    try:
        yield cfg, port
    finally:
        assert stop(proc) == 0
        drop_database(stack, cfg.database)


def test_an_episode_is_embedded_end_to_end(served) -> None:
    cfg, port = served
    agent = add_agent(cfg, "e2e_agent")
    insert(cfg, agent, ["The red fox crossed the frozen river at dawn."])
    with pytest.raises(psycopg.Error) as refused:
        insert(cfg, agent, ["   "])
    assert refused.value.sqlstate == "NX015"
    # a whitespace-only row from before such content was refused: closed without a vector
    with su(cfg) as conn, conn.transaction():
        conn.execute("ALTER TABLE nexus_memory.zep_episodic_memory DISABLE TRIGGER validate_row")
        conn.execute("INSERT INTO nexus_memory.zep_episodic_memory (agent_id, content) "
                     "VALUES (%s, '   ')", (agent,))
        conn.execute("ALTER TABLE nexus_memory.zep_episodic_memory ENABLE TRIGGER validate_row")
    wait_for(all_done(cfg, 2), timeout=60)
    with su(cfg) as conn:
        model, version, vector = conn.execute(
            "SELECT model, model_version, embedding::text FROM nexus_memory.episode_embeddings"
        ).fetchone()
        skipped = conn.execute("SELECT last_error FROM memory_system.embeddings_queue "
                               "WHERE last_error IS NOT NULL").fetchall()
    assert model == "sentence-transformers/all-MiniLM-L6-v2" and version.startswith("gt-all")
    assert skipped == [("no vector: empty content",)]
    status, body = http(port, "/embed", json.dumps(
        {"text": "The red fox crossed the frozen river at dawn."}).encode())
    assert status == 200
    query = json.loads(body)["embedding"]
    stored = json.loads(vector)
    assert len(stored) == 384
    cosine = sum(a * b for a, b in zip(query, stored, strict=True))
    assert cosine > 0.999, "the stored vector is the model's vector of the content"


def test_health_metrics_and_stats(served) -> None:
    cfg, port = served
    status, body = http(port, "/health")
    doc = json.loads(body)
    assert status == 200 and doc["status"] == "ok", doc
    assert set(doc["checks"]) == {"postgresql", "redis", "worker", "queue"}
    status, body = http(port, "/metrics")
    assert status == 200
    names = {f.name for f in text_string_to_metric_families(body.decode())}
    for name in ("embeddings_processed", "embeddings_queue_depth",
                 "embeddings_processing_latency_seconds", "embeddings_dead", "api_requests",
                 "api_latency_seconds", "embeddings_batch_size", "nexus_worker_info",
                 "nexus_sql_function_calls", "nexus_sql_function_seconds"):
        assert name in names, name
    status, body = http(port, "/stats")
    assert status == 200 and json.loads(body)["model"].endswith("all-MiniLM-L6-v2")


def test_embed_endpoint_rejects_bad_input_and_caches(served) -> None:
    _, port = served
    assert http(port, "/embed", b"{not json")[0] == 400
    assert http(port, "/embed", b'{"txt": "x"}')[0] == 400
    assert http(port, "/embed", b'{"text": "   "}')[0] == 400
    assert http(port, "/embed", b'{"text": 5}')[0] == 400
    assert http(port, "/embed", b"text=x", "application/x-www-form-urlencoded")[0] == 415
    assert http(port, "/embed", json.dumps({"text": "x" * 9000}).encode())[0] == 413
    first = json.loads(http(port, "/embed", b'{"text": "cache me"}')[1])
    second = json.loads(http(port, "/embed", b'{"text": "cache me"}')[1])
    assert (first["cached"], second["cached"]) == (False, True)
    assert first["embedding"] == pytest.approx(second["embedding"], abs=1e-6)


@pytest.mark.usefixtures("precision")
def test_kill_9_mid_batch_then_restart_loses_nothing(fresh_db: Config) -> None:
    """The worker is killed while it holds three batches: one in complete_batch, one encoded,
    one claimed ahead (its writes are held back by a lock, so the kill lands there by
    construction). A new worker embeds every item exactly once."""
    cfg = fresh_db
    agent = add_agent(cfg, "crash_agent")
    settings = {"NEXUS_WORKER_LEASE_SECONDS": "4", "NEXUS_WORKER_HEARTBEAT_SECONDS": "2",
                "NEXUS_WORKER_BATCH": str(BATCH)}
    proc, _ = start_worker(cfg, **settings)
    insert(cfg, agent, [sentence(i) for i in range(BATCH)])
    wait_for(all_done(cfg, BATCH), timeout=120)
    total = BATCH + 3 * BATCH
    with su(cfg) as blocker, writes_blocked(blocker):
        insert(cfg, agent, [sentence(i) for i in range(BATCH, total)])
        wait_for(holding(cfg, 3 * BATCH), timeout=120, interval=0.1)
        stop(proc, signal.SIGKILL)
        # the dead process's sessions end with it (PostgreSQL would notice at its next read)
        blocker.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE application_name = 'nexus-worker' AND datname = current_database()")
    assert queue_states(cfg) == {"done": BATCH, "processing": 3 * BATCH}, \
        "the killed worker's three batches are still leased to it"
    proc, _ = start_worker(cfg, **settings)
    try:
        wait_for(all_done(cfg, total), timeout=300)
    finally:
        assert stop(proc) == 0
    assert vectors_match_content(cfg) == total
    with su(cfg) as conn:
        reaped = conn.execute("SELECT count(*) FROM memory_system.embeddings_queue "
                              "WHERE retry_count = 1").fetchone()[0]
    assert reaped == 3 * BATCH, "every item the killed worker held came back, as a failed try"


@pytest.mark.usefixtures("precision")
def test_replicas_share_the_work_each_item_once(fresh_db: Config) -> None:
    """`--replicas 2`: a replica holds three batches at most, so with every write held back
    six batches' worth of items cannot all go to one; then each item is embedded once, and
    each replica drains and says so."""
    cfg = fresh_db
    agent = add_agent(cfg, "replica_agent")
    replicas, total = 2, 6 * BATCH
    proc, _ = start_worker(cfg, "nexus.cli", "worker", "--replicas", str(replicas),
                           NEXUS_WORKER_BATCH=str(BATCH))
    try:
        # /health answers once the first replica is up: wait for every one of them
        wait_for(lambda: running_workers(cfg) == replicas, timeout=240)
        with su(cfg) as blocker, writes_blocked(blocker):
            insert(cfg, agent, [sentence(i) for i in range(total)])
            wait_for(holding(cfg, total), timeout=120, interval=0.1)
            holders = held_by_worker(cfg)
        wait_for(all_done(cfg, total), timeout=300)
    finally:
        assert stop(proc) == 0
    assert len(holders) == replicas and max(holders.values()) <= 3 * BATCH, holders
    assert vectors_match_content(cfg) == total
    with su(cfg) as conn:
        by_worker = dict(conn.execute("SELECT processed_by, count(*) FROM "
                                      "memory_system.embeddings_queue GROUP BY 1").fetchall())
        stopped = conn.execute("SELECT count(*) FROM memory_system.worker_heartbeats "
                               "WHERE stopped_at IS NOT NULL").fetchone()[0]
    assert by_worker == holders, "each replica wrote what it held, each item once"
    assert stopped == replicas, "each replica drained and said so"


@pytest.mark.usefixtures("precision")
def test_sigterm_drains(fresh_db: Config) -> None:
    """SIGTERM while the worker holds three batches (its writes held back): it writes the two it
    encoded, hands back the one claimed ahead untouched, and exits 0."""
    cfg = fresh_db
    agent = add_agent(cfg, "drain_agent")
    proc, _ = start_worker(cfg, NEXUS_WORKER_BATCH=str(BATCH))
    total = 4 * BATCH
    with su(cfg) as blocker, writes_blocked(blocker):
        insert(cfg, agent, [sentence(i) for i in range(total)])
        wait_for(holding(cfg, 3 * BATCH), timeout=120, interval=0.1)
        proc.send_signal(signal.SIGTERM)
        wait_for(lambda: signal_delivered(proc.pid, signal.SIGTERM), timeout=30, interval=0.05)
    assert stop(proc) == 0, "SIGTERM is a clean exit"
    states = queue_states(cfg)
    # the batch in hand and the encoded one written, the one claimed ahead handed back untouched
    assert states == {"done": 2 * BATCH, "pending": 2 * BATCH}, states
    with su(cfg) as conn:
        retried = conn.execute("SELECT count(*) FROM memory_system.embeddings_queue "
                               "WHERE retry_count > 0").fetchone()[0]
    assert retried == 0, "a clean shutdown counts no failure"


@pytest.mark.usefixtures("precision")
def test_a_poison_item_goes_dead_alone(fresh_db: Config) -> None:
    cfg = fresh_db
    agent = add_agent(cfg, "poison_agent")
    proc, _ = start_worker(cfg, "tests.faulty_worker", NEXUS_FAULT_EMBED_MARKER="POISON-PILL")
    try:
        insert(cfg, agent, [sentence(i) for i in range(9)] + ["this one carries a POISON-PILL"])

        def first_round() -> bool:
            """the nine good items done"""
            return queue_states(cfg).get("done", 0) == 9
        wait_for(first_round, timeout=60)

        def dead() -> bool:
            """the poison item dead (its backoff fast-forwarded)"""
            with su(cfg) as conn:
                conn.execute("UPDATE memory_system.embeddings_queue SET available_at = now() "
                             "WHERE state = 'pending'")
                conn.execute("SELECT pg_notify('nexus_embeddings', '')")
            return queue_states(cfg) == {"done": 9, "dead": 1}
        wait_for(dead, timeout=120)
    finally:
        assert stop(proc) == 0
    with su(cfg) as conn:
        retries, error = conn.execute("SELECT retry_count, last_error FROM "
                                      "memory_system.embeddings_queue WHERE state = 'dead'"
                                      ).fetchone()
    assert retries == 5 and "fault injected" in error


def test_a_model_of_the_wrong_dimension_is_refused_at_start(fresh_db: Config) -> None:
    cfg = fresh_db
    with su(cfg) as conn:
        conn.execute("UPDATE memory_system.settings SET value = '512' "
                     "WHERE name = 'embedding_dimensions'")
    result = subprocess.run([NEXUS, "worker"], env=worker_env(cfg, free_port()),
                            capture_output=True, text=True, timeout=240)
    assert result.returncode == 2
    assert "384-dimensional" in result.stderr and "stores 512" in result.stderr


def test_a_database_of_another_release_is_refused_before_the_model_loads(fresh_db: Config) -> None:
    with su(fresh_db) as conn:
        conn.execute("INSERT INTO nexus_migrations._yoyo_migration (migration_hash, migration_id, "
                     "applied_at_utc) VALUES ('future', '9999_from_a_newer_release', now())")
    result = subprocess.run([NEXUS, "worker"], env=worker_env(fresh_db, free_port()),
                            capture_output=True, text=True, timeout=240)
    assert result.returncode == 2
    assert "migrated to 9999_from_a_newer_release" in result.stderr
    assert "run the release that migrated it" in result.stderr


def test_the_precision_is_reported_and_stored_with_each_vector(served) -> None:
    cfg, port = served
    stats = json.loads(http(port, "/stats")[1])
    assert stats["precision"] in ("float32", "bfloat16") and stats["threads"] >= 1
    assert stats["model_version"].endswith("+bf16") == (stats["precision"] == "bfloat16")
    agent = add_agent(cfg, "precision_agent")
    insert(cfg, agent, ["stored with the precision of the worker that embedded it"])
    with su(cfg) as conn:
        def embedded() -> bool:
            """the episode's vector"""
            return conn.execute("SELECT count(*) FROM nexus_memory.episode_embeddings "
                                "WHERE agent_id = %s", (agent,)).fetchone()[0] == 1
        wait_for(embedded, timeout=60)
        version = conn.execute("SELECT model_version FROM nexus_memory.episode_embeddings "
                               "WHERE agent_id = %s", (agent,)).fetchone()[0]
        info = conn.execute("SELECT info FROM memory_system.worker_heartbeats "
                            "WHERE stopped_at IS NULL").fetchone()[0]
    assert version == stats["model_version"]
    assert info["precision"] == stats["precision"] and info["model_version"] == version


def test_a_bf16_worker_says_so_and_stores_bf16_vectors(fresh_db: Config) -> None:
    """The precision's plumbing in bf16, on any CPU (emulated where it has no bf16 units, so one
    short text): NEXUS_EMBED_DTYPE reaches the model, /stats, the heartbeat and the version
    stored with each vector."""
    cfg = fresh_db
    agent = add_agent(cfg, "bf16_agent")
    proc, port = start_worker(cfg, NEXUS_EMBED_DTYPE="bfloat16")
    try:
        insert(cfg, agent, ["embedded in bf16, and stored saying so"])
        wait_for(all_done(cfg, 1), timeout=120)
        stats = json.loads(http(port, "/stats")[1])
        with su(cfg) as conn:
            version = conn.execute("SELECT model_version FROM nexus_memory.episode_embeddings"
                                   ).fetchone()[0]
            info = conn.execute("SELECT info FROM memory_system.worker_heartbeats "
                                "WHERE stopped_at IS NULL").fetchone()[0]
    finally:
        assert stop(proc) == 0
    assert stats["precision"] == info["precision"] == "bfloat16"
    assert version == stats["model_version"] == info["model_version"]
    assert version.endswith("+bf16")
