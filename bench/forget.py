"""Forgetting by filter: how fast nexus.forget removes rows with every copy, and what it costs
the searches running meanwhile.

One agent holds N synthetic episodes (NEXUS_BENCH_FORGET_ROWS, default 200,000: the issue's
1,000,000 takes most of an hour to load on a 2-core machine, with its postings and HNSW graph),
built by bench.search_latency's generator: 30-60 words of a Zipf vocabulary each, and a vector
around one of 1,000 centroids (precomputed, COPYed in binary: no model). Every tenth episode
carries the tag "gone"; all have their BM25 postings, a vector in the agent's HNSW graph and a
done queue item (the state after the worker). `forget.rows_per_s` times
`nexus.forget(tags_all => '{gone}', dry_run => false)` (N/10 rows, with their vectors, postings,
text_stats counts and queue items) in ROUNDS rounds: the first ones rolled back, the last one
committed and then checked by the verification pass (memory_system.forget_leftovers).
`forget.search_p99_ms`: the p99 of hybrid searches (text + vector, limit 10) run back to back by
one client while a forget runs, against the same searches alone, interleaved with the rounds.
"""

from __future__ import annotations

import functools
import os
import threading
import time

import numpy as np
import psycopg
from pgvector.psycopg import register_vector
from psycopg import sql

from bench import harness
from bench.harness import Benchmark, Figure, median, percentile, ratio
from bench.search_latency import (
    DIMENSIONS,
    Group,
    _binary_vectors,
    centroids,
    unit,
    vocabulary,
    zipf_cdf,
)
from nexus.stack import Stack

log = functools.partial(harness.log, "forget")
AGENT = "forgetter"
ROWS = int(os.environ.get("NEXUS_BENCH_FORGET_ROWS", "200000"))
BATCH = 20_000
QUERIES = 200
ROUNDS = max(1, int(os.environ.get("NEXUS_BENCH_REPEATS", harness.REPEATS)))
SEARCH = ("SELECT count(*) FROM nexus.memory_search(%s, %s, limit_n => 10, kinds => '{episode}')")


def load(conn: psycopg.Connection, n: int) -> list[tuple[str, np.ndarray]]:
    """N episodes of AGENT (every tenth tagged "gone") with vectors and done queue items; the
    queries (4-6 words of a document, and its vector with noise)."""
    vocab, cdf, cents = np.array(vocabulary()), zipf_cdf(), centroids()
    group = Group("a1", 1001, n)
    vecs = group.vectors(cents)
    model = conn.execute("SELECT memory_system._embedding_model()").fetchone()[0].encode()
    queries = []
    rng = np.random.default_rng(7)
    for lo in range(0, n, BATCH):
        hi = min(lo + BATCH, n)
        texts = group.texts(lo, hi, vocab, cdf)
        with conn.transaction():
            with conn.cursor().copy("COPY nexus_memory.zep_episodic_memory "
                                    "(agent_id, content, tags) FROM STDIN") as copy:
                for j, words in enumerate(texts):
                    copy.write_row((AGENT, " ".join(words), ["gone"] if (lo + j) % 10 == 0 else []))
            rows = conn.execute("SELECT id, content_sha256 FROM nexus_memory.zep_episodic_memory "
                                "WHERE agent_id = %s ORDER BY id DESC LIMIT %s",
                                (AGENT, hi - lo)).fetchall()[::-1]
            stream = _binary_vectors([AGENT] * len(rows), [r[0] for r in rows],
                                     [r[1] for r in rows], model, vecs[lo:hi])
            with conn.cursor().copy("COPY nexus_memory.episode_embeddings (agent_id, episode_id, "
                                    "model, model_version, content_sha256, embedding) FROM STDIN "
                                    "WITH (FORMAT binary)") as copy:
                copy.write(stream)
        for j in rng.choice(hi - lo, size=QUERIES * (hi - lo) // n, replace=False):
            words = list(dict.fromkeys(texts[j]))[:int(rng.integers(4, 7))]
            noise = rng.standard_normal(DIMENSIONS).astype(np.float32) * 0.5 / np.sqrt(DIMENSIONS)
            queries.append((" ".join(words), unit(vecs[lo + j] + noise)))
        log(f"loaded {hi:,} of {n:,} episodes")
    conn.execute("UPDATE memory_system.embeddings_queue SET state = 'done', processed_at = now() "
                 "WHERE agent_id = %s", (AGENT,))
    conn.execute("VACUUM ANALYZE")
    return queries


def search(conn: psycopg.Connection, queries: list[tuple[str, np.ndarray]],
           until: threading.Event | None = None) -> list[float]:
    """Search latencies (ms): every query once, or round and round until `until` is set."""
    out: list[float] = []
    i = 0
    while (until is None and i < len(queries)) or (until is not None and not until.is_set()):
        text, vec = queries[i % len(queries)]
        t = time.perf_counter()
        conn.execute(SEARCH, (text, vec)).fetchone()
        out.append((time.perf_counter() - t) * 1000)
        i += 1
    return out


def run(st: Stack) -> list[Figure]:
    with harness.cloned_database(st, "bench_forget") as bdb, bdb.superuser() as conn:
        conn.execute("SELECT memory_system.agent_add(%s)", (AGENT,))
        register_vector(conn)
        t = time.monotonic()
        queries = load(conn, ROWS)
        log(f"loaded in {time.monotonic() - t:,.0f} s")
        searcher = bdb.superuser()
        register_vector(searcher)
        searcher.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(AGENT)))
        search(searcher, queries[:20])  # warm
        alone: list[float] = []
        during: list[float] = []
        rates: list[float] = []
        receipt: dict = {}
        for r in range(ROUNDS):
            alone += search(searcher, queries)
            done = threading.Event()
            thread = threading.Thread(
                target=lambda d=done: during.extend(search(searcher, queries, d)))
            thread.start()
            last = r == ROUNDS - 1
            try:
                with conn.transaction(force_rollback=not last):
                    conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(AGENT)))
                    t = time.perf_counter()
                    receipt = conn.execute("SELECT nexus.forget(tags_all => '{gone}', "
                                           "dry_run => false)").fetchone()[0]
                    seconds = time.perf_counter() - t
            finally:
                done.set()
                thread.join()
            rates.append(receipt["kinds"]["episode"] / seconds)
            log(f"round {r + 1}: {receipt['kinds']['episode']:,} rows in {seconds:.1f} s "
                f"({'committed' if last else 'rolled back'}); {receipt['places']}")
        t = time.perf_counter()
        left = conn.execute("SELECT coalesce(sum(remaining), 0) FROM "
                            "memory_system.forget_leftovers(%s, p_tags_all => '{gone}')",
                            (AGENT,)).fetchone()[0]
        verify_s = time.perf_counter() - t
        searcher.close()
    p_alone, p_during = percentile(alone, 99), percentile(during, 99)
    forgotten = receipt["kinds"]["episode"]
    return [
        Figure("forget.rows_per_s", median(rates), "rows/s",
               note=f"{forgotten:,} of {ROWS:,} episodes by a tag (scaled down from 100k of 1M), "
                    f"with {receipt['places']['vectors']:,} vectors, "
                    f"{receipt['places']['postings']:,} postings, "
                    f"{receipt['places']['queue_items']:,} queue items; median of {ROUNDS} rounds "
                    f"({', '.join(f'{x:,.0f}' for x in rates)}); verification pass "
                    f"{verify_s:.1f} s, {left} left"),
        Figure("forget.search_p99_ms", p_during, "ms", baseline=p_alone,
               ratio=ratio(p_during, p_alone),
               note=f"hybrid search p99 while forgetting ({len(during)} searches) vs alone "
                    f"({len(alone)}), one client, same run"),
    ]


BENCHMARKS = [Benchmark("forget", ("forget.rows_per_s", "forget.search_p99_ms"), run)]
