"""Conversational recall on LoCoMo: does `nexus.memory_search` find the turns an agent was told?

LoCoMo (Maharana et al., ACL 2024) holds long conversations between two people over many
sessions, with questions whose answers sit in given turns (`evidence`). The development
conversations are in NEXUS_BENCH_DATA/locomo-dev (one JSON file each; the others are kept apart
as a held-out check). Each conversation is loaded as the episodes of one agent through the API
(`nexus.record_episode` as the agent, one turn per call and transaction, in order): content
`Speaker: text`, session `session_N`, `valid_at` the session's date, the turn's `dia_id` in
metadata. The worker embeds them (the vectors are cached like SciFact's, in
`.cache/bench/vectors/locomo/<model>.npz`, keyed by the checksum of the text the worker is
given), and the questions are embedded with the worker's `Embedder`.

Every question of categories 1-4 (multi-hop, temporal, open-domain, single-hop; 5 has no answer
in the conversation) is searched as its conversation's agent with limit_n 20 over episodes: text
only, vector only and hybrid (the defaults), and hybrid with context => 1 (a row's neighbours in
its session count as found with it). Evidence recall@k: the share of the question's
evidence turns among the first k rows, averaged over questions. Evidence ids that name no turn of
the conversation (a few typos in the data set) are dropped, and a question left without any.

`python -m bench.locomo` runs it alone.
"""

from __future__ import annotations

import json
import re
import signal
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from types import FrameType

import numpy as np
import psycopg
from pgvector.psycopg import register_vector
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
    table,
    target_note,
    throwaway_stack,
)
from bench.search_quality import CACHE_DIR, VectorCache, embed_pending, embed_texts, make_embedder
from nexus.stack import Stack

DATA = "locomo-dev"
DATABASE = "nexus_bench_locomo"
CATEGORIES = {1: "multi_hop", 2: "temporal", 3: "open_domain", 4: "single_hop"}
MODES: dict[str, str] = {
    "text": "query => %(query)s",
    "vector": "query_embedding => %(embedding)s",
    "hybrid": "query => %(query)s, query_embedding => %(embedding)s",
}
KS = (5, 10, 20)
DEPTH = max(KS)
# hybrid with context => 1: each row's neighbours count as found (what an agent reading them sees)
CONTEXT = 1
HYBRID_TARGET = 0.70
# hybrid must beat the better of its own branches by this much
MARGIN_TARGET = 0.03

FIGURES = tuple(f"quality.locomo.{mode}_recall{k}" for mode in MODES for k in KS) + tuple(
    f"quality.locomo.{mode}_recall10_{cat}" for mode in MODES for cat in CATEGORIES.values()) + (
    f"quality.locomo.hybrid_context{CONTEXT}_recall10", "quality.locomo.hybrid_p50_ms")


log = partial(harness.log, "quality.locomo")


# -- the data set ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Turn:
    dia_id: str
    session: str
    valid_at: datetime
    content: str


@dataclass(frozen=True)
class Question:
    text: str
    category: int
    evidence: frozenset[str]


@dataclass
class Conversation:
    agent: str
    turns: list[Turn]
    questions: list[Question]
    dropped_evidence: int = 0


def session_date(text: str) -> datetime:
    """'1:56 pm on 8 May, 2023' -> that time, read as UTC."""
    return datetime.strptime(text, "%I:%M %p on %d %B, %Y").replace(tzinfo=UTC)


def evidence_ids(raw: list[str]) -> list[str]:
    """The evidence turn ids of a question, repaired where the data set has typos
    ('D8:6; D9:17' is two ids, 'D:11:26' is D11:26)."""
    ids = [part.strip() for item in raw for part in item.split(";")]
    return [re.sub(r"^D:(\d+:\d+)$", r"D\1", i) for i in ids if i]


def load_conversation(path: Path) -> Conversation:
    raw = json.loads(path.read_text(encoding="utf-8"))
    numbers = sorted(int(m[1]) for k in raw if (m := re.fullmatch(r"session_(\d+)", k)))
    turns = [Turn(t["dia_id"], f"session_{n}", session_date(raw[f"session_{n}_date_time"]),
                  f"{t['speaker']}: {t['text']}")
             for n in numbers for t in raw[f"session_{n}"]]
    known = {t.dia_id for t in turns}
    conv = Conversation("locomo_" + re.sub(r"[^a-z0-9]+", "_", path.stem.lower()), turns, [])
    for q in raw["qa"]:
        if q["category"] not in CATEGORIES:
            continue
        ids = evidence_ids(q.get("evidence") or [])
        found = frozenset(i for i in ids if i in known)
        conv.dropped_evidence += len(set(ids) - found)
        if found:
            conv.questions.append(Question(q["question"], q["category"], found))
    return conv


def load_locomo() -> list[Conversation]:
    """The development conversations; MissingData if the folder or its files are not there."""
    folder = bench_data(DATA)
    files = sorted(folder.glob("*.json"))
    if not files:
        raise MissingData(f"no data: no conversation (*.json) in {folder}")
    return [load_conversation(f) for f in files]


# -- loading and embedding ---------------------------------------------------------------------
@contextmanager
def as_agent(bdb: BenchDb, agent: str) -> Iterator[psycopg.Connection]:
    """A connection that runs as the agent (SET ROLE), as an agent's own login would."""
    with bdb.superuser() as conn:
        register_vector(conn)
        conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(agent)))
        yield conn


def load(bdb: BenchDb, convs: list[Conversation]) -> dict[str, dict[int, str]]:
    """Every conversation as its agent's episodes, a call of the API per turn. Returns, per
    agent, episode id -> dia_id."""
    dia_of: dict[str, dict[int, str]] = {}
    with bdb.superuser() as conn:
        for c in convs:
            conn.execute("SELECT memory_system.agent_add(%s)", (c.agent,))
    for c in convs:
        with as_agent(bdb, c.agent) as conn:
            dia_of[c.agent] = {
                conn.execute(
                    "SELECT nexus.record_episode(content => %s, action_type => 'message',"
                    " metadata => %s, session => %s, valid_at => %s)",
                    (t.content, json.dumps({"dia_id": t.dia_id}), t.session, t.valid_at)
                ).fetchone()[0]: t.dia_id  # type: ignore[index]
                for t in c.turns}
    with bdb.superuser() as conn:
        conn.execute("ANALYZE nexus_memory.zep_episodic_memory")
    return dia_of


# -- searching ---------------------------------------------------------------------------------
@dataclass
class ModeResult:
    # per question (in the order of the conversations, then of their questions): its category
    # and the recall at each k
    categories: list[int] = field(default_factory=list)
    recall: dict[int, list[float]] = field(default_factory=lambda: {k: [] for k in KS})
    seconds: list[float] = field(default_factory=list)

    def mean(self, k: int, category: int | None = None) -> float:
        return statistics.fmean(r for r, c in zip(self.recall[k], self.categories, strict=True)
                                if category in (None, c))


def search_sql(mode: str, context: int = 0) -> str:
    return (f"SELECT id, neighbours FROM nexus.memory_search({MODES[mode]}, limit_n => {DEPTH},"
            f" kinds => '{{episode}}', context => {context})")


def search_mode(bdb: BenchDb, mode: str, convs: list[Conversation],
                vectors: dict[str, np.ndarray], dia_of: dict[str, dict[int, str]],
                context: int = 0) -> ModeResult:
    """Every question searched; with context, a row's neighbours count as found with it."""
    stmt = search_sql(mode, context)
    result = ModeResult()
    for c in convs:
        with as_agent(bdb, c.agent) as conn:
            for q in c.questions:
                start = time.perf_counter()
                params = {"query": q.text, "embedding": vectors[q.text]}
                rows = conn.execute(stmt, params).fetchall()
                result.seconds.append(time.perf_counter() - start)
                found = [{dia_of[c.agent][i], *(dia_of[c.agent][n["id"]] for n in near or [])}
                         for i, near in rows]
                result.categories.append(q.category)
                for k in KS:
                    seen = set().union(*found[:k])
                    result.recall[k].append(len(q.evidence & seen) / len(q.evidence))
    return result


# -- the benchmark -----------------------------------------------------------------------------
def figures_of(results: dict[str, ModeResult], errors: dict[str, str], setup: str) -> list[Figure]:
    figures: list[Figure] = []
    single = {m: results[m].mean(10) for m in ("text", "vector") if m in results}
    best = max(single.values(), default=None)
    for mode in MODES:
        for k in KS:
            name = f"quality.locomo.{mode}_recall{k}"
            if mode not in results:
                figures.append(Figure(name, None, "", note=f"FAILED: {errors[mode]}",
                                      failed=True))
                continue
            value = results[mode].mean(k)
            cats = ", ".join(f"{cat} {results[mode].mean(k, n):.3f}"
                             for n, cat in CATEGORIES.items())
            if mode == "hybrid" and k == 10:
                margin = (f"best single branch + {MARGIN_TARGET:g}: "
                          + ("-" if best is None else
                             "met" if value >= best + MARGIN_TARGET else "MISSED"))
                figures.append(Figure(name, value, "ratio", best, ratio(value, best),
                                      f"baseline: the better of text and vector; "
                                      f"{target_note(value, HYBRID_TARGET)}; {margin}; {cats}"))
            else:
                figures.append(Figure(name, value, "ratio", note=cats))
    for mode in MODES:
        for n, cat in CATEGORIES.items():
            name = f"quality.locomo.{mode}_recall10_{cat}"
            if mode not in results:
                figures.append(Figure(name, None, "", note=f"FAILED: {errors[mode]}",
                                      failed=True))
                continue
            count = results[mode].categories.count(n)
            figures.append(Figure(name, results[mode].mean(10, n), "ratio",
                                  note=f"{count} questions"))
    name = f"quality.locomo.hybrid_context{CONTEXT}_recall10"
    if "hybrid_context" in results:
        value = results["hybrid_context"].mean(10)
        hybrid = results["hybrid"].mean(10) if "hybrid" in results else None
        figures.append(Figure(name, value, "ratio", hybrid, ratio(value, hybrid),
                              f"informational: hybrid with context => {CONTEXT}, evidence among "
                              "the top 10 rows or the episodes just before and after each (what "
                              "an agent reading the neighbours sees); baseline: hybrid"))
    else:
        figures.append(Figure(name, None, "", note=f"FAILED: {errors['hybrid_context']}",
                              failed=True))
    if "hybrid" in results:
        ms = [s * 1000 for s in results["hybrid"].seconds]
        figures.append(Figure("quality.locomo.hybrid_p50_ms", statistics.median(ms), "ms",
                              note=f"informational: one hybrid memory_search (limit "
                                   f"{DEPTH}) per question, client side; p90 "
                                   f"{percentile(ms, 90):.1f} ms"))
    else:
        figures.append(Figure("quality.locomo.hybrid_p50_ms", None, "",
                              note=f"FAILED: {errors['hybrid']}", failed=True))
    if figures:
        figures[0].note += f"; {setup}"
    return figures


def bench_locomo(st: Stack) -> list[Figure]:
    try:
        convs = load_locomo()
    except MissingData as exc:
        log(str(exc))
        return skipped_figures(FIGURES, exc)
    start = time.perf_counter()
    embedder = make_embedder()
    cache = VectorCache(embedder.info.name, embedder.info.version, CACHE_DIR / "locomo")
    if cache.ignored:
        log(cache.ignored)
    with cloned_database(st, DATABASE) as bdb:
        dia_of = load(bdb, convs)
        done = embed_pending(bdb, cache, log)
        texts = [q.text for c in convs for q in c.questions]
        vectors = dict(zip(texts, embed_texts(texts, embedder, cache), strict=True))
        questions = len(texts)
        setup = (f"{len(convs)} conversations, {sum(len(c.turns) for c in convs):,} turns, "
                 f"{questions} questions (categories 1-4; "
                 f"{sum(c.dropped_evidence for c in convs)} evidence ids naming no turn "
                 f"dropped); {done.from_cache:,} vectors from the cache, {done.from_worker:,} "
                 f"embedded by the worker ({done.worker_seconds:,.0f} s); setup "
                 f"{time.perf_counter() - start:,.0f} s")
        log(setup)
        results: dict[str, ModeResult] = {}
        errors: dict[str, str] = {}
        runs = [(mode, mode, 0) for mode in MODES] + [("hybrid_context", "hybrid", CONTEXT)]
        for name, mode, context in runs:
            try:
                results[name] = search_mode(bdb, mode, convs, vectors, dia_of, context)
            except psycopg.Error as exc:  # one broken mode must not hide the others' figures
                errors[name] = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
                log(f"{name}: {errors[name]}")
    return figures_of(results, errors, setup)


BENCHMARKS = [Benchmark("conversational recall (LoCoMo)", FIGURES, bench_locomo)]


def _stop(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def main() -> int:
    signal.signal(signal.SIGTERM, _stop)
    with throwaway_stack() as st:
        print(table(bench_locomo(st)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
