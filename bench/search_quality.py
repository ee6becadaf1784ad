"""Search quality on BEIR SciFact: nDCG@10 and Recall@100 of `nexus.memory_search`.

The data: NEXUS_BENCH_DATA/scifact (default ../shared/data beside the repository; without it
the figures are reported as skipped). The 5,183 abstracts (title, blank line, text) are episodes
of one agent, `scifact`, embedded by the project's own path: the enqueue trigger, the queue, and
a real `nexus worker` process. Embedding them takes ~30 minutes on 2 cores, so the vectors are
kept between runs in `.cache/bench/vectors/<model>_<version>.npz` (sha256 of the text the worker
embeds -> vector; the version carries the precision, +bf16): queue items whose checksum is cached
are completed from the cache by acting as a worker (claim_batch -> complete_batch), the rest by
the worker process, and what it wrote is read back into the cache. The 300 test claims are
embedded with the worker's `Embedder`, cached the same way.

Each claim is searched as the agent (SET ROLE scifact) with limit_n 100 over episodes: vector
only, text only, hybrid (the default df_budget, 10,000), and text and hybrid with df_budget 20,000.
The exact baseline is a brute force cosine scan of the agent's vectors (index scans off). Binary
relevance from qrels-test.

`python -m bench.search_quality --build-cache` only fills the cache.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import math
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from itertools import pairwise
from pathlib import Path
from types import FrameType

import numpy as np
import psycopg
from pgvector.psycopg import register_vector

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
    table,
    target_note,
    throwaway_stack,
)
from nexus import config
from nexus.stack import Stack
from sidecar.embedder import Embedder

DATA_FILES = ("corpus.jsonl.gz", "qrels-test.tsv", "queries.jsonl")
CACHE_DIR = Path(__file__).resolve().parent.parent / ".cache" / "bench" / "vectors"
DATABASE = "nexus_bench_scifact"
AGENT = "scifact"
EPISODES = "nexus_memory.zep_episodic_memory"
VECTORS = "nexus_memory.episode_embeddings"

K = 10
DEPTH = 100
PRUNED_DF_BUDGET = 20_000
WORKER_THREADS = 2
WORKER_BATCH = 32
CACHE_BATCH = 500
EXACT_MARGIN = 0.01
HYBRID_TARGET = 0.70
TEXT_TARGET = 0.60

# mode -> the memory_search arguments it passes besides limit_n and kinds
MODES: dict[str, tuple[str, ...]] = {
    "vector": ("query_embedding",),
    "text": ("query",),
    "hybrid": ("query", "query_embedding"),
    "text_pruned": ("query", "df_budget"),
    "hybrid_pruned": ("query", "query_embedding", "df_budget"),
}
_ARGS = {"query": "query => %(query)s", "query_embedding": "query_embedding => %(embedding)b",
         "df_budget": "df_budget => %(df_budget)s"}
INDEX_SCAN = re.compile(r"(?<!Bitmap )Index (Only )?Scan")
EXACT = f"SELECT episode_id FROM {VECTORS} ORDER BY embedding <=> %b LIMIT {DEPTH}"
FIGURES = tuple(f"search.scifact.{mode}_{metric}"
                for mode in ("exact", "vector", "text", "hybrid")
                for metric in ("ndcg10", "recall100")) + (
    "search.scifact.text_pruned_ndcg10", "search.scifact.hybrid_pruned_ndcg10",
    "search.scifact.hybrid_p50_ms")


log = partial(harness.log, "search.scifact")


def sha256(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


# -- the data set ------------------------------------------------------------------------------
@dataclass(frozen=True)
class SciFact:
    docs: list[tuple[str, str]]          # (doc id, content)
    queries: dict[str, str]              # test query id -> claim
    qrels: dict[str, set[str]]           # test query id -> relevant doc ids


def load_scifact() -> SciFact:
    """SciFact from NEXUS_BENCH_DATA/scifact; MissingData if it is not there."""
    root = bench_data("scifact", DATA_FILES)
    with gzip.open(root / "corpus.jsonl.gz", "rt", encoding="utf-8") as f:
        docs = [(d["_id"], f"{d['title']}\n\n{d['text']}") for d in map(json.loads, f)]
    qrels: dict[str, set[str]] = {}
    with open(root / "qrels-test.tsv", encoding="utf-8") as f:
        next(f)
        for line in f:
            qid, doc_id, score = line.rstrip("\n").split("\t")
            if int(score) > 0:
                qrels.setdefault(qid, set()).add(doc_id)
    with open(root / "queries.jsonl", encoding="utf-8") as f:
        claims = {q["_id"]: q["text"] for q in map(json.loads, f)}
    return SciFact(docs, {qid: claims[qid] for qid in qrels}, qrels)


# -- metrics -----------------------------------------------------------------------------------
def ndcg_at(ranked: list[str], relevant: set[str], k: int = K) -> float:
    dcg = sum(1 / math.log2(i + 2) for i, d in enumerate(ranked[:k]) if d in relevant)
    ideal = sum(1 / math.log2(i + 2) for i in range(min(len(relevant), k)))
    return dcg / ideal


def recall_at(ranked: list[str], relevant: set[str], k: int = DEPTH) -> float:
    return len(relevant.intersection(ranked[:k])) / len(relevant)


# -- the vector cache --------------------------------------------------------------------------
class VectorCache:
    """sha256 of a text -> its unit vector, for one model name and version, in one .npz file."""

    def __init__(self, model: str, version: str, directory: Path = CACHE_DIR) -> None:
        self.model, self.version = model, version
        # one file per model and version: the version carries the precision (+bf16), so the
        # vectors of both precisions are kept side by side
        self.path = directory / (re.sub(r"[^A-Za-z0-9._+-]+", "_", f"{model} {version}") + ".npz")
        self.vectors: dict[bytes, np.ndarray] = {}
        self.ignored = ""
        if self.path.exists():
            with np.load(self.path, allow_pickle=False) as f:
                stored = (str(f["model"]), str(f["model_version"]))
                if stored == (model, version):
                    self.vectors = {bytes(s): v for s, v in zip(f["shas"], f["vectors"],
                                                                strict=True)}
                else:
                    self.ignored = f"cache of {stored[0]} {stored[1]!r} ignored"

    def __contains__(self, sha: bytes) -> bool:
        return sha in self.vectors

    def __getitem__(self, sha: bytes) -> np.ndarray:
        return self.vectors[sha]

    def add(self, sha: bytes, vector: np.ndarray) -> bool:
        """Store a vector; True if it was not there yet."""
        new = sha not in self.vectors
        self.vectors[sha] = np.asarray(vector, dtype=np.float32)
        return new

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        shas = list(self.vectors)
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "wb") as f:
            np.savez(f, model=np.array(self.model), model_version=np.array(self.version),
                     shas=np.frombuffer(b"".join(shas), dtype=np.uint8).reshape(len(shas), 32),
                     vectors=np.stack([self.vectors[s] for s in shas]).astype(np.float32))
        os.replace(tmp, self.path)


# -- the episodes and their vectors ------------------------------------------------------------
@dataclass
class Embedded:
    from_cache: int
    from_worker: int
    worker_seconds: float


@dataclass
class Prepared:
    doc_of: dict[int, str]              # episode id -> doc id
    embedded: Embedded


def load_corpus(bdb: BenchDb, data: SciFact) -> None:
    with bdb.superuser() as conn:
        conn.execute("SELECT memory_system.agent_add(%s)", (AGENT,))
        with conn.cursor() as cur, cur.copy(
                f"COPY {EPISODES} (agent_id, content, metadata) FROM STDIN") as copy:
            for doc_id, content in data.docs:
                copy.write_row((AGENT, content, json.dumps({"doc_id": doc_id})))
        conn.execute(f"ANALYZE {EPISODES}")


def complete_from_cache(bdb: BenchDb, cache: VectorCache) -> tuple[int, dict[int, bytes]]:
    """Act as a worker: claim every pending item, complete those whose text is cached, and
    release the others (back to pending, no failure counted). Returns the number written and,
    for the others, the checksum of the text claim returned for each episode (the key under
    which their vector goes into the cache: the text embedded, which may be more than the
    content)."""
    worker = f"bench-cache:{socket.gethostname()}:{os.getpid()}"
    written = 0
    missing: dict[int, bytes] = {}
    with bdb.worker() as conn:
        register_vector(conn)
        while rows := conn.execute(
                "SELECT item_id, source_table, source_id, content_sha256"
                "  FROM memory_system.claim_batch(%s, %s, %s, %s)",
                (worker, CACHE_BATCH, "1 hour", cache.model)).fetchall():
            hits = [(item, sha) for item, _, _, sha in rows if sha in cache]
            missing.update((source_id, sha) for _, table_, source_id, sha in rows
                           if sha not in cache and table_ == "zep_episodic_memory")
            if not hits:
                continue
            done, stale, lost = conn.execute(
                "SELECT written, stale, lost FROM memory_system.complete_batch("
                "%s, %s, %b, %s, %s, %s)",
                (worker, [i for i, _ in hits], [cache[s] for _, s in hits],
                 [s for _, s in hits], cache.model, cache.version)).fetchone()  # type: ignore[misc]
            if (done, stale, lost) != (len(hits), 0, 0):
                raise AssertionError(f"complete_batch from the cache wrote {done}, stale {stale}, "
                                     f"lost {lost} of {len(hits)}")
            written += done
        conn.execute("SELECT memory_system.release(%s)", (worker,))
    return written, missing


def queue_counts(conn: psycopg.Connection) -> tuple[int, int, int]:
    """(open, done, dead) items of the queue."""
    row = conn.execute(
        "SELECT count(*) FILTER (WHERE state IN ('pending', 'processing')),"
        "       count(*) FILTER (WHERE state = 'done'), count(*) FILTER (WHERE state = 'dead')"
        "  FROM memory_system.embeddings_queue").fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2])


def tail(path: Path, chars: int = 2000) -> str:
    return path.read_text(errors="replace")[-chars:] if path.exists() else ""


@contextmanager
def worker_process(bdb: BenchDb, model: str, version: str) -> Iterator[subprocess.Popen]:
    """A `nexus worker` process on the clone (no HTTP), once its first heartbeat shows it runs
    `model` `version`; stopped with SIGTERM (it drains) at the end."""
    cfg = bdb.stack.cfg
    env = dict(os.environ, NEXUS_HOME=str(cfg.home), NEXUS_DB=bdb.name,
               NEXUS_PG_PORT=str(cfg.pg_port), NEXUS_REDIS_PORT=str(cfg.redis_port),
               NEXUS_HTTP_PORT="0", NEXUS_WORKER_BATCH=str(WORKER_BATCH),
               NEXUS_WORKER_THREADS=str(WORKER_THREADS), WORKER_REPLICAS="1")
    logfile = cfg.home / "search_quality_worker.log"
    with open(logfile, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "nexus.cli", "worker"], env=env,
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 240
        with bdb.superuser() as conn:
            # the heartbeat is the replica's (a child of this supervisor): the clone has no
            # other worker
            while (info := conn.execute(
                    "SELECT info FROM memory_system.worker_heartbeats"
                    " WHERE stopped_at IS NULL").fetchone()) is None:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the worker did not start: {tail(logfile)}")
                time.sleep(0.5)
        runs = (info[0].get("model"), info[0].get("model_version"))
        if runs != (model, version):
            raise RuntimeError(f"the worker runs {runs}, this process {(model, version)}")
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def embed_with_worker(bdb: BenchDb, model: str, version: str,
                      note: Callable[[str], None] = log) -> float:
    """Run the worker until the queue has no open item. Returns the seconds it took."""
    start = time.perf_counter()
    with worker_process(bdb, model, version) as proc, bdb.superuser() as conn:
        last_report = time.monotonic()
        while True:
            open_, done, dead = queue_counts(conn)
            if dead:
                raise RuntimeError(f"{dead} queue items went dead")
            if not open_:
                break
            if proc.poll() is not None:
                raise RuntimeError(f"the worker exited with {proc.returncode}: "
                                   f"{tail(bdb.stack.cfg.home / 'search_quality_worker.log')}")
            if time.monotonic() - last_report > 60:
                note(f"worker: {done:,} done, {open_:,} to go "
                    f"({time.perf_counter() - start:,.0f} s)")
                last_report = time.monotonic()
            time.sleep(1)
    return time.perf_counter() - start


def harvest(bdb: BenchDb, cache: VectorCache, claimed: dict[int, bytes]) -> None:
    """Read the vectors the worker wrote for the `claimed` episodes back into the cache, each
    under the checksum of the text it was claimed with (saved if any is new); they must be of
    the cache's model and version."""
    with bdb.superuser() as conn:
        register_vector(conn)
        rows = conn.execute(f"SELECT episode_id, embedding, model, model_version FROM {VECTORS}"
                            " WHERE episode_id = ANY (%s)", (list(claimed),)).fetchall()
    wrong = {(m, v) for _, _, m, v in rows} - {(cache.model, cache.version)}
    if wrong:
        raise RuntimeError(f"vectors of another model: {wrong}")
    if sum(cache.add(claimed[i], vec.to_numpy()) for i, vec, _, _ in rows):
        cache.save()


def embed_pending(bdb: BenchDb, cache: VectorCache,
                  note: Callable[[str], None] = log) -> Embedded:
    """Every pending episode embedded: from the cache where it holds the text's vector, by a
    worker process otherwise (whose vectors then go into the cache); progress goes to `note`."""
    with bdb.superuser() as conn:
        target = conn.execute("SELECT memory_system._embedding_model()").fetchone()[0]  # type: ignore[index]
    if target != cache.model:
        raise RuntimeError(f"the database targets model {target}, the embedder is {cache.model}")
    from_cache, claimed = complete_from_cache(bdb, cache)
    took = 0.0
    try:
        if claimed:
            note(f"{from_cache:,} vectors from the cache; the worker embeds {len(claimed):,} "
                 "(SciFact's abstracts: about 3 a second on 2 cores)")
            took = embed_with_worker(bdb, cache.model, cache.version, note)
    finally:
        # also after an interrupted run: what the worker wrote so far is not embedded again
        harvest(bdb, cache, claimed)
    with bdb.superuser() as conn:
        unembedded, = conn.execute(
            f"SELECT count(*) FROM {EPISODES} AS e LEFT JOIN {VECTORS} AS v"
            "    ON v.agent_id = e.agent_id AND v.episode_id = e.id"
            " WHERE v.content_sha256 IS DISTINCT FROM e.content_sha256").fetchone()  # type: ignore[misc]
        if unembedded:
            raise RuntimeError(f"{unembedded} episodes have no vector of their content")
        conn.execute(f"ANALYZE {VECTORS}")
    return Embedded(from_cache, len(claimed), took)


def prepare(bdb: BenchDb, data: SciFact, cache: VectorCache) -> Prepared:
    """The corpus as episodes of AGENT, every one with its vector; the cache updated."""
    load_corpus(bdb, data)
    embedded = embed_pending(bdb, cache)
    with bdb.superuser() as conn:
        doc_of = {i: d for i, d in conn.execute(
            f"SELECT id, metadata->>'doc_id' FROM {EPISODES} WHERE agent_id = %s", (AGENT,))}
    return Prepared(doc_of, embedded)


def embed_texts(texts: list[str], embedder: Embedder, cache: VectorCache) -> list[np.ndarray]:
    """The vectors of `texts` (queries), from the cache or embedded here (then cached)."""
    missing = list(dict.fromkeys(t for t in texts if sha256(t) not in cache))
    if missing:
        for text, vector in zip(missing, embedder.embed(missing), strict=True):
            if not isinstance(vector, np.ndarray):
                raise RuntimeError(f"could not embed {text!r}: {vector}")
            cache.add(sha256(text), vector)
        cache.save()
    return [cache[sha256(t)] for t in texts]


def query_vectors(data: SciFact, embedder: Embedder, cache: VectorCache) -> dict[str, np.ndarray]:
    return dict(zip(data.queries, embed_texts(list(data.queries.values()), embedder, cache),
                    strict=True))


# -- searching ---------------------------------------------------------------------------------
@dataclass
class ModeResult:
    rankings: dict[str, list[str]]      # query id -> doc ids, best first
    seconds: list[float]
    rows: list[int]                     # rows returned per query
    unordered: int = 0                  # queries whose rows are not in fused_score order
    duplicates: int = 0                 # queries with a doc twice

    def ndcg(self, qrels: dict[str, set[str]]) -> float:
        return statistics.fmean(ndcg_at(self.rankings[q], rel) for q, rel in qrels.items())

    def recall(self, qrels: dict[str, set[str]]) -> float:
        return statistics.fmean(recall_at(self.rankings[q], rel) for q, rel in qrels.items())

    def summary(self) -> str:
        empty = sum(1 for r in self.rows if r == 0)
        parts = [f"rows/query mean {statistics.fmean(self.rows):.1f} (min {min(self.rows)})",
                 f"{empty} queries with no row"]
        if self.unordered:
            parts.append(f"{self.unordered} queries NOT in fused_score order")
        if self.duplicates:
            parts.append(f"{self.duplicates} queries with a doc twice")
        return ", ".join(parts)


def agent_session(bdb: BenchDb) -> psycopg.Connection:
    conn = bdb.superuser()
    register_vector(conn)
    conn.execute(f"SET ROLE {AGENT}")
    return conn


def _ranking(ids: list[int], doc_of: dict[int, str]) -> tuple[list[str], bool]:
    ranked: list[str] = []
    for i in ids:
        if doc_of[i] not in ranked:
            ranked.append(doc_of[i])
    return ranked, len(ranked) < len(ids)


def search_exact(bdb: BenchDb, vectors: dict[str, np.ndarray], doc_of: dict[int, str]
                 ) -> ModeResult:
    result = ModeResult({}, [], [])
    with agent_session(bdb) as conn:
        conn.execute("SET enable_indexscan = off")
        plan = "\n".join(r[0] for r in conn.execute(
            "EXPLAIN " + EXACT, (next(iter(vectors.values())),)))
        # exact: every row of the agent read and sorted by distance, no (HNSW) index scan
        if "Seq Scan" not in plan or "Sort" not in plan or INDEX_SCAN.search(plan):
            raise RuntimeError(f"the exact search does not scan and sort:\n{plan}")
        for qid, vector in vectors.items():
            start = time.perf_counter()
            ids = [r[0] for r in conn.execute(EXACT, (vector,))]
            result.seconds.append(time.perf_counter() - start)
            result.rows.append(len(ids))
            result.rankings[qid], _ = _ranking(ids, doc_of)
    return result


def search_sql(mode: str) -> str:
    args = ", ".join(_ARGS[a] for a in MODES[mode])
    return ("SELECT id, fused_score FROM nexus.memory_search("
            f"{args}, limit_n => {DEPTH}, kinds => '{{episode}}')")


def search_mode(bdb: BenchDb, mode: str, data: SciFact, vectors: dict[str, np.ndarray],
                doc_of: dict[int, str]) -> ModeResult:
    query = search_sql(mode)
    result = ModeResult({}, [], [])
    with agent_session(bdb) as conn:
        for qid, text in data.queries.items():
            params = {"query": text, "embedding": vectors[qid], "df_budget": PRUNED_DF_BUDGET}
            start = time.perf_counter()
            rows = conn.execute(query, params).fetchall()
            result.seconds.append(time.perf_counter() - start)
            result.rows.append(len(rows))
            scores = [s for _, s in rows]
            if any(a is not None and b is not None and a < b for a, b in pairwise(scores)):
                result.unordered += 1
            result.rankings[qid], twice = _ranking([i for i, _ in rows], doc_of)
            result.duplicates += twice
    return result


# -- the benchmark -----------------------------------------------------------------------------
def agreement(results: dict[str, ModeResult], depth: int) -> float:
    """Mean share of the exact top-`depth` that the vector search also returns in its top-`depth`
    (the HNSW index's recall)."""
    exact, vector = results["exact"].rankings, results["vector"].rankings
    return statistics.fmean(len(set(exact[q][:depth]).intersection(vector[q][:depth]))
                            / max(len(exact[q][:depth]), 1) for q in exact)


def figures_of(results: dict[str, ModeResult], errors: dict[str, str], data: SciFact,
               setup: str) -> list[Figure]:
    qrels = data.qrels
    ndcg = {m: r.ndcg(qrels) for m, r in results.items()}
    recall = {m: r.recall(qrels) for m, r in results.items()}
    figures: list[Figure] = []

    def add(mode: str, metric: str, baseline: float | None, note: str) -> None:
        name = f"search.scifact.{mode}_{metric}"
        if mode not in results:
            figures.append(Figure(name, None, "", note=f"FAILED: {errors[mode]}", failed=True))
            return
        value = ndcg[mode] if metric == "ndcg10" else recall[mode]
        unit = "nDCG@10" if metric == "ndcg10" else "recall@100"
        figures.append(Figure(name, value, unit, baseline, ratio(value, baseline),
                              f"{value:.4f}; {note}"))

    for metric, scores in (("ndcg10", ndcg), ("recall100", recall)):
        exact = scores.get("exact")
        add("exact", metric, None,
            f"brute-force cosine scan (Seq Scan), {len(qrels)} test claims; {setup}"
            if metric == "ndcg10" else "brute-force cosine scan")
        if "vector" in scores and exact is not None:
            gap = exact - scores["vector"]
            verdict = "met" if gap <= EXACT_MARGIN else "MISSED"
            vnote = (f"exact - vector = {gap:.4f}; "
                     f"target within {EXACT_MARGIN:g} of exact: {verdict}")
        else:
            vnote = f"target within {EXACT_MARGIN:g} of exact"
        if {"vector", "exact"} <= results.keys():
            depth = K if metric == "ndcg10" else DEPTH
            vnote += f"; top-{depth} overlap with exact {agreement(results, depth):.4f}"
        if "vector" in results:
            vnote += f"; {results['vector'].summary()}"
        add("vector", metric, exact, vnote)
        tnote = target_note(scores.get("text"), TEXT_TARGET) if metric == "ndcg10" else ""
        if "text" in results:
            tnote = "; ".join(filter(None, [tnote, results["text"].summary()]))
        add("text", metric, None, tnote)
        best = max((scores[m] for m in ("text", "vector") if m in scores), default=None)
        hnote = "baseline max(text, vector)"
        if "hybrid" in scores and {"text", "vector"} <= scores.keys():
            above = scores["hybrid"] > best  # type: ignore[operator]
            hnote += f"; above both: {'met' if above else 'MISSED'}"
        if metric == "ndcg10":
            hnote += "; " + target_note(scores.get("hybrid"), HYBRID_TARGET)
        if "hybrid" in results:
            hnote += f"; {results['hybrid'].summary()}"
        add("hybrid", metric, best, hnote)
    for mode in ("text", "hybrid"):
        pruned = f"{mode}_pruned"
        note = (f"df_budget => {PRUNED_DF_BUDGET:,}; baseline: {mode} with the default budget "
                "(10,000)")
        if {pruned, mode} <= results.keys():
            full, cut = results[mode], results[pruned]
            changed = sum(full.rankings[q] != cut.rankings[q] for q in full.rankings)
            note += (f"; ranking changed for {changed} of {len(full.rankings)} claims; "
                     f"{statistics.fmean(cut.seconds) * 1000:.0f} ms/claim "
                     f"(without: {statistics.fmean(full.seconds) * 1000:.0f}); {cut.summary()}")
        add(pruned, "ndcg10", ndcg.get(mode), note)
    if "hybrid" in results:
        ms = [s * 1000 for s in results["hybrid"].seconds]
        figures.append(Figure(
            "search.scifact.hybrid_p50_ms", statistics.median(ms), "ms",
            note=f"informational: one hybrid memory_search (limit 100, so 100 snippets) per claim, "
                 f"client side; p90 {percentile(ms, 90):.1f} ms, max {max(ms):.1f} ms"))
    else:
        figures.append(Figure("search.scifact.hybrid_p50_ms", None, "",
                              note=f"FAILED: {errors['hybrid']}", failed=True))
    return figures


def make_embedder() -> Embedder:
    """The model the worker process will run (same code, same NEXUS_EMBED_MODEL and
    NEXUS_EMBED_DTYPE: `NEXUS_EMBED_DTYPE=float32 make bench ONLY=search.scifact` measures fp32)."""
    cfg = config.load()
    return Embedder(cfg.embed_model, threads=WORKER_THREADS, dtype=cfg.embed_dtype)


def build(bdb: BenchDb, data: SciFact) -> tuple[Prepared, dict[str, np.ndarray], str]:
    start = time.perf_counter()
    embedder = make_embedder()
    cache = VectorCache(embedder.info.name, embedder.info.version)
    if cache.ignored:
        log(cache.ignored)
    prepared = prepare(bdb, data, cache)
    vectors = query_vectors(data, embedder, cache)
    done = prepared.embedded
    setup = (f"{len(prepared.doc_of):,} docs: {done.from_cache:,} vectors from "
             f"{cache.path.name}, {done.from_worker:,} embedded by the worker "
             f"({done.worker_seconds:,.0f} s); setup {time.perf_counter() - start:,.0f} s")
    log(setup)
    return prepared, vectors, setup


def bench_search_quality(st: Stack) -> list[Figure]:
    try:
        data = load_scifact()
    except MissingData as exc:
        log(str(exc))
        return skipped_figures(FIGURES, exc)
    with cloned_database(st, DATABASE) as bdb:
        prepared, vectors, setup = build(bdb, data)
        results: dict[str, ModeResult] = {}
        errors: dict[str, str] = {}
        results["exact"] = search_exact(bdb, vectors, prepared.doc_of)
        for mode in MODES:
            start = time.perf_counter()
            try:
                results[mode] = search_mode(bdb, mode, data, vectors, prepared.doc_of)
            except psycopg.Error as exc:  # one broken mode must not hide the others' figures
                errors[mode] = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
                log(f"{mode}: {errors[mode]}")
                continue
            log(f"{mode}: {time.perf_counter() - start:,.1f} s for {len(data.queries)} claims")
    return figures_of(results, errors, data, setup)


BENCHMARKS = [Benchmark("search quality (BEIR SciFact)", FIGURES, bench_search_quality)]


def _stop(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.search_quality",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--build-cache", action="store_true",
                        help="only embed the corpus and the claims into the vector cache")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _stop)
    start = time.perf_counter()
    if args.build_cache:
        try:
            data = load_scifact()
        except MissingData as exc:
            log(str(exc))
            return 1
    with throwaway_stack() as st:
        if args.build_cache:
            with cloned_database(st, DATABASE) as bdb:
                build(bdb, data)
        else:
            print(table(bench_search_quality(st)))
    log(f"done in {time.perf_counter() - start:,.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
