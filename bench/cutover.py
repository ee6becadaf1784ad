"""The cutover of the plan's day 10: an old store into NEXUS, 100% embedded and validated.

The old store: the plan's PostgreSQL tables (`episodic_memory`: 100,000 short episodes of 20-60
words over ten agents; `working_memory`: 1,000 keys) in a database of their own on the bench's
server, and 1,000 working-memory keys in a Redis of their own. As an old store does, it holds a
few rows the API would refuse: 100 episodes whose metadata is not a JSON object (plain text, a
JSON array) and one whose content is over 256 KiB (imported with `--adapt metadata,oversize`,
counted in the report as adapted).

The window: the NEXUS database is migrated, the agents registered and the embedding worker
running (`nexus worker`, default settings: NEXUS_EMBED_DTYPE=auto, threads following the cores,
one replica), as `nexus up` leaves them. The clock runs from the start of `nexus import legacy
--adapt metadata,oversize --wait` to its end: import, embedding of every episode (the worker
starts on the first committed batch), and validation of every row against the source, which
must pass with every episode embedded.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from psycopg import sql

from bench.harness import BenchDb, Benchmark, Figure, cloned_database
from bench.queue import episode_text
from nexus import secrets
from nexus.config import SUPERUSER
from nexus.ports import free_port
from nexus.redisserver import RedisServer
from nexus.stack import Stack
from sidecar.embedder import BF16_FLAGS, auto_threads, choose_dtype, cpu_flags

EPISODES = 100_000
AGENTS = 10
WM_KEYS = 1_000
ODD_METADATA = 100
LEGACY_DB = "bench_cutover_legacy"
REPLICAS = 2
TARGET_SECONDS = 300
WAIT_SECONDS = 3600
START = datetime(2025, 1, 1, tzinfo=UTC)


def episode(rng: random.Random) -> str:
    """20 to 60 words in whole-sentence style."""
    n = rng.randint(20, 60)
    words: list[str] = []
    while len(words) < n:
        words += episode_text(rng).split()
    return " ".join(words[:n])


def metadata(rng: random.Random, i: int) -> str:
    if i % (EPISODES // ODD_METADATA) == 7:
        return rng.choice([f"imported from crm; ticket={i}", f"[{i}, {i + 1}]"])
    return json.dumps({"n": i, "source": "legacy"})


def make_legacy(st: Stack, redis_url: str) -> None:
    rng = random.Random(21)
    with st.superuser_conn("postgres", autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(LEGACY_DB)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(LEGACY_DB)))
    with st.superuser_conn(LEGACY_DB, autocommit=True) as conn:
        conn.execute("""
            CREATE TABLE episodic_memory (
                id bigserial PRIMARY KEY, agent_id text NOT NULL, session_id text,
                action_type text, content text, metadata text, tags text[], importance real,
                created_at timestamptz);
            CREATE TABLE working_memory (
                id serial PRIMARY KEY, agent_id text NOT NULL, context_key text NOT NULL,
                value jsonb, expires_at timestamptz, updated_at timestamptz DEFAULT now())""")
        with conn.cursor() as cur, cur.copy(
                "COPY episodic_memory (agent_id, session_id, action_type, content, metadata, tags,"
                " importance, created_at) FROM STDIN") as copy:
            for i in range(EPISODES):
                content = episode(rng)
                if i == EPISODES // 2:
                    # a long document pasted into one memory, over the API's 256 KiB
                    content = " ".join(episode(rng) for _ in range(1200))[:300_000]
                copy.write_row((f"agent{i % AGENTS}", f"s{i % 500}",
                                ("observation", "action", "message")[i % 3], content,
                                metadata(rng, i), ["legacy", f"t{i % 13}"], (i % 10) / 10,
                                START + timedelta(seconds=i)))
        with conn.cursor() as cur, cur.copy(
                "COPY working_memory (agent_id, context_key, value) FROM STDIN") as copy:
            for i in range(WM_KEYS):
                copy.write_row((f"agent{i % AGENTS}", f"table-key-{i}",
                                json.dumps({"step": i, "note": episode(rng)})))
        conn.execute("VACUUM ANALYZE episodic_memory, working_memory")
    import redis

    r = redis.Redis.from_url(redis_url)
    with r.pipeline() as pipe:
        for i in range(WM_KEYS):
            pipe.set(f"working_memory:agent{i % AGENTS}:live-key-{i}",
                     json.dumps({"live": i, "note": episode(rng)}))
        pipe.execute()


def target_dsn(st: Stack, dbname: str) -> str:
    """A DSN of the bench's server without a password."""
    return f"postgresql://{SUPERUSER}@{st.cfg.pg_host}:{st.cfg.pg_port}/{dbname}"


def start_worker(bdb: BenchDb, log: Path) -> subprocess.Popen:
    """`nexus worker` on the clone with its default settings; returns once it heartbeats."""
    cfg = bdb.stack.cfg
    env = dict(os.environ, NEXUS_HOME=str(cfg.home), NEXUS_DB=bdb.name,
               NEXUS_PG_PORT=str(cfg.pg_port), NEXUS_REDIS_PORT=str(cfg.redis_port),
               NEXUS_HTTP_PORT="0", WORKER_REPLICAS=str(REPLICAS))
    for name in ("NEXUS_EMBED_DTYPE", "NEXUS_WORKER_THREADS", "NEXUS_WORKER_BATCH"):
        env.pop(name, None)
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "nexus.cli", "worker"], env=env,
                                stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 240
    with bdb.superuser() as conn:
        while conn.execute("SELECT count(*) FROM memory_system.worker_heartbeats "
                           "WHERE stopped_at IS NULL").fetchone()[0] < REPLICAS:  # type: ignore[index]
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the worker did not start: {log.read_text()[-2000:]}")
            time.sleep(0.5)
    return proc


def bench_cutover(st: Stack) -> list[Figure]:
    home = Path(tempfile.mkdtemp(prefix="nexus-cutover-"))
    home.chmod(0o755)
    legacy_redis = RedisServer(replace(st.cfg, home=home, redis_port=free_port()), "legacy-pw")
    legacy_redis.start()
    redis_url = f"redis://:legacy-pw@127.0.0.1:{legacy_redis.cfg.redis_port}/0"
    try:
        make_legacy(st, redis_url)
        with cloned_database(st, "bench_cutover") as bdb:
            with bdb.superuser() as conn:
                for i in range(AGENTS):
                    conn.execute("SELECT memory_system.agent_add(%s)", (f"agent{i}",))
            worker = start_worker(bdb, home / "worker.log")
            try:
                load_before = os.getloadavg()[0]
                started = time.perf_counter()
                wall_start = time.time()
                # passwords off the command line: the owner's from its secret file (NEXUS_HOME),
                # the legacy database's from PGPASSWORD, the legacy Redis's in the URL
                done = subprocess.run(
                    [sys.executable, "-m", "nexus.cli", "import", "legacy",
                     "--dsn", target_dsn(st, bdb.name), "--pg", target_dsn(st, LEGACY_DB),
                     "--redis", redis_url, "--adapt", "metadata,oversize",
                     "--wait", str(WAIT_SECONDS), "--json"],
                    capture_output=True, text=True, timeout=WAIT_SECONDS + 600,
                    env=dict(os.environ, NEXUS_HOME=str(st.cfg.home),
                             PGPASSWORD=secrets.password(st.cfg, SUPERUSER)))
                seconds = time.perf_counter() - started
            finally:
                worker.send_signal(signal.SIGTERM)
                worker.wait(timeout=120)
            if done.returncode != 0:
                raise RuntimeError(f"the cutover failed ({done.returncode}): "
                                   f"{done.stdout[-3000:]} {done.stderr[-2000:]}")
            report = json.loads(done.stdout)
            ep, wm = report["kinds"]["episode"], report["kinds"]["working_memory"]
            if not (report["ok"] and ep["equal"] == EPISODES and ep["embedded"] == EPISODES):
                raise RuntimeError(f"validation did not pass with every episode embedded: {ep}")
            with bdb.superuser() as conn:
                first, last, imported, versions = conn.execute(
                    "SELECT extract(epoch FROM min(x.embedded_at)), "
                    "       extract(epoch FROM max(x.embedded_at)), "
                    "       (SELECT extract(epoch FROM max(enqueued_at)) "
                    "          FROM memory_system.embeddings_queue), "
                    "       array_agg(DISTINCT x.model_version) "
                    "  FROM nexus_memory.episode_embeddings AS x").fetchone()  # type: ignore[misc]
            load = f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after"
    finally:
        legacy_redis.stop()
        shutil.rmtree(home, ignore_errors=True)
        with st.superuser_conn("postgres", autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(LEGACY_DB)))
    flags = cpu_flags()
    precision = choose_dtype("auto", flags)[0]
    units = ", ".join(sorted(flags & BF16_FLAGS)) or "no bf16 units"
    embed_rate = EPISODES / max(float(last) - float(first), 1e-9)
    import_seconds = float(imported) - wall_start
    setup = (f"worker: {precision} ({units}), {REPLICAS} replica x {auto_threads(REPLICAS)} "
             f"torch threads; model version {', '.join(versions)}; {load} "
             f"(1 min, {os.cpu_count()} cores)")
    return [
        Figure("cutover.seconds_100k", seconds, "s",
               note=f"nexus import legacy --adapt metadata,oversize --wait: {EPISODES:,} episodes "
                    f"+ {wm['source']:,} working-memory keys imported (last row written at "
                    f"{import_seconds:.0f} s), every episode embedded and validated; "
                    f"{ep['adapted']} rows adapted {ep['adapted_by']}; "
                    f"target <= {TARGET_SECONDS}: "
                    f"{'met' if seconds <= TARGET_SECONDS else 'MISSED'}; {setup}"),
        Figure("cutover.import_seconds_100k", import_seconds, "s",
               note="from the start of the command to the last episode written (the worker "
                    "embeds meanwhile)"),
        Figure("cutover.embed_items_per_s", embed_rate, "items/s",
               note=f"episodes ÷ time from the first vector written to the last "
                    f"({float(last) - float(first):.0f} s), {precision}"),
    ]


BENCHMARKS = [
    Benchmark("cutover", ("cutover.seconds_100k", "cutover.import_seconds_100k",
                          "cutover.embed_items_per_s"), bench_cutover),
]
