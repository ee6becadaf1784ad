"""Spaces (docs/spaces.md): hybrid search over an agent's own memory plus 3 spaces against its own
memory alone, writes into a space against writes into its own memory, and recall@10 of known items
over own + 3 spaces against the same items in one agent.

Data: four memories of N episodes each (NEXUS_BENCH_SPACES_ROWS, default 25,000; the issue's
100,000 each takes about four times as long to build): agent `owner`'s own and spaces s1, s2, s3
(owner writes s1, reads s2 and s3), each with its own vector partition and HNSW graph; and agent
`union`, which holds the same 4N episodes as its own (one partition, one graph, one BM25 corpus).
The episodes are made as in bench/search_latency.py (30-60 words of a Zipf vocabulary, 384-d
vectors around 1,000 centroids), in a clone of the throwaway stack: COPY with the text-index
trigger on, vectors by binary COPY, HNSW built once after the load.

Queries: QUERIES known items per memory, each 4-6 of its document's words outside the 100 most
frequent ranks and its vector with noise (as search_latency's). Hybrid `memory_search` (limit 10,
episodes) as the agent (SET ROLE, not timed).
- spaces.search_p50_ratio: p50 of owner's queries of its own documents with scope => 'all' (own +
  3 spaces: 4N rows) over the same queries with the default scope (own: N rows), interleaved,
  ROUNDS rounds, median. Target <= 2.0.
- spaces.write_ratio: record_episode calls per second into s1 over into owner's own memory
  (chunks of WRITES calls, own and space alternating, CHUNKS of each per round, the median
  chunk; ROUNDS rounds, median). Target >= 0.9.
- spaces.recall10: share of the known items (all four memories) found in the top 10 by owner with
  scope => 'all'; baseline: the same queries as `union` (all 4N rows its own). Target: equal.
"""

from __future__ import annotations

import math
import os
import statistics
import time
from functools import partial

import numpy as np
import psycopg
from pgvector.psycopg import register_vector
from psycopg import sql

from bench import harness
from bench.harness import BenchDb, Benchmark, Figure, cloned_database, percentile, ratio
from bench.search_latency import (
    DIMENSIONS,
    HEAD_RANKS,
    QUERY_NOISE,
    Group,
    _binary_vectors,
    centroids,
    unit,
    vocabulary,
    zipf_cdf,
)
from nexus.stack import Stack

log = partial(harness.log, "spaces")

ROWS = int(os.environ.get("NEXUS_BENCH_SPACES_ROWS") or 25_000)
SPACES = ("s1", "s2", "s3")
QUERIES = 50          # known items per memory
WRITES = 100          # record_episode calls per chunk; own and space chunks alternate
CHUNKS = 10           # chunks of each per round
ROUNDS = int(os.environ.get("NEXUS_BENCH_REPEATS") or 3)
SEARCH = ("SELECT id FROM nexus.memory_search(query => %s, query_embedding => %s, limit_n => 10,"
          " kinds => '{episode}'")
FIGURES = ("spaces.search_p50_ratio", "spaces.write_ratio", "spaces.recall10")


def _load(conn: psycopg.Connection, owners: dict[str, str]) -> list[tuple]:
    """N episodes per memory (owners: memory name -> agent_id), each copied into `union` too;
    the known-item queries: (memory, episode id in the memory, words, vector)."""
    vocab = np.array(vocabulary())
    rank = {w: i for i, w in enumerate(vocab.tolist())}
    cdf, cents = zipf_cdf(), centroids()
    model, = conn.execute("SELECT value FROM memory_system.settings"
                          " WHERE name = 'embedding_model'").fetchone()  # type: ignore[misc]
    rng = np.random.default_rng(26)
    queries = []
    for m, (memory, agent_id) in enumerate(owners.items()):
        g = Group("a1", 3000 + m, ROWS)
        vecs = g.vectors(cents)
        docs = [" ".join(words) for words in g.texts(0, ROWS, vocab, cdf)]
        ids = {}
        for target in (agent_id, "union"):
            with conn.transaction():
                with conn.cursor().copy("COPY nexus_memory.zep_episodic_memory"
                                        " (agent_id, content) FROM STDIN") as cp:
                    for d in docs:
                        cp.write_row((target, d))
                rows = conn.execute("SELECT id, content_sha256"
                                    " FROM nexus_memory.zep_episodic_memory"
                                    " WHERE agent_id = %s ORDER BY id DESC LIMIT %s",
                                    (target, ROWS)).fetchall()[::-1]
                conn.execute("TRUNCATE memory_system.embeddings_queue")
                with conn.cursor().copy(
                        "COPY nexus_memory.episode_embeddings (agent_id, episode_id, model,"
                        " model_version, content_sha256, embedding)"
                        " FROM STDIN (FORMAT BINARY)") as cp:
                    cp.write(_binary_vectors([target] * ROWS, [r[0] for r in rows],
                                             [bytes(r[1]) for r in rows], model.encode(), vecs))
            ids[target] = [r[0] for r in rows]
            log(f"{memory}: {ROWS:,} episodes as {target}")
        for doc in rng.choice(ROWS, size=QUERIES, replace=False).tolist():
            distinct = [w for w in dict.fromkeys(docs[doc].split()) if rank[w] >= HEAD_RANKS]
            k = min(len(distinct), int(rng.integers(4, 7)))
            words = " ".join(distinct[i] for i in rng.choice(len(distinct), size=k, replace=False))
            noise = rng.standard_normal(DIMENSIONS).astype(np.float32)
            vec = unit(vecs[doc] + noise * (QUERY_NOISE / math.sqrt(DIMENSIONS)))
            # the item's id in the memory and in union (ids differ)
            queries.append((memory, ids[agent_id][doc], ids["union"][doc], words, vec))
    return queries


def _search(conn: psycopg.Connection, agent: str, scope: str, words: str,
            vec: np.ndarray, branch: str = "") -> tuple[float, list[int]]:
    """One hybrid search as the agent: (ms, ids); branch: ", text_weight => 0" or the like."""
    conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(agent)))
    stmt = SEARCH + branch + (", scope => 'all')" if scope == "all" else ")")
    t0 = time.perf_counter()
    ids = [r[0] for r in conn.execute(stmt, (words, vec)).fetchall()]
    ms = (time.perf_counter() - t0) * 1000
    conn.execute("RESET ROLE")
    return ms, ids


def _writes(conn: psycopg.Connection, space: str | None) -> float:
    """record_episode calls per second as owner, into its own memory or a space."""
    conn.execute("SET ROLE owner")
    stmt = "SELECT nexus.record_episode(%s, space => %s)"
    t0 = time.perf_counter()
    for i in range(WRITES):
        conn.execute(stmt, (f"a note {i} on the invoice of customer {i % 97}", space))
    rate = WRITES / (time.perf_counter() - t0)
    conn.execute("RESET ROLE")
    return rate


def measure(d: BenchDb) -> list[Figure]:
    t_build = time.monotonic()
    with d.superuser() as conn:
        for agent in ("owner", "union"):
            conn.execute("SELECT memory_system.agent_add(%s)", (agent,))
        owners = {"own": "owner"}
        for i, s in enumerate(SPACES):
            owners[s] = conn.execute("SELECT space_id FROM memory_system.space_create(%s)",
                                     (s,)).fetchone()[0]  # type: ignore[index]
            conn.execute("SELECT memory_system.space_grant(%s, 'owner', %s)",
                         (s, "write" if i == 0 else "read"))
        conn.execute("DROP INDEX nexus_memory.episode_embeddings_embedding_idx")
        register_vector(conn)
        queries = _load(conn, owners)
        conn.execute("SET maintenance_work_mem = '1GB'")
        conn.execute("CREATE INDEX episode_embeddings_embedding_idx"
                     " ON nexus_memory.episode_embeddings"
                     " USING hnsw (embedding public.vector_cosine_ops)"
                     " WITH (m = 16, ef_construction = 128)")
        conn.execute("VACUUM ANALYZE")
        built = time.monotonic() - t_build
        log(f"built in {built:,.0f} s")

        own_q = [q for q in queries if q[0] == "own"]
        p50 = {"own": [], "all": []}
        for r in range(ROUNDS):
            ms = {"own": [], "all": []}
            for _memory, _id, _uid, words, vec in own_q:
                for scope in (("own", "all") if r % 2 == 0 else ("all", "own")):
                    ms[scope].append(_search(conn, "owner", scope, words, vec)[0])
            for scope in ms:
                p50[scope].append(percentile(ms[scope], 50))
            log(f"round {r + 1}: p50 own {p50['own'][-1]:.1f} ms,"
                f" own + 3 spaces {p50['all'][-1]:.1f} ms")
        # where the time goes: each branch alone, one round
        branches = {}
        for name, branch in (("text", ", vector_weight => 0"), ("vector", ", text_weight => 0")):
            for scope in ("own", "all"):
                branches[(name, scope)] = percentile(
                    [_search(conn, "owner", scope, w, v, branch)[0] for _m, _i, _u, w, v in own_q],
                    50)
        found_all = found_union = 0
        for _memory, mid, uid, words, vec in queries:
            found_all += mid in _search(conn, "owner", "all", words, vec)[1]
            found_union += uid in _search(conn, "union", "own", words, vec)[1]
        rates = {"own": [], "space": []}
        for r in range(ROUNDS):
            chunk = {"own": [], "space": []}
            for c in range(CHUNKS):
                for where in (("own", "space") if (r + c) % 2 == 0 else ("space", "own")):
                    chunk[where].append(_writes(conn, "s1" if where == "space" else None))
            for where in rates:
                rates[where].append(statistics.median(chunk[where]))
            log(f"round {r + 1}: writes/s own {rates['own'][-1]:,.0f},"
                f" space {rates['space'][-1]:,.0f}")

    own50, all50 = statistics.median(p50["own"]), statistics.median(p50["all"])
    own_w, space_w = statistics.median(rates["own"]), statistics.median(rates["space"])
    n = len(queries)
    data = (f"{ROWS:,} episodes in each of 4 memories (own + 3 spaces) and the same {4 * ROWS:,} in"
            f" one agent; built in {built:,.0f} s")
    return [
        Figure("spaces.search_p50_ratio", ratio(all50, own50), "ratio", None, None,
               f"hybrid memory_search p50 {all50:.1f} ms over own + 3 spaces ({4 * ROWS:,} rows,"
               f" scope all) vs {own50:.1f} ms over own memory ({ROWS:,}), the same {len(own_q)}"
               f" queries, {ROUNDS} rounds (p50s all {', '.join(f'{v:.1f}' for v in p50['all'])};"
               f" own {', '.join(f'{v:.1f}' for v in p50['own'])}); text branch alone"
               f" {branches[('text', 'all')]:.1f} vs {branches[('text', 'own')]:.1f} ms, vector"
               f" branch alone {branches[('vector', 'all')]:.1f} vs"
               f" {branches[('vector', 'own')]:.1f} ms; target <= 2.0; {data}"),
        Figure("spaces.write_ratio", ratio(space_w, own_w), "ratio", None, None,
               f"record_episode into a space {space_w:,.0f}/s vs own memory {own_w:,.0f}/s"
               f" (chunks of {WRITES} calls alternating, {CHUNKS} of each per round, median chunk;"
               f" {ROUNDS} rounds: space {', '.join(f'{v:,.0f}' for v in rates['space'])}/s, own"
               f" {', '.join(f'{v:,.0f}' for v in rates['own'])}/s; one session); target >= 0.9"),
        Figure("spaces.recall10", found_all / n, "ratio", found_union / n,
               ratio(found_all / n, found_union / n),
               f"{n} known items ({QUERIES} per memory) found in the top 10 of a hybrid search"
               f" over own + 3 spaces (scope all); baseline: the same items searched by an agent"
               f" holding all {4 * ROWS:,} rows as its own; target: equal"),
    ]


def run(st: Stack) -> list[Figure]:
    with cloned_database(st, "bench_spaces") as d:
        return measure(d)


BENCHMARKS = [Benchmark("spaces", FIGURES, run)]
