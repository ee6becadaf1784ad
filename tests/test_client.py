"""The Python client (nexus.client): one method per nexus.* function (checked against the catalog),
typed results and errors, an orchestrator pool whose SET ROLE never outlives a call, several calls
in one transaction, and search() through the sidecar's /embed with the real model, or by text only
without it at every door (client, asyncio client, MCP recall, `nexus search`)."""

from __future__ import annotations

import asyncio
import inspect
import json
import subprocess
from datetime import datetime, timedelta

import aiohttp
import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from conftest import NEXUS
from nexus import (
    AsyncMemory,
    Conflict,
    InvalidInput,
    Memory,
    NotFound,
    agents,
    client,
    config,
    secrets,
)
from nexus.config import APP, Config
from nexus.mcp import NexusMCP
from nexus.stack import resolve_home
from tests.helpers import su, wait_for, worker_env

OFFLINE = "http://127.0.0.1:9"  # nothing answers there: no sidecar


def app_conninfo(cfg: Config) -> str:
    return psycopg.conninfo.make_conninfo(
        host=cfg.pg_host, port=cfg.pg_port, dbname=cfg.database, user=APP,
        password=secrets.read(cfg.secret_file(APP)))


@pytest.fixture
def two_agents(fresh_db: Config) -> Config:
    with su(fresh_db) as conn:
        agents.add(conn, fresh_db, "ann", "")
        agents.add(conn, fresh_db, "ben", "")
    return fresh_db


def test_every_api_function_has_a_method(fresh_db: Config) -> None:
    """A nexus.* function without a method (or with other parameters) fails here."""
    with su(fresh_db) as conn:
        catalog = client.read_catalog(conn)
    assert {"record_episode", "memory_search", "consensus_cas"} <= set(catalog)
    assert set(client.RESULTS) == set(catalog), "RESULTS must name every API function"
    for cls in (Memory, AsyncMemory):
        for name, sig in catalog.items():
            method = getattr(cls, name, None)
            assert method is not None, f"{cls.__name__} has no method for nexus.{name}"
            params = list(inspect.signature(method).parameters.values())[1:]
            assert [p.name for p in params] == [p.name for p in sig.params], (cls, name)
            # a parameter with an SQL default is optional, and left out unless given
            assert [p.default is client.DEFAULT for p in params] == \
                   [p.has_default for p in sig.params], (cls, name)
            assert inspect.iscoroutinefunction(method) == (cls is AsyncMemory)


def test_typed_results_and_errors(two_agents: Config) -> None:
    cfg = two_agents
    with Memory(agents.dsn(cfg, "ben")) as ben:
        bens = ben.record_episode("ben's secret plan", tags=["plan"])
    with Memory(agents.dsn(cfg, "ann")) as ann:
        assert ann.current_agent() == "ann"
        first = ann.record_episode("The user likes tea", metadata={"mood": "calm"}, tags=["pref"],
                                   importance=0.75)
        episode = ann.get_episode(first)
        assert isinstance(episode, client.Episode)
        assert (episode.content, episode.metadata, episode.tags) == \
               ("The user likes tea", {"mood": "calm"}, ["pref"])
        assert episode.importance == pytest.approx(0.75) and episode.action_type == "observation"
        ann.update_episode(first, content="The user likes green tea")
        assert ann.get_episode(first).content == "The user likes green tea"
        assert [e.id for e in ann.recent_episodes(limit_n=5)] == [first]
        fact = ann.remember_fact("tea is green", source_episode_id=first)
        [got] = ann.get_fact(fact)
        assert isinstance(got, client.Fact) and got.source_episode_id == first and got.is_current

        assert ann.working_memory_set("goal", {"step": 1}, ttl=timedelta(hours=1)) is not None
        assert ann.working_memory_set("plain", [1, 2]) is None
        assert ann.working_memory_get("goal") == {"step": 1}
        assert [k.key for k in ann.working_memory_keys()] == ["goal", "plain"]
        assert ann.working_memory_delete("plain") is True

        cp = ann.save_checkpoint({"x": 1}, name="n1")
        loaded = ann.load_checkpoint("n1")
        assert loaded is not None and (loaded.id, loaded.state) == (cp, {"x": 1})
        assert ann.load_checkpoint("nope") is None
        assert [c.id for c in ann.list_checkpoints()] == [cp]

        assert ann.consensus_cas("leader", 0, "ann") == 1
        entry = ann.consensus_read("leader")
        assert entry is not None and (entry.value, entry.version, entry.updated_by) == \
               ("ann", 1, "ann")
        with pytest.raises(Conflict) as conflict:
            ann.consensus_cas("leader", 0, "again")
        assert conflict.value.code == "NX035" and conflict.value.current_version == 1

        # another agent's id is simply not found
        with pytest.raises(NotFound) as missing:
            ann.get_episode(bens)
        assert missing.value.code == "NX033"
        assert ann.delete_episode(bens) is False
        with pytest.raises(InvalidInput) as bad:
            ann.recent_episodes(limit_n=0)
        assert bad.value.code == "NX031" and isinstance(bad.value, ValueError)
        # PostgreSQL's own errors are not wrapped
        with pytest.raises(psycopg.errors.InvalidDatetimeFormat):
            ann.working_memory_set("k", 1, ttl="banana")
        # an argument left out takes the SQL default; None is NULL (here: an exact BM25 search)
        hits = ann.memory_search(query="green tea", df_budget=None)
        assert {(h.kind, h.id) for h in hits} == {("episode", first), ("semantic", fact)}
        stats = {s.kind: s for s in ann.memory_stats()}
        assert stats["episode"].total == 1 and stats["checkpoint"].total == 1
        with pytest.raises(TypeError):
            ann.call("record_episode", content="x", no_such=1)
        assert ann.delete_fact(fact) is True

        # the store: typed items, hits and namespaces; another agent's keys are not seen
        ann.store_put(["notes", "u1"], "k1", {"text": "ann's kettle", "n": 1},
                      texts={"text": "ann's kettle"})
        item = ann.store_get(["notes", "u1"], "k1")
        assert isinstance(item, client.StoreItem) and item.value == {"text": "ann's kettle", "n": 1}
        assert ann.store_get(["notes", "u1"], "nope") is None
        found = ann.store_search(["notes"], query="kettle", filter={"n": {"$gte": 1}})
        assert [(h.namespace, h.key, h.text_rank) for h in found] == [(["notes", "u1"], "k1", 1)]
        assert [n.namespace for n in ann.store_list_namespaces()] == [["notes", "u1"]]
        with pytest.raises(InvalidInput) as bad_filter:
            ann.store_search(filter={"n": {"$in": [1]}})
        assert bad_filter.value.code == "NX061"
    with Memory(agents.dsn(cfg, "ben")) as ben:
        assert ben.store_get(["notes", "u1"], "k1") is None
        assert ben.store_delete(["notes", "u1"], "k1") is False
    with Memory(agents.dsn(cfg, "ann")) as ann:
        assert ann.store_delete(["notes", "u1"], "k1") is True


def test_facts_that_change(two_agents: Config) -> None:
    """Keyed facts through the typed client: the current one, its history, an invalidation, as_of
    (a bad one as text is NX039), search and stats that know which fact holds."""
    with Memory(agents.dsn(two_agents, "ann")) as ann:
        austin = ann.remember_fact("The user lives in Austin.", key="user.city",
                                   valid_from="2024-01-01T00:00:00Z")
        denver = ann.remember_fact("The user lives in Denver.", key="user.city")
        [now] = ann.get_fact(key="user.city")
        assert (now.id, now.fact_key, now.valid_to, now.is_current) == \
               (denver, "user.city", None, True)
        [then] = ann.get_fact(key="user.city", as_of="2024-06-01T00:00:00Z")
        assert then.id == austin and not then.is_current and then.superseded_by == denver
        assert ann.get_fact(austin) == []
        history = ann.fact_history(key="user.city")
        assert [(f.id, f.ended_by) for f in history] == [(austin, "superseded"), (denver, None)]
        everything = ann.get_fact(key="user.city", include_history=True)
        assert [f.id for f in everything] == [austin, denver]
        with pytest.raises(InvalidInput) as bad:
            ann.get_fact(key="user.city", as_of="last tuesday")
        assert bad.value.code == "NX039"

        hits = ann.memory_search(query="user lives", kinds=["semantic"])
        assert [(h.id, h.fact_key, h.valid_to) for h in hits] == [(denver, "user.city", None)]
        hits = ann.memory_search(query="user lives", kinds=["semantic"], include_history=True)
        assert {h.id: h.ended_by for h in hits} == {austin: "superseded", denver: None}
        then_hits = ann.memory_search(query="user lives", as_of="2024-06-01T00:00:00Z")
        assert [h.id for h in then_hits] == [austin]

        tea = ann.remember_fact("likes tea")
        ended = ann.invalidate_fact(tea)
        assert isinstance(ended, datetime) and ann.get_fact(tea) == []
        stats = {s.kind: s for s in ann.memory_stats()}
        assert (stats["semantic"].total, stats["semantic"].current, stats["semantic"].superseded,
                stats["semantic"].invalidated) == (3, 1, 1, 1)
        assert stats["episode"].current is None
    with Memory(agents.dsn(two_agents, "ben")) as ben:
        # another agent's fact is not found, and its key is not his
        with pytest.raises(NotFound):
            ben.invalidate_fact(denver)
        assert ben.fact_history(key="user.city") == []


def test_facts_async(two_agents: Config) -> None:
    async def main() -> None:
        async with await AsyncMemory.connect(agents.dsn(two_agents, "ann")) as ann:
            first = await ann.remember_fact("works at Acme", key="user.job")
            second = await ann.remember_fact("works at Beta", key="user.job")
            assert [f.id for f in await ann.fact_history(first)] == [first, second]
            assert [f.id for f in await ann.get_fact(key="user.job")] == [second]
            await ann.invalidate_fact(second)
            assert await ann.get_fact(key="user.job") == []

    asyncio.run(main())


def test_pooled_set_role_never_leaks(two_agents: Config) -> None:
    """One pooled connection (nexus_app) serves ann and ben in turns: each call sees only its own
    agent's rows, and the connection is nexus_app again after every call, failed ones too."""
    cfg = two_agents
    with ConnectionPool(app_conninfo(cfg), min_size=1, max_size=1, open=True) as pool:
        ann, ben = Memory(pool=pool, agent="ann"), Memory(pool=pool, agent="ben")
        ids: dict[str, list[int]] = {"ann": [], "ben": []}
        for i in range(10):
            ids["ben"].append(ben.record_episode(f"ben note {i}"))
            ids["ann"].append(ann.record_episode(f"ann note {i}"))
            # right after a call for the other agent, on the same connection
            assert {e.id for e in ann.recent_episodes(limit_n=100)} == set(ids["ann"])
            assert {e.id for e in ben.recent_episodes(limit_n=100)} == set(ids["ben"])
        with pytest.raises(NotFound):
            ann.get_episode(ids["ben"][0])
        with pytest.raises(InvalidInput):
            ben.recent_episodes(limit_n=0)
        with pool.connection() as conn:
            assert conn.execute("SELECT current_user").fetchone() == ("nexus_app",)
            # nexus_app itself is no agent and reads nothing
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("SELECT count(*) FROM nexus_memory.zep_episodic_memory")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            Memory(pool=pool, agent="nexus_superuser").current_agent()


def test_several_calls_are_one_transaction(two_agents: Config) -> None:
    """Memory.calls runs its calls in order in one transaction (a failing call undoes the others)
    on the agent's own connection, on a pool of its own connections and under SET LOCAL ROLE."""
    cfg = two_agents
    with Memory(agents.dsn(cfg, "ann")) as own, \
            ConnectionPool(agents.dsn(cfg, "ann"), min_size=1, max_size=1,
                           kwargs={"autocommit": True}) as ann_pool, \
            ConnectionPool(app_conninfo(cfg), min_size=1, max_size=1) as app_pool:
        for memory in (own, Memory(pool=ann_pool), Memory(pool=app_pool, agent="ann")):
            with pytest.raises(InvalidInput):
                memory.calls([("record_episode", {"content": "undone"}),
                              ("recent_episodes", {"limit_n": 0})])
            recorded, recent = memory.calls([("record_episode", {"content": "kept"}),
                                             ("recent_episodes", {"limit_n": 100})])
            assert recorded[0]["record_episode"] == recent[0]["id"]
            assert memory.current_agent() == "ann"
        assert [e.content for e in own.recent_episodes(limit_n=100)] == ["kept"] * 3
        with app_pool.connection() as conn:
            assert conn.execute("SELECT current_user").fetchone() == ("nexus_app",)
    with pytest.raises(TypeError, match="agent goes with pool"):
        Memory(agents.dsn(cfg, "ann"), agent="ben")


def test_async_client_own_connection_and_pool(two_agents: Config) -> None:
    cfg = two_agents

    async def main() -> None:
        async with await AsyncMemory.connect(agents.dsn(cfg, "ann")) as ann:
            mine = await ann.record_episode("async ann")
            assert (await ann.get_episode(mine)).content == "async ann"
        pool = AsyncConnectionPool(app_conninfo(cfg), min_size=1, max_size=1, open=False)
        await pool.open()
        try:
            ann = AsyncMemory(pool=pool, agent="ann")
            ben = AsyncMemory(pool=pool, agent="ben")
            theirs = await ben.record_episode("async ben")
            assert [e.id for e in await ann.recent_episodes()] == [mine]
            with pytest.raises(NotFound):
                await ann.get_episode(theirs)
            with pytest.raises(Conflict):
                await ann.consensus_cas("k", 5, 1)
            async with pool.connection() as conn:
                cur = await conn.execute("SELECT current_user")
                assert await cur.fetchone() == ("nexus_app",)
        finally:
            await pool.close()

    asyncio.run(main())


@pytest.fixture(scope="module")
def embedded(up_env: dict[str, str]) -> tuple[Config, int, list[int]]:
    """An agent `reader` with three episodes embedded by a running worker (the real model): the
    session's `nexus up` stack's (conftest.up_env), no worker started for this module."""
    up = subprocess.run([NEXUS, "up", "--detach"], env=up_env, capture_output=True, text=True,
                        timeout=600)
    assert up.returncode == 0, up.stdout + up.stderr
    cfg = resolve_home(config.load(env=up_env))
    with su(cfg) as conn:
        agents.add(conn, cfg, "reader", "")
    with Memory(agents.dsn(cfg, "reader")) as memory:
        ids = [memory.record_episode(text) for text in (
            "A storm sank two fishing boats in the harbour.",
            "The invoice for ACME is thirty days overdue.",
            "Knead the bread dough for ten minutes.")]
        wait_for(lambda: memory.memory_stats()[0].embedded == 3)
    return cfg, cfg.http_port, ids


def test_search_embeds_through_the_sidecar_or_says_text_only(embedded) -> None:
    cfg, port, ids = embedded
    url = f"http://127.0.0.1:{port}"
    with Memory(agents.dsn(cfg, "reader"), embed_url=url) as memory:
        result = memory.search("bad weather at sea", limit_n=3)
        assert result.mode == "hybrid" and result.note is None
        # no word in common: only the vector branch finds the storm
        assert result.hits[0].id == ids[0] and result.hits[0].vector_rank == 1
        assert result.hits[0].text_rank is None
        offline = Memory(agents.dsn(cfg, "reader"), embed_url="http://127.0.0.1:9")
        with offline:
            result = offline.search("overdue invoice")
        assert result.mode == "text" and "not reachable" in (result.note or "")
        assert [h.id for h in result.hits] == [ids[1]] and result.hits[0].vector_rank is None

    async def main() -> client.SearchResult:
        async with await AsyncMemory.connect(agents.dsn(cfg, "reader"), embed_url=url) as memory:
            return await memory.search("bread baking", limit_n=1)

    result = asyncio.run(main())
    assert result.mode == "hybrid" and result.hits[0].id == ids[2]


def test_every_door_searches_text_only_without_a_sidecar(embedded) -> None:
    """One rule (client.query_vector): when no sidecar answers /embed, the client, the asyncio
    client, MCP's recall and `nexus search` search by text only and say so; a text the sidecar
    refuses is the caller's error; an explicit hybrid search needs the sidecar."""
    cfg, port, ids = embedded
    dsn, url = agents.dsn(cfg, "reader"), f"http://127.0.0.1:{port}"

    async def doors() -> tuple[client.SearchResult, dict]:
        async with await AsyncMemory.connect(dsn, embed_url=OFFLINE) as memory, \
                aiohttp.ClientSession() as http:
            result = await memory.search("overdue invoice")
            server = NexusMCP(await memory.catalog(), lambda _ctx: memory, OFFLINE, http)
            return result, await server.recall(memory, {"query": "overdue invoice"})

    result, recalled = asyncio.run(doors())
    for mode, note, hits in ((result.mode, result.note, [h.id for h in result.hits]),
                             (recalled["mode"], recalled["note"],
                              [h["id"] for h in recalled["hits"]])):
        assert mode == "text" and hits == [ids[1]]
        assert "not reachable" in note and note.endswith("; searching text only")

    def nexus_search(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([NEXUS, "search", "overdue invoice", "--agent", "reader", "--json",
                               *args], env=worker_env(cfg, port), capture_output=True, text=True,
                              timeout=120)

    out = nexus_search("--embed-url", OFFLINE)
    assert out.returncode == 0, out.stderr
    assert "not reachable" in out.stderr and "searching text only" in out.stderr
    hits = json.loads(out.stdout)
    assert [h["id"] for h in hits] == [ids[1]] and hits[0]["vector_rank"] is None
    out = nexus_search("--embed-url", OFFLINE, "--mode", "hybrid")
    assert out.returncode == 2 and "not reachable" in out.stderr
    hits = json.loads(nexus_search("--embed-url", url).stdout)
    assert hits[0]["id"] == ids[1] and hits[0]["vector_rank"] == 1

    with Memory(dsn, embed_url=url) as memory, pytest.raises(client.EmbedRefused):
        memory.search("   ")
