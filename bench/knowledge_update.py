"""Knowledge that changes (issue 25): does `nexus.memory_search` put what holds now first?

The data is bench/knowledge_data.py's, deterministic from its seed:
- the 7 "the fact changed" conversations, each recorded as the episodes of one session (one
  `record_episode` per turn, as MCP's `remember` does) and asked about in that session, as MCP's
  `recall` does (hybrid, limit 10, `session`): does a turn stating the value that holds now rank
  first?
- the generated dev set: subjects whose attributes change 1 to 4 times, stored two ways, by
  agents of their own:
  - as episodes, as a conversation records them: each statement a turn `User: ...` of the day's
    session, with `valid_at` its day, followed by an acknowledgement `Assistant: ...`; every
    question (every attribute in each of its 3 phrasings) searched over all episodes (hybrid,
    limit 10);
  - as keyed facts: `remember_fact(statement, key => subject.attribute, valid_from => its day)`;
    searched over facts, "true now" (the default) and `as_of` a time between two values.
The keyed figures need memory_search's validity filtering (`as_of`, `include_history`): while the
function has no such parameters they are reported as skipped, with today's search (every fact,
superseded ones included) as their baseline.

Also the cost of that filtering: memory_search's p50 over 100,000 keyed facts of which 30% are
superseded, "true now" against `include_history => true` (no validity filtering), interleaved in
the same run.

Vectors come from the model the worker runs (in this process, cached in
`.cache/bench/vectors/knowledge/<model>.npz` by the checksum of the text).

`make bench ONLY=quality.knowledge_update` runs it alone.
"""

from __future__ import annotations

import hashlib
import statistics
import sys
import time
from dataclasses import dataclass, field
from datetime import timedelta

import numpy as np
import psycopg
from pgvector.psycopg import register_vector

from bench.harness import (
    REPEATS,
    BenchDb,
    Benchmark,
    Figure,
    cloned_database,
    median,
    runs_note,
)
from bench.knowledge_data import CONVERSATIONS, SEED, DevSet, generate
from bench.locomo import as_agent
from bench.search_quality import CACHE_DIR, VectorCache, embed_texts, make_embedder
from nexus.stack import Stack

DATABASE = "nexus_bench_knowledge"
PREFIX = "quality.knowledge_update"
CONV_AGENT = "ku_conversations"
EPISODE_AGENT = "ku_episodes"
KEYED_AGENT = "ku_keyed"
COST_AGENT = "ku_cost"
LIMIT = 10
TOP = 5
ACKS = ("Assistant: Noted, thanks.", "Assistant: Got it, I'll remember that.",
        "Assistant: Okay, updated.", "Assistant: Thanks for letting me know.",
        "Assistant: Understood.")
COST_FACTS = 100_000
COST_SUPERSEDED = 0.30
COST_QUERIES = 50
COST_TARGET = 1.05
EPISODES_TARGET = 0.85
WORKER = "bench-knowledge"

FIGURES = tuple(f"{PREFIX}.{n}" for n in (
    "conversations_current_at1", "episodes_current_at1", "keyed_current_at1", "keyed_stale_in_top5",
    "as_of_at1", "validity_p50_ms_100k", "validity_cost_ratio"))


def log(message: str) -> None:
    print(f"[{PREFIX}] {message}", file=sys.stderr, flush=True)


def search_params(bdb: BenchDb) -> set[str]:
    """The parameter names of nexus.memory_search: does it filter by validity yet?"""
    with bdb.superuser() as conn:
        names = conn.execute("SELECT proargnames FROM pg_proc"
                             " WHERE oid = 'nexus.memory_search'::regproc").fetchone()[0]  # type: ignore[index]
    return set(names or ())


# -- embedding ----------------------------------------------------------------------------------
def embed_all(bdb: BenchDb, cache: VectorCache, embedder: object) -> int:
    """Act as the worker: claim every pending item, embed its text (from the cache, or with the
    model here), complete it. Returns the number of texts the model embedded."""
    fresh = 0
    with bdb.worker() as conn:
        register_vector(conn)
        while rows := conn.execute(
                "SELECT item_id, content, content_sha256"
                "  FROM memory_system.claim_batch(%s, 256, %s, %s)",
                (WORKER, "1 hour", cache.model)).fetchall():
            # cached by the checksum of the text embedded (a keyed fact's is its key and content)
            keys = [hashlib.sha256(t.encode()).digest() for _, t, _ in rows]
            missing = {k: t for k, (_, t, _) in zip(keys, rows, strict=True) if k not in cache}
            fresh += len(missing)
            if missing:
                vectors = embedder.embed(list(missing.values()))  # type: ignore[attr-defined]
                for key, vec in zip(missing, vectors, strict=True):
                    cache.add(key, vec)
            done, stale, lost = conn.execute(
                "SELECT written, stale, lost"
                "  FROM memory_system.complete_batch(%s, %s, %b, %s, %s, %s)",
                (WORKER, [i for i, _, _ in rows], [cache[k] for k in keys],
                 [s for _, _, s in rows], cache.model, cache.version)).fetchone()  # type: ignore[misc]
            if (done, stale, lost) != (len(rows), 0, 0):
                raise AssertionError(f"complete_batch wrote {done}, stale {stale}, lost {lost} "
                                     f"of {len(rows)}")
    if fresh:
        cache.save()
    return fresh


# -- loading ------------------------------------------------------------------------------------
@dataclass
class Loaded:
    # conversation name -> episode ids of its turns
    conversations: dict[str, list[int]] = field(default_factory=dict)
    # (chain key, value index) -> episode id of the statement / fact id
    episodes: dict[tuple[str, int], int] = field(default_factory=dict)
    facts: dict[tuple[str, int], int] = field(default_factory=dict)


RECORD = ("SELECT nexus.record_episode(content => %s, action_type => 'message', session => %s,"
          " valid_at => %s)")


def load(bdb: BenchDb, dev: DevSet) -> Loaded:
    loaded = Loaded()
    with bdb.superuser() as conn:
        for agent in (CONV_AGENT, EPISODE_AGENT, KEYED_AGENT):
            conn.execute("SELECT memory_system.agent_add(%s)", (agent,))
    with as_agent(bdb, CONV_AGENT) as conn:
        for c in CONVERSATIONS:
            loaded.conversations[c.name] = [
                conn.execute("SELECT nexus.record_episode(content => %s,"
                             " action_type => 'message', session => %s)",
                             (turn, c.name)).fetchone()[0]  # type: ignore[index]
                for turn in c.turns]
    with as_agent(bdb, EPISODE_AGENT) as conn:
        for n, (chain, i) in enumerate(dev.statements()):
            value = chain.values[i]
            session = f"day_{value.valid_from:%Y_%m_%d}"
            loaded.episodes[chain.key, i] = conn.execute(
                RECORD, ("User: " + value.text, session, value.valid_from)).fetchone()[0]  # type: ignore[index]
            conn.execute(RECORD, (ACKS[n % len(ACKS)], session,
                                  value.valid_from + timedelta(seconds=5)))
    with as_agent(bdb, KEYED_AGENT) as conn:
        for chain, i in dev.statements():
            value = chain.values[i]
            loaded.facts[chain.key, i] = conn.execute(
                "SELECT nexus.remember_fact(content => %s, key => %s, valid_from => %s)",
                (value.text, chain.key, value.valid_from)).fetchone()[0]  # type: ignore[index]
    with bdb.superuser() as conn:
        conn.execute("ANALYZE nexus_memory.zep_episodic_memory")
        conn.execute("ANALYZE nexus_memory.semantic_memories")
    return loaded


# -- the ranking figures ------------------------------------------------------------------------
SEARCH = ("SELECT id FROM nexus.memory_search(query => %(q)s, query_embedding => %(v)s,"
          " limit_n => %(n)s, kinds => %(kinds)s, session => %(session)s{extra})")


def ranked(conn: psycopg.Connection, query: str, vector: np.ndarray, kinds: list[str],
           session: str | None = None, limit: int = LIMIT, extra: str = "",
           **params: object) -> list[int]:
    stmt = SEARCH.format(extra=extra)
    return [r[0] for r in conn.execute(stmt, {"q": query, "v": vector, "n": limit, "kinds": kinds,
                                              "session": session, **params}).fetchall()]


def conversations_figure(bdb: BenchDb, loaded: Loaded, vectors: dict[str, np.ndarray]) -> Figure:
    right, wrong = [], []
    with as_agent(bdb, CONV_AGENT) as conn:
        for c in CONVERSATIONS:
            ids = loaded.conversations[c.name]
            top = ranked(conn, c.query, vectors[c.query], ["episode"], session=c.name)
            first = ids.index(top[0]) if top and top[0] in ids else None
            (right if first in c.current else wrong).append(f"{c.name} (turn {first})")
    value = len(right) / len(CONVERSATIONS)
    return Figure(f"{PREFIX}.conversations_current_at1", value, "ratio",
                  note=f"{len(right)}/{len(CONVERSATIONS)} current values first (target 7/7; "
                       f"3/7 with main's ranking before issue 25); right: "
                       f"{', '.join(right) or '-'}; "
                       "wrong (top turn): "
                       f"{', '.join(wrong) or '-'}")


def episodes_figure(bdb: BenchDb, dev: DevSet, loaded: Loaded,
                    vectors: dict[str, np.ndarray]) -> Figure:
    hits, stale_first, missing, asked = 0, 0, 0, 0
    with as_agent(bdb, EPISODE_AGENT) as conn:
        for chain in dev.chains:
            own = {loaded.episodes[chain.key, i]: i for i in range(len(chain.values))}
            current = loaded.episodes[chain.key, len(chain.values) - 1]
            for query in chain.queries:
                top = ranked(conn, query, vectors[query], ["episode"])
                asked += 1
                if top and top[0] == current:
                    hits += 1
                elif top and top[0] in own:
                    stale_first += 1
                elif current not in top:
                    missing += 1
    value = hits / asked
    return Figure(f"{PREFIX}.episodes_current_at1", value, "ratio",
                  note=f"target >= {EPISODES_TARGET:g}: "
                       f"{'met' if value >= EPISODES_TARGET else 'MISSED'}; {asked} "
                       f"questions; first: the current value {hits}, an older value of the same "
                       f"thing {stale_first}, something else "
                       f"{asked - hits - stale_first} (current not in the top {LIMIT}: "
                       f"{missing})")


@dataclass
class Keyed:
    current_at1: float
    stale_in_top: float
    as_of_at1: float | None
    questions: int
    as_of_questions: int
    other_key: int
    as_of_other_key: int


def keyed_measure(bdb: BenchDb, dev: DevSet, loaded: Loaded, vectors: dict[str, np.ndarray],
                  extra: str, as_of: bool) -> Keyed:
    """Current value first, stale share of the top TOP; as_of (if asked) at a time inside each
    past value's validity."""
    current = stale = shown = asked = 0
    past_right = past = 0
    # first rows that are a fact of another key (a retrieval miss, not one of validity)
    other_key = past_other_key = 0
    mine = {fid: key for (key, _), fid in loaded.facts.items()}
    superseded = {loaded.facts[c.key, i] for c in dev.chains for i in range(len(c.values) - 1)}
    with as_agent(bdb, KEYED_AGENT) as conn:
        for chain, query in ((c, q) for c in dev.chains for q in c.queries):
            top = ranked(conn, query, vectors[query], ["semantic"], limit=TOP, extra=extra)
            asked += 1
            current += bool(top) and top[0] == loaded.facts[chain.key, len(chain.values) - 1]
            other_key += bool(top) and mine.get(top[0]) != chain.key
            stale += sum(i in superseded for i in top)
            shown += len(top)
            if not as_of:
                continue
            for i in range(len(chain.values) - 1):
                start, end = chain.values[i].valid_from, chain.values[i + 1].valid_from
                top = ranked(conn, query, vectors[query], ["semantic"], limit=TOP,
                             extra=", as_of => %(as_of)s", as_of=start + (end - start) / 2)
                past += 1
                past_right += bool(top) and top[0] == loaded.facts[chain.key, i]
                past_other_key += bool(top) and mine.get(top[0]) != chain.key
    return Keyed(current / asked, stale / max(shown, 1),
                 past_right / past if as_of else None, asked, past, other_key,
                 past_other_key)


def keyed_figures(bdb: BenchDb, dev: DevSet, loaded: Loaded, vectors: dict[str, np.ndarray],
                  params: set[str]) -> list[Figure]:
    filtering = {"as_of", "include_history"} <= params
    unfiltered = keyed_measure(bdb, dev, loaded, vectors,
                               ", include_history => true" if filtering else "", as_of=False)
    base = ("baseline: every fact, superseded ones included ("
            f"{'include_history => true' if filtering else 'the search as it is'})")
    names = [f"{PREFIX}.keyed_current_at1", f"{PREFIX}.keyed_stale_in_top5", f"{PREFIX}.as_of_at1"]
    if not filtering:
        reason = ("SKIPPED: nexus.memory_search has no as_of / include_history parameters yet "
                  f"(validity filtering); {base}")
        return [Figure(names[0], None, "ratio", unfiltered.current_at1, note=reason),
                Figure(names[1], None, "ratio", unfiltered.stale_in_top, note=reason),
                Figure(names[2], None, "ratio", note=reason)]
    now = keyed_measure(bdb, dev, loaded, vectors, "", as_of=True)
    return [
        Figure(names[0], now.current_at1, "ratio", unfiltered.current_at1,
               note=f"target 1.00; {now.questions} questions over facts (limit {TOP}); first "
                    f"a fact of another key (a retrieval miss, not one of validity): "
                    f"{now.other_key}; {base}"),
        Figure(names[1], now.stale_in_top, "ratio", unfiltered.stale_in_top,
               note=f"target 0: superseded facts among the rows of the top {TOP}; {base}"),
        Figure(names[2], now.as_of_at1, "ratio",
               note=f"target 1.00; {now.as_of_questions} questions, each as_of the middle of a "
                    f"past value's validity; first a fact of another key: {now.as_of_other_key}"),
    ]


# -- the cost of validity filtering -------------------------------------------------------------
COST_SQL = """
INSERT INTO nexus_memory.semantic_memories (agent_id, content, fact_key, valid_from, valid_to,
                                            ended_by, ended_at)
SELECT %(agent)s,
       -- 12 to 18 words of a 5,000-word vocabulary, the first ones the most frequent
       (SELECT string_agg('w' || (1 + floor(5000 * power(random(), 3)))::integer, ' ')
          FROM generate_series(1, 12 + g %% 7)),
       'key.' || CASE WHEN g <= %(old)s THEN g ELSE g - %(old)s END,
       CASE WHEN g <= %(old)s THEN timestamptz '2024-01-01' ELSE timestamptz '2025-01-01' END
           + make_interval(secs => g),
       CASE WHEN g <= %(old)s THEN timestamptz '2025-01-01' + make_interval(secs => g) END,
       CASE WHEN g <= %(old)s THEN 'superseded' END,
       CASE WHEN g <= %(old)s THEN now() END
  FROM generate_series(%(lo)s::integer, %(hi)s::integer) AS g
"""


def cost_figures(st: Stack, params: set[str]) -> list[Figure]:
    names = (f"{PREFIX}.validity_p50_ms_100k", f"{PREFIX}.validity_cost_ratio")
    if not {"as_of", "include_history"} <= params:
        reason = "SKIPPED: nexus.memory_search has no as_of / include_history parameters yet"
        return [Figure(n, None, "", note=reason) for n in names]
    old = int(COST_FACTS * COST_SUPERSEDED)
    with cloned_database(st, DATABASE + "_cost") as bdb:
        with bdb.superuser() as conn:
            conn.execute("SELECT memory_system.agent_add(%s)", (COST_AGENT,))
            conn.execute("SELECT setseed(%s)", (SEED / 100,))  # the texts: random() in COST_SQL
            for lo in range(1, COST_FACTS + 1, 10_000):
                conn.execute(COST_SQL, {"agent": COST_AGENT, "old": old, "lo": lo,
                                        "hi": lo + 9_999})
            rng = np.random.default_rng(SEED)
            centres = rng.standard_normal((50, 384))
            rows = conn.execute("SELECT id, content_sha256 FROM nexus_memory.semantic_memories"
                                " WHERE agent_id = %s ORDER BY id", (COST_AGENT,)).fetchall()
            register_vector(conn)
            model = conn.execute("SELECT memory_system._embedding_model()").fetchone()[0]  # type: ignore[index]
            for lo in range(0, len(rows), 10_000):
                chunk = rows[lo:lo + 10_000]
                vecs = (centres[rng.integers(0, 50, len(chunk))]
                        + 0.5 * rng.standard_normal((len(chunk), 384)))
                vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
                with conn.cursor().copy(
                        "COPY nexus_memory.semantic_memory_embeddings (agent_id, memory_id,"
                        " model, content_sha256, embedding) FROM STDIN") as copy:
                    for (i, sha), v in zip(chunk, vecs, strict=True):
                        copy.write_row((COST_AGENT, i, model, sha,
                                        "[" + ",".join(f"{x:.5f}" for x in v) + "]"))
            conn.execute("VACUUM ANALYZE nexus_memory.semantic_memories")
            conn.execute("VACUUM ANALYZE nexus_memory.semantic_memory_embeddings")
        queries = []
        for _ in range(COST_QUERIES):
            v = centres[rng.integers(0, 50)] + 0.5 * rng.standard_normal(384)
            words = " ".join(f"w{1 + int(5000 * rng.random() ** 3)}" for _ in range(4))
            queries.append((words, v / np.linalg.norm(v)))
        stmt = ("SELECT count(*) FROM nexus.memory_search(query => %s, query_embedding => %s,"
                " limit_n => 10, kinds => '{semantic}', include_history => %s)")
        runs: dict[bool, list[float]] = {False: [], True: []}
        with as_agent(bdb, COST_AGENT) as conn:
            for q, v in queries:  # warm-up
                conn.execute(stmt, (q, v, False)).fetchone()
                conn.execute(stmt, (q, v, True)).fetchone()
            for r in range(REPEATS):
                order = (False, True) if r % 2 == 0 else (True, False)
                times: dict[bool, list[float]] = {False: [], True: []}
                for q, v in queries:
                    for history in order:
                        start = time.perf_counter()
                        conn.execute(stmt, (q, v, history)).fetchone()
                        times[history].append((time.perf_counter() - start) * 1000)
                for history in order:
                    runs[history].append(statistics.median(times[history]))
    filtered, plain = median(runs[False]), median(runs[True])
    cost = filtered / plain
    return [Figure(names[0], filtered, "ms", plain, cost,
                   note=f"p50 of hybrid memory_search over facts (limit 10), {COST_FACTS:,} keyed "
                        f"facts, {COST_SUPERSEDED:.0%} superseded, 'true now'; baseline "
                        "include_history => true (no validity filtering); "
                        f"{runs_note(runs[False], '{:.2f}')} vs "
                        f"{runs_note(runs[True], '{:.2f}')}"),
            Figure(names[1], cost, "ratio",
                   note=f"filtered / unfiltered p50; target <= {COST_TARGET:g}: "
                        f"{'met' if cost <= COST_TARGET else 'MISSED'}")]


# -- the benchmark ------------------------------------------------------------------------------
def bench_knowledge_update(st: Stack) -> list[Figure]:
    start = time.perf_counter()
    dev = generate(SEED)
    embedder = make_embedder()
    cache = VectorCache(embedder.info.name, embedder.info.version, CACHE_DIR / "knowledge")
    figures: list[Figure] = []
    with cloned_database(st, DATABASE) as bdb:
        params = search_params(bdb)
        loaded = load(bdb, dev)
        fresh = embed_all(bdb, cache, embedder)
        texts = [c.query for c in CONVERSATIONS] + [q for c in dev.chains for q in c.queries]
        vectors = dict(zip(texts, embed_texts(texts, embedder, cache), strict=True))
        subjects = len({c.subject for c in dev.chains})
        setup = (f"{len(dev.chains)} attributes of {subjects} subjects, "
                 f"{len(dev.statements())} statements (seed {SEED}); {fresh} texts embedded here; "
                 f"setup {time.perf_counter() - start:,.0f} s")
        log(setup)
        figures.append(conversations_figure(bdb, loaded, vectors))
        figures.append(episodes_figure(bdb, dev, loaded, vectors))
        figures[-1].note += f"; {setup}"
        figures.extend(keyed_figures(bdb, dev, loaded, vectors, params))
    try:
        figures.extend(cost_figures(st, params))
    except psycopg.Error as exc:  # the ranking figures above stay
        reason = f"FAILED: {type(exc).__name__}: {exc}".splitlines()[0][:300]
        figures.extend(Figure(n, None, "", note=reason, failed=True) for n in FIGURES[-2:])
    return figures


BENCHMARKS = [Benchmark("knowledge that changes", FIGURES, bench_knowledge_update)]

