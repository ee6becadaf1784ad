"""MCP over streamable HTTP against direct SQL, same data, same query vectors, same run.

10,000 episodes of one agent (SciFact abstracts, cycled), each with a vector written directly
(unit random: what a search costs does not depend on what the vectors mean), a sidecar (the real
model, for /embed) and `nexus mcp --http` on the bench stack. Each SciFact claim is embedded once
by the sidecar (which caches it in Redis); then, interleaved per query:
  direct   SELECT * FROM nexus.memory_search(query, query_embedding, limit_n => 10) on the agent's
           own connection, with the vector the sidecar gave for that claim;
  mcp      the recall tool through the mcp client library (one session, bearer token): HTTP,
           token check, /embed (a Redis hit), SET LOCAL ROLE, the same function, JSON back.
Figures: mcp.recall_p50_ms (ratio against the direct p50), mcp.recall_overhead_ratio (the same
ratio, with the extra milliseconds in the note; target: at most 3 ms more), mcp.calls_per_s_c16
(16 concurrent HTTP clients, each alternating recall and remember; every call must succeed).
The clients run in this process on the same two cores as the server and the database.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from functools import partial
from pathlib import Path

import httpx2
import psycopg
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from bench import harness
from bench.harness import (
    BenchDb,
    Benchmark,
    Figure,
    MissingData,
    bench_data,
    cloned_database,
    percentile,
    skipped_figures,
)
from nexus import agents, client, mcp
from nexus.ports import free_port
from nexus.stack import Stack

FIGURES = ("mcp.recall_p50_ms", "mcp.recall_overhead_ratio", "mcp.calls_per_s_c16")
AGENT = "mcp_bench"
EPISODES = 10_000
QUERIES = 24
REPEATS = 10
CLIENTS = 16
CALLS_PER_CLIENT = 40
TARGET_EXTRA_MS = 3.0
SEARCH = ("SELECT * FROM nexus.memory_search(query => %s, query_embedding => %s::vector, "
          "limit_n => 10)")


log = partial(harness.log, "mcp")


def _texts(data: Path) -> tuple[list[str], list[str]]:
    with gzip.open(data / "corpus.jsonl.gz", "rt") as f:
        docs = [json.loads(line) for line in f]
    corpus = [f"{d['title']}\n\n{d['text']}" for d in docs if d["text"]]
    with (data / "queries.jsonl").open() as f:
        claims = [json.loads(line)["text"] for line in f][:QUERIES]
    return [corpus[i % len(corpus)] for i in range(EPISODES)], claims


def load(bdb: BenchDb, episodes: list[str]) -> None:
    """The episodes by COPY (their triggers index the text), a unit random vector each, and an
    empty queue: the worker started next has nothing to embed."""
    with bdb.superuser() as conn:
        with conn.cursor().copy("COPY nexus_memory.zep_episodic_memory (agent_id, content) "
                                "FROM STDIN") as cp:
            for text in episodes:
                cp.write_row((AGENT, text))
        conn.execute("""
            INSERT INTO nexus_memory.episode_embeddings
                   (agent_id, episode_id, model, content_sha256, embedding)
            SELECT e.agent_id, e.id, memory_system._embedding_model(), e.content_sha256,
                   (SELECT l2_normalize(array_agg(random() - 0.5 + 0 * g)::vector)
                      FROM generate_series(1, 384) AS g WHERE e.id IS NOT NULL)
              FROM nexus_memory.zep_episodic_memory AS e WHERE e.agent_id = %s""", (AGENT,))
        conn.execute("TRUNCATE memory_system.embeddings_queue")
        conn.execute("VACUUM ANALYZE")


@contextmanager
def process(command: list[str], env: dict[str, str], ready: str, log_path: Path) -> Iterator[None]:
    with log_path.open("wb") as out:
        proc = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{command[:3]} exited: {log_path.read_text()[-2000:]}")
            try:
                httpx2.get(ready, timeout=2)
                break
            except httpx2.HTTPError:
                time.sleep(0.5)
        else:
            raise RuntimeError(f"{ready} did not answer")
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=60)


async def measure(url: str, token: str, dsn: str, claims: list[str],
                  vectors: list[list[float]]) -> tuple[list[float], list[float], float, int]:
    headers = {"Authorization": f"Bearer {token}"}

    def session() -> Client:
        return Client(streamable_http_client(url, http_client=httpx2.AsyncClient(
            headers=headers, timeout=httpx2.Timeout(60))))

    direct_ms, mcp_ms = [], []
    with psycopg.connect(dsn, autocommit=True) as conn:
        async with session() as mc:
            for q, v in zip(claims, vectors, strict=True):  # warm both paths
                conn.execute(SEARCH, (q, client.vector_literal(v))).fetchall()
                await mc.call_tool("recall", {"query": q, "limit_n": 10})
            for r in range(REPEATS):
                for n, (q, v) in enumerate(zip(claims, vectors, strict=True)):
                    literal = client.vector_literal(v)
                    for path in (("direct", "mcp") if (r + n) % 2 else ("mcp", "direct")):
                        t = time.perf_counter()
                        if path == "direct":
                            rows = conn.execute(SEARCH, (q, literal)).fetchall()
                            direct_ms.append((time.perf_counter() - t) * 1000)
                            assert len(rows) == 10
                        else:
                            result = await mc.call_tool("recall", {"query": q, "limit_n": 10})
                            mcp_ms.append((time.perf_counter() - t) * 1000)
                            doc = result.structured_content["result"]
                            assert not result.is_error and doc["mode"] == "hybrid"
                            assert len(doc["hits"]) == 10

    errors = 0

    async def one_client(c: int) -> None:
        nonlocal errors
        async with session() as mc:
            for i in range(CALLS_PER_CLIENT):
                if i % 2:
                    result = await mc.call_tool("remember", {"content": f"client {c} note {i}"})
                else:
                    result = await mc.call_tool("recall", {"query": claims[(c + i) % len(claims)]})
                errors += bool(result.is_error)

    t = time.perf_counter()
    await asyncio.gather(*(one_client(c) for c in range(CLIENTS)))
    rate = CLIENTS * CALLS_PER_CLIENT / (time.perf_counter() - t)
    return direct_ms, mcp_ms, rate, errors


def run(st: Stack) -> list[Figure]:
    try:
        data = bench_data("scifact", ("corpus.jsonl.gz", "queries.jsonl"))
    except MissingData as exc:
        return skipped_figures(FIGURES, exc)
    episodes, claims = _texts(data)
    with cloned_database(st, "nexus_bench_mcp") as bdb:
        cfg = replace(st.cfg, database=bdb.name)
        with bdb.superuser() as conn:
            agents.add(conn, cfg, AGENT, "benchmark")
            token, _, _ = mcp.issue_token(conn, AGENT, "1d", "bench")
        t = time.monotonic()
        load(bdb, episodes)
        log(f"{EPISODES:,} episodes with vectors loaded in {time.monotonic() - t:.0f} s")
        http_port, mcp_port = free_port(), free_port()
        env = dict(os.environ, NEXUS_HOME=str(cfg.home), NEXUS_DB=bdb.name,
                   NEXUS_PG_PORT=str(cfg.pg_port), NEXUS_REDIS_PORT=str(cfg.redis_port),
                   NEXUS_HTTP_PORT=str(http_port), NEXUS_MCP_PORT=str(mcp_port))
        sidecar_url = f"http://127.0.0.1:{http_port}"
        logs = cfg.home / "log"
        logs.mkdir(parents=True, exist_ok=True)
        with process([sys.executable, "-m", "sidecar"], env,
                     sidecar_url + "/health", logs / "bench-mcp-sidecar.log"), \
             process([sys.executable, "-m", "nexus.cli", "mcp", "--http"], env,
                     f"http://127.0.0.1:{mcp_port}/health", logs / "bench-mcp-server.log"):
            vectors = [client.embed(q, sidecar_url) for q in claims]
            direct_ms, mcp_ms, rate, errors = asyncio.run(measure(
                f"http://127.0.0.1:{mcp_port}/mcp", token, agents.dsn(cfg, AGENT), claims,
                vectors))
    direct_p50, mcp_p50 = statistics.median(direct_ms), statistics.median(mcp_ms)
    extra = mcp_p50 - direct_p50
    verdict = "met" if extra <= TARGET_EXTRA_MS else "MISSED"
    samples = f"{len(mcp_ms)} calls each, interleaved"
    return [
        Figure("mcp.recall_p50_ms", mcp_p50, "ms", baseline=direct_p50,
               ratio=mcp_p50 / direct_p50,
               note=f"baseline: direct nexus.memory_search p50; p99 "
                    f"{percentile(mcp_ms, 99):.1f} vs {percentile(direct_ms, 99):.1f} ms; "
                    f"{samples}"),
        Figure("mcp.recall_overhead_ratio", mcp_p50 / direct_p50, "ratio",
               note=f"MCP costs {extra:+.2f} ms at p50 (target <= +{TARGET_EXTRA_MS:g} ms: "
                    f"{verdict})"),
        Figure("mcp.calls_per_s_c16", rate, "calls/s",
               note=f"{CLIENTS} HTTP clients x {CALLS_PER_CLIENT} calls (recall/remember), "
                    f"{errors} errors", failed=errors > 0),
    ]


BENCHMARKS = [Benchmark("mcp over http", FIGURES, run)]
