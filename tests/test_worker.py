"""The embedding worker with the real model, PostgreSQL and Redis: end to end, crashes,
replicas, draining, poison items, /health, /metrics and /embed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator

import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import NEXUS, connect_as, own_stack_env, process_alive
from nexus import agents, config, secrets
from nexus.config import SUPERUSER, Config
from nexus.ports import free_port
from nexus.stack import Stack

WORDS = ["memory", "agent", "river", "planet", "quiet", "signal", "orange", "harbor",
         "lantern", "theory", "garden", "copper", "window", "thunder", "fabric", "mirror"]


def sentence(i: int, n: int = 20) -> str:
    return " ".join(WORDS[(i * 7 + k * 3) % len(WORDS)] for k in range(n)) + f" number {i}."


def su(cfg: Config, **kwargs: object) -> psycopg.Connection:
    return connect_as(cfg, SUPERUSER, secrets.password(cfg, SUPERUSER), autocommit=True, **kwargs)


def wait_for(what: Callable[[], object], timeout: float = 180, interval: float = 0.5) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = what()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what.__doc__ or what}")


def worker_env(cfg: Config, http_port: int, **extra: str) -> dict[str, str]:
    # the precision of the `precision` fixture, when a test runs in both (default: auto)
    dtype = {"NEXUS_EMBED_DTYPE": os.environ["NEXUS_EMBED_DTYPE"]} \
        if os.environ.get("NEXUS_EMBED_DTYPE") else {}
    return {"PATH": os.environ["PATH"], "NEXUS_HOME": str(cfg.home), "NEXUS_DB": cfg.database,
            "NEXUS_PG_PORT": str(cfg.pg_port), "NEXUS_REDIS_PORT": str(cfg.redis_port),
            "NEXUS_HTTP_PORT": str(http_port), "NEXUS_WORKER_POLL_SECONDS": "1", **dtype,
            **extra}


@pytest.fixture(params=["float32", "bfloat16"])
def precision(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a worker test with the workers in each precision (NEXUS_EMBED_DTYPE)."""
    monkeypatch.setenv("NEXUS_EMBED_DTYPE", request.param)
    return request.param


def start_worker(cfg: Config, *args: str, **extra: str) -> tuple[subprocess.Popen, int]:
    """One worker process (`python -m sidecar`, what the supervisor runs), or the module (and
    its arguments) `args` names: `nexus.cli worker --replicas N`, the supervisor and N replicas."""
    port = free_port()
    command = [sys.executable, "-m", *(args or ("sidecar",))]
    proc = subprocess.Popen(command, env=worker_env(cfg, port, **extra),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wait_for(lambda: proc.poll() is not None or http(port, "/health")[0] in (200, 503),
             timeout=240)
    assert proc.poll() is None, proc.stdout.read()
    return proc, port


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> int:
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        return proc.wait(timeout=120)
    finally:
        if proc.stdout:
            proc.stdout.close()


def http(port: int, path: str, body: bytes | None = None,
         content_type: str = "application/json") -> tuple[int, bytes]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body,
                                     headers={"Content-Type": content_type} if body else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (urllib.error.URLError, OSError):
        return 0, b""


def add_agent(cfg: Config, name: str) -> str:
    with su(cfg) as conn:
        agents.add(conn, cfg, name)
    return name


def insert(cfg: Config, agent: str, texts: list[str]) -> None:
    password = secrets.read(cfg.agent_secret_file(agent))
    with connect_as(cfg, agent, password) as conn, conn.cursor() as cur:
        cur.executemany("INSERT INTO nexus_memory.zep_episodic_memory (content) VALUES (%s)",
                        [(t,) for t in texts])


def queue_states(cfg: Config) -> dict[str, int]:
    with su(cfg) as conn:
        return dict(conn.execute("SELECT state, count(*) FROM memory_system.embeddings_queue "
                                 "GROUP BY state").fetchall())


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


@pytest.fixture(scope="module")
def served(stack) -> Iterator[tuple[Config, int]]:
    """One worker on one fresh database, shared by the tests that only need it running."""
    from conftest import clone_template, drop_database
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
    cfg = fresh_db
    agent = add_agent(cfg, "crash_agent")
    total = 120
    insert(cfg, agent, [" ".join([sentence(i, 60)] * 4) for i in range(total)])
    settings = {"NEXUS_WORKER_LEASE_SECONDS": "4", "NEXUS_WORKER_HEARTBEAT_SECONDS": "2",
                "NEXUS_WORKER_BATCH": "16"}
    proc, _ = start_worker(cfg, **settings)

    def mid_batch() -> bool:
        """some items done and a batch in hand"""
        states = queue_states(cfg)
        return states.get("done", 0) > 0 and states.get("processing", 0) > 0
    wait_for(mid_batch, timeout=120, interval=0.1)
    stop(proc, signal.SIGKILL)
    assert queue_states(cfg).get("processing", 0) > 0, "the killed worker held items"
    proc, _ = start_worker(cfg, **settings)
    try:
        wait_for(all_done(cfg, total), timeout=300)
    finally:
        assert stop(proc) == 0
    assert vectors_match_content(cfg) == total
    with su(cfg) as conn:
        reaped = conn.execute("SELECT count(*) FROM memory_system.embeddings_queue "
                              "WHERE retry_count > 0").fetchone()[0]
    assert reaped > 0, "the killed worker's items came back through their expired leases"


@pytest.mark.usefixtures("precision")
def test_three_replicas_share_the_work_each_item_once(fresh_db: Config) -> None:
    cfg = fresh_db
    agent = add_agent(cfg, "replica_agent")
    proc, _ = start_worker(cfg, "nexus.cli", "worker", "--replicas", "3",
                           NEXUS_WORKER_BATCH="8")
    try:
        insert(cfg, agent, [sentence(i) for i in range(300)])
        wait_for(all_done(cfg, 300), timeout=300)
    finally:
        assert stop(proc) == 0
    assert vectors_match_content(cfg) == 300
    with su(cfg) as conn:
        by_worker = dict(conn.execute("SELECT processed_by, count(*) FROM "
                                      "memory_system.embeddings_queue GROUP BY 1").fetchall())
        stopped = conn.execute("SELECT count(*) FROM memory_system.worker_heartbeats "
                               "WHERE stopped_at IS NOT NULL").fetchone()[0]
    assert len(by_worker) >= 2, f"the replicas shared the work: {by_worker}"
    assert sum(by_worker.values()) == 300
    assert stopped == 3, "each replica drained and said so"


@pytest.mark.usefixtures("precision")
def test_sigterm_drains(fresh_db: Config) -> None:
    cfg = fresh_db
    agent = add_agent(cfg, "drain_agent")
    proc, _ = start_worker(cfg, NEXUS_WORKER_BATCH="16")
    insert(cfg, agent, [" ".join([sentence(i, 60)] * 4) for i in range(200)])

    def busy() -> bool:
        """a batch in hand"""
        return queue_states(cfg).get("processing", 0) > 0
    wait_for(busy, timeout=120, interval=0.1)
    assert stop(proc) == 0, "SIGTERM is a clean exit"
    states = queue_states(cfg)
    assert states.get("processing", 0) == 0, f"nothing left leased: {states}"
    assert states.get("done", 0) > 0 and states.get("pending", 0) > 0
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


def test_cuda_asked_without_a_gpu_is_refused_at_start(fresh_db: Config) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    result = subprocess.run([NEXUS, "worker"], env=worker_env(fresh_db, free_port(),
                                                              NEXUS_EMBED_DEVICE="cuda"),
                            capture_output=True, text=True, timeout=240)
    assert result.returncode == 2
    assert "NEXUS_EMBED_DEVICE=cuda" in result.stderr and "no CUDA device" in result.stderr


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


def test_up_runs_the_worker_and_health_follows_postgresql_and_redis() -> None:
    """`nexus up` (what `make run` runs) starts the worker; /health tracks the servers, and the
    stack's watchdog restarts a server that dies."""
    with own_stack_env("nexus-health-", NEXUS_WORKER_POLL_SECONDS="1") as env:
        up_run_and_follow_health(env)


def up_run_and_follow_health(env: dict[str, str]) -> None:
    cfg = config.load(env=env)
    st = Stack.from_config(cfg)

    def health(expected: str, code: int) -> Callable[[], bool]:
        def check() -> bool:
            """/health reaching the expected status"""
            status, body = http(cfg.http_port, "/health")
            return status == code and json.loads(body)["status"] == expected
        check.__doc__ = f"/health {expected} ({code})"
        return check

    try:
        up = subprocess.run([NEXUS, "up", "--detach"], env=env, capture_output=True, text=True,
                            timeout=300)
        assert up.returncode == 0, up.stderr
        status = json.loads(subprocess.run([NEXUS, "status", "--json"], env=env,
                                           capture_output=True, text=True).stdout)
        assert status["healthy"] and status["worker"]["health"] == "ok"
        dsn = subprocess.run([NEXUS, "agent", "add", "upagent"], env=env, capture_output=True,
                             text=True).stdout.strip()
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("INSERT INTO nexus_memory.zep_episodic_memory (content) "
                         "VALUES ('embedded by the worker nexus up started')")

            def embedded() -> bool:
                """the episode's vector"""
                return conn.execute("SELECT count(*) FROM nexus_memory.episode_embeddings"
                                    ).fetchone()[0] == 1
            wait_for(embedded, timeout=60)

        wait_for(health("ok", 200))
        assert subprocess.run([NEXUS, "backup"], env=env, capture_output=True).returncode == 0
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
                doc = json.loads(subprocess.run([NEXUS, "status", "--json"], env=env,
                                                capture_output=True, text=True).stdout)
                return doc[name]["restarts"] == 1 and doc["healthy"]
            return check
        os.kill(redis_pid, signal.SIGKILL)
        wait_for(restarted("redis"), timeout=60)
        st.pg.stop()
        wait_for(restarted("postgresql"), timeout=90)
        wait_for(health("ok", 200), timeout=60)
        pids = [st.pg.pid(), st.redis.pid(), st.worker_pid()]
        down = subprocess.run([NEXUS, "down"], env=env, capture_output=True, text=True,
                              timeout=300)
        assert down.returncode == 0, down.stderr
        assert all(pids) and not any(process_alive(pid) for pid in pids)
    finally:
        st.down()
