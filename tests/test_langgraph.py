"""NexusStore, LangGraph's BaseStore on NEXUS, against the real database, worker and model:

- differential: seeded random sequences of put/get/delete/search-with-filter/list_namespaces run
  against LangGraph's own InMemoryStore and NexusStore give the same items (in the same order
  where the order is defined: namespaces sorted; searches without a query newest first, which the
  test knows from its own put sequence since InMemoryStore keeps insertion order);
- isolation of two agents with the same namespaces and keys (store, memory_search, direct SQL),
  and an orchestrator pool (SET LOCAL ROLE in each batch's transaction; a failed batch undone);
- hybrid: found by a rare word before the worker embeds it, by meaning after; by text only, and
  logged, when no sidecar answers or it refuses the query;
- TTL: invisible once expired, refreshed on read, swept by the worker with texts and vectors;
- a real LangGraph graph (a node that writes, a node that searches) with store=NexusStore.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import random
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout
from pathlib import Path
from typing import Any, TypedDict

import psycopg
import pytest
from langgraph.graph import END, START, StateGraph
from langgraph.store.base import BaseStore, GetOp, ListNamespacesOp, MatchCondition, PutOp, SearchOp
from langgraph.store.memory import InMemoryStore
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from conftest import clone_template, drop_database
from nexus import agents
from nexus.client import embed, vector_literal
from nexus.config import APP, Config
from nexus.dsn import role_dsn
from nexus.langgraph import AsyncNexusStore, NexusIndexConfig, NexusStore, StoreInputError
from nexus.stack import Stack
from tests.helpers import start_worker, stop, su, wait_for

# labels that a careless prefix match confuses: foo/foobar, LIKE wildcards, non-ASCII
LABELS = ["foo", "foobar", "fo", "a%b", "a_b", "axb", "ünï", "日本"]
KEYS = ["k1", "k2", "k10", "k%", "kü"]
WORDS = ["storm", "harbour", "invoice", "bread", "cluster", "cat", "windowsill", "memory"]


def dsn_of(cfg: Config, agent: str) -> str:
    return agents.dsn(cfg, agent)


@pytest.fixture
def agent_db(fresh_db: Config) -> Config:
    with su(fresh_db) as conn:
        for name in ("alice", "bob"):
            agents.add(conn, fresh_db, name)
    return fresh_db


# -- differential ----------------------------------------------------------------------------
def random_namespace(rng: random.Random) -> tuple[str, ...]:
    return tuple(rng.choice(LABELS) for _ in range(rng.randint(1, 3)))


def random_value(rng: random.Random) -> dict[str, Any]:
    value: dict[str, Any] = {"n": rng.randint(0, 20), "s": rng.choice(["9", "10", "x", "é"]),
                             "text": " ".join(rng.sample(WORDS, 3)),
                             "tags": rng.sample(WORDS, rng.randint(0, 2))}
    if rng.random() < 0.5:
        value["m"] = rng.choice(["a", "b"])
    return value


def random_filter(rng: random.Random) -> dict[str, Any] | None:
    # only filters InMemoryStore evaluates without error and as LangGraph defines them: range
    # operators on "n", which every value holds as a number (numbers compare as numbers: 9 < 10)
    return rng.choice([
        None,
        {"n": {rng.choice(["$gt", "$gte", "$lt", "$lte"]): rng.randint(0, 20)}},
        {"n": {"$gte": 5, "$lt": 15}},
        {"n": rng.randint(0, 20)},
        {"s": rng.choice(["9", "10"])},
        {"s": {"$ne": "x"}},
        {"m": {"$ne": "a"}},
        {"m": {"$eq": "b"}, "n": {"$gt": 3}},
    ])


def random_pattern(rng: random.Random) -> tuple[str, ...]:
    return tuple(rng.choice([*LABELS, "*"]) for _ in range(rng.randint(1, 2)))


def keys_of(results: list) -> list[tuple[tuple[str, ...], str]]:
    return [(item.namespace, item.key) for item in results]


def forget_empty_namespaces(reference: InMemoryStore) -> None:
    """InMemoryStore keeps a namespace in its dict of namespaces once it was read or all its items
    were deleted, and lists it: a quirk of its dict, not what a namespace is (one that holds
    items). Drop those before comparing."""
    for namespace in [ns for ns, items in reference._data.items() if not items]:
        del reference._data[namespace]


def run_differential(store: NexusStore, seed: int, steps: int) -> None:
    rng = random.Random(seed)
    reference = InMemoryStore()
    last_put: dict[tuple[tuple[str, ...], str], int] = {}
    for step in range(steps):
        forget_empty_namespaces(reference)
        roll = rng.random()
        ns, key = random_namespace(rng), rng.choice(KEYS)
        where = f"seed {seed} step {step}"
        if roll < 0.40:
            value = random_value(rng)
            for s in (store, reference):
                s.put(ns, key, value)
            last_put[(ns, key)] = step
        elif roll < 0.48:
            for s in (store, reference):
                s.delete(ns, key)
            last_put.pop((ns, key), None)
        elif roll < 0.60:
            got, want = store.get(ns, key), reference.get(ns, key)
            assert (got and got.value) == (want and want.value), where
        elif roll < 0.85:
            prefix = random_namespace(rng)[:rng.randint(0, 2)]
            flt, limit, offset = random_filter(rng), rng.randint(1, 6), rng.randint(0, 4)
            everything = reference.search(prefix, filter=flt, limit=10_000)
            # newest put first: the order NexusStore promises (InMemoryStore keeps insertion order)
            everything.sort(key=lambda i: -last_put[(i.namespace, i.key)])
            want = everything[offset:offset + limit]
            got = store.search(prefix, filter=flt, limit=limit, offset=offset)
            assert keys_of(got) == keys_of(want), f"{where}: search {prefix} {flt} {limit}/{offset}"
            assert [i.value for i in got] == [i.value for i in want], where
        elif roll < 0.95:
            options: dict[str, Any] = {"limit": rng.randint(1, 20), "offset": rng.randint(0, 3)}
            if rng.random() < 0.5:
                options["prefix"] = random_pattern(rng)
            if rng.random() < 0.3:
                options["suffix"] = random_pattern(rng)
            if rng.random() < 0.4:
                options["max_depth"] = rng.randint(1, 2)
            assert store.list_namespaces(**options) == reference.list_namespaces(**options), \
                f"{where}: list_namespaces {options}"
        else:
            # one batch: reads before writes, the last put of a key wins
            value1, value2 = random_value(rng), random_value(rng)
            # (the listing before the get: InMemoryStore's get adds the namespace to its dict)
            ops = [PutOp(ns, key, value1), ListNamespacesOp(match_conditions=(
                       MatchCondition("prefix", ns[:1]),)), SearchOp(ns, limit=50),
                   GetOp(ns, key), PutOp(ns, key, value2)]
            got, want = store.batch(ops), reference.batch(ops)
            assert got[1] == want[1], where
            assert sorted(keys_of(got[2])) == sorted(keys_of(want[2])), where
            assert (got[3] and got[3].value) == (want[3] and want[3].value), where
            last_put[(ns, key)] = step
    # and at the end, everything
    forget_empty_namespaces(reference)
    assert sorted(keys_of(store.search((), limit=1000))) == \
        sorted(keys_of(reference.search((), limit=1000)))
    assert store.list_namespaces(limit=1000) == reference.list_namespaces(limit=1000)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_differential_against_in_memory_store(agent_db: Config, seed: int) -> None:
    with NexusStore(dsn_of(agent_db, "alice"), index={"fields": ["text", "tags[*]"]},
                    embed_url=None) as store:
        run_differential(store, seed, steps=300)


def test_bad_input_is_a_clear_error(agent_db: Config) -> None:
    with NexusStore(dsn_of(agent_db, "alice"), embed_url=None) as store:
        with pytest.raises(StoreInputError) as err:
            store.search(("a",), filter={"n": {"$in": [1, 2]}})
        assert err.value.sqlstate == "NX061"
        with pytest.raises(StoreInputError) as err:
            store.search(("a",), limit=5000)
        assert err.value.sqlstate == "NX060"
        store.put(("a",), "k", {"x": 1})
        assert store.get(("a",), "k").value == {"x": 1}  # the failed batches wrote nothing bad
    with pytest.raises(ValueError, match="dims"):
        NexusStore(dsn_of(agent_db, "alice"), index={"dims": 1536, "fields": ["text"]})
    with pytest.raises(ValueError, match="embed"):
        NexusStore(dsn_of(agent_db, "alice"), index={"embed": lambda texts: [], "dims": 384})


def test_without_a_sidecar_search_is_by_text_and_logged_once(
        agent_db: Config, caplog: pytest.LogCaptureFixture) -> None:
    with NexusStore(dsn_of(agent_db, "alice"), index={"fields": ["text"]},
                    embed_url="http://127.0.0.1:9") as store:
        store.put(("kb",), "storm", {"text": "the harbour storm"})
        with caplog.at_level(logging.WARNING, logger="nexus.langgraph"):
            for _ in range(2):
                assert [h.key for h in store.search(("kb",), query="storm")] == ["storm"]
    [record] = caplog.records
    assert "not reachable" in record.getMessage()
    assert record.getMessage().endswith("; searching text only")


# -- isolation -------------------------------------------------------------------------------
def test_two_agents_never_see_each_other(agent_db: Config) -> None:
    app_dsn = role_dsn(agent_db, APP, agent_db.secret_file(APP))
    index: NexusIndexConfig = {"fields": ["text"]}
    with NexusStore(dsn_of(agent_db, "alice"), index=index, embed_url=None) as alice, \
            ConnectionPool(app_dsn, min_size=1, max_size=1) as pool:
        bob = NexusStore(pool=pool, agent="bob", index=index, embed_url=None)
        for store, who in ((alice, "alice"), (bob, "bob")):
            store.put(("users", "u1"), "profile", {"owner": who, "text": f"secret of {who}"})
        assert alice.get(("users", "u1"), "profile").value["owner"] == "alice"
        assert bob.get(("users", "u1"), "profile").value["owner"] == "bob"
        assert [i.value["owner"] for i in bob.search(("users",), query="secret")] == ["bob"]
        assert [i.value["owner"] for i in alice.search(())] == ["alice"]
        bob.delete(("users", "u1"), "profile")
        assert alice.get(("users", "u1"), "profile") is not None
        # a batch is one transaction: a put that fails (a value over 1 MiB) undoes the other
        with pytest.raises(StoreInputError) as err:
            bob.batch([PutOp(("users", "u2"), "a", {"x": 1}),
                       PutOp(("users", "u2"), "b", {"x": "y" * (1 << 20)})])
        assert err.value.sqlstate == "NX011" and bob.get(("users", "u2"), "a") is None
        # the pooled connection is nexus_app again between batches, failed ones too
        with pool.connection() as conn:
            assert conn.execute("SELECT current_user").fetchone()[0] == APP
    with psycopg.connect(dsn_of(agent_db, "bob"), autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM nexus_memory.store_items").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM nexus_memory.store_texts").fetchone()[0] == 0
        hits = conn.execute("SELECT count(*) FROM nexus.memory_search(query => 'secret', "
                            "kinds => '{store}')").fetchone()[0]
        assert hits == 0
    with psycopg.connect(dsn_of(agent_db, "alice"), autocommit=True) as conn:
        rows = conn.execute("SELECT kind, content FROM nexus.memory_search(query => 'secret', "
                            "kinds => '{store}')").fetchall()
        assert rows == [("store", "secret of alice")]


def test_async_store_with_an_orchestrator_pool(agent_db: Config) -> None:
    app_dsn = role_dsn(agent_db, APP, agent_db.secret_file(APP))

    async def scenario() -> None:
        async with AsyncConnectionPool(app_dsn, min_size=1, max_size=2, open=False) as pool, \
                AsyncNexusStore(pool=pool, agent="alice", index={"fields": ["text"]},
                                embed_url=None) as store:
            await store.aput(("notes",), "n1", {"text": "the harbour storm"})
            await store.aput(("notes",), "n2", {"text": "bread recipe"})
            item = await store.aget(("notes",), "n1")
            assert item is not None and item.value == {"text": "the harbour storm"}
            hits = await store.asearch(("notes",), query="storm")
            assert [h.key for h in hits] == ["n1"] and hits[0].score is not None
            assert await store.alist_namespaces() == [("notes",)]
            async with pool.connection() as conn:
                cur = await conn.execute("SELECT current_user")
                assert (await cur.fetchone())[0] == APP

    asyncio.run(scenario())


# -- with the worker and the real model: hybrid, TTL and its sweep, a LangGraph graph ------------
@pytest.fixture(scope="module")
def served(stack: Stack) -> Iterator[tuple[Config, str, subprocess.Popen]]:
    """A database of this module with agent `aria` and a running worker (heartbeat every second,
    so its TTL sweep runs often); yields the config, the sidecar's URL and the worker process."""
    cfg = clone_template(stack, "nexus_langgraph")
    with su(cfg) as conn:
        agents.add(conn, cfg, "aria")
    proc, port = start_worker(cfg, NEXUS_WORKER_HEARTBEAT_SECONDS="1",
                              NEXUS_WORKER_LEASE_SECONDS="30")
    try:
        yield cfg, f"http://127.0.0.1:{port}", proc
    finally:
        stop(proc)
        drop_database(stack, cfg.database)


def embedded_all(cfg: Config) -> bool:
    with su(cfg) as conn:
        return conn.execute(
            "SELECT count(*) = 0 FROM nexus_memory.store_texts AS t WHERE NOT EXISTS ("
            " SELECT FROM nexus_memory.store_text_embeddings AS x"
            "  WHERE x.text_id = t.id AND x.content_sha256 = t.content_sha256)").fetchone()[0]


@contextmanager
def paused(proc: subprocess.Popen) -> Iterator[None]:
    """The worker stopped (SIGSTOP): nothing is embedded until the block ends."""
    os.kill(proc.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(proc.pid, signal.SIGCONT)


def vector_hits(cfg: Config, vector: list[float]) -> list[str]:
    """The keys the vector branch alone finds under kb, as aria."""
    with psycopg.connect(dsn_of(cfg, "aria"), autocommit=True) as conn:
        rows = conn.execute("SELECT key FROM nexus.store_search('{kb}', query_embedding => "
                            "%s::public.vector)", (vector_literal(vector),)).fetchall()
    return [r[0] for r in rows]


def test_hybrid_rare_word_before_embedding_meaning_after(
        served: tuple[Config, str, subprocess.Popen]) -> None:
    cfg, url, proc = served
    weather = embed("bad weather at sea", url)
    index: NexusIndexConfig = {"fields": ["text"]}
    # the paused worker serves no /embed either: searches meanwhile are by text only
    with NexusStore(dsn_of(cfg, "aria"), index=index, embed_url=url) as store, \
            NexusStore(dsn_of(cfg, "aria"), index=index, embed_url=None) as text_only:
        with paused(proc):
            store.put(("kb",), "storm", {"text": "A violent gale sank two fishing boats near "
                                                 "the quay of Zyxwv harbour."})
            store.put(("kb",), "bread", {"text": "Knead the dough for ten minutes, then let it "
                                                 "rise."})
            assert not embedded_all(cfg)
            hits = text_only.search(("kb",), query="zyxwv")
            assert [h.key for h in hits] == ["storm"], "found by the rare word, before any vector"
        wait_for(lambda: embedded_all(cfg))
        # words the item does not contain: only its vector can find it
        hits = store.search(("kb",), query="bad weather at sea", limit=1)
        assert [h.key for h in hits] == ["storm"]
        assert vector_hits(cfg, weather) == ["storm", "bread"]
        # a re-put replaces the text: until it is embedded again, its old vector is not used
        with paused(proc):
            store.put(("kb",), "storm", {"text": "Sourdough starter needs feeding every day."})
            assert vector_hits(cfg, weather) == ["bread"]
            assert [h.key for h in text_only.search(("kb",), query="sourdough")] == ["storm"]
        wait_for(lambda: embedded_all(cfg))
        assert vector_hits(cfg, embed("feeding a sourdough culture", url))[0] == "storm"


def test_ttl_expiry_refresh_and_sweep(served: tuple[Config, str, subprocess.Popen]) -> None:
    cfg, url, _ = served
    with NexusStore(dsn_of(cfg, "aria"), index={"fields": ["text"]}, embed_url=url,
                    ttl={"refresh_on_read": True}) as store:
        store.put(("tmp",), "a", {"text": "ephemeral butterfly"}, ttl=60)
        store.put(("tmp",), "b", {"text": "another butterfly"}, ttl=60)
        wait_for(lambda: embedded_all(cfg))
        with su(cfg) as conn:
            conn.execute("UPDATE nexus_memory.store_items SET expires_at = clock_timestamp()"
                         " + interval '1 minute' WHERE namespace = '{tmp}'")
        assert store.get(("tmp",), "a", refresh_ttl=False) is not None
        with su(cfg) as conn:
            before = dict(conn.execute("SELECT key, expires_at FROM nexus_memory.store_items"
                                       " WHERE namespace = '{tmp}'").fetchall())
        store.get(("tmp",), "a")  # refresh_on_read: a read pushes its expiry an hour ahead
        with su(cfg) as conn:
            after = dict(conn.execute("SELECT key, expires_at FROM nexus_memory.store_items"
                                      " WHERE namespace = '{tmp}'").fetchall())
            assert after["a"] > before["a"] and after["b"] == before["b"]
            conn.execute("UPDATE nexus_memory.store_items SET expires_at = clock_timestamp()"
                         " - interval '1 second' WHERE namespace = '{tmp}' AND key = 'b'")
        assert store.get(("tmp",), "b") is None, "expired: absent at once"
        assert [h.key for h in store.search(("tmp",), query="butterfly")] == ["a"]

        def swept() -> bool:
            with su(cfg) as conn:
                return conn.execute(
                    "SELECT NOT EXISTS (SELECT FROM nexus_memory.store_items WHERE key = 'b'"
                    "                      AND namespace = '{tmp}')"
                    "   AND (SELECT count(*) FROM nexus_memory.store_texts) ="
                    "       (SELECT count(*) FROM nexus_memory.store_text_embeddings)"
                    "   AND NOT EXISTS (SELECT FROM nexus_memory.store_texts AS t"
                    "        LEFT JOIN nexus_memory.store_items AS i ON i.id = t.item_id"
                    "        WHERE i.id IS NULL)").fetchone()[0]
        wait_for(swept, timeout=60)
        assert store.get(("tmp",), "a") is not None


def test_a_query_the_sidecar_refuses_is_searched_by_text(
        served: tuple[Config, str, subprocess.Popen], caplog: pytest.LogCaptureFixture) -> None:
    cfg, url, _ = served
    with NexusStore(dsn_of(cfg, "aria"), index={"fields": ["text"]}, embed_url=url) as store:
        store.put(("refused",), "k", {"text": "quokka sightings"})
        with caplog.at_level(logging.WARNING, logger="nexus.langgraph"):
            hits = store.search(("refused",), query="quokka " * 2000)  # over 8,192 characters
    assert [h.key for h in hits] == ["k"]
    assert "refused" in caplog.text and "searching text only" in caplog.text


class State(TypedDict):
    user: str
    message: str
    recalled: list[str]


def test_a_langgraph_graph_with_nexus_store(
        served: tuple[Config, str, subprocess.Popen]) -> None:
    cfg, url, _ = served

    def remember(state: State, *, store: BaseStore) -> dict[str, Any]:
        store.put(("memories", state["user"]), f"m{len(state['message'])}",
                  {"content": state["message"]})
        return {}

    def recall(state: State, *, store: BaseStore) -> dict[str, Any]:
        hits = store.search(("memories", state["user"]), query="what does the user like?")
        return {"recalled": [h.value["content"] for h in hits]}

    builder = StateGraph(State)
    builder.add_node("remember", remember)
    builder.add_node("recall", recall)
    builder.add_edge(START, "remember")
    builder.add_edge("remember", "recall")
    builder.add_edge("recall", END)
    with NexusStore(dsn_of(cfg, "aria"), index={"fields": ["content"]}, embed_url=url) as store:
        graph = builder.compile(store=store)
        out = graph.invoke({"user": "u7", "message": "I like green tea", "recalled": []})
        assert out["recalled"] == ["I like green tea"]
        out = graph.invoke({"user": "u8", "message": "The user likes jazz", "recalled": []})
        assert out["recalled"] == ["The user likes jazz"], "another user's namespace is apart"
        assert store.list_namespaces(prefix=("memories",)) == [("memories", "u7"),
                                                               ("memories", "u8")]


def test_the_readme_example_runs(agent_db: Config) -> None:
    """The README's "Use with LangGraph" block, as a user would paste it (text-only search: no
    sidecar runs for this database)."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("## Use with LangGraph", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    code = code.replace("NexusStore(dsn, ", "NexusStore(dsn, embed_url=None, ")
    out = io.StringIO()
    with redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {"dsn": dsn_of(agent_db, "alice")})  # noqa: S102
    assert "The user likes green tea" in out.getvalue()
