"""Hybrid search latency and vector recall at 100,000 and 1,000,000 episodes.

Synthetic episodes (30-60 words from a Zipf vocabulary of 50,000 made-up words the english
stemmer keeps whole; 384-d unit vectors around 1,000 centroids) are built once into a stack of
their own under `.cache/bench/search-latency/` and kept between runs: building a million rows
takes most of an hour here (COPY, postings, an HNSW graph per partition). Each dataset is a
database (`lat_100k`, `lat_1m`) holding N episodes of one agent (`solo`) and N episodes spread
over 100 agents (`a00`..`a99`); it is rebuilt when its key (migrations/SHA256SUMS, the search
structures migration, the generator version, N) changes, and the repeatable SQL is applied to it
on every run, so that function changes are measured without rebuilding.

Queries: 300 per (dataset, setting), each a document's vector with noise (so it has true
neighbours) and 4-6 distinct words of the same document outside the 100 most frequent ranks (the
made-up vocabulary has no stop words: its Zipf head plays their part). Each is run through
`nexus.memory_search` as the document's agent (superuser connection, SET ROLE per query, not
timed): hybrid (text + vector, limit 10, episodes) with 1 and 8 clients (threads with a connection
each, sharing the queries), hybrid unpruned (df_budget => NULL), and vector only for recall@10
against the exact top-10 computed in numpy at build time. Baselines in the same run: an exact
brute-force cosine scan of the agent's rows in SQL for the 1-client figures, the 1-client figure
for the 8-client ones, the default (pruned) search for the unpruned ones. Every variant runs
ROUNDS times (NEXUS_BENCH_REPEATS, default 3), interleaved, and the median of the rounds is kept.

`python -m bench.search_latency build [100k] [1m]` only builds (or checks) the datasets;
`python -m bench.search_latency measure [100k] [1m]` measures without `bench.run`.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import math
import os
import statistics
import struct
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np
import psycopg
from pgvector.psycopg import register_vector
from psycopg import sql

from bench import harness
from bench.harness import Benchmark, Figure, percentile, ratio, table, target_note
from nexus import config, migrate, secrets
from nexus import dsn as db
from nexus.config import SUPERUSER
from nexus.ports import free_port, port_free
from nexus.stack import Stack

ROOT = Path(__file__).resolve().parent.parent
HOME = ROOT / ".cache" / "bench" / "search-latency"
# the settings `nexus up` gives this machine (a quarter of its memory as shared_buffers): with
# 2 GB of the 26 GB of data, the 1M agent's HNSW graph alone did not fit, and every query paid
# for copying pages in from the OS cache
MEMORY_BUDGET_MB = None
# bulk loading: fewer checkpoints; durability settings stay as they are. 4 GB of
# maintenance_work_mem lets an HNSW build of the 1M partition fit in memory (13 min instead
# of 35 with 2 GB, measured when migration 0009 rebuilt the graphs)
EXTRA_SETTINGS = {"max_wal_size": "8GB", "checkpoint_timeout": "30min",
                  "maintenance_work_mem": "4GB"}

GENERATOR_VERSION = "1"
# the last migration that shapes the data (0007: search structures)
DATA_MIGRATION = "0007"
DATASETS = {"100k": 100_000, "1m": 1_000_000}
SOLO = "solo"
AGENTS = [f"a{i:02d}" for i in range(100)]
SETTINGS = {"a1": "one agent holds all N rows",
            "a100": "100 agents hold N rows together; the query's agent holds N/100"}

VOCABULARY = 50_000
ZIPF_S = 1.0
WORDS = (30, 60)
DIMENSIONS = 384
CENTROIDS = 1_000
DOC_NOISE = 1.0      # |noise| / |centroid|: same-cluster documents at cosine ~0.5
QUERY_NOISE = 0.5    # a query's vector: its document's, at cosine ~0.9
QUERIES = 300
QUERY_TERMS = (4, 6)
HEAD_RANKS = 100
QUERY_SEED = 31
QUERY_VERSION = "2"
TRUTH_K = 10
BATCH = 50_000

EPISODES = "nexus_memory.zep_episodic_memory"
VECTORS = "nexus_memory.episode_embeddings"
HNSW_INDEX = "episode_embeddings_embedding_idx"
TSV_INDEX = "zep_episodic_memory_tsv_idx"
POSTINGS = "nexus_memory.text_postings"


log = partial(harness.log, "search-latency")


# -- the persistent stack ----------------------------------------------------------------------
@contextmanager
def _flock(path: Path, mode: int) -> Iterator[int]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, mode)
        yield fd
    finally:
        os.close(fd)


def _ports() -> tuple[int, int]:
    """The stack's ports, kept in HOME/ports.json; new free ones if those are taken by others."""
    path = HOME / "ports.json"
    try:
        ports = json.loads(path.read_text())
        pg_port, redis_port = int(ports["pg"]), int(ports["redis"])
    except (FileNotFoundError, ValueError, KeyError):
        pg_port, redis_port = free_port(), free_port()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"pg": pg_port, "redis": redis_port}))
    return pg_port, redis_port


@contextmanager
def persistent_stack() -> Iterator[Stack]:
    """The benchmark's own PostgreSQL under HOME, started if needed and stopped at the end by the
    last process using it (a shared lock per user; whoever gets the exclusive one stops it)."""
    HOME.mkdir(parents=True, exist_ok=True)
    users = HOME / "users.lock"
    fd = os.open(users, os.O_RDWR | os.O_CREAT, 0o644)
    st: Stack | None = None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        with _flock(HOME / "start.lock", fcntl.LOCK_EX):
            pg_port, redis_port = _ports()
            cfg = config.load(env={"WORKER_REPLICAS": "0"}, home=HOME, pg_port=pg_port,
                              redis_port=redis_port, database="postgres")
            st = Stack.from_config(cfg, memory_budget_mb=MEMORY_BUDGET_MB,
                                   extra_settings=EXTRA_SETTINGS)
            if st.pg.pid() is None:
                if not port_free(cfg.pg_host, cfg.pg_port):
                    (HOME / "ports.json").unlink()
                    pg_port, redis_port = _ports()
                    cfg = replace(cfg, pg_port=pg_port, redis_port=redis_port)
                    st = Stack.from_config(cfg, memory_budget_mb=MEMORY_BUDGET_MB,
                                           extra_settings=EXTRA_SETTINGS)
                st.pg.install()
                if not st.pg.initialized():
                    st.pg.init(secrets.password(st.cfg, SUPERUSER))
                log(f"starting PostgreSQL on port {st.cfg.pg_port} ({st.pg.data})")
                st.pg.start()
        yield st
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log("stack still in use by another process: left running")
        else:
            if st is not None:
                log("stopping PostgreSQL")
                st.pg.stop()
        os.close(fd)


def connect(st: Stack, dbname: str, **kwargs: object) -> psycopg.Connection:
    return st.superuser_conn(dbname, autocommit=True, **kwargs)


def dataset_key(size: str) -> str:
    h = hashlib.sha256()
    # the migrations up to the one that shaped the search data: later ones (which never touch
    # these tables) are applied to the kept databases instead of forcing an hour-long rebuild
    sums = (ROOT / "migrations" / "SHA256SUMS").read_text().splitlines(keepends=True)
    h.update("".join(ln for ln in sums if ln.split()[1][:4] <= DATA_MIGRATION).encode())
    for path in sorted((ROOT / "migrations").glob("0007*.sql")):
        h.update(path.read_bytes())
    h.update(f"generator {GENERATOR_VERSION} rows {DATASETS[size]}".encode())
    return h.hexdigest()


def stored_key(st: Stack, dbname: str) -> str | None:
    with connect(st, "postgres") as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone():
            return None
    with connect(st, dbname) as conn:
        row = conn.execute("SELECT to_regclass('bench_latency.build')").fetchone()
        if row is None or row[0] is None:
            return None
        row = conn.execute("SELECT key FROM bench_latency.build").fetchone()
        return row[0] if row else None


def ensure_dataset(st: Stack, size: str) -> dict[str, object]:
    """The dataset's database, built if missing or stale, with the repeatable SQL applied.
    Returns its build record."""
    dbname = f"lat_{size}"
    key = dataset_key(size)
    with _flock(HOME / f"build-{size}.lock", fcntl.LOCK_EX):
        if stored_key(st, dbname) != key:
            build(st, size, key)
        cfg = replace(st.cfg, database=dbname)
        # later migrations and the repeatable SQL (functions, policies, grants)
        migrate.migrate({"host": cfg.pg_host, "port": str(cfg.pg_port), "dbname": dbname,
                         "user": SUPERUSER, "password": secrets.password(cfg, SUPERUSER)})
        with db.connect(cfg, SUPERUSER, secrets.password(cfg, SUPERUSER),
                        autocommit=True) as conn:
            info, = conn.execute("SELECT info FROM bench_latency.build").fetchone()  # type: ignore[misc]
            if info.get("query_version") != QUERY_VERSION:
                write_query_texts(conn)
            info, = conn.execute("SELECT info FROM bench_latency.build").fetchone()  # type: ignore[misc]
    return info


# -- the synthetic corpus ----------------------------------------------------------------------
def vocabulary(seed: int = 11) -> list[str]:
    """VOCABULARY made-up words, shortest first (the most frequent ranks get the short ones).
    Consonant-vowel syllables ending in a vowel from a/o/u and a stop or nasal: no english
    suffix the Porter stemmer strips, no stop word."""
    rng = np.random.default_rng(seed)
    cons = list("bcdfghjklmnprstvz")
    vowels = list("aeiou")
    finals = list("kptbgmdn")
    last_vowels = list("aou")
    words: set[str] = set()
    out: list[str] = []
    while len(out) < VOCABULARY:
        syl = int(rng.choice([1, 2, 2, 3, 3, 3]))
        w = "".join(cons[rng.integers(len(cons))] + vowels[rng.integers(len(vowels))]
                    for _ in range(syl))
        w += cons[rng.integers(len(cons))] + last_vowels[rng.integers(3)] + finals[rng.integers(8)]
        if w not in words:
            words.add(w)
            out.append(w)
    out.sort(key=lambda w: (len(w), w))
    return out


def zipf_cdf() -> np.ndarray:
    p = 1.0 / np.arange(1, VOCABULARY + 1) ** ZIPF_S
    return np.cumsum(p / p.sum())


def centroids(seed: int = 5) -> np.ndarray:
    c = np.random.default_rng(seed).standard_normal((CENTROIDS, DIMENSIONS)).astype(np.float32)
    return c / np.linalg.norm(c, axis=1, keepdims=True)


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


@dataclass
class Group:
    """N documents of one setting: a1 (all solo's) or a100 (document i is agent a(i % 100)'s)."""

    setting: str
    seed: int
    n: int

    def agent(self, i: int) -> str:
        return SOLO if self.setting == "a1" else AGENTS[i % 100]

    def vectors(self, cents: np.ndarray) -> np.ndarray:
        rng = np.random.default_rng(self.seed)
        out = np.empty((self.n, DIMENSIONS), dtype=np.float32)
        for lo in range(0, self.n, BATCH):
            hi = min(lo + BATCH, self.n)
            k = rng.integers(CENTROIDS, size=hi - lo)
            noise = rng.standard_normal((hi - lo, DIMENSIONS), dtype=np.float32)
            out[lo:hi] = unit(cents[k] + noise * (DOC_NOISE / math.sqrt(DIMENSIONS)))
        return out

    def texts(self, lo: int, hi: int, vocab: np.ndarray, cdf: np.ndarray) -> list[list[str]]:
        """The words of documents lo..hi-1 (deterministic per batch)."""
        rng = np.random.default_rng([self.seed, lo])
        lengths = rng.integers(WORDS[0], WORDS[1] + 1, size=hi - lo)
        ranks = np.searchsorted(cdf, rng.random(int(lengths.sum())))
        words = vocab[np.minimum(ranks, VOCABULARY - 1)]
        bounds = np.concatenate([[0], np.cumsum(lengths)])
        return [words[bounds[j]:bounds[j + 1]].tolist() for j in range(hi - lo)]


def groups(n: int) -> list[Group]:
    return [Group("a1", 1001, n), Group("a100", 2002, n)]


# -- building ----------------------------------------------------------------------------------
def _binary_vectors(agent_ids: list[str], ids: list[int], shas: list[bytes], model: bytes,
                    vecs: np.ndarray) -> bytes:
    """A binary COPY stream of (agent_id, episode_id, model, model_version, content_sha256,
    embedding); pgvector's binary form is int16 dim, int16 0, float4[dim], big-endian."""
    big = vecs.astype(">f4")
    vec_head = struct.pack(">ihh", 4 + 4 * DIMENSIONS, DIMENSIONS, 0)
    parts = [b"PGCOPY\n\xff\r\n\x00", struct.pack(">ii", 0, 0)]
    for j, (agent, i, sha) in enumerate(zip(agent_ids, ids, shas, strict=True)):
        a = agent.encode()
        parts.append(struct.pack(">hi", 6, len(a)) + a + struct.pack(">iq", 8, i)
                     + struct.pack(">i", len(model)) + model + struct.pack(">i", 0)
                     + struct.pack(">i", len(sha)) + sha + vec_head + big[j].tobytes())
    parts.append(struct.pack(">h", -1))
    return b"".join(parts)


def _pick_queries(g: Group, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(g.n, size=QUERIES, replace=False))


def build(st: Stack, size: str, key: str) -> None:
    n = DATASETS[size]
    dbname = f"lat_{size}"
    t_all = time.monotonic()
    timings: dict[str, float] = {}

    def step(name: str, t0: float) -> float:
        timings[name] = round(time.monotonic() - t0, 1)
        log(f"{dbname}: {name} done in {timings[name]:,.1f} s")
        return time.monotonic()

    log(f"building {dbname}: {n:,} episodes of one agent + {n:,} of 100 agents")
    t = time.monotonic()
    with connect(st, "postgres") as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(dbname)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
    migrate.migrate({
        "host": st.cfg.pg_host, "port": str(st.cfg.pg_port), "dbname": dbname,
        "user": SUPERUSER, "password": secrets.password(st.cfg, SUPERUSER)})
    t = step("migrate", t)

    vocab = np.array(vocabulary())
    cdf = zipf_cdf()
    cents = centroids()
    with connect(st, dbname) as conn:
        for agent in [SOLO, *AGENTS]:
            conn.execute("SELECT memory_system.agent_add(%s)", (agent,))
        model, = conn.execute("SELECT value FROM memory_system.settings"
                              " WHERE name = 'embedding_model'").fetchone()  # type: ignore[misc]
        # bulk load: drop the indexes a sort builds faster afterwards
        tsv_def, = conn.execute("SELECT pg_get_indexdef(%s::regclass)",
                                (f"nexus_memory.{TSV_INDEX}",)).fetchone()  # type: ignore[misc]
        pk_name, pk_def = conn.execute(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint"
            " WHERE conrelid = %s::regclass AND contype = 'p'", (POSTINGS,)).fetchone()  # type: ignore[misc]
        conn.execute(f"DROP INDEX nexus_memory.{TSV_INDEX}")
        conn.execute(f"DROP INDEX nexus_memory.{HNSW_INDEX}")
        conn.execute(sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(
            sql.SQL(POSTINGS), sql.Identifier(pk_name)))
        conn.execute("CREATE SCHEMA bench_latency")
        conn.execute("""
            CREATE TABLE bench_latency.queries (
                setting text NOT NULL, qno integer NOT NULL, agent_id text NOT NULL,
                doc_id bigint NOT NULL, query text NOT NULL, embedding public.vector(384) NOT NULL,
                truth bigint[] NOT NULL, PRIMARY KEY (setting, qno))""")
        t = step("agents and drop indexes", t)

        created0 = 1_700_000_000.0
        last_id = 0
        for gi, g in enumerate(groups(n)):
            vecs = g.vectors(cents)
            picks = _pick_queries(g, g.seed + 1)
            episode_ids = np.empty(g.n, dtype=np.int64)
            t_copy = t_vec = 0.0
            for lo in range(0, g.n, BATCH):
                hi = min(lo + BATCH, g.n)
                docs = g.texts(lo, hi, vocab, cdf)
                t0 = time.monotonic()
                lines = []
                for j, words in enumerate(docs, start=lo):
                    ts = created0 + (gi * g.n + j) * 30.0
                    lines.append(f"{g.agent(j)}\t{' '.join(words)}\t"
                                 f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(ts))}+00\n")
                with conn.transaction():
                    with conn.cursor().copy(f"COPY {EPISODES} (agent_id, content, created_at)"
                                            " FROM STDIN") as cp:
                        cp.write("".join(lines))
                    rows = conn.execute(
                        f"SELECT id, agent_id, content_sha256 FROM {EPISODES}"
                        " WHERE id > %s ORDER BY id",
                        (last_id,)).fetchall()
                if len(rows) != hi - lo or any(r[1] != g.agent(j)
                                               for j, r in zip(range(lo, hi), rows, strict=True)):
                    raise RuntimeError(f"{dbname}: batch {lo}..{hi}: ids not in COPY order")
                t1 = time.monotonic()
                episode_ids[lo:hi] = [r[0] for r in rows]
                last_id = rows[-1][0]
                stream = _binary_vectors([r[1] for r in rows], [r[0] for r in rows],
                                         [bytes(r[2]) for r in rows], model.encode(),
                                         vecs[lo:hi])
                with conn.transaction():
                    conn.execute("TRUNCATE memory_system.embeddings_queue")
                    with conn.cursor().copy(
                            f"COPY {VECTORS} (agent_id, episode_id, model, model_version,"
                            " content_sha256, embedding) FROM STDIN (FORMAT BINARY)") as cp:
                        cp.write(stream)
                t_copy += t1 - t0
                t_vec += time.monotonic() - t1
                log(f"{dbname}: {g.setting}: {hi:,}/{g.n:,} episodes"
                    f" (COPY episodes {t_copy:,.0f} s, vectors {t_vec:,.0f} s)")
            timings[f"copy_episodes_{g.setting}"] = round(t_copy, 1)
            timings[f"copy_vectors_{g.setting}"] = round(t_vec, 1)
            t = time.monotonic()
            _store_queries(conn, g, vecs, picks, episode_ids)
            del vecs
            t = step(f"queries and exact top-{TRUTH_K} {g.setting}", t)

        conn.execute("SET maintenance_work_mem = '4GB'")
        conn.execute("SET max_parallel_maintenance_workers = 2")
        conn.execute(sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} ").format(
            sql.SQL(POSTINGS), sql.Identifier(pk_name)) + sql.SQL(pk_def))
        t = step("postings primary key", t)
        conn.execute(tsv_def)
        t = step("GIN on content_tsv", t)
        conn.execute(f"CREATE INDEX {HNSW_INDEX} ON {VECTORS}"
                     " USING hnsw (embedding public.vector_cosine_ops)")
        t = step("HNSW", t)
        conn.execute("VACUUM ANALYZE")
        t = step("VACUUM ANALYZE", t)
        sizes = {name: conn.execute(f"SELECT pg_size_pretty({expr})").fetchone()[0]  # type: ignore[index]
                 for name, expr in (
                     ("database", "pg_database_size(current_database())"),
                     ("episodes", f"pg_total_relation_size('{EPISODES}')"),
                     ("postings", f"pg_total_relation_size('{POSTINGS}')"),
                     ("vectors", "(SELECT sum(pg_total_relation_size(c.oid)) FROM pg_inherits i"
                                 f" JOIN pg_class c ON c.oid = i.inhrelid"
                                 f" WHERE i.inhparent = '{VECTORS}'::regclass)"),
                     ("hnsw", "(SELECT sum(pg_relation_size(c.oid)) FROM pg_inherits i"
                              " JOIN pg_class c ON c.oid = i.inhrelid"
                              f" WHERE i.inhparent = 'nexus_memory.{HNSW_INDEX}'::regclass)"))}
        postings, = conn.execute(f"SELECT count(*) FROM {POSTINGS}").fetchone()  # type: ignore[misc]
        timings["total"] = round(time.monotonic() - t_all, 1)
        info = {"rows": n, "timings_s": timings, "sizes": sizes, "postings": postings,
                "built_at": time.strftime("%Y-%m-%d %H:%M:%S")}
        conn.execute("CREATE TABLE bench_latency.build (key text NOT NULL, info jsonb NOT NULL)")
        conn.execute("INSERT INTO bench_latency.build VALUES (%s, %s)", (key, json.dumps(info)))
        conn.execute("CHECKPOINT")
    log(f"{dbname} built in {timings['total']:,.0f} s: {json.dumps(info)}")


def _store_queries(conn: psycopg.Connection, g: Group, vecs: np.ndarray, picks: np.ndarray,
                   episode_ids: np.ndarray) -> None:
    """QUERIES queries of the group: a document's vector with noise, with the exact top-10
    (cosine) among the rows of the document's agent. Their words: `write_query_texts`."""
    rng = np.random.default_rng(g.seed + 2)
    agents = np.array([0 if g.setting == "a1" else i % 100 for i in range(g.n)])
    register_vector(conn)
    rows = []
    for qno, doc in enumerate(picks.tolist()):
        noise = rng.standard_normal(DIMENSIONS).astype(np.float32)
        q = unit(vecs[doc] + noise * (QUERY_NOISE / math.sqrt(DIMENSIONS)))
        mine = np.nonzero(agents == agents[doc])[0] if g.setting == "a100" else None
        pool = vecs if mine is None else vecs[mine]
        dist = 1.0 - pool @ q
        top = np.argpartition(dist, TRUTH_K)[:TRUTH_K]
        top = top[np.argsort(dist[top], kind="stable")]
        idx = top if mine is None else mine[top]
        rows.append((g.setting, qno, g.agent(doc), int(episode_ids[doc]), "", q,
                     [int(episode_ids[i]) for i in idx]))
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO bench_latency.queries VALUES (%s, %s, %s, %s, %s, %s, %s)",
                        rows)


# -- measuring ---------------------------------------------------------------------------------
# as the agent (SET ROLE before each query, not timed): row-level security scopes every read
HYBRID = ("SELECT id FROM nexus.memory_search(query => %s, query_embedding => %s, limit_n => 10,"
          " kinds => '{episode}')")
HYBRID_UNPRUNED = ("SELECT id FROM nexus.memory_search(query => %s, query_embedding => %s,"
                   " limit_n => 10, kinds => '{episode}', df_budget => NULL)")
VECTOR = ("SELECT id FROM nexus.memory_search(query_embedding => %s, limit_n => 10,"
          " kinds => '{episode}')")
# `+ 0`: an ORDER BY the HNSW index cannot serve, so an exact scan of the agent's rows; the agent
# as a text literal, as memory_search does (`agent_id = current_user` prunes no partition)
EXACT = ("SELECT episode_id FROM nexus_memory.episode_embeddings"
         " WHERE agent_id = %s"
         " ORDER BY (embedding OPERATOR(public.<=>) %s) + 0, episode_id LIMIT 10")
# which vector partition (and HNSW graph) holds each agent's vectors
PARTS = ("SELECT DISTINCT x.agent_id, x.tableoid FROM nexus_memory.episode_embeddings AS x")
CLIENTS = (1, 8)
# rounds of every variant (median kept); fewer when time is short
ROUNDS = int(os.environ.get("NEXUS_BENCH_REPEATS") or 3)
EXACT_QUERIES = 20
P99_TARGET_MS = 20.0
RECALL_TARGET = 0.95


@dataclass(frozen=True)
class Query:
    qno: int
    agent: str
    text: str
    embedding: np.ndarray
    truth: tuple[int, ...]


def load_queries(conn: psycopg.Connection, setting: str) -> list[Query]:
    rows = conn.execute("SELECT qno, agent_id, query, embedding, truth FROM bench_latency.queries"
                        " WHERE setting = %s ORDER BY qno", (setting,)).fetchall()
    return [Query(r[0], r[1], r[2], r[3], tuple(r[4])) for r in rows]


def args_for(stmt: str, q: Query) -> tuple[object, ...]:
    if stmt == EXACT:
        return (q.agent, q.embedding)
    return (q.embedding,) if stmt == VECTOR else (q.text, q.embedding)


def run_one(conn: psycopg.Connection, stmt: str, q: Query) -> tuple[float, list[int]]:
    """One query as its agent: (ms, ids)."""
    conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(q.agent)))
    t0 = time.perf_counter()
    ids = [r[0] for r in conn.execute(stmt, args_for(stmt, q)).fetchall()]
    ms = (time.perf_counter() - t0) * 1000
    conn.execute("RESET ROLE")
    return ms, ids


def run_serial(conn: psycopg.Connection, stmt: str,
               queries: list[Query]) -> tuple[list[float], list[list[int]]]:
    times, results = [], []
    for q in queries:
        ms, ids = run_one(conn, stmt, q)
        times.append(ms)
        results.append(ids)
    return times, results


def run_concurrent(connect_fn: Callable[[], psycopg.Connection], clients: int, stmt: str,
                   queries: list[Query]) -> tuple[list[float], float]:
    """`clients` threads, each with its own connection, started together, sharing the queries
    (thread i runs every clients-th one from i). Returns every latency and the queries per
    second."""
    conns = [connect_fn() for _ in range(clients)]
    times: list[list[float]] = [[] for _ in range(clients)]
    errors: list[BaseException] = []
    start = threading.Barrier(clients + 1)

    def body(i: int) -> None:
        start.wait()
        try:
            for q in queries[i::clients]:
                times[i].append(run_one(conns[i], stmt, q)[0])
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(i,), daemon=True) for i in range(clients)]
    try:
        for t in threads:
            t.start()
        start.wait()
        t0 = time.perf_counter()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - t0
    finally:
        for c in conns:
            c.close()
    if errors:
        raise errors[0]
    flat = [x for ts in times for x in ts]
    return flat, len(flat) / elapsed


def overlap(a: list[int] | tuple[int, ...], b: list[int] | tuple[int, ...], k: int = 10) -> float:
    return len(set(a[:k]) & set(b[:k])) / k


@dataclass
class Measured:
    """What one (dataset, setting) gave: per round p50/p99 of each variant, and the rest."""

    p50: dict[str, list[float]]
    p99: dict[str, list[float]]
    qps: dict[int, list[float]]
    recall: float
    vector_ms: tuple[float, float]
    exact_ms: tuple[float, float]
    exact_recall: float
    df_overlap: float
    seconds: float
    # a100: the agents whose vectors share solo's partition (and HNSW graph), and the 1-client
    # p99 and recall of the queries of the other agents
    crowded: list[str]
    p99_alone: list[float]
    recall_alone: float | None
    # a100: per number of agents sharing the query's vector partition, the 1-client p50 and p99
    # of those queries in each round (a filtered HNSW scan reads about that many times the rows)
    by_share: dict[int, tuple[list[float], list[float]]]


def measure(st: Stack, size: str, setting: str) -> Measured:
    t_start = time.monotonic()
    dbname = f"lat_{size}"

    def connect_fn() -> psycopg.Connection:
        conn = connect(st, dbname)
        register_vector(conn)
        return conn

    with connect_fn() as conn:
        queries = load_queries(conn, setting)
        # warm up: every query once, each variant (the results are deterministic: kept)
        _, pruned = run_serial(conn, HYBRID, queries)
        _, unpruned = run_serial(conn, HYBRID_UNPRUNED, queries)
        vec_times, vec_ids = run_serial(conn, VECTOR, queries)
        recall = statistics.fmean(overlap(ids, q.truth) for ids, q in zip(vec_ids, queries,
                                                                           strict=True))
        df_overlap = statistics.fmean(overlap(a, b) for a, b in zip(pruned, unpruned, strict=True))
        exact_times, exact_ids = run_serial(conn, EXACT, queries[:EXACT_QUERIES])
        exact_recall = statistics.fmean(overlap(ids, q.truth) for ids, q in zip(
            exact_ids, queries, strict=False))
        part = dict(conn.execute(PARTS).fetchall())
    # the agents whose vectors share solo's partition, and per agent how many share its own
    crowded = sorted(a for a, p in part.items() if a != SOLO and p == part.get(SOLO))
    per_part = Counter(part.values())
    sharers = {a: per_part[p] for a, p in part.items()}
    alone = [i for i, q in enumerate(queries) if q.agent not in crowded]
    recall_alone = (statistics.fmean(overlap(vec_ids[i], queries[i].truth) for i in alone)
                    if setting == "a100" and alone else None)
    p99_alone: list[float] = []
    shares = sorted({sharers[q.agent] for q in queries}) if setting == "a100" else []
    by_share: dict[int, tuple[list[float], list[float]]] = {n: ([], []) for n in shares}

    variants = ["c1", "c1_unpruned", *(f"c{c}" for c in CLIENTS if c > 1)]
    p50: dict[str, list[float]] = {v: [] for v in variants}
    p99: dict[str, list[float]] = {v: [] for v in variants}
    qps: dict[int, list[float]] = {c: [] for c in CLIENTS if c > 1}
    for round_ in range(ROUNDS):
        for v in variants[round_ % len(variants):] + variants[:round_ % len(variants)]:
            if v.startswith("c1"):
                with connect_fn() as conn:
                    stmt = HYBRID_UNPRUNED if v == "c1_unpruned" else HYBRID
                    run_serial(conn, stmt, queries[:5])
                    times, _ = run_serial(conn, stmt, queries)
                if v == "c1" and setting == "a100" and alone:
                    p99_alone.append(percentile([times[i] for i in alone], 99))
                if v == "c1":
                    for n in shares:
                        mine = [t for t, q in zip(times, queries, strict=True)
                                if sharers[q.agent] == n]
                        by_share[n][0].append(percentile(mine, 50))
                        by_share[n][1].append(percentile(mine, 99))
            else:
                clients = int(v[1:])
                times, rate = run_concurrent(connect_fn, clients, HYBRID, queries)
                qps[clients].append(rate)
            p50[v].append(percentile(times, 50))
            p99[v].append(percentile(times, 99))
            log(f"{dbname} {setting} round {round_ + 1} {v}: p50 {p50[v][-1]:.1f} ms,"
                f" p99 {p99[v][-1]:.1f} ms")
    return Measured(p50, p99, qps, recall, (percentile(vec_times, 50), percentile(vec_times, 99)),
                    (percentile(exact_times, 50), percentile(exact_times, 99)), exact_recall,
                    df_overlap,
                    time.monotonic() - t_start, crowded, p99_alone, recall_alone, by_share)


def _runs(values: list[float]) -> str:
    return "rounds " + " / ".join(f"{v:.1f}" for v in values)


def below_note(value: float | None, target: float) -> str:
    if value is None:
        return f"target < {target:g} ms"
    return f"target < {target:g} ms: {'met' if value < target else 'MISSED'}"


def bench_size(size: str) -> Callable[[Stack], list[Figure]]:
    def run(_: Stack) -> list[Figure]:
        figures: list[Figure] = []
        t0 = time.monotonic()
        with persistent_stack() as st:
            info = ensure_dataset(st, size)
            t_ready = time.monotonic() - t0
            results = {s: measure(st, size, s) for s in SETTINGS}
        built = info["timings_s"]  # type: ignore[index]
        sizes = info["sizes"]  # type: ignore[index]
        data = (f"lat_{size}: {info['rows']:,} episodes of one agent + {info['rows']:,} of 100"  # type: ignore[index]
                f" agents, built {info['built_at']} in {built['total']:,.0f} s"  # type: ignore[index]
                f" (HNSW {built['HNSW']:,.0f} s), database {sizes['database']};"
                f" stack ready in {t_ready:,.0f} s, measured in"
                f" {sum(m.seconds for m in results.values()):,.0f} s")
        for s, m in results.items():
            setup = (f"{SETTINGS[s]}; {QUERIES} queries of 4-6 words of a document + its vector"
                     f" with noise, hybrid, limit 10, episodes, as the agent")
            e50, e99 = m.exact_ms
            for c in CLIENTS:
                v = f"c{c}"
                v50, v99 = statistics.median(m.p50[v]), statistics.median(m.p99[v])
                if c == 1:
                    b50, b99 = e50, e99
                    how = (f"baseline: exact brute-force vector search (cosine scan of the"
                           f" agent's rows, first {EXACT_QUERIES} queries)")
                else:
                    b50, b99 = (statistics.median(m.p50["c1"]), statistics.median(m.p99["c1"]))
                    rate = statistics.median(m.qps[c])
                    how = (f"{c} clients sharing the queries; baseline: 1 client;"
                           f" {rate:,.0f} queries/s")
                figures.append(Figure(f"search.latency.p50_ms_{size}_{s}_{v}", v50, "ms", b50,
                                      ratio(v50, b50), f"{_runs(m.p50[v])}; {how}; {setup}"))
                extra = ""
                if c == 1 and m.p99_alone and m.crowded:
                    extra = (f"; without the queries of {', '.join(m.crowded)} (whose vectors"
                             f" share solo's partition and HNSW graph): p99"
                             f" {statistics.median(m.p99_alone):.1f} ms")
                figures.append(Figure(f"search.latency.p99_ms_{size}_{s}_{v}", v99, "ms", b99,
                                      ratio(v99, b99), f"{_runs(m.p99[v])}; {how}{extra}"))
            figures.append(Figure(
                f"search.latency.recall10_{size}_{s}", m.recall, "ratio", None, None,
                f"vector-only memory_search top-10 vs exact top-10 (numpy, the agent's rows);"
                f" {target_note(m.recall, RECALL_TARGET)}; vector-only p50/p99"
                f" {m.vector_ms[0]:.1f}/{m.vector_ms[1]:.1f} ms; the SQL exact scan finds"
                f" {m.exact_recall:.3f} of the same top-10 (p50/p99 {e50:.1f}/{e99:.1f} ms)"
                + (f"; without the agents sharing solo's partition: {m.recall_alone:.3f}"
                   if m.recall_alone is not None and m.crowded else "")))
        a100 = results["a100"]
        if 1 in a100.by_share:
            o99, all99 = statistics.median(a100.by_share[1][1]), statistics.median(a100.p99["c1"])
            shares = "; ".join(f"{n}: {statistics.median(p50):.1f}/{statistics.median(p99):.1f}"
                               for n, (p50, p99) in a100.by_share.items())
            figures.append(Figure(
                f"search.latency.p99_ms_{size}_a100_own_graph_c1", o99, "ms", all99,
                ratio(o99, all99),
                f"{_runs(a100.by_share[1][1])}; 100 agents, one client, hybrid: the queries of"
                f" the agents whose vectors are alone in their partition (HNSW graph);"
                f" baseline: every agent's; p50/p99 ms by agents sharing the partition: {shares}"))
        if size == "1m":
            worst = max(SETTINGS, key=lambda s: statistics.median(results[s].p99["c1"]))
            w99 = statistics.median(results[worst].p99["c1"])
            figures.append(Figure(
                "search.latency.p99_ms_1m_c1", w99, "ms", results[worst].exact_ms[1],
                ratio(w99, results[worst].exact_ms[1]),
                f"{below_note(w99, P99_TARGET_MS)}; the worse of a1/a100 ({worst}), one client,"
                " hybrid; baseline: exact brute-force vector search of the same agent"))
            worst_r = min(SETTINGS, key=lambda s: results[s].recall)
            figures.append(Figure(
                "search.latency.recall10_1m", results[worst_r].recall, "ratio", None, None,
                f"{target_note(results[worst_r].recall, RECALL_TARGET)}; the worse of a1/a100"
                f" ({worst_r})"))
            for s, m in results.items():
                u99, d99 = statistics.median(m.p99["c1_unpruned"]), statistics.median(m.p99["c1"])
                figures.append(Figure(
                    f"search.latency.p99_ms_1m_{s}_c1_unpruned", u99, "ms", d99, ratio(u99, d99),
                    f"{_runs(m.p99['c1_unpruned'])}; df_budget => NULL (every posting read),"
                    f" informational; p50 {statistics.median(m.p50['c1_unpruned']):.1f} ms;"
                    " baseline: the default df_budget"))
                figures.append(Figure(
                    f"search.latency.overlap10_1m_{s}_pruned", m.df_overlap, "ratio", None, None,
                    "hybrid top-10 with the default df_budget vs unpruned (df_budget => NULL),"
                    " mean share"))
        if figures:
            figures[0].note += f"; {data}"
        return figures
    return run


def _names(size: str) -> tuple[str, ...]:
    names = [f"search.latency.{p}_ms_{size}_{s}_c{c}" for s in SETTINGS for c in CLIENTS
             for p in ("p50", "p99")]
    names += [f"search.latency.recall10_{size}_{s}" for s in SETTINGS]
    names += [f"search.latency.p99_ms_{size}_a100_own_graph_c1"]
    if size == "1m":
        names += ["search.latency.p99_ms_1m_c1", "search.latency.recall10_1m"]
        names += [f"search.latency.{f}_1m_{s}{t}" for s in SETTINGS
                  for f, t in (("p99_ms", "_c1_unpruned"), ("overlap10", "_pruned"))]
    return tuple(names)


BENCHMARKS = [Benchmark(f"search latency {size}", _names(size), bench_size(size))
              for size in DATASETS]


def write_query_texts(conn: psycopg.Connection) -> None:
    """The words of each query: 4-6 distinct words of its document, none of the HEAD_RANKS most
    frequent ones. The made-up vocabulary has no stop words, so the head of its Zipf curve (terms
    in 4% to 98% of the documents) plays their part, and nobody searches for stop words."""
    rank = {w: i for i, w in enumerate(vocabulary())}
    rows = conn.execute("SELECT q.setting, q.qno, e.content FROM bench_latency.queries AS q"
                        f" JOIN {EPISODES} AS e ON e.agent_id = q.agent_id AND e.id = q.doc_id"
                        " ORDER BY q.setting, q.qno").fetchall()
    updates = []
    for setting, qno, content in rows:
        rng = np.random.default_rng([QUERY_SEED, int(setting[1:]), qno])
        distinct = [w for w in dict.fromkeys(content.split()) if rank[w] >= HEAD_RANKS]
        k = min(len(distinct), int(rng.integers(QUERY_TERMS[0], QUERY_TERMS[1] + 1)))
        terms = [distinct[i] for i in rng.choice(len(distinct), size=k, replace=False)]
        updates.append((" ".join(terms), setting, qno))
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany("UPDATE bench_latency.queries SET query = %s WHERE setting = %s"
                        " AND qno = %s", updates)
        cur.execute("UPDATE bench_latency.build SET info = info || jsonb_build_object("
                    "'query_version', %s::text)", (QUERY_VERSION,))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.search_latency")
    parser.add_argument("command", choices=["build", "measure"])
    parser.add_argument("sizes", nargs="*", default=list(DATASETS))
    args = parser.parse_args(argv)
    if args.command == "measure":
        figures = [f for size in args.sizes for f in bench_size(size)(None)]  # type: ignore[arg-type]
        print(table(figures))
        return 0
    with persistent_stack() as st:
        for size in args.sizes:
            info = ensure_dataset(st, size)
            log(f"lat_{size}: {json.dumps(info)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
