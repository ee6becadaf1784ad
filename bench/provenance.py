"""What the read record costs a search: hybrid search with reads recorded against without, same
data, same queries, same run (docs/privacy.md, "Reads").

Two agents hold the same 10,000 synthetic episodes (40 words each from a Zipf vocabulary of 3,000
made-up words) with the same vectors (unit random: what a search costs does not depend on what
the vectors mean). The read record is on for `prov_on` only. Each of 200 queries (5 words of an
episode, and that episode's vector with noise) runs through `nexus.memory_search` (limit 10,
hybrid) as each agent on its own connection, in alternating order, ROUNDS times. The record's
day partitions are made first (memory_system._reads_maintain), as the workers' sweep does.

Figure: provenance.search_p50_ratio = the recorded agent's p50 over the other's (target <= 1.10);
the note has both p50s and p99s and checks that every recorded search left exactly one record.
"""

from __future__ import annotations

import time
from dataclasses import replace
from functools import partial

import numpy as np
import psycopg

from bench import harness
from bench.harness import Benchmark, Figure, cloned_database, percentile
from nexus import agents, client
from nexus.stack import Stack

FIGURES = ("provenance.search_p50_ratio",)
ON, OFF = "prov_on", "prov_off"
EPISODES = 10_000
QUERIES = 200
ROUNDS = 3
TARGET = 1.10
SEARCH = ("SELECT kind, id FROM nexus.memory_search(query => %s, query_embedding => %s::vector, "
          "limit_n => 10)")

log = partial(harness.log, "provenance")


def load(conn: psycopg.Connection) -> None:
    """OFF's episodes and vectors, then the same copied to ON (in the same order)."""
    conn.execute("""
        INSERT INTO nexus_memory.zep_episodic_memory (agent_id, content)
        SELECT %s, (SELECT string_agg('w' || floor(3000 * random() ^ 3)::int, ' ')
                      FROM generate_series(1, 40) AS k WHERE g IS NOT NULL)
          FROM generate_series(1, %s) AS g""", (OFF, EPISODES))
    conn.execute("""
        INSERT INTO nexus_memory.zep_episodic_memory (agent_id, content)
        SELECT %s, e.content FROM nexus_memory.zep_episodic_memory AS e
         WHERE e.agent_id = %s ORDER BY e.id""", (ON, OFF))
    conn.execute("""
        INSERT INTO nexus_memory.episode_embeddings
               (agent_id, episode_id, model, content_sha256, embedding)
        SELECT e.agent_id, e.id, memory_system._embedding_model(), e.content_sha256,
               (SELECT l2_normalize(array_agg(random() - 0.5 + 0 * k)::vector)
                  FROM generate_series(1, 384) AS k WHERE e.id IS NOT NULL)
          FROM nexus_memory.zep_episodic_memory AS e WHERE e.agent_id = %s""", (OFF,))
    conn.execute("""
        WITH o AS (SELECT id, row_number() OVER (ORDER BY id) AS n
                     FROM nexus_memory.zep_episodic_memory WHERE agent_id = %(off)s),
             r AS (SELECT id, content_sha256, row_number() OVER (ORDER BY id) AS n
                     FROM nexus_memory.zep_episodic_memory WHERE agent_id = %(on)s)
        INSERT INTO nexus_memory.episode_embeddings
               (agent_id, episode_id, model, content_sha256, embedding)
        SELECT %(on)s, r.id, x.model, r.content_sha256, x.embedding
          FROM r JOIN o USING (n)
          JOIN nexus_memory.episode_embeddings AS x ON x.agent_id = %(off)s AND x.episode_id = o.id
        """, {"on": ON, "off": OFF})
    conn.execute("TRUNCATE memory_system.embeddings_queue")
    conn.execute("VACUUM ANALYZE")


def queries(conn: psycopg.Connection) -> list[tuple[str, str]]:
    """5 words of a random episode of OFF's, and its vector with noise."""
    rng = np.random.default_rng(27)
    rows = conn.execute("SELECT e.content, x.embedding::text "
                        "FROM nexus_memory.zep_episodic_memory AS e "
                        "JOIN nexus_memory.episode_embeddings AS x ON x.agent_id = e.agent_id "
                        "AND x.episode_id = e.id WHERE e.agent_id = %s ORDER BY random() LIMIT %s",
                        (OFF, QUERIES)).fetchall()
    out = []
    for content, vector in rows:
        words = content.split()
        text = " ".join(rng.choice(words, 5, replace=False))
        v = np.array([float(x) for x in vector.strip("[]").split(",")])
        v = v + rng.normal(0, 0.02, v.shape)
        out.append((text, client.vector_literal((v / np.linalg.norm(v)).tolist())))
    return out


def run(st: Stack) -> list[Figure]:
    with cloned_database(st, "nexus_bench_provenance") as bdb:
        cfg = replace(st.cfg, database=bdb.name)
        with bdb.superuser() as conn:
            for name in (ON, OFF):
                agents.add(conn, cfg, name, "benchmark")
            t = time.monotonic()
            load(conn)
            log(f"2 x {EPISODES:,} episodes with vectors loaded in {time.monotonic() - t:.0f} s")
            conn.execute("SELECT memory_system.reads_set(true, %s)", (ON,))
            conn.execute("SELECT memory_system._reads_maintain()")
            qs = queries(conn)
        ms: dict[str, list[float]] = {ON: [], OFF: []}
        with psycopg.connect(agents.dsn(cfg, ON), autocommit=True) as on, \
                psycopg.connect(agents.dsn(cfg, OFF), autocommit=True) as off:
            conns = {ON: on, OFF: off}
            for text, vector in qs[:20]:  # warm both
                for c in conns.values():
                    c.execute(SEARCH, (text, vector)).fetchall()
            for r in range(ROUNDS):
                for n, (text, vector) in enumerate(qs):
                    for who in ((ON, OFF) if (r + n) % 2 else (OFF, ON)):
                        t = time.perf_counter()
                        rows = conns[who].execute(SEARCH, (text, vector)).fetchall()
                        ms[who].append((time.perf_counter() - t) * 1000)
                        assert rows, "a query found nothing"
        with bdb.superuser() as conn:
            recorded = conn.execute("SELECT count(*) FROM memory_system.reads WHERE agent_id = %s",
                                    (ON,)).fetchone()[0]
            unrecorded = conn.execute("SELECT count(*) FROM memory_system.reads "
                                      "WHERE agent_id = %s", (OFF,)).fetchone()[0]
    expected = 20 + ROUNDS * len(qs)
    p50_on, p50_off = percentile(ms[ON], 50), percentile(ms[OFF], 50)
    value = p50_on / p50_off
    verdict = "met" if value <= TARGET else "MISSED"
    return [Figure(
        "provenance.search_p50_ratio", value, "ratio", baseline=1.0,
        note=f"p50 {p50_on:.2f} ms recorded vs {p50_off:.2f} ms not (p99 "
             f"{percentile(ms[ON], 99):.2f} vs {percentile(ms[OFF], 99):.2f}); target <= {TARGET} "
             f"({verdict}); {len(ms[ON])} searches each, interleaved; {recorded} records "
             f"(expected {expected}), {unrecorded} for the agent not recorded",
        failed=recorded != expected or unrecorded != 0)]


BENCHMARKS = [Benchmark("read record (provenance)", FIGURES, run)]
