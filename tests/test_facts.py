"""Facts that change (docs/facts.md), beyond pgTAP's db/tests/14_facts.sql: two sessions writing one
key at once, and a differential test of the fact functions against a small reference model."""

from __future__ import annotations

import functools
import random
import re
import string
import tarfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from conftest import connect_as, drop_database, superuser_password
from nexus import agents, migrate, secrets
from nexus.config import SUPERUSER, Config
from nexus.stack import Stack

UPGRADE_FIXTURES = Path(__file__).resolve().parent / "fixtures" / "upgrade"


def su(stack: Stack, cfg: Config) -> psycopg.Connection:
    return connect_as(cfg, SUPERUSER, superuser_password(stack), autocommit=True)


def login(cfg: Config, agent: str, **kwargs: object) -> psycopg.Connection:
    return connect_as(cfg, agent, secrets.read(cfg.agent_secret_file(agent)), **kwargs)


@pytest.fixture
def facts_db(stack: Stack, fresh_db: Config) -> Config:
    with su(stack, fresh_db) as conn:
        for name in ("fact_ann", "fact_ben"):
            agents.add(conn, fresh_db, name, "", None)
    return fresh_db


def chain(conn: psycopg.Connection, key: str) -> list[tuple]:
    return conn.execute("SELECT id, content, valid_from, valid_to, ended_by, superseded_by "
                        "FROM nexus.fact_history(key => %s)", (key,)).fetchall()


def assert_valid_chain(rows: list[tuple]) -> None:
    """Each fact ends where the next begins, superseded by it; the last one holds."""
    for fact, after in zip(rows, rows[1:], strict=False):
        assert fact[3:] == (after[2], "superseded", after[0]), rows
    assert rows[-1][3:] == (None, None, None), rows


# -- two sessions ----------------------------------------------------------------------------------
def in_background(stack: Stack, cfg: Config, conn: psycopg.Connection,
                  statement: Callable[[], None]) -> tuple[threading.Thread, dict[str, object]]:
    """Run `statement` on `conn` in a thread and return once it waits for a lock (the thread,
    and where it leaves the error it ends with, if any)."""
    done: dict[str, object] = {}

    def run() -> None:
        try:
            statement()
        except psycopg.Error as exc:
            done["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 30
    with su(stack, cfg) as watcher:
        while watcher.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s",
                              (conn.info.backend_pid,)).fetchone() != ("Lock",):
            assert time.monotonic() < deadline and thread.is_alive(), done
            time.sleep(0.05)
    return thread, done


def test_two_sessions_writing_one_key_make_a_chain(stack: Stack, facts_db: Config) -> None:
    cfg = facts_db
    with login(cfg, "fact_ann") as first, login(cfg, "fact_ann") as second:
        first.execute("SELECT nexus.remember_fact('Lives in Austin', key => 'user.city')")

        def write() -> None:
            second.execute("SELECT nexus.remember_fact('Lives in Denver', key => 'user.city')")
            second.commit()

        # the second writer waits for the first (not for a row: for the key)
        thread, done = in_background(stack, cfg, second, write)
        first.commit()
        thread.join(30)
        assert "error" not in done, done
        rows = chain(first, "user.city")
    assert [r[1] for r in rows] == ["Lives in Austin", "Lives in Denver"]
    assert_valid_chain(rows)


def test_many_sessions_at_once_leave_one_fact_that_holds(stack: Stack, facts_db: Config) -> None:
    """Eight sessions, each writing the key 15 times, as fast as they can."""
    cfg = facts_db
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            with login(cfg, "fact_ann", autocommit=True) as conn:
                for i in range(15):
                    conn.execute("SELECT nexus.remember_fact(%s, key => 'user.mood')",
                                 (f"mood {n}-{i}",))
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    with login(cfg, "fact_ann") as conn:
        rows = chain(conn, "user.mood")
        holding = conn.execute("SELECT count(*) FROM nexus.get_fact(key => 'user.mood')").fetchone()
    assert len(rows) == 8 * 15 and holding == (1,)
    assert_valid_chain(rows)


def test_repeatable_read_writers_are_refused_not_merged(stack: Stack, facts_db: Config) -> None:
    """A writer whose snapshot predates the other's commit cannot see the fact it would end: it
    fails with a serialization failure (and succeeds when retried), never adds a second holder."""
    cfg = facts_db
    with login(cfg, "fact_ann", autocommit=True) as conn:
        conn.execute("SELECT nexus.remember_fact('Works at Acme', key => 'user.job')")
    rr = psycopg.IsolationLevel.REPEATABLE_READ
    with login(cfg, "fact_ann") as first, login(cfg, "fact_ann") as second:
        first.isolation_level = second.isolation_level = rr
        second.execute("SELECT 1")  # its snapshot, before the first writes
        first.execute("SELECT nexus.remember_fact('Works at Beta', key => 'user.job')")
        first.commit()
        with pytest.raises(psycopg.errors.SerializationFailure):
            second.execute("SELECT nexus.remember_fact('Works at Gamma', key => 'user.job')")
        second.rollback()
        second.execute("SELECT nexus.remember_fact('Works at Gamma', key => 'user.job')")
        second.commit()
        rows = chain(first, "user.job")
    assert [r[1] for r in rows] == ["Works at Acme", "Works at Beta", "Works at Gamma"]
    assert_valid_chain(rows)


def test_the_constraint_holds_without_the_functions(stack: Stack, facts_db: Config) -> None:
    """Two sessions inserting a holding fact of one key directly (no lock taken): the second
    waits for the first and is refused by the exclusion constraint once it commits."""
    cfg = facts_db
    insert = ("INSERT INTO nexus_memory.semantic_memories (content, fact_key) "
              "VALUES (%s, 'user.pet')")
    with login(cfg, "fact_ben") as first, login(cfg, "fact_ben") as second:
        first.execute(insert, ("Has a cat",))

        def write() -> None:
            try:
                second.execute(insert, ("Has a dog",))
            finally:
                second.rollback()

        thread, done = in_background(stack, cfg, second, write)
        first.commit()
        thread.join(30)
        assert isinstance(done.get("error"), psycopg.errors.ExclusionViolation), done
        assert [r[1] for r in chain(first, "user.pet")] == ["Has a cat"]


# -- a differential test against a reference model -----------------------------------------------
BASE = datetime(2020, 1, 1, tzinfo=UTC)
KEYS = ("user.city", "user.job", "user.diet", None)
TEXTS = ("Austin", "austin.", "Denver", "  DENVER ", "Boston", "Chicago!", "chicago")
_EDGE = f"[{re.escape(string.punctuation)}\\s]+"
_PUNCT_EDGES = re.compile(f"^{_EDGE}|{_EDGE}$")


def norm(text: str) -> str:
    """The normalisation of memory_system._fact_text_sha256, for ASCII text."""
    folded = _PUNCT_EDGES.sub("", re.sub(r"\s+", " ", text.lower()))
    return folded or text


@dataclass
class Fact:
    id: int
    key: str | None
    text: str
    start: datetime
    end: datetime | None = None
    ended_by: str | None = None
    successor: int | None = None

    def holds_at(self, t: datetime) -> bool:
        return self.start <= t and (self.end is None or self.end > t)

    def order(self) -> tuple:
        return (self.start, 0 if self.end == self.start else 1, self.id)


class Refused(Exception):  # noqa: N818 - a model's answer, not an error
    def __init__(self, sqlstate: str) -> None:
        self.sqlstate = sqlstate


@dataclass
class Model:
    """What the fact functions should do (docs/facts.md), written as plainly as possible."""
    facts: dict[int, Fact] = field(default_factory=dict)
    # what the sequence went through: restated, extended back, inserted into the past, ...
    seen: Counter[str] = field(default_factory=Counter)

    def _new(self, key: str | None, text: str, start: datetime) -> Fact:
        fact = Fact(len(self.facts) + 1, key, text, start)
        self.facts[fact.id] = fact
        return fact

    def history(self, key: str) -> list[Fact]:
        return sorted((f for f in self.facts.values() if f.key == key), key=Fact.order)

    def remember(self, key: str | None, text: str, t: datetime) -> int:
        if key is None:
            for f in sorted(self.facts.values(), key=lambda f: f.id):
                if f.key is None and f.end is None and norm(f.text) == norm(text):
                    return f.id
            return self._new(None, text, t).id
        held = [f for f in self.history(key) if f.holds_at(t)]
        old = held[0] if held else None
        if old is not None and norm(old.text) == norm(text):
            self.seen["restated"] += 1
            return old.id
        if old is not None:
            after = self.facts.get(old.successor) if old.ended_by == "superseded" else None
            nxt = after if after is not None and after.start == old.end else None
        else:
            later = [f for f in self.history(key) if f.start > t]
            nxt = later[0] if later else None
        if nxt is not None and norm(nxt.text) == norm(text):
            if old is not None:
                old.end, old.ended_by, old.successor = t, "superseded", nxt.id
            nxt.start = t
            self.seen["extended back"] += 1
            return nxt.id
        new = self._new(key, text, t)
        if (old is not None and old.end is not None) or (old is None and nxt is not None):
            self.seen["into the past"] += 1
        if old is not None:
            new.end, new.ended_by, new.successor = old.end, old.ended_by, old.successor
            old.end, old.ended_by, old.successor = t, "superseded", new.id
        elif nxt is not None:
            new.end, new.ended_by, new.successor = nxt.start, "superseded", nxt.id
        return new.id

    def _open(self, fact_id: int, t: datetime) -> Fact:
        fact = self.facts.get(fact_id)
        if fact is None:
            raise Refused("NX033")
        if fact.end is not None:
            raise Refused("NX038")
        if t < fact.start:
            raise Refused("NX037")
        return fact

    def supersede(self, fact_id: int, text: str, t: datetime) -> int:
        old = self._open(fact_id, t)
        if norm(old.text) == norm(text):
            return old.id
        new = self._new(old.key, text, t)
        old.end, old.ended_by, old.successor = t, "superseded", new.id
        return new.id

    def invalidate(self, fact_id: int, t: datetime) -> datetime:
        fact = self._open(fact_id, t)
        fact.end, fact.ended_by = t, "invalidated"
        return t


def _call(conn: psycopg.Connection, query: str, params: tuple) -> tuple[str, object]:
    try:
        return "ok", conn.execute(query, params).fetchone()[0]
    except psycopg.Error as exc:
        return "error", exc.sqlstate


def _check(conn: psycopg.Connection, model: Model, ids: dict[int, int], seed: int) -> None:
    db_of = ids.get
    for key in [k for k in KEYS if k is not None]:
        want = [(db_of(f.id), f.text, f.start, f.end, f.ended_by, db_of(f.successor))
                for f in model.history(key)]
        assert chain(conn, key) == want, (seed, key)
        now = [(db_of(f.id),) for f in model.history(key) if f.holds_at(datetime.now(UTC))]
        assert conn.execute("SELECT id FROM nexus.get_fact(key => %s)", (key,)).fetchall() == now
        edges = {t for f in model.history(key) for t in (f.start, f.end) if t is not None}
        for t in sorted({e + d for e in edges for d in (timedelta(microseconds=-1), timedelta(0))}):
            holds = [(db_of(f.id),) for f in model.history(key) if f.holds_at(t)]
            got = conn.execute("SELECT id FROM nexus.get_fact(key => %s, as_of => %s)", (key, t))
            assert got.fetchall() == holds, (seed, key, t)
    # unkeyed facts: the chain of what superseded what, from any of its facts
    for f in (f for f in model.facts.values() if f.key is None):
        links = {g.id: g.successor for g in model.facts.values() if g.key is None}
        members, todo = {f.id}, [f.id]
        while todo:
            at = todo.pop()
            for nxt in [links.get(at)] + [g for g, s in links.items() if s == at]:
                if nxt is not None and nxt not in members:
                    members.add(nxt)
                    todo.append(nxt)
        want = [db_of(g.id) for g in sorted((model.facts[m] for m in members), key=Fact.order)]
        got = conn.execute("SELECT id FROM nexus.fact_history(%s)", (db_of(f.id),)).fetchall()
        assert [r[0] for r in got] == want, (seed, f)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_fact_functions_agree_with_a_reference_model(facts_db: Config, seed: int) -> None:
    rng = random.Random(seed)
    model, ids = Model(), {}
    # ben's facts: ids ann must find "not found", exactly as ids that do not exist
    with login(facts_db, "fact_ben", autocommit=True) as ben:
        foreign = [ben.execute("SELECT nexus.remember_fact(%s, key => %s)",
                               (f"ben {k}", k)).fetchone()[0] for k in KEYS]
    with login(facts_db, "fact_ann", autocommit=True) as conn:
        for step in range(240):
            t = BASE + timedelta(minutes=rng.randrange(40))
            text = rng.choice(TEXTS)
            op = rng.random()
            if op < 0.6 or not ids:
                key = rng.choice(KEYS)
                query, params = ("SELECT nexus.remember_fact(%s, key => %s, valid_from => %s)",
                                 (text, key, t))
                predict = functools.partial(model.remember, key, text, t)
            else:
                holding = [ids[f.id] for f in model.facts.values() if f.end is None]
                target = rng.choice(holding if holding and rng.random() < 0.7
                                    else [*ids.values(), *foreign, -1])
                model_id = next((m for m, d in ids.items() if d == target), -1)
                if op < 0.8:
                    query, params = ("SELECT nexus.remember_fact(%s, supersedes => %s, "
                                     "valid_from => %s)", (text, target, t))
                    predict = functools.partial(model.supersede, model_id, text, t)
                else:
                    query, params = "SELECT nexus.invalidate_fact(%s, at => %s)", (target, t)
                    predict = functools.partial(model.invalidate, model_id, t)
            try:
                expect = predict()
            except Refused as refused:
                assert _call(conn, query, params) == ("error", refused.sqlstate), (seed, step)
                model.seen[refused.sqlstate] += 1
                continue
            outcome = _call(conn, query, params)
            assert outcome[0] == "ok", (seed, step, outcome)
            if isinstance(expect, datetime):
                assert outcome[1] == expect, (seed, step)
            elif expect in ids:
                assert outcome[1] == ids[expect], (seed, step, "the same fact")
            else:
                assert outcome[1] not in ids.values(), (seed, step, "a new fact")
                ids[expect] = outcome[1]
            if step % 40 == 39:
                _check(conn, model, ids, seed)
        _check(conn, model, ids, seed)
        # the sequence went through every case
        model.seen.update(f.ended_by for f in model.facts.values() if f.ended_by)
        assert set(model.seen) == {"restated", "extended back", "into the past", "superseded",
                                   "invalidated", "NX033", "NX037", "NX038"}, model.seen


# -- an upgraded database ------------------------------------------------------------------------
def test_facts_of_an_older_release_hold_from_when_they_were_recorded(stack: Stack,
                                                                     tmp_path: Path) -> None:
    """Upgraded from the last release point: every fact holds from its created_at, has no key,
    and the functions take it from there (a restated fact is it; a key starts a chain)."""
    release = sorted(p.name.removesuffix(".tar.gz") for p in UPGRADE_FIXTURES.glob("*.tar.gz"))[-1]
    with tarfile.open(UPGRADE_FIXTURES / f"{release}.tar.gz") as tar:
        tar.extractall(tmp_path, filter="data")
    cfg = replace(stack.cfg, database="nexus_facts_upgrade")
    params = {"host": cfg.pg_host, "port": str(cfg.pg_port), "dbname": cfg.database,
              "user": SUPERUSER, "password": superuser_password(stack)}
    with stack.superuser_conn("postgres", autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(cfg.database)))
    added: list[str] = []
    try:
        migrate.migrate(params, root=tmp_path)
        with su(stack, cfg) as conn:
            conn.execute((UPGRADE_FIXTURES / f"{release}.sql").read_text())
            added = [r[0] for r in conn.execute("SELECT agent_id FROM memory_system.agents")]
            before = conn.execute("SELECT agent_id, id, content, created_at "
                                  "FROM nexus_memory.semantic_memories ORDER BY id").fetchall()
        assert before
        migrate.migrate(params)
        with su(stack, cfg) as conn:
            after = conn.execute(
                "SELECT agent_id, id, content, valid_from, fact_key, valid_to, ended_by "
                "FROM nexus_memory.semantic_memories ORDER BY id").fetchall()
            assert after == [(*r[:3], r[3], None, None, None) for r in before]
            agent, fact_id, content, _ = before[0]
            conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(agent)))
            again = conn.execute("SELECT nexus.remember_fact(%s)", (content.upper(),)).fetchone()
            assert again == (fact_id,)
            keyed = conn.execute("SELECT nexus.remember_fact('x', key => 'k'), "
                                 "nexus.remember_fact('y', key => 'k')").fetchone()
            assert [r[0] for r in chain(conn, "k")] == list(keyed)
    finally:
        drop_database(stack, cfg.database)
        with stack.superuser_conn("postgres", autocommit=True) as conn:
            for agent in added:
                conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(agent)))
