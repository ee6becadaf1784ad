"""The embedding queue across real sessions: SKIP LOCKED, visibility, leases, NOTIFY, load.

Vectors are made up (FAKE_VECTOR): these tests are about the queue, not the model.
"""

from __future__ import annotations

import threading

import psycopg
import pytest

from conftest import connect_as
from nexus import agents, secrets
from nexus.config import SUPERUSER, WORKER, Config

FAKE_VECTOR = "[" + ",".join(["1"] + ["0"] * 383) + "]"
MODEL = "sentence-transformers/all-MiniLM-L6-v2"


def su(cfg: Config, **kwargs: object) -> psycopg.Connection:
    return connect_as(cfg, SUPERUSER, secrets.password(cfg, SUPERUSER), **kwargs)


def worker(cfg: Config, **kwargs: object) -> psycopg.Connection:
    return connect_as(cfg, WORKER, secrets.password(cfg, WORKER), **kwargs)


def claim(conn: psycopg.Connection, worker_id: str, limit: int = 10,
          lease: str = "5 minutes") -> list[tuple]:
    return conn.execute(
        "SELECT item_id, content_sha256, retry_count FROM memory_system.claim_batch(%s, %s, %s)",
        (worker_id, limit, lease)).fetchall()


def complete(conn: psycopg.Connection, worker_id: str, items: list[tuple]) -> tuple:
    return conn.execute(
        "SELECT * FROM memory_system.complete_batch(%s, %s, %s::vector[], %s, %s)",
        (worker_id, [i[0] for i in items], [FAKE_VECTOR] * len(items), [i[1] for i in items],
         MODEL)).fetchone()


@pytest.fixture
def agent_db(fresh_db: Config):
    with su(fresh_db, autocommit=True) as conn:
        name = f"qagent{fresh_db.database.removeprefix('nexus_t')}"
        agents.add(conn, fresh_db, name)
    return fresh_db, name


def insert_episodes(cfg: Config, n: int) -> None:
    with su(cfg) as conn:
        conn.execute(
            "INSERT INTO nexus_memory.zep_episodic_memory (agent_id, content) "
            "SELECT (SELECT min(agent_id) FROM memory_system.agents), 'episode ' || g "
            "FROM generate_series(1, %s) AS g", (n,))


def test_two_claimers_never_get_the_same_item(agent_db) -> None:
    cfg, _ = agent_db
    insert_episodes(cfg, 20)
    with worker(cfg) as a, worker(cfg) as b:
        first = claim(a, "a", 8)           # a's transaction stays open: its rows stay locked
        second = claim(b, "b", 50)
        assert len(first) == 8 and len(second) == 12
        assert not {i[0] for i in first} & {i[0] for i in second}
        b.commit()
        a.rollback()                        # a never committed: its claim is undone
        third = claim(b, "b", 50)
        b.commit()
        assert {i[0] for i in third} == {i[0] for i in first}


def test_work_of_an_uncommitted_insert_is_invisible(agent_db) -> None:
    cfg, name = agent_db
    path = cfg.agent_secret_file(name)
    with connect_as(cfg, name, secrets.read(path)) as author, worker(cfg, autocommit=True) as w:
        author.execute("INSERT INTO nexus_memory.zep_episodic_memory (content) VALUES ('draft')")
        assert claim(w, "w") == []
        author.commit()
        assert len(claim(w, "w")) == 1


def test_an_expired_lease_is_reclaimed_and_the_late_result_refused(agent_db) -> None:
    cfg, _ = agent_db
    insert_episodes(cfg, 1)
    with worker(cfg, autocommit=True) as w, su(cfg, autocommit=True) as conn:
        crashed = claim(w, "crashed", 1, "1 hour")
        assert claim(w, "rescuer") == []     # still leased
        # the lease runs out (on purpose, not by waiting: a stalled machine must not decide)
        conn.execute("UPDATE memory_system.embeddings_queue "
                     "SET lease_expires_at = now() - interval '1 second' "
                     "WHERE lease_owner = 'crashed'")
        rescued = claim(w, "rescuer")
        assert [r[0] for r in rescued] == [crashed[0][0]]
        assert rescued[0][2] == 1, "an expired lease counts as a failed try"
        assert complete(w, "crashed", crashed) == (0, 0, 1)
        assert complete(w, "rescuer", rescued) == (1, 0, 0)
    with su(cfg) as conn:
        assert conn.execute("SELECT state FROM memory_system.embeddings_queue").fetchall() == [
            ("done",)]


def test_enqueue_notifies_listening_workers(agent_db) -> None:
    cfg, name = agent_db
    with worker(cfg, autocommit=True) as listener:
        listener.execute("LISTEN nexus_embeddings")
        insert_episodes(cfg, 3)
        received = list(listener.notifies(timeout=10, stop_after=1))
    assert [n.channel for n in received] == ["nexus_embeddings"]


def test_four_concurrent_claimers_complete_every_item_exactly_once(agent_db) -> None:
    cfg, _ = agent_db
    total = 10_000
    insert_episodes(cfg, total)
    done: dict[str, list[int]] = {}
    errors: list[BaseException] = []

    def run(worker_id: str) -> None:
        mine: list[int] = []
        try:
            with worker(cfg, autocommit=True) as conn:
                while items := claim(conn, worker_id, 64):
                    written, stale, lost = complete(conn, worker_id, items)
                    assert (written, stale, lost) == (len(items), 0, 0)
                    mine += [i[0] for i in items]
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
        done[worker_id] = mine

    threads = [threading.Thread(target=run, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    all_ids = [i for ids in done.values() for i in ids]
    assert len(all_ids) == len(set(all_ids)) == total, "an item was completed twice or not at all"
    assert all(done.values()), "every claimer got work"
    with su(cfg) as conn:
        states = conn.execute(
            "SELECT state, count(*) FROM memory_system.embeddings_queue GROUP BY state").fetchall()
        assert states == [("done", total)]
        embedded = conn.execute(
            "SELECT count(*) FROM nexus_memory.zep_episodic_memory AS e "
            "JOIN nexus_memory.episode_embeddings AS x "
            "  ON x.agent_id = e.agent_id AND x.episode_id = e.id "
            "WHERE x.content_sha256 = e.content_sha256").fetchone()[0]
        assert embedded == total
