"""The embedding queue: what the enqueue trigger costs an INSERT, and claim -> complete throughput.

Each figure is measured next to its baseline in the same run, REPEATS times, the variants
interleaved (the order rotates every round), and the median kept: the machine is shared and noisy.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import psycopg

from bench.harness import (
    REPEATS,
    BenchDb,
    Benchmark,
    Figure,
    cloned_database,
    median,
    ratio,
    runs_note,
    settle_stats,
    target_note,
)
from nexus.stack import Stack

AGENT = "bench"
EPISODES = "nexus_memory.zep_episodic_memory"
VECTORS = "nexus_memory.episode_embeddings"
HNSW_INDEX = "nexus_memory.episode_embeddings_embedding_idx"

INSERT_ROWS = 20_000
INSERT_BATCH = 1_000
INSERT_TARGET = 0.6

QUEUE_ITEMS = 100_000
CLAIM_BATCH = 64
CLAIMERS = (1, 2, 4)
BARE_SESSIONS = 4
CLAIM_TARGET = 0.5
DIMENSIONS = 384
MODEL = "bench-model"


# -- made-up but realistic episodes ------------------------------------------------------------
_PEOPLE = ["The user", "Maria", "Dev lead Sam", "The customer", "Priya from finance", "Tom",
           "The on-call engineer", "Grandma Rose", "Coach Alvarez", "The landlord", "Kenji",
           "A new teammate", "The recruiter", "Dr. Okafor", "Lena", "The product owner"]
_ASKS = ["asked how to {task}", "wanted to know why {system} was slow", "complained that {thing}",
         "reminded me to {task}", "decided to {task}", "could not remember how to {task}",
         "asked for a summary of {topic}", "said they prefer {pref}"]
_TASKS = ["rotate the API keys", "export last month's invoices", "book a table for six on Friday",
          "reset the staging database", "renew the passport before March", "split the rent evenly",
          "migrate the wiki to the new server", "schedule the quarterly review",
          "file the expense report", "water the tomatoes twice a week",
          "update the TLS certificates",
          "cancel the gym membership", "plan the trip to Lisbon", "back up the family photos"]
_SYSTEMS = ["the search page", "the nightly import", "checkout", "the build pipeline", "the VPN",
            "the recommendation service", "the laptop", "the shared calendar"]
_THINGS = ["the invoice total was off by {n} euros", "the meeting ran {n} minutes over",
           "the package arrived damaged", "two reminders fired at once",
           "the report left out {n} customers", "the app logged them out again",
           "nobody answered the support ticket for {n} days"]
_TOPICS = ["the onboarding notes", "yesterday's incident", "the lease agreement",
           "the marathon plan", "the hiring pipeline", "the garden layout",
           "the budget for {month}", "the retro feedback"]
_PREFS = ["short answers", "email over chat", "morning meetings", "metric units",
          "bullet points", "a weekly digest", "vegetarian options", "quiet hours after 8 pm"]
_REPLIES = ["I explained the steps and linked the runbook.",
            "I suggested trying again after clearing the cache.",
            "I set a reminder for {month} {day}.",
            "I wrote down the preference for future conversations.",
            "I could not verify it and asked for a screenshot.",
            "I compared it with the notes from {month} and found {n} differences.",
            "I proposed two options and they picked the cheaper one.",
            "I escalated it to the owner of {system}.",
            "I drafted a short checklist of {n} items.",
            "I promised to follow up within {n} hours."]
_MOODS = ["They sounded relieved.", "They were in a hurry.", "They seemed annoyed but polite.",
          "They thanked me twice.", "They want a status update tomorrow.",
          "This is the {nth} time it came up this month.", "They mentioned it is not urgent.",
          "They will be travelling next week, so keep messages brief."]
_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December"]
_TAGS = ["user", "preferences", "billing", "ops", "incident", "travel", "home", "health",
         "work", "reminder", "finance", "family", "support", "planning", "garden", "hiring"]
_ACTIONS = ["observation", "message", "action", "reflection"]
_CHANNELS = ["chat", "email", "voice"]


def _fill(rng: random.Random, template: str) -> str:
    return template.format(
        task=rng.choice(_TASKS), system=rng.choice(_SYSTEMS), topic=rng.choice(_TOPICS),
        pref=rng.choice(_PREFS), month=rng.choice(_MONTHS), day=rng.randint(1, 28),
        n=rng.randint(2, 90), nth=rng.choice(["second", "third", "fourth", "fifth"]),
        thing=rng.choice(_THINGS),
    ).format(n=rng.randint(2, 90), month=rng.choice(_MONTHS))


def episode_text(rng: random.Random) -> str:
    """About 40 words in whole sentences: who asked what, what I did, and how it went."""
    sentences: list[str] = []
    words = 0
    while words < 37:
        for sentence in (_fill(rng, rng.choice(_PEOPLE) + " " + rng.choice(_ASKS)) + ".",
                         _fill(rng, rng.choice(_REPLIES)), _fill(rng, rng.choice(_MOODS))):
            if words >= 37:
                break
            sentences.append(sentence)
            words += len(sentence.split())
    return " ".join(sentences)


def load_episode_texts(conn: psycopg.Connection, count: int, seed: int = 42) -> None:
    """bench.texts: `count` prepared episodes (content, tags, metadata, ...), numbered from 1."""
    rng = random.Random(seed)
    conn.execute("CREATE SCHEMA IF NOT EXISTS bench")
    conn.execute("DROP TABLE IF EXISTS bench.texts")
    conn.execute("""
        CREATE TABLE bench.texts (
            n integer PRIMARY KEY, session_id text, action_type text, content text NOT NULL,
            metadata jsonb, tags text[], importance real)""")
    with conn.cursor() as cur, cur.copy(
            "COPY bench.texts (n, session_id, action_type, content, metadata, tags, importance)"
            " FROM STDIN") as copy:
        for n in range(1, count + 1):
            tags = sorted(set(rng.sample(_TAGS, rng.randint(1, 3))))
            metadata = (f'{{"turn": {n % 40}, "channel": "{rng.choice(_CHANNELS)}", '
                        f'"confidence": {rng.random():.2f}}}')
            copy.write_row((n, f"s{n // 40}", rng.choice(_ACTIONS), episode_text(rng), metadata,
                            tags, round(rng.random(), 2)))
    conn.execute("ANALYZE bench.texts")


INSERT_EPISODES = f"""
    INSERT INTO {EPISODES}
           (agent_id, session_id, action_type, content, metadata, tags, importance)
    SELECT '{AGENT}', t.session_id, t.action_type, t.content, t.metadata, t.tags, t.importance
      FROM bench.texts AS t
     WHERE t.n > %(lo)s AND t.n <= %(hi)s"""


def insert_episodes(conn: psycopg.Connection, rows: int) -> float:
    """Insert `rows` episodes, INSERT_BATCH per statement, each statement its own transaction
    (conn is in autocommit). Returns the elapsed seconds."""
    start = time.perf_counter()
    for lo in range(0, rows, INSERT_BATCH):
        conn.execute(INSERT_EPISODES, {"lo": lo, "hi": min(lo + INSERT_BATCH, rows)})
    return time.perf_counter() - start


def setup_bench_db(bdb: BenchDb, texts: int) -> None:
    with bdb.superuser() as conn:
        conn.execute("SELECT memory_system.agent_add(%s)", (AGENT,))
        load_episode_texts(conn, texts)


# -- statistics, for the notes -----------------------------------------------------------------
def function_stats(bdb: BenchDb) -> dict[str, tuple[int, float, float]]:
    """calls, total ms, self ms of every function of this database (track_functions = all)."""
    with bdb.superuser() as conn:
        rows = conn.execute("SELECT funcname, calls, total_time, self_time"
                            "  FROM pg_stat_user_functions").fetchall()
    return {name: (calls, total, own) for name, calls, total, own in rows}


def wal_stats(bdb: BenchDb) -> tuple[int, int]:
    """(WAL bytes, full-page images) written by the whole cluster so far."""
    with bdb.superuser() as conn:
        row = conn.execute("SELECT wal_bytes, wal_fpi FROM pg_stat_wal").fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def delta(after: dict[str, tuple[int, float, float]], before: dict[str, tuple[int, float, float]],
          name: str) -> tuple[int, float, float]:
    a, b = after.get(name, (0, 0.0, 0.0)), before.get(name, (0, 0.0, 0.0))
    return a[0] - b[0], a[1] - b[1], a[2] - b[2]


# -- a. INSERT with and without the enqueue trigger --------------------------------------------
INSERT_VARIANTS = {
    # variant: the ALTER TABLE that sets it up (after ENABLE TRIGGER USER)
    "trigger": None,
    "plain": f"ALTER TABLE {EPISODES} DISABLE TRIGGER enqueue_inserted",
    "no_user_triggers": f"ALTER TABLE {EPISODES} DISABLE TRIGGER USER",
}


def _insert_run(bdb: BenchDb, variant: str) -> tuple[float, str]:
    """One timed run of a variant on empty tables. Returns rows/s and a diagnostic note."""
    with bdb.superuser() as conn:
        conn.execute(f"ALTER TABLE {EPISODES} ENABLE TRIGGER USER")
        if INSERT_VARIANTS[variant]:
            conn.execute(INSERT_VARIANTS[variant])
        # CASCADE: the vector side tables reference the memories
        conn.execute(f"TRUNCATE {EPISODES}, nexus_memory.semantic_memories,"
                     " memory_system.embeddings_queue CASCADE")
        conn.execute("CHECKPOINT")
    settle_stats()
    before = function_stats(bdb)
    with bdb.superuser() as conn:
        elapsed = insert_episodes(conn, INSERT_ROWS)
    settle_stats()
    after = function_stats(bdb)
    with bdb.superuser() as conn:
        episodes, queued = conn.execute(
            f"SELECT (SELECT count(*) FROM {EPISODES}),"
            "        (SELECT count(*) FROM memory_system.embeddings_queue"
            "          WHERE state = 'pending')").fetchone()  # type: ignore[misc]
        conn.execute(f"ALTER TABLE {EPISODES} ENABLE TRIGGER USER")
    expected_queue = INSERT_ROWS if variant == "trigger" else 0
    if episodes != INSERT_ROWS or queued != expected_queue:
        raise AssertionError(f"{variant}: {episodes} episodes and {queued} queue items, expected "
                             f"{INSERT_ROWS} and {expected_queue}")
    statements = INSERT_ROWS // INSERT_BATCH
    _, enqueue_ms, _ = delta(after, before, "_enqueue_inserted")
    _, validate_ms, _ = delta(after, before, "_validate_memory_text")
    model_calls, model_ms, _ = delta(after, before, "_embedding_model")
    note = (f"per {INSERT_BATCH:,}-row statement: {elapsed * 1000 / statements:.0f} ms, "
            f"enqueue trigger {enqueue_ms / statements:.1f} ms (of which _embedding_model() "
            f"{model_calls / statements:,.0f} calls, {model_ms / statements:.1f} ms), "
            f"validation trigger {validate_ms / statements:.1f} ms")
    return INSERT_ROWS / elapsed, note


def bench_insert(st: Stack) -> list[Figure]:
    rates: dict[str, list[float]] = {v: [] for v in INSERT_VARIANTS}
    notes: dict[str, list[str]] = {v: [] for v in INSERT_VARIANTS}
    order = list(INSERT_VARIANTS)
    with cloned_database(st, "nexus_bench_insert") as bdb:
        setup_bench_db(bdb, INSERT_ROWS)
        for round_ in range(REPEATS):
            for variant in order[round_ % len(order):] + order[:round_ % len(order)]:
                rate, note = _insert_run(bdb, variant)
                rates[variant].append(rate)
                notes[variant].append(note)

    trig, plain, bare = (median(rates[v]) for v in ("trigger", "plain", "no_user_triggers"))
    pairs = [t / p for t, p in zip(rates["trigger"], rates["plain"], strict=True)]
    median_run = rates["trigger"].index(trig)
    setup = (f"{INSERT_ROWS:,} rows of ~40 words per run, {INSERT_BATCH:,} per statement and "
             f"transaction, superuser, durable commits")
    return [
        Figure("queue.insert_rows_per_s_trigger", trig, "rows/s", plain, ratio(trig, plain),
               f"{runs_note(rates['trigger'])}; {setup}; median run: "
               f"{notes['trigger'][median_run]}"),
        Figure("queue.insert_rows_per_s_plain", plain, "rows/s", None, None,
               f"{runs_note(rates['plain'])}; enqueue_inserted disabled, validation on"),
        Figure("queue.insert_trigger_ratio", ratio(trig, plain), "ratio", None, None,
               f"with / without enqueue_inserted; {target_note(ratio(trig, plain), INSERT_TARGET)};"
               f" {runs_note(pairs, '{:.2f}', 'per round')}"),
        Figure("queue.insert_all_triggers_ratio", ratio(trig, bare), "ratio", None, None,
               f"all triggers on / DISABLE TRIGGER USER ({bare:,.0f} rows/s, "
               f"{runs_note(rates['no_user_triggers'])}); FK checks stay on"),
    ]


# -- b. claim -> complete ----------------------------------------------------------------------
def unit_vector(seed: int = 7) -> list[float]:
    rng = random.Random(seed)
    v = [rng.gauss(0, 1) for _ in range(DIMENSIONS)]
    norm = math.sqrt(sum(x * x for x in v))
    return [x / norm for x in v]


class VectorArrays:
    """The vector[] argument of complete_batch: one fixed unit vector, repeated. Sent in binary
    through the pgvector package's psycopg adapter (as the sidecar's worker does) when that package
    is installed; otherwise as a text literal, one per batch length, built once."""

    def __init__(self) -> None:
        values = unit_vector()
        try:
            import numpy as np
            from pgvector.psycopg import register_vector
        except ImportError:
            self.register: Callable[[psycopg.Connection], None] | None = None
            self.element: object = '"[' + ",".join(f"{x:.6g}" for x in values) + ']"'
            self.how = "as a vector[] text literal (pgvector package not installed)"
        else:
            self.register = register_vector
            self.element = np.array(values, dtype=np.float32)
            self.how = "in binary (pgvector's psycopg adapter)"
        self.cache: dict[int, object] = {}

    def connect(self, connect: Callable[[], psycopg.Connection]) -> psycopg.Connection:
        conn = connect()
        if self.register is not None:
            self.register(conn)
        return conn

    def __call__(self, count: int) -> object:
        if count not in self.cache:
            self.cache[count] = ([self.element] * count if self.register is not None
                                 else "{" + ",".join([str(self.element)] * count) + "}")
        return self.cache[count]


# everything a real worker gets back (the content too), though only the ids and checksums are used
CLAIM = "SELECT * FROM memory_system.claim_batch(%s, %s, '5 minutes')"
# %b: with %s, psycopg dumps a list of numpy arrays as text (pgvector formats every float in
# Python, ~0.6 ms a vector) and the server parses it back; binary costs neither
COMPLETE = ("SELECT written, stale, lost FROM memory_system.complete_batch("
            "%s, %s::bigint[], %b::public.vector[], %s::bytea[], %s)")
BARE_DELETE = ("DELETE FROM bench.plain WHERE id IN (SELECT id FROM bench.plain ORDER BY id"
               f" LIMIT {CLAIM_BATCH} FOR UPDATE SKIP LOCKED) RETURNING id")


@dataclass
class Session:
    """One concurrent session: its connection, what it did, how it failed."""

    conn: psycopg.Connection
    ids: list[int] = field(default_factory=list)
    error: BaseException | None = None


def run_sessions(connect: Callable[[], psycopg.Connection], count: int,
                 loop: Callable[[Session, int], None]) -> tuple[float, list[Session]]:
    """Run `loop` in `count` threads, each with its own connection, started together.
    Returns the elapsed seconds (from the common start to the last one's end) and the sessions."""
    sessions = [Session(connect()) for _ in range(count)]
    start = threading.Barrier(count + 1)

    def body(s: Session, i: int) -> None:
        start.wait()
        try:
            loop(s, i)
        except BaseException as exc:  # reported by the caller
            s.error = exc

    threads = [threading.Thread(target=body, args=(s, i), daemon=True)
               for i, s in enumerate(sessions)]
    try:
        for t in threads:
            t.start()
        start.wait()
        t0 = time.perf_counter()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - t0
    finally:
        for s in sessions:
            s.conn.close()
    errors = [s.error for s in sessions if s.error is not None]
    if errors:
        raise errors[0]
    return elapsed, sessions


def claimer_loop(prefix: str, vectors: VectorArrays) -> Callable[[Session, int], None]:
    def loop(s: Session, i: int) -> None:
        worker = f"{prefix}-{i}"
        while True:
            rows = s.conn.execute(CLAIM, (worker, CLAIM_BATCH)).fetchall()
            if not rows:
                return
            ids = [r[0] for r in rows]
            written, stale, lost = s.conn.execute(
                COMPLETE, (worker, ids, vectors(len(ids)), [r[5] for r in rows], MODEL)
            ).fetchone()  # type: ignore[misc]
            if (written, stale, lost) != (len(ids), 0, 0):
                raise AssertionError(f"{worker}: complete_batch wrote {written}, stale {stale}, "
                                     f"lost {lost} of {len(ids)}")
            s.ids.extend(ids)
    return loop


def bare_loop(s: Session, i: int) -> None:
    while True:
        rows = s.conn.execute(BARE_DELETE).fetchall()
        if not rows:
            return
        s.ids.extend(r[0] for r in rows)


def prepare_claim_db(bdb: BenchDb) -> None:
    """100,000 episodes inserted with the trigger on (so 100,000 pending items), no HNSW index,
    and bench.plain for the bare loop."""
    setup_bench_db(bdb, QUEUE_ITEMS)
    with bdb.superuser() as conn:
        conn.execute(f"DROP INDEX {HNSW_INDEX}")
        # the items must target the model the made-up vectors claim to come from
        conn.execute("UPDATE memory_system.settings SET value = %s WHERE name = 'embedding_model'",
                     (MODEL,))
        insert_episodes(conn, QUEUE_ITEMS)
        pending = conn.execute("SELECT count(*) FROM memory_system.embeddings_queue"
                               " WHERE state = 'pending'").fetchone()
        if pending != (QUEUE_ITEMS,):
            raise AssertionError(f"expected {QUEUE_ITEMS} pending items, found {pending}")
        conn.execute("CREATE TABLE bench.plain (id bigint PRIMARY KEY, payload text)")


def reset_queue(bdb: BenchDb) -> None:
    """Every item pending again, no vector written yet, tables vacuumed, a fresh checkpoint."""
    with bdb.superuser() as conn:
        conn.execute("""
            UPDATE memory_system.embeddings_queue
               SET state = 'pending', lease_owner = NULL, lease_expires_at = NULL, retry_count = 0,
                   processed_at = NULL, claimed_at = NULL, available_at = now() - interval '1 s'""")
        conn.execute(f"TRUNCATE {VECTORS}")
        for table in ("memory_system.embeddings_queue", EPISODES, VECTORS):
            conn.execute(f"VACUUM ANALYZE {table}")
        conn.execute("CHECKPOINT")


def reset_plain(bdb: BenchDb) -> None:
    with bdb.superuser() as conn:
        conn.execute("TRUNCATE bench.plain")
        conn.execute("INSERT INTO bench.plain (id, payload)"
                     " SELECT n, content FROM bench.texts WHERE n <= %s", (QUEUE_ITEMS,))
        conn.execute("VACUUM ANALYZE bench.plain")
        conn.execute("CHECKPOINT")


def verify_claims(bdb: BenchDb, sessions: list[Session]) -> list[str]:
    """Problems after a claim run: items not done, episodes without their vector, item ids
    completed twice or never."""
    problems = []
    with bdb.superuser() as conn:
        not_done, = conn.execute("SELECT count(*) FROM memory_system.embeddings_queue"
                                 " WHERE state <> 'done'").fetchone()  # type: ignore[misc]
        unembedded, = conn.execute(
            f"SELECT count(*) FROM {EPISODES} AS e LEFT JOIN {VECTORS} AS v"
            "    ON v.agent_id = e.agent_id AND v.episode_id = e.id"
            " WHERE v.content_sha256 IS DISTINCT FROM e.content_sha256"
            "    OR v.model IS DISTINCT FROM %s", (MODEL,)).fetchone()  # type: ignore[misc]
        all_ids = {r[0] for r in conn.execute("SELECT id FROM memory_system.embeddings_queue")}
    completed = [i for s in sessions for i in s.ids]
    if not_done:
        problems.append(f"{not_done} queue items not done")
    if unembedded:
        problems.append(f"{unembedded} episodes without a vector of their content")
    if len(completed) != len(set(completed)):
        problems.append(f"{len(completed) - len(set(completed))} items completed twice")
    if set(completed) != all_ids or len(all_ids) != QUEUE_ITEMS:
        problems.append(f"completed {len(set(completed))} distinct items of {len(all_ids)}"
                        f" (expected {QUEUE_ITEMS})")
    return problems


@dataclass
class ClaimRun:
    rate: float
    problems: list[str]
    note: str


def _claim_run(bdb: BenchDb, claimers: int, vectors: VectorArrays) -> ClaimRun:
    reset_queue(bdb)
    settle_stats()
    fn_before = function_stats(bdb)
    wal_before = wal_stats(bdb)
    elapsed, sessions = run_sessions(lambda: vectors.connect(bdb.worker), claimers,
                                     claimer_loop(f"bench-c{claimers}", vectors))
    settle_stats()
    fn_after = function_stats(bdb)
    wal_after = wal_stats(bdb)
    problems = verify_claims(bdb, sessions)
    batches = math.ceil(QUEUE_ITEMS / CLAIM_BATCH)
    parts = []
    for fn in ("claim_batch", "complete_batch", "reap_expired_leases"):
        calls, total, _ = delta(fn_after, fn_before, fn)
        parts.append(f"{fn} {total / max(calls, 1):.2f}")
    wal_bytes, fpi = wal_after[0] - wal_before[0], wal_after[1] - wal_before[1]
    note = (f"ms per call inside the function: {', '.join(parts)} (~{batches:,} batches); "
            f"WAL {wal_bytes / QUEUE_ITEMS:,.0f} "
            f"bytes/item, {fpi:,} full-page images")
    return ClaimRun(QUEUE_ITEMS / elapsed, problems, note)


def _bare_run(bdb: BenchDb) -> ClaimRun:
    reset_plain(bdb)
    elapsed, sessions = run_sessions(bdb.superuser, BARE_SESSIONS, bare_loop)
    deleted = [i for s in sessions for i in s.ids]
    problems = []
    if len(deleted) != QUEUE_ITEMS or len(set(deleted)) != QUEUE_ITEMS:
        problems.append(f"deleted {len(deleted)} rows ({len(set(deleted))} distinct),"
                        f" expected {QUEUE_ITEMS}")
    return ClaimRun(QUEUE_ITEMS / elapsed, problems, "")


def bench_claim(st: Stack) -> list[Figure]:
    variants = [*(f"c{n}" for n in CLAIMERS), "bare"]
    runs: dict[str, list[ClaimRun]] = {v: [] for v in variants}
    vectors = VectorArrays()
    with cloned_database(st, "nexus_bench_claim") as bdb:
        prepare_claim_db(bdb)
        for round_ in range(REPEATS):
            for v in variants[round_ % len(variants):] + variants[:round_ % len(variants)]:
                run = _bare_run(bdb) if v == "bare" else _claim_run(bdb, int(v[1:]), vectors)
                runs[v].append(run)

    def summary(v: str) -> tuple[float, str, list[str]]:
        rates = [r.rate for r in runs[v]]
        rate = median(rates)
        mid = runs[v][rates.index(rate)]
        problems = [p for r in runs[v] for p in r.problems]
        note = runs_note(rates) + (f"; median run: {mid.note}" if mid.note else "")
        return rate, note, problems

    bare_rate, bare_note, bare_problems = summary("bare")
    figures = []
    setup = (f"{QUEUE_ITEMS:,} items, batch {CLAIM_BATCH}, nexus_worker sessions, one fixed "
             f"{DIMENSIONS}-d vector sent {vectors.how}; HNSW index {HNSW_INDEX} dropped"
             " (measures the queue, not HNSW insertion)")
    for n in CLAIMERS:
        rate, note, problems = summary(f"c{n}")
        baseline = bare_rate if n == BARE_SESSIONS else None
        if n == max(CLAIMERS):
            check = ("VERIFY FAILED: " + "; ".join(problems)) if problems else (
                "verified: every item done, every episode has its vector (episode_embeddings "
                "checksum = content_sha256), "
                f"the {max(CLAIMERS)} claimers completed each of the {QUEUE_ITEMS:,} items once")
            note = f"{check}; {note}"
        elif problems:
            note = "VERIFY FAILED: " + "; ".join(problems) + "; " + note
        figures.append(Figure(f"queue.claim_complete_items_per_s_c{n}", rate, "items/s", baseline,
                              ratio(rate, baseline), f"{note}; {setup}", failed=bool(problems)))
    c4 = figures[-1]
    figures.append(Figure(
        f"queue.bare_skip_locked_items_per_s_c{BARE_SESSIONS}", bare_rate, "items/s", None, None,
        ("FAILED: " + "; ".join(bare_problems) + "; " if bare_problems else "")
        + f"{bare_note}; DELETE ... IN (SELECT ... ORDER BY id LIMIT {CLAIM_BATCH} FOR UPDATE"
        f" SKIP LOCKED) on bench.plain (id bigint primary key, payload text), superuser",
        failed=bool(bare_problems)))
    c4_ratio = None if c4.failed else ratio(c4.value, bare_rate)
    figures.append(Figure(
        f"queue.claim_complete_ratio_c{BARE_SESSIONS}", c4_ratio, "ratio", None, None,
        f"claim->complete with {BARE_SESSIONS} claimers / bare SKIP LOCKED delete loop with "
        f"{BARE_SESSIONS} sessions; {target_note(c4_ratio, CLAIM_TARGET)}"
        + ("; FAILED: the c4 run did not verify" if c4.failed else ""),
        failed=c4.failed))
    return figures


BENCHMARKS = [
    Benchmark("queue insert", ("queue.insert_rows_per_s_trigger", "queue.insert_rows_per_s_plain",
                               "queue.insert_trigger_ratio", "queue.insert_all_triggers_ratio"),
              bench_insert),
    Benchmark("queue claim->complete",
              (*(f"queue.claim_complete_items_per_s_c{n}" for n in CLAIMERS),
               f"queue.bare_skip_locked_items_per_s_c{BARE_SESSIONS}",
               f"queue.claim_complete_ratio_c{BARE_SESSIONS}"),
              bench_claim),
]
