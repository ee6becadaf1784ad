"""LangGraph stores on SciFact: NexusStore vs LangGraph's own PostgresStore, same PostgreSQL, same
model's vectors, same run.

The 5,183 abstracts (NEXUS_BENCH_DATA/scifact) are store items `value = {"title", "text"}` in
namespace ("scifact",), indexed on ["title", "text"] (one text, and one vector, per field).
NexusStore keeps them as store items of agent `scifact` (BM25 postings at put, vectors through the
queue); PostgresStore (langgraph-checkpoint-postgres, pgvector HNSW, cosine) in a database of its
own on the same server. Both get the vectors of the project's model (all-MiniLM-L6-v2 through
sidecar.embedder in the workers' precision, NEXUS_EMBED_DTYPE; long texts chunked and averaged),
computed once and kept in the search benchmark's vector cache (.cache/bench/vectors):
PostgresStore's `embed` and NexusStore's `embed_query` read it, and NexusStore's queue items are
completed from it by acting as a worker. So the timings are the stores' own, with no model in them.

Figures: langgraph.scifact_ndcg10_nexus / _postgresstore (the 300 test claims, `search(("scifact",),
query=claim, limit=10)`, binary relevance from qrels-test), search p50 of each (the claims searched
interleaved, one store then the other), put throughput of each (batches of 100 PutOps through
`batch`; NexusStore's put indexes the texts for BM25 and queues them, PostgresStore's writes its
vectors). Targets: nDCG@10 at least 0.04 over PostgresStore; search p50 at most 1.5x its.

NEXUS_BENCH_LANGGRAPH_DOCS=N loads N documents instead of all 5,183: those relevant to a test claim
(about 340) and a seeded sample of the rest (embedding the whole corpus's 10,366 fields the first
time takes an hour or more on 2 busy cores; the cache keeps them for later runs).
"""

from __future__ import annotations

import gzip
import json
import os
import random
import statistics
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from functools import partial

import numpy as np
import psycopg
from langgraph.store.base import PutOp
from langgraph.store.postgres import PostgresStore
from psycopg import sql

from bench import harness
from bench.harness import (
    BenchDb,
    Benchmark,
    Figure,
    MissingData,
    bench_data,
    cloned_database,
    percentile,
    ratio,
    skipped_figures,
)
from bench.search_quality import (
    DATA_FILES,
    SciFact,
    VectorCache,
    complete_from_cache,
    load_scifact,
    make_embedder,
    ndcg_at,
    queue_counts,
    sha256,
)
from nexus import agents, secrets
from nexus.config import SUPERUSER
from nexus.langgraph import NexusStore
from nexus.stack import Stack
from sidecar.embedder import Embedder

DATABASE = "nexus_bench_langgraph"
PG_STORE_DB = "nexus_bench_postgresstore"
AGENT = "scifact"
NAMESPACE = ("scifact",)
FIELDS = ["title", "text"]
PUT_BATCH = 100
SUBSET_SEED = 20
NDCG_MARGIN = 0.04
P50_RATIO = 1.5
FIGURES = ("langgraph.scifact_ndcg10_nexus", "langgraph.scifact_ndcg10_postgresstore",
           "langgraph.search_p50_ms_nexus", "langgraph.search_p50_ms_postgresstore",
           "langgraph.put_per_s_nexus", "langgraph.put_per_s_postgresstore")


log = partial(harness.log, "langgraph")


def load_items(data: SciFact, size: int | None) -> list[tuple[str, dict[str, str]]]:
    """The corpus as (doc id, value); with `size`, the documents relevant to a test claim and a
    seeded random sample of the others, `size` in all (in corpus order)."""
    corpus = bench_data("scifact", DATA_FILES) / "corpus.jsonl.gz"
    with gzip.open(corpus, "rt", encoding="utf-8") as f:
        items = [(d["_id"], {"title": d["title"], "text": d["text"]}) for d in map(json.loads, f)]
    if size is None or size >= len(items):
        return items
    relevant = set().union(*data.qrels.values())
    others = [doc for doc, _ in items if doc not in relevant]
    keep = relevant | set(random.Random(SUBSET_SEED).sample(others, max(size - len(relevant), 0)))
    return [(doc, value) for doc, value in items if doc in keep]


def fill_cache(texts: list[str], cache: VectorCache, embedder: Embedder) -> None:
    """Every text's vector in the cache (the model runs only for those not there yet)."""
    missing = list(dict.fromkeys(t for t in texts if sha256(t) not in cache))
    if not missing:
        return
    log(f"embedding {len(missing):,} texts with {embedder.info.name} (kept in {cache.path})")
    for start in range(0, len(missing), 512):
        chunk = missing[start:start + 512]
        for text, vector in zip(chunk, embedder.embed(chunk), strict=True):
            if vector is None:  # empty: no vector, as the worker would skip it
                continue
            if not isinstance(vector, np.ndarray):
                raise RuntimeError(f"could not embed {text[:80]!r}: {vector}")
            cache.add(sha256(text), vector)
        cache.save()
        log(f"  {min(start + 512, len(missing)):,} / {len(missing):,}")


class CachedEmbeddings:
    """The cache as an embedding function: what PostgresStore's `embed` and NexusStore's
    `embed_query` call; a text not in the cache is an error (nothing is embedded while timed)."""

    def __init__(self, cache: VectorCache) -> None:
        self.cache = cache

    def one(self, text: str) -> list[float]:
        return self.cache[sha256(text)].tolist()

    def __call__(self, texts: Sequence[str]) -> list[list[float]]:
        return [self.one(t) for t in texts]


def put_all(store: NexusStore | PostgresStore, items: list[tuple[str, dict[str, str]]]) -> float:
    """Items per second through batch(), PUT_BATCH PutOps at a time."""
    start = time.perf_counter()
    for i in range(0, len(items), PUT_BATCH):
        store.batch([PutOp(NAMESPACE, doc_id, value, index=FIELDS)
                     for doc_id, value in items[i:i + PUT_BATCH]])
    return len(items) / (time.perf_counter() - start)


def run(st: Stack) -> list[Figure]:
    try:
        data: SciFact = load_scifact()
    except MissingData as exc:
        log(str(exc))
        return skipped_figures(FIGURES, exc)
    size = os.environ.get("NEXUS_BENCH_LANGGRAPH_DOCS")
    items = load_items(data, int(size) if size else None)
    corpus = f"{len(items):,} of the corpus's documents" if size else "the whole corpus"
    log(f"{corpus}: {len(items):,} items")
    embedder = make_embedder()  # the workers' model and precision (NEXUS_EMBED_DTYPE)
    cache = VectorCache(embedder.info.name, embedder.info.version)
    fill_cache([v[f] for _, v in items for f in FIELDS] + list(data.queries.values()),
               cache, embedder)
    embeddings = CachedEmbeddings(cache)
    with cloned_database(st, DATABASE) as bdb, postgres_store_db(st) as pg_dsn:
        cfg = replace(st.cfg, database=bdb.name)
        with bdb.superuser() as conn:
            agent_dsn = agents.add(conn, cfg, AGENT)
        index = {"dims": embedder.info.dimension, "embed": embeddings, "fields": FIELDS}
        with PostgresStore.from_conn_string(pg_dsn, index=index) as pg_store, \
                NexusStore(agent_dsn, index={"dims": embedder.info.dimension, "fields": FIELDS},
                           embed_url=None, embed_query=embeddings.one) as nexus_store:
            pg_store.setup()
            log(f"putting {len(items):,} items into each store")
            nexus_put = put_all(nexus_store, items)
            pg_put = put_all(pg_store, items)
            log(f"put: NexusStore {nexus_put:,.0f}/s, PostgresStore {pg_put:,.0f}/s")
            written, _ = complete_from_cache(bdb, cache)
            open_items = queue_open(bdb)
            if open_items:
                raise RuntimeError(f"{open_items} store texts have no cached vector")
            log(f"{written:,} NexusStore vectors written from the cache")
            # both databases vacuumed and analysed, as autovacuum would after the load: without
            # statistics the planner may not use PostgresStore's HNSW index (17 ms instead of
            # 3), without a visibility map NEXUS's index-only scans of postings read the heap
            for connect in (bdb.superuser, lambda: psycopg.connect(pg_dsn, autocommit=True)):
                with connect() as conn:
                    conn.execute("VACUUM ANALYZE")
            nexus, pg = search_both(nexus_store, pg_store, data)
    nexus_ndcg = statistics.fmean(ndcg_at(nexus[0][q], data.qrels[q]) for q in data.qrels)
    pg_ndcg = statistics.fmean(ndcg_at(pg[0][q], data.qrels[q]) for q in data.qrels)
    nexus_p50 = statistics.median(nexus[1]) * 1000
    pg_p50 = statistics.median(pg[1]) * 1000
    gain = nexus_ndcg - pg_ndcg
    return [
        Figure("langgraph.scifact_ndcg10_nexus", nexus_ndcg, "ndcg", baseline=pg_ndcg,
               ratio=ratio(nexus_ndcg, pg_ndcg),
               note=f"{gain:+.3f} over PostgresStore ({corpus}); target +{NDCG_MARGIN}: "
                    f"{'met' if gain >= NDCG_MARGIN else 'MISSED'}"),
        Figure("langgraph.scifact_ndcg10_postgresstore", pg_ndcg, "ndcg",
               note="vector only (HNSW, cosine), an item as near as its nearest field"),
        Figure("langgraph.search_p50_ms_nexus", nexus_p50, "ms", baseline=pg_p50,
               ratio=ratio(nexus_p50, pg_p50),
               note=f"p99 {percentile(nexus[1], 99) * 1000:.1f} ms; target <= {P50_RATIO}x "
                    f"PostgresStore: {'met' if nexus_p50 <= P50_RATIO * pg_p50 else 'MISSED'}"),
        Figure("langgraph.search_p50_ms_postgresstore", pg_p50, "ms",
               note=f"p99 {percentile(pg[1], 99) * 1000:.1f} ms"),
        Figure("langgraph.put_per_s_nexus", nexus_put, "items/s", baseline=pg_put,
               ratio=ratio(nexus_put, pg_put),
               note="BM25 postings at put, vectors queued (written by the worker later)"),
        Figure("langgraph.put_per_s_postgresstore", pg_put, "items/s",
               note="vectors written at put (from the cache: no model time)"),
    ]


def queue_open(bdb: BenchDb) -> int:
    with bdb.superuser() as conn:
        return queue_counts(conn)[0]


def search_both(nexus_store: NexusStore, pg_store: PostgresStore, data: SciFact
                ) -> tuple[tuple[dict[str, list[str]], list[float]],
                           tuple[dict[str, list[str]], list[float]]]:
    """Each claim searched in both stores, interleaved (which goes first alternates); after one
    warm-up pass over every claim (both stores then read from memory). Returns (rankings,
    seconds) per store."""
    stores = (nexus_store, pg_store)
    for claim in data.queries.values():
        for store in stores:
            store.search(NAMESPACE, query=claim, limit=10)
    results: tuple[tuple[dict[str, list[str]], list[float]], ...] = (({}, []), ({}, []))
    for n, (qid, claim) in enumerate(data.queries.items()):
        order = (0, 1) if n % 2 == 0 else (1, 0)
        for which in order:
            start = time.perf_counter()
            hits = stores[which].search(NAMESPACE, query=claim, limit=10)
            results[which][1].append(time.perf_counter() - start)
            results[which][0][qid] = [h.key for h in hits]
    return results[0], results[1]


@contextmanager
def postgres_store_db(st: Stack) -> Iterator[str]:
    """A database of its own on the same server for PostgresStore (its DSN); dropped at the end."""
    drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(PG_STORE_DB))
    with st.superuser_conn("postgres", autocommit=True) as conn:
        conn.execute(drop)
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(PG_STORE_DB)))
    try:
        with st.superuser_conn(PG_STORE_DB, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        cfg = st.cfg
        yield psycopg.conninfo.make_conninfo(host=cfg.pg_host, port=cfg.pg_port,
                                             dbname=PG_STORE_DB, user=SUPERUSER,
                                             password=secrets.password(cfg, SUPERUSER))
    finally:
        with st.superuser_conn("postgres", autocommit=True) as conn:
            conn.execute(drop)


BENCHMARKS = [Benchmark("langgraph stores on SciFact", FIGURES, run)]
