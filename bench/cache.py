"""The Redis mirror: reconciling 100,000 and 1,000,000 working-memory rows into an empty Redis
(time, and peak memory of the reconciling process, which must stay flat as rows grow), and what a
reconcile reads when 1% of the ranges differ (only those ranges, ideally).

Each reconcile runs in a process of its own (`sidecar.cache.Mirror`, as `nexus reconcile` does)
that reports its own peak RSS (VmHWM), so the figure is the reconciler's alone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import replace

import psycopg

from bench.harness import (
    BenchDb,
    Benchmark,
    Figure,
    cloned_database,
    median,
    percentile,
    ratio,
    runs_note,
)
from nexus import agents, secrets
from nexus.config import Config
from nexus.stack import Stack

AGENTS = 100
SIZES = (100_000, 1_000_000)
LOAD_BATCH = 50_000
RSS_TARGET_MB = 200
RANGE_SIZE = 10_000

RECONCILE = """
import dataclasses, json, sys
from sidecar import cache, config
cfg = config.load()
with cache.worker_conn(cfg) as conn:
    report = cache.Mirror(conn, cache.redis_client(cfg)).reconcile()
peak = [l for l in open('/proc/self/status') if l.startswith('VmHWM:')][0].split()[1]
print(json.dumps({**dataclasses.asdict(report), "peak_rss_mb": int(peak) / 1024}))
"""


def load_rows(bdb: BenchDb, start: int, stop: int) -> None:
    """Working-memory rows start..stop-1, spread over AGENTS agents, values of ~100 bytes."""
    with bdb.superuser() as conn:
        for lo in range(start, stop, LOAD_BATCH):
            hi = min(lo + LOAD_BATCH, stop)
            conn.execute(
                "INSERT INTO nexus_memory.working_memory_contexts "
                "(agent_id, context_key, value, expires_at) "
                f"SELECT 'wm' || lpad((g %% {AGENTS})::text, 3, '0'), 'key:' || g, "
                "jsonb_build_object('n', g, 'note', repeat(md5(g::text), 2)), "
                "CASE WHEN g %% 10 = 0 THEN now() + interval '1 day' END "
                "FROM generate_series(%s, %s) AS g", (lo, hi - 1))
        conn.execute("VACUUM ANALYZE nexus_memory.working_memory_contexts")


def reconcile(bdb: BenchDb) -> dict[str, float]:
    cfg = bdb.stack.cfg
    env = dict(os.environ, NEXUS_HOME=str(cfg.home), NEXUS_DB=bdb.name,
               NEXUS_PG_PORT=str(cfg.pg_port), NEXUS_REDIS_PORT=str(cfg.redis_port))
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", RECONCILE], env=env, capture_output=True,
                         text=True, timeout=3600, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["wall_seconds"] = time.perf_counter() - started
    return result


def bench_reconcile(st: Stack) -> list[Figure]:
    figures: list[Figure] = []
    with cloned_database(st, "bench_cache") as bdb:
        with bdb.superuser() as conn:
            for i in range(AGENTS):
                conn.execute("SELECT memory_system.agent_add(%s)", (f"wm{i:03d}",))
        r = st.redis.client()
        loaded = 0
        runs: dict[int, dict[str, float]] = {}
        for size in SIZES:
            load_rows(bdb, loaded + 1, size + 1)
            loaded = size
            r.flushall()
            runs[size] = reconcile(bdb)
            assert runs[size]["dirty_ranges"] == runs[size]["ranges"], runs[size]
            clean = reconcile(bdb)
            assert clean["dirty_ranges"] == 0 and clean["written"] == 0, clean
            runs[size]["clean_seconds"] = clean["seconds"]
        # 1% of the ranges differ: change every row of one range in PostgreSQL behind the
        # mirror's back (nothing listens here), then reconcile
        ranges = runs[SIZES[-1]]["ranges"]
        dirty = max(1, round(ranges / 100))
        with bdb.superuser() as conn:
            conn.execute("UPDATE nexus_memory.working_memory_contexts "
                         "SET value = value || '{\"changed\": true}' "
                         "WHERE id / %s < %s", (RANGE_SIZE, dirty))
        partial = reconcile(bdb)
        assert partial["dirty_ranges"] == dirty, partial

    big, small = runs[SIZES[-1]], runs[SIZES[0]]
    rss_note = f"target < {RSS_TARGET_MB} MB and flat"
    met = "met" if small["peak_rss_mb"] < RSS_TARGET_MB else "MISSED"
    figures.append(Figure("cache.reconcile_peak_rss_mb_100k", small["peak_rss_mb"], "MB",
                          note=f"{rss_note}: {met}"))
    flat = big["peak_rss_mb"] < RSS_TARGET_MB and big["peak_rss_mb"] < small["peak_rss_mb"] * 1.25
    figures.append(Figure("cache.reconcile_peak_rss_mb_1m", big["peak_rss_mb"], "MB",
                          baseline=small["peak_rss_mb"],
                          ratio=ratio(big["peak_rss_mb"], small["peak_rss_mb"]),
                          note=f"{rss_note} (baseline: 100k): {'met' if flat else 'MISSED'}"))
    figures.append(Figure("cache.reconcile_seconds_1m", big["seconds"], "s",
                          baseline=small["seconds"], ratio=ratio(big["seconds"], small["seconds"]),
                          note=f"1M rows into an empty Redis ({big['written']:,.0f} keys, "
                               f"{big['rows_read'] / big['seconds']:,.0f} rows/s; baseline: 100k); "
                               f"a clean pass over 1M takes {big['clean_seconds']:.1f} s"))
    share = dirty / ranges
    transferred = partial["rows_read"] / SIZES[-1]
    figures.append(Figure("cache.dirty_rows_transferred_ratio", transferred, "ratio",
                          baseline=share, ratio=ratio(transferred, share),
                          note=f"{dirty} of {ranges} ranges dirty: {partial['rows_read']:,.0f} "
                               f"rows read, {partial['written']:,.0f} written, in "
                               f"{partial['seconds']:.1f} s; ratio 1 = exactly the dirty ranges"))
    return figures


WRITES = 300
SET_CALLS = 500


def _agent_conn(bdb: BenchDb, name: str) -> psycopg.Connection:
    cfg = replace(bdb.stack.cfg, database=bdb.name)
    with bdb.superuser() as conn:
        agents.add(conn, cfg, name, "cache bench", None)
    return psycopg.connect(host=cfg.pg_host, port=cfg.pg_port, dbname=bdb.name, user=name,
                           password=secrets.read(cfg.agent_secret_file(name)), autocommit=True)


MIRROR = """
import signal, threading
from dataclasses import replace
from sidecar import config
from sidecar.cache import MirrorThread
from sidecar.metrics import Metrics
mirror = MirrorThread(replace(config.load(), reconcile_seconds=3600), Metrics())
mirror.start()
done = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: done.set())
done.wait()
mirror.stop()
mirror.join(15)
"""


def _mirror_process(cfg: Config) -> subprocess.Popen:
    """The mirror in a process of its own, as in a sidecar."""
    env = dict(os.environ, NEXUS_HOME=str(cfg.home), NEXUS_DB=cfg.database,
               NEXUS_PG_PORT=str(cfg.pg_port), NEXUS_REDIS_PORT=str(cfg.redis_port))
    return subprocess.Popen([sys.executable, "-c", MIRROR], env=env)


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    proc.wait(timeout=30)


def bench_write_through(st: Stack) -> list[Figure]:
    """An agent's working-memory write, from its commit to Redis holding it (the mirror thread
    leading, woken by the empty NOTIFY, draining the outbox); and what a write
    costs while a mirror leads (a row queued in the outbox, a wake-up, the mirror's work on the
    same server) against none leading. The mirror runs in a process of its own."""
    with cloned_database(st, "bench_cache_wt") as bdb, _agent_conn(bdb, "wt_agent") as agent:
        cfg = replace(st.cfg, database=bdb.name)
        client = st.redis.client()
        client.flushdb()

        def set_calls() -> float:
            started = time.perf_counter()
            for i in range(SET_CALLS):
                agent.execute("SELECT nexus.working_memory_set(%s, '{\"n\": 1}')", (f"c{i % 50}",))
            return (time.perf_counter() - started) / SET_CALLS * 1e6

        alone = [set_calls()]
        mirror = _mirror_process(cfg)
        try:
            while not client.exists("nexus:wm:wt_agent:c0"):  # led, reconciled
                time.sleep(0.05)
            leading = [set_calls()]
            delays = []
            for i in range(WRITES):
                value = json.dumps({"write": i})
                agent.execute("SELECT nexus.working_memory_set('probe', %s::jsonb)", (value,))
                committed = time.perf_counter()
                while client.hget("nexus:wm:wt_agent:probe", "v") != value.encode():
                    time.sleep(0.0005)
                delays.append((time.perf_counter() - committed) * 1000)
        finally:
            _stop(mirror)
        for _ in range(2):
            alone.append(set_calls())
        mirror = _mirror_process(cfg)
        try:
            time.sleep(3)
            leading += [set_calls(), set_calls()]
        finally:
            _stop(mirror)
    p50, p95 = percentile(delays, 50), percentile(delays, 95)
    cost, base = median(leading), median(alone)
    return [
        Figure("cache.write_through_p50_ms", p50, "ms",
               note=f"{WRITES} writes, commit to Redis; p95 {p95:.1f} ms"),
        Figure("cache.wm_set_mirror_ratio", cost, "us/call", baseline=base,
               ratio=ratio(cost, base),
               note=f"working_memory_set with a mirror leading (outbox row) vs none; "
                    f"{runs_note(leading, label='leading')}, {runs_note(alone, label='none')}"),
    ]


BENCHMARKS = [
    Benchmark("cache.write_through", ("cache.write_through_p50_ms", "cache.wm_set_mirror_ratio"),
              bench_write_through),
    Benchmark("cache.reconcile", ("cache.reconcile_peak_rss_mb_100k",
                                  "cache.reconcile_peak_rss_mb_1m", "cache.reconcile_seconds_1m",
                                  "cache.dirty_rows_transferred_ratio"), bench_reconcile),
]
