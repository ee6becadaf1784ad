"""The embedding worker end to end against raw `model.encode` of the same texts, per precision.

Worker: a `nexus worker` process (supervisor + one replica) on a fresh database; the clock runs
from the COPY of the episodes to the last vector written. Raw: `model.encode` in this process,
same model, same precision, same batch size, same torch threads, on the same texts (for long
texts: on the same chunks, since encoding a 1,500-word text whole would truncate it to 256
tokens). Every round is raw, worker, raw: a round's ratio is the worker's rate over the mean of
the raw runs around it, and the median of the rounds is kept (5 for short texts, 3 for long: the
machine is shared).

The precision the workers run by default (NEXUS_EMBED_DTYPE=auto: bf16 on a CPU with bf16 units)
gives `worker.short_ratio` / `worker.long_ratio`; float32 is measured the same way (`_fp32`
figures). Raw bf16 ÷ raw fp32 at the same threads gives the speed-up of the precision alone.
`/embed` p50: one-sentence queries (each new: no cache hit) sent alternately to a bf16 and an
fp32 worker, both running.

Only what `--only` names is measured (`--only worker.short`: the short texts, nothing else). On a
CPU without bf16 units bf16 is not measured at all (it would be emulated, several times slower
than float32, and the worker runs float32 there): its figures, and the `_fp32` worker figures
that `auto` measures already, are reported SKIPPED with the reason.
"""

from __future__ import annotations

import json
import os
import random
import signal
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from bench.harness import (
    BenchDb,
    Benchmark,
    Figure,
    chunk_text,
    cloned_database,
    median,
    percentile,
    runs_note,
    target_note,
)
from bench.queue import episode_text
from nexus.ports import free_port
from nexus.stack import Stack
from sidecar.embedder import BF16_FLAGS, Embedder, auto_threads, choose_dtype, cpu_flags

SHORT_ITEMS = 2000
LONG_ITEMS = 100
LONG_WORDS = 1500
BATCH = 32
# what a single worker on this machine runs by default (NEXUS_WORKER_THREADS=auto)
THREADS = auto_threads(1)
TARGET = 0.9
# rounds of raw/worker/raw per kind: short runs are a few seconds, so more of them
ROUNDS = {"short": 5, "long": 3}
SPEEDUP_TARGET = 2.5
EMBED_QUERIES = 200
AGENT = "bench_worker"
SHORT = {"float32": "fp32", "bfloat16": "bf16"}


def short_text(rng: random.Random) -> str:
    return " ".join(episode_text(rng).split()[:20])


def long_text(rng: random.Random) -> str:
    words: list[str] = []
    while len(words) < LONG_WORDS:
        words += episode_text(rng).split()
        if rng.random() < 0.2:
            words[-1] += "\n\n"
    return " ".join(words[:LONG_WORDS])


def raw_seconds(embedder: Embedder, chunks: list[str]) -> float:
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


@contextmanager
def worker(bdb: BenchDb, dtype: str) -> Iterator[tuple[subprocess.Popen, int]]:
    """A `nexus worker` (its supervisor and one replica) in `dtype`, until SIGTERM at the end."""
    cfg = bdb.stack.cfg
    port = free_port()
    env = dict(os.environ, NEXUS_HOME=str(cfg.home), NEXUS_DB=bdb.name,
               NEXUS_PG_PORT=str(cfg.pg_port), NEXUS_REDIS_PORT=str(cfg.redis_port),
               NEXUS_HTTP_PORT=str(port), NEXUS_WORKER_BATCH=str(BATCH),
               NEXUS_WORKER_THREADS=str(THREADS), WORKER_REPLICAS="1", NEXUS_EMBED_DTYPE=dtype)
    proc = subprocess.Popen([sys.executable, "-m", "nexus.cli", "worker"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while _get(f"http://127.0.0.1:{port}/health") != 200:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the worker did not start")
            time.sleep(0.5)
        yield proc, port
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)


def replica_peak_rss_mb(supervisor: int) -> float:
    """Peak resident memory (VmHWM) of the supervisor's replica process."""
    children = Path(f"/proc/{supervisor}/task/{supervisor}/children").read_text().split()
    for line in Path(f"/proc/{children[0]}/status").read_text().splitlines():
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
                                "WHERE state = 'done'").fetchone()[0]  # type: ignore[index]
            if done == len(texts):
                return time.perf_counter() - start
            time.sleep(0.05)


def rounds(raw: Callable[[], float], work: Callable[[], float], count: int
           ) -> tuple[list[float], list[float], list[float]]:
    """raw, work, raw, work, ... raw: the work times, the raw times, and per round work's rate
    over the mean rate of the two raw runs around it."""
    raws, works, ratios = [raw()], [], []
    for _ in range(count):
        works.append(work())
        raws.append(raw())
        ratios.append((1 / works[-1]) / ((1 / raws[-2] + 1 / raws[-1]) / 2))
        print(f"  raw {raws[-2]:.2f} s, worker {works[-1]:.2f} s, raw {raws[-1]:.2f} s: "
              f"ratio {ratios[-1]:.2f} (load {os.getloadavg()[0]:.1f})", file=sys.stderr,
              flush=True)
    return works, raws, ratios


def embed_p50s(ports: dict[str, int]) -> dict[str, list[float]]:
    """Milliseconds per POST /embed of a new one-sentence query, the workers in turn."""
    rng = random.Random(11)
    times: dict[str, list[float]] = {d: [] for d in ports}
    for i in range(EMBED_QUERIES + 10):
        for dtype, port in ports.items():
            body = json.dumps({"text": f"{short_text(rng)} ({dtype} {i})"}).encode()
            request = urllib.request.Request(f"http://127.0.0.1:{port}/embed", data=body,
                                             headers={"Content-Type": "application/json"})
            start = time.perf_counter()
            with urllib.request.urlopen(request, timeout=30) as response:
                assert not json.loads(response.read())["cached"]
            if i >= 10:  # the first ones warm up
                times[dtype].append((time.perf_counter() - start) * 1000)
    return times


KINDS = ("short", "long")


def bench_worker(st: Stack, wanted: frozenset[str]) -> list[Figure]:
    """The figures in `wanted`, measuring only what they need; bf16 only on a CPU with bf16
    units (elsewhere it is emulated, several times slower than float32: its figures are
    reported skipped, and so are the `_fp32` ones, which `auto` measures there already)."""
    import torch

    torch.set_num_threads(THREADS)
    flags = cpu_flags()
    auto = choose_dtype("auto", flags)[0]
    units = ", ".join(sorted(flags & BF16_FLAGS))
    dtypes = ("float32", "bfloat16") if units else ("float32",)

    def named(base: str, dtype: str) -> str:
        return base if dtype == auto else f"{base}_{SHORT[dtype]}"

    pairs = [(kind, dtype) for kind in KINDS for dtype in dtypes
             if f"worker.raw_bf16_speedup_{kind}" in wanted
             or {named(f"worker.{kind}_items_per_s", dtype), named(f"worker.{kind}_ratio", dtype)}
             & wanted]
    p50s = [d for d in dtypes if f"worker.embed_p50_ms_{SHORT[d]}" in wanted]
    served = sorted({d for _, d in pairs} | set(p50s)
                    | ({auto} if "worker.peak_rss_mb" in wanted else set()))
    # without bf16 units auto is float32: the _fp32 worker figures would measure it again
    again = {f"worker.{k}_{f}_fp32" for k in KINDS for f in ("items_per_s", "ratio")}
    figures = [] if units else [skipped(n) for n in sorted(wanted) if "bf16" in n or n in again]
    if not units:
        print(f"worker: {NO_BF16}", file=sys.stderr, flush=True)
    rng = random.Random(7)
    texts = {"short": [short_text(rng) for _ in range(SHORT_ITEMS)],
             "long": [long_text(rng) for _ in range(LONG_ITEMS)]}
    counts = {"short": SHORT_ITEMS, "long": LONG_ITEMS}
    embedders = {d: Embedder(threads=THREADS, batch_size=BATCH, dtype=d)
                 for d in sorted({d for _, d in pairs})}
    raw_rates: dict[tuple[str, str], float] = {}
    # a database and a worker per precision: both serve /embed, each embeds only its own episodes
    with ExitStack() as stack:
        bdbs, procs, ports = {}, {}, {}
        for dtype in served:
            bdbs[dtype] = stack.enter_context(cloned_database(st, f"bench_worker_{SHORT[dtype]}"))
            with bdbs[dtype].superuser() as conn:
                conn.execute("SELECT memory_system.agent_add(%s)", (AGENT,))
            procs[dtype], ports[dtype] = stack.enter_context(worker(bdbs[dtype], dtype))
        times = embed_p50s({d: ports[d] for d in p50s}) if p50s else {}
        for kind, dtype in pairs:
            print(f"{dtype} {kind}", file=sys.stderr, flush=True)
            chunks = texts[kind] if kind == "short" else \
                [c for t in texts[kind] for c in chunk_text(embedders[dtype], t)]
            works, raws, ratios = rounds(
                lambda c=chunks, d=dtype: raw_seconds(embedders[d], c),
                lambda k=kind, d=dtype: worker_seconds(bdbs[d], texts[k]), ROUNDS[kind])
            r = median(ratios)
            worker_rate = counts[kind] / median(works)
            raw_rate = counts[kind] / median(raws)
            raw_rates[(dtype, kind)] = len(chunks) / median(raws)
            extra = f"; {len(chunks)} chunks" if kind == "long" else ""
            figures.append(Figure(
                named(f"worker.{kind}_items_per_s", dtype), worker_rate, "items/s", raw_rate, r,
                f"{SHORT[dtype]}: {counts[kind]} episodes "
                f"(~{20 if kind == 'short' else LONG_WORDS} words{extra}), COPY to last "
                f"vector written; {runs_note([counts[kind] / w for w in works])}; raw "
                f"encode {runs_note([counts[kind] / x for x in raws], label='runs')}; "
                f"batch {BATCH}, {THREADS} torch threads"))
            figures.append(Figure(
                named(f"worker.{kind}_ratio", dtype), r, "ratio",
                note=f"worker / raw model.encode, both {SHORT[dtype]}, median of "
                     f"{runs_note(ratios, '{:.2f}', 'rounds')}; {target_note(r, TARGET)}"))
        if "worker.peak_rss_mb" in wanted:
            figures.append(Figure("worker.peak_rss_mb", replica_peak_rss_mb(procs[auto].pid),
                                  "MB", note=f"peak resident memory (VmHWM) of the {SHORT[auto]} "
                                             "worker replica"))
    for kind in KINDS:
        if f"worker.raw_bf16_speedup_{kind}" in wanted and units:
            s = raw_rates[("bfloat16", kind)] / raw_rates[("float32", kind)]
            figures.append(Figure(
                f"worker.raw_bf16_speedup_{kind}", s, "ratio", raw_rates[("float32", kind)], s,
                f"raw encode texts/s bf16 {raw_rates[('bfloat16', kind)]:,.1f} / fp32 "
                f"(baseline), {THREADS} torch threads; CPU bf16 flags: {units}; "
                f"{target_note(s, SPEEDUP_TARGET)}"))
    for dtype in p50s:
        figures.append(Figure(
            f"worker.embed_p50_ms_{SHORT[dtype]}", statistics.median(times[dtype]), "ms",
            note=f"POST /embed of a new one-sentence query ({EMBED_QUERIES}, the workers "
                 f"in turn), p90 {percentile(times[dtype], 90):.1f} ms"))
    return figures


NO_BF16 = ("this CPU has no bf16 units (no avx512_bf16 or amx_bf16 flag): bf16 is not measured "
           "(it would be emulated, several times slower than float32, and the worker runs "
           "float32 here)")


def skipped(name: str) -> Figure:
    """A figure not measured on a CPU without bf16 units, and why."""
    why = NO_BF16 if "bf16" in name else \
        f"{NO_BF16}; auto is float32, so the figure without _fp32 is the float32 one"
    return Figure(name, None, "", note=f"SKIPPED: {why}")


BENCHMARKS = [
    Benchmark("embedding worker", (
        "worker.short_items_per_s", "worker.short_ratio", "worker.long_items_per_s",
        "worker.long_ratio", "worker.short_items_per_s_fp32", "worker.short_ratio_fp32",
        "worker.long_items_per_s_fp32", "worker.long_ratio_fp32", "worker.raw_bf16_speedup_short",
        "worker.raw_bf16_speedup_long", "worker.embed_p50_ms_fp32", "worker.embed_p50_ms_bf16",
        "worker.peak_rss_mb"), bench_worker, selective=True),
]
