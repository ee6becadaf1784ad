"""The embedding worker end to end against raw `model.encode` of the same texts.

Worker: a `nexus worker` process on a fresh database; the clock runs from the INSERT of the
episodes to the last vector written. Raw: `model.encode` in this process, same model, same batch
size, same torch threads, on the same texts (for long texts: on the same chunks, since encoding a
1,500-word text whole would truncate it to 256 tokens). Raw runs before and after the worker and
the baseline is their mean, to even out a noisy machine.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from bench.harness import BenchDb, Benchmark, Figure, cloned_database, ratio, target_note
from bench.queue import episode_text
from nexus.stack import Stack
from sidecar.embedder import Embedder
from sidecar.ports import free_port

SHORT_ITEMS = 2000
LONG_ITEMS = 100
LONG_WORDS = 1500
BATCH = 32
THREADS = 1
TARGET = 0.9
AGENT = "bench_worker"


def short_text(rng: random.Random) -> str:
    return " ".join(episode_text(rng).split()[:20])


def long_text(rng: random.Random) -> str:
    words: list[str] = []
    while len(words) < LONG_WORDS:
        words += episode_text(rng).split()
        if rng.random() < 0.2:
            words[-1] += "\n\n"
    return " ".join(words[:LONG_WORDS])


def raw_seconds(embedder: Embedder, texts: list[str]) -> float:
    chunks = [c for t in texts for c in embedder.chunk(t)]
    start = time.perf_counter()
    embedder.model.encode(sorted(chunks, key=len), batch_size=BATCH, normalize_embeddings=True,
                          show_progress_bar=False)
    return time.perf_counter() - start


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, OSError):
        return 0


def start_worker(bdb: BenchDb) -> tuple[subprocess.Popen, int]:
    cfg = bdb.stack.cfg
    port = free_port()
    env = dict(os.environ, NEXUS_HOME=str(cfg.home), NEXUS_DB=bdb.name,
               NEXUS_PG_PORT=str(cfg.pg_port), NEXUS_REDIS_PORT=str(cfg.redis_port),
               NEXUS_HTTP_PORT=str(port), NEXUS_WORKER_BATCH=str(BATCH),
               NEXUS_WORKER_THREADS=str(THREADS), WORKER_REPLICAS="1")
    proc = subprocess.Popen([sys.executable, "-m", "nexus.cli", "worker"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while _get(f"http://127.0.0.1:{port}/health") != 200:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the worker did not start")
        time.sleep(0.5)
    return proc, port


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def worker_seconds(bdb: BenchDb, texts: list[str]) -> float:
    with bdb.superuser() as conn:
        conn.execute("TRUNCATE nexus_memory.zep_episodic_memory, memory_system.embeddings_queue "
                     "CASCADE")
        start = time.perf_counter()
        with conn.cursor() as cur, cur.copy(
                "COPY nexus_memory.zep_episodic_memory (agent_id, content) FROM STDIN") as copy:
            for t in texts:
                copy.write_row((AGENT, t))
        while True:
            done = conn.execute("SELECT count(*) FROM memory_system.embeddings_queue "
                                "WHERE state = 'done'").fetchone()[0]
            if done == len(texts):
                return time.perf_counter() - start
            time.sleep(0.2)


def bench_worker(st: Stack) -> list[Figure]:
    import torch

    torch.set_num_threads(THREADS)
    rng = random.Random(7)
    short = [short_text(rng) for _ in range(SHORT_ITEMS)]
    long = [long_text(rng) for _ in range(LONG_ITEMS)]
    embedder = Embedder(threads=THREADS, batch_size=BATCH)
    chunks_long = sum(len(embedder.chunk(t)) for t in long)
    figures: list[Figure] = []
    with cloned_database(st, "bench_worker") as bdb:
        with bdb.superuser() as conn:
            conn.execute("SELECT memory_system.agent_add(%s)", (AGENT,))
        raw_before = {"short": raw_seconds(embedder, short), "long": raw_seconds(embedder, long)}
        proc, _ = start_worker(bdb)
        try:
            took = {"short": worker_seconds(bdb, short), "long": worker_seconds(bdb, long)}
            rss = peak_rss_mb(proc.pid)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=120)
        raw_after = {"short": raw_seconds(embedder, short), "long": raw_seconds(embedder, long)}
    for kind, count in (("short", SHORT_ITEMS), ("long", LONG_ITEMS)):
        raw_rate = count / ((raw_before[kind] + raw_after[kind]) / 2)
        worker_rate = count / took[kind]
        r = ratio(worker_rate, raw_rate)
        extra = f"; {chunks_long} chunks" if kind == "long" else ""
        figures.append(Figure(
            f"worker.{kind}_items_per_s", worker_rate, "items/s", raw_rate, r,
            f"{count} episodes (~{20 if kind == 'short' else LONG_WORDS} words{extra}), insert to "
            f"last vector written; raw encode {count / raw_before[kind]:,.1f} before / "
            f"{count / raw_after[kind]:,.1f} after; batch {BATCH}, {THREADS} torch thread"))
        figures.append(Figure(f"worker.{kind}_ratio", r, "ratio",
                              note=f"worker / raw model.encode; {target_note(r, TARGET)}"))
    figures.append(Figure("worker.peak_rss_mb", rss, "MB",
                          note="peak resident memory (VmHWM) of the worker process"))
    return figures


BENCHMARKS = [
    Benchmark("embedding worker", ("worker.short_items_per_s", "worker.short_ratio",
                                   "worker.long_items_per_s", "worker.long_ratio",
                                   "worker.peak_rss_mb"), bench_worker),
]
