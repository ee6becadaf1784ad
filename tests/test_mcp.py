"""The MCP server (`nexus mcp`) with the real `mcp` client library, over stdio and streamable HTTP,
against the real PostgreSQL, Redis, worker and model: the tools and their descriptions,
remember/recall with hybrid ranks, working memory with a TTL, a CAS conflict as a tool error, bad
arguments refused with a code before any SQL, oversized HTTP requests answered 413/431, both
protocol eras, bearer tokens, and isolation between two agents under 16 concurrent clients."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp_types.version import LATEST_HANDSHAKE_VERSION, LATEST_MODERN_VERSION

from bench.harness import free_ports
from conftest import NEXUS, clone_template, drop_database
from nexus import agents, client, config, mcp
from nexus.config import Config
from nexus.stack import Stack
from tests.helpers import start_worker, stop, su, wait_for, worker_env

AGENTS = ("stdio_agent", "http_agent", "alpha", "beta", "gate", "newcomer", "mover", "sharer",
          "teammate")
EPISODES = [
    "A violent storm with gale-force winds sank two fishing boats in the harbour.",
    "The quarterly invoice for ACME Corporation is thirty days overdue.",
    "Knead the bread dough for ten minutes, then let it rise overnight.",
]


@dataclass
class Served:
    cfg: Config
    env: dict[str, str]
    url: str
    tokens: dict[str, str]
    token_ids: dict[str, int]


@pytest.fixture(scope="module")
def served(stack: Stack) -> Iterator[Served]:
    """A database of this module's own with four agents, a worker (the real model) and
    `nexus mcp --http` in front of it; a token for each agent."""
    cfg = clone_template(stack, "nexus_mcp_e2e")
    tokens, token_ids = {}, {}
    with su(cfg) as conn:
        for name in AGENTS:
            agents.add(conn, cfg, name, "")
            tokens[name], token_ids[name], _ = mcp.issue_token(conn, name, "1d", "tests")
    # the MCP server (it needs PostgreSQL only) starts while the worker loads its model
    http_port, mcp_port = free_ports(2)
    env = worker_env(cfg, http_port, NEXUS_MCP_PORT=str(mcp_port))
    server = subprocess.Popen([NEXUS, "mcp", "--http"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    worker = None
    try:
        worker, _ = start_worker(cfg, port=http_port)
        wait_for(lambda: server.poll() is not None or status(mcp_port, "/health") == 200)
        assert server.poll() is None, server.stdout.read()
        yield Served(cfg, env, f"http://127.0.0.1:{mcp_port}/mcp", tokens, token_ids)
    finally:
        stop(server)
        if worker is not None:
            stop(worker)
        drop_database(stack, cfg.database)


def status(port: int, path: str) -> int | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=3) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


@asynccontextmanager
async def http_client(served: Served, agent: str, **kwargs: Any) -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {served.tokens[agent]}"}
    transport = streamable_http_client(served.url, http_client=httpx2.AsyncClient(
        headers=headers, timeout=httpx2.Timeout(60)))
    async with Client(transport, **kwargs) as session:
        yield session


@asynccontextmanager
async def stdio_client(served: Served, agent: str) -> AsyncIterator[Client]:
    params = StdioServerParameters(command=NEXUS, args=["mcp", "--agent", agent],
                                   env=served.env)
    async with Client(params) as session:
        yield session


def connect(served: Served, transport: str, agent: str):  # noqa: ANN201 - a context manager
    return stdio_client(served, agent) if transport == "stdio" else http_client(served, agent)


async def call(session: Client, tool: str, **args: Any) -> Any:
    result = await session.call_tool(tool, args)
    assert not result.is_error, result.content
    return result.structured_content["result"]


async def tool_error(session: Client, tool: str, **args: Any) -> dict[str, Any]:
    result = await session.call_tool(tool, args)
    assert result.is_error
    return json.loads(result.content[0].text)["error"]


@pytest.mark.parametrize("transport", ["stdio", "http"])
def test_tools_remember_recall_working_memory_and_conflict(served: Served, transport: str) -> None:
    agent = f"{transport}_agent"
    with su(served.cfg) as conn:
        catalog = client.read_catalog(conn)

    async def main() -> None:
        async with connect(served, transport, agent) as session:
            tools = {t.name: t for t in (await session.list_tools()).tools}
            assert set(tools) == {t.name for t in mcp.TOOLS}
            # descriptions are the MCP sections of the SQL functions' COMMENTs; parameters their
            # signatures
            text = mcp.tool_text(catalog["record_episode"].comment)
            assert text is not None and tools["remember"].description == text.description
            assert tools["remember"].input_schema["properties"]["tags"]["description"] \
                == text.params["tags"]
            assert tools["remember"].input_schema["required"] == ["content"]
            forget = tools["forget"].input_schema
            assert {"episode_id", "tags_all", "dry_run"} <= set(forget["properties"])
            recall = tools["recall"].input_schema
            assert "query_embedding" not in recall["properties"]
            assert recall["required"] == ["query"]
            assert tools["recall"].annotations.read_only_hint is True
            assert tools["forget"].annotations.destructive_hint is True
            assert tools["remember"].annotations.destructive_hint is False

            ids = [await call(session, "remember", content=text, tags=["t"]) for text in EPISODES]
            assert all(isinstance(i, int) for i in ids)

            async def embedded() -> bool:
                stats = await call(session, "memory_stats")
                return stats[0]["embedded"] == len(EPISODES)

            for _ in range(600):
                if await embedded():
                    break
                await asyncio.sleep(0.5)
            found = await call(session, "recall", query="storm at sea", limit_n=3)
            assert found["mode"] == "hybrid"
            top = found["hits"][0]
            assert top["id"] == ids[0] and top["text_rank"] == 1 and top["vector_rank"] == 1
            # only the vector branch knows bread is baking
            found = await call(session, "recall", query="baking", limit_n=1)
            assert found["hits"][0]["id"] == ids[2] and found["hits"][0]["text_rank"] is None
            assert (await call(session, "get", episode_id=ids[1]))["content"] == EPISODES[1]
            assert [e["id"] for e in await call(session, "recent", limit_n=2)] == ids[:0:-1]

            # working memory round trip, with a TTL that runs out
            expires = await call(session, "working_memory_set", key="plan",
                                 value={"step": 2}, ttl="1 hour")
            assert expires is not None
            assert await call(session, "working_memory_get", key="plan") == {"step": 2}
            await call(session, "working_memory_set", key="blink", value=[1], ttl="1 second")
            keys = [k["key"] for k in await call(session, "working_memory_keys")]
            assert "plan" in keys
            for _ in range(100):
                if await call(session, "working_memory_get", key="blink") is None:
                    break
                await asyncio.sleep(0.2)
            assert await call(session, "working_memory_get", key="blink") is None
            assert await call(session, "working_memory_delete", key="plan") is True

            # consensus: a lost compare-and-set is a tool error with its code
            key = f"leader_{transport}"
            assert await call(session, "consensus_cas", key=key, expected_version=0,
                              value=agent) == 1
            error = await tool_error(session, "consensus_cas", key=key, expected_version=0,
                                     value="usurper")
            assert error["code"] == "NX035" and "current_version=1" in error["detail"]
            assert "Traceback" not in json.dumps(error) and "SELECT" not in json.dumps(error)
            assert (await tool_error(session, "get", episode_id=10**9))["code"] == "NX033"
            assert (await tool_error(session, "recent", limit_n=0))["code"] == "NX031"
            assert (await tool_error(session, "remember", content="x", agent="beta"))["code"] \
                == "NX070"

    asyncio.run(main())


def test_a_fact_that_changed_over_mcp(served: Served) -> None:
    """docs/facts.md over MCP: a user moves; recall finds where they live now, first, and not
    where they lived; the history, as_of and include_history answer for the past."""

    async def main() -> None:
        async with http_client(served, "mover") as session:
            tools = {t.name: t for t in (await session.list_tools()).tools}
            assert {"key", "supersedes", "valid_from"} <= set(
                tools["remember_fact"].input_schema["properties"])
            assert {"as_of", "include_history"} <= set(tools["recall"].input_schema["properties"])
            assert tools["fact_history"].annotations.read_only_hint is True
            austin = await call(session, "remember_fact", content="The user lives in Austin.",
                                key="user.city", valid_from="2024-01-01T00:00:00Z")
            denver = await call(session, "remember_fact", content="The user lives in Denver.",
                                key="user.city")
            assert await call(session, "remember_fact", content="the user lives in Denver",
                              key="user.city") == denver
            for _ in range(600):
                stats = {k["kind"]: k for k in await call(session, "memory_stats")}
                if stats["semantic"]["embedded"] == 2:
                    break
                await asyncio.sleep(0.5)
            assert (stats["semantic"]["current"], stats["semantic"]["superseded"]) == (1, 1)

            found = await call(session, "recall", query="where does the user live?")
            assert found["mode"] == "hybrid"
            assert [h["id"] for h in found["hits"]] == [denver]
            hit = found["hits"][0]
            assert (hit["fact_key"], hit["valid_to"], hit["ended_by"]) == ("user.city", None, None)
            then = await call(session, "recall", query="where does the user live?",
                              as_of="2024-06-01T00:00:00Z")
            assert [h["id"] for h in then["hits"]] == [austin]
            everything = await call(session, "recall", query="where does the user live?",
                                    include_history=True)
            assert {h["id"]: h["ended_by"] for h in everything["hits"]} == \
                   {austin: "superseded", denver: None}

            history = await call(session, "fact_history", key="user.city")
            assert [(f["id"], f["is_current"]) for f in history] == \
                   [(austin, False), (denver, True)]
            assert [f["id"] for f in await call(session, "get_fact", key="user.city")] == [denver]
            assert (await tool_error(session, "recall", query="city",
                                     as_of="last tuesday"))["code"] == "NX039"
            assert (await tool_error(session, "get_fact", key="user.city",
                                     as_of="2024-13-45"))["code"] == "NX039"

            ended = await call(session, "invalidate_fact", fact_id=denver)
            assert ended is not None
            assert (await tool_error(session, "invalidate_fact", fact_id=denver))["code"] == "NX038"
            assert (await call(session, "recall", query="where does the user live?"))["hits"] == []
            assert await call(session, "get_fact", key="user.city") == []

    asyncio.run(main())


def test_recall_over_a_space(served: Served) -> None:
    """docs/spaces.md over MCP: what sharer remembers in a space, teammate (a reader) recalls with
    scope all, each hit with its space and author; teammate may not write there (NX080), and the
    spaces tool lists its rights."""
    with su(served.cfg) as conn:
        conn.execute("SELECT memory_system.space_create('crew', 'sharer')")
        conn.execute("SELECT memory_system.space_grant('crew', 'teammate', 'read')")

    async def main() -> None:
        async with http_client(served, "sharer") as session:
            shared = await call(session, "remember", content="The crew meets at the lighthouse "
                                "at dawn.", space="crew")
            await call(session, "remember", content="Sharer's own note about the lighthouse.")
        async with http_client(served, "teammate") as session:
            assert [(s["space"], s["rights"]) for s in await call(session, "spaces")] == \
                   [("crew", "read")]
            found = await call(session, "recall", query="where does the crew meet?", scope="all")
            assert [(h["id"], h["space"], h["author"]) for h in found["hits"]] == \
                   [(shared, "crew", "sharer")]
            assert (await call(session, "recall", query="where does the crew meet?"))["hits"] == []
            error = await tool_error(session, "remember", content="x", space="crew")
            assert error["code"] == "NX080"
            assert (await tool_error(session, "recall", query="crew", spaces=["nope"]))["code"] \
                == "NX080"

    asyncio.run(main())


def test_every_tool_and_parameter_is_described_for_a_model(fresh_db: Config) -> None:
    """From a fresh database's catalog: each tool says what it is for and each parameter its
    meaning, range and an example, in words a model reads (not an SQL type, not DBA notes)."""
    with su(fresh_db) as conn:
        tools = mcp.build_tools(client.read_catalog(conn))
    for spec, tool in tools.values():
        assert tool.description and 8 <= len(tool.description.split()) <= 100, spec.name
        assert not re.search(r"SQLSTATE|HNSW|BM25|rrf_k|df_budget|calling agent",
                             tool.description), (spec.name, tool.description)
        for name, prop in tool.input_schema["properties"].items():
            words = prop["description"]
            assert len(words.split()) >= 5 and "Example: " in words, (spec.name, name, words)
    described = sum(len(t.input_schema["properties"]) for _s, t in tools.values())
    assert len(tools) == 23 and described >= 60


@pytest.mark.parametrize("transport", ["stdio", "http"])
def test_bad_arguments_get_a_code_and_a_plain_message_before_any_sql(served: Served,
                                                                      transport: str) -> None:
    """What a new user's model sends wrong: each answer is a tool error with our code and a
    message naming the problem, and nothing reaches the database."""
    long_query = "storm at sea " * 1000  # over /embed's 8,192 characters

    async def main() -> dict[str, dict[str, Any]]:
        async with connect(served, transport, "newcomer") as session:
            return {
                "object query": await tool_error(session, "recall", query={"text": "storm"}),
                "blank query": await tool_error(session, "recall", query="   "),
                "no query": await tool_error(session, "recall", limit_n=3),
                "long query": await tool_error(session, "recall", query=long_query),
                "nul content": await tool_error(session, "remember", content="a\x00b"),
                "nul metadata": await tool_error(session, "remember", content="ok",
                                                 metadata={"k": ["\x00"]}),
                "no content": await tool_error(session, "remember"),
                "string limit": await tool_error(session, "recent", limit_n="5"),
                "huge id": await tool_error(session, "get", episode_id=2**70),
                "array key": await tool_error(session, "working_memory_set", key=["k"],
                                              value=1),
                "unknown tool": await tool_error(session, "no_such_tool"),
            }

    errors = asyncio.run(main())
    codes = {what: error["code"] for what, error in errors.items()}
    assert codes == {"object query": "NX070", "blank query": "NX030", "no query": "NX070",
                     "long query": "NX071", "nul content": "NX070", "nul metadata": "NX070",
                     "no content": "NX070", "string limit": "NX070", "huge id": "NX070",
                     "array key": "NX070", "unknown tool": "NX070"}
    assert "query must be a string, got an object" in errors["object query"]["message"]
    assert "NUL" in errors["nul content"]["message"]
    assert "limit_n must be an integer, got a string" in errors["string limit"]["message"]
    assert "remember" in errors["unknown tool"]["message"]  # the tools are listed
    for error in errors.values():
        assert isinstance(error["message"], str) and "Traceback" not in error["message"]
    with su(served.cfg) as conn:
        written = conn.execute(
            "SELECT (SELECT count(*) FROM nexus_memory.zep_episodic_memory WHERE agent_id = %s)"
            " + (SELECT count(*) FROM nexus_memory.working_memory_contexts WHERE agent_id = %s)",
            ("newcomer", "newcomer")).fetchone()
    assert written == (0,)


def raw_post(url: str, body: bytes, headers: dict[str, str], client_: str) -> int:
    """The status of a POST by httpx2 (keep-alive) or urllib (Connection: close); an exception
    (a reset connection) fails the test."""
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
               "MCP-Protocol-Version": "2025-06-18", **headers}
    if client_ == "httpx2":
        return httpx2.post(url, content=body, headers=headers, timeout=60).status_code
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def tools_call(tool: str, **arguments: Any) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                       "params": {"name": tool, "arguments": arguments}}).encode()


@pytest.mark.parametrize("client_", ["httpx2", "urllib"])
def test_oversized_http_requests_get_413_and_431_not_a_reset(served: Served, client_: str) -> None:
    """A 20 MB body and a 1 MB Authorization header are answered 413 and 431, and the client
    reads the answer (the server reads what it was sent before closing); the server serves the
    next request. A checkpoint over the mcp package's default limit (4 MiB) fits."""
    auth = {"Authorization": f"Bearer {served.tokens['gate']}"}
    big = tools_call("remember", content="x" * 20_000_000)
    assert raw_post(served.url, big, auth, client_) == 413
    huge_auth = {"Authorization": "Bearer " + "a" * 1_000_000}
    assert raw_post(served.url, tools_call("memory_stats"), huge_auth, client_) == 431
    state = {"blob": "y" * (5 * 2**20)}
    answer = httpx2.post(served.url, content=tools_call("save_checkpoint", state=state,
                                                        name=f"big_{client_}"),
                         headers={"Content-Type": "application/json", **auth,
                                  "Accept": "application/json, text/event-stream",
                                  "MCP-Protocol-Version": "2025-06-18"}, timeout=60)
    assert answer.status_code == 200 and answer.json()["result"]["isError"] is False, answer.text
    with su(served.cfg) as conn:
        assert conn.execute("SELECT count(*) FROM consciousness.consciousness_checkpoints "
                            "WHERE agent_id = 'gate' AND checkpoint_name = %s",
                            (f"big_{client_}",)).fetchone() == (1,)


def test_both_protocol_eras_over_http_and_stdio(served: Served) -> None:
    """2025-06-18 by its initialize handshake (raw JSON-RPC, as older clients send it), the
    newest handshake revision and the newest revision (2026-07-28) with the mcp client."""
    headers = {"Authorization": f"Bearer {served.tokens['alpha']}",
               "Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                       "clientInfo": {"name": "old-client", "version": "1"}}}
    answer = httpx2.post(served.url, json=init, headers=headers, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.json()["result"]["protocolVersion"] == "2025-06-18"
    listed = httpx2.post(served.url, headers={**headers, "MCP-Protocol-Version": "2025-06-18"},
                         json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, timeout=30)
    assert "recall" in {t["name"] for t in listed.json()["result"]["tools"]}
    called = httpx2.post(served.url, headers={**headers, "MCP-Protocol-Version": "2025-06-18"},
                         json={"jsonrpc": "2.0", "id": 3, "method": "tools/call",
                               "params": {"name": "working_memory_set",
                                          "arguments": {"key": "era", "value": "2025-06-18"}}},
                         timeout=30)
    assert called.json()["result"]["isError"] is False, called.text

    proc = subprocess.Popen([NEXUS, "mcp", "--agent", "alpha"], env=served.env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdin and proc.stdout
        proc.stdin.write(json.dumps(init) + "\n")
        proc.stdin.flush()
        assert json.loads(proc.stdout.readline())["result"]["protocolVersion"] == "2025-06-18"
        for message in ({"jsonrpc": "2.0", "method": "notifications/initialized"},
                        {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                         "params": {"name": "memory_stats", "arguments": {}}}):
            proc.stdin.write(json.dumps(message) + "\n")
        proc.stdin.flush()
        reply = json.loads(proc.stdout.readline())
        assert reply["id"] == 2 and reply["result"]["isError"] is False
    finally:
        proc.stdin.close()  # type: ignore[union-attr]
        stop(proc)

    async def versions(transport: str) -> tuple[str, str]:
        found = []
        for mode in ("legacy", "auto"):
            if transport == "http":
                context = http_client(served, "alpha", mode=mode)
            else:
                params = StdioServerParameters(command=NEXUS, args=["mcp", "--agent", "alpha"],
                                               env=served.env)
                context = _stdio_mode(params, mode)
            async with context as session:
                assert (await session.list_tools()).tools
                found.append(session.protocol_version)
        return found[0], found[1]

    for transport in ("http", "stdio"):
        assert asyncio.run(versions(transport)) == (LATEST_HANDSHAKE_VERSION, LATEST_MODERN_VERSION)


@asynccontextmanager
async def _stdio_mode(params: StdioServerParameters, mode: str) -> AsyncIterator[Client]:
    async with Client(params, mode=mode) as session:
        yield session


def post(served: Served, authorization: str | None) -> httpx2.Response:
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
               "MCP-Protocol-Version": "2025-06-18"}
    if authorization is not None:
        headers["Authorization"] = authorization
    call_ = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
             "params": {"name": "remember", "arguments": {"content": "sneaked in"}}}
    return httpx2.post(served.url, json=call_, headers=headers, timeout=30)


def test_bad_tokens_get_401_and_touch_nothing(served: Served) -> None:
    with su(served.cfg) as conn:
        # a token of its own for this test, expired by hand, and one revoked
        expired, expired_id, _ = mcp.issue_token(conn, "gate", "1h", "expired")
        conn.execute("UPDATE memory_system.agent_tokens SET expires_at = now() - '1 s'::interval "
                     "WHERE token_id = %s", (expired_id,))
        revoked, revoked_id, _ = mcp.issue_token(conn, "gate", None, "revoked")
        before = conn.execute("SELECT count(*) FROM nexus_memory.zep_episodic_memory").fetchone()
    works = post(served, f"Bearer {revoked}")  # works until revoked
    assert works.status_code == 200 and works.json()["result"]["isError"] is False, works.text
    with su(served.cfg) as conn:
        assert mcp.revoke_token(conn, revoked_id) is True
        before = conn.execute("SELECT count(*) FROM nexus_memory.zep_episodic_memory").fetchone()
    for authorization in (None, "Basic YWxpY2U6eA==", "Bearer", "Bearer not-a-token",
                          "Bearer " + mcp.new_token(), f"Bearer {expired}", f"Bearer {revoked}",
                          f"Bearer {served.tokens['alpha']}x"):
        answer = post(served, authorization)
        assert answer.status_code == 401, (authorization, answer.text)
        assert answer.headers["WWW-Authenticate"].startswith("Bearer ")
    with su(served.cfg) as conn:
        after = conn.execute("SELECT count(*) FROM nexus_memory.zep_episodic_memory").fetchone()
    assert after == before


def test_isolation_under_16_concurrent_clients(served: Served) -> None:
    """alpha and beta, 8 clients each, interleaving 40 rounds of calls (640 in all, each of the
    five kinds 8 times per client, over the server's shared connections): neither ever sees the
    other's memory, even recalling the other's exact text; a token of alpha plus any arguments
    never acts as beta."""
    clients, rounds = 16, 40
    secrets_of = {a: [f"{a} secret number {i}: the vault code is {a.upper()}-{i}" for i in range(4)]
                  for a in ("alpha", "beta")}
    ids_of: dict[str, list[int]] = {"alpha": [], "beta": []}
    other = {"alpha": "beta", "beta": "alpha"}

    async def main() -> None:
        for agent, texts in secrets_of.items():
            async with http_client(served, agent) as session:
                ids_of[agent] = [await call(session, "remember", content=t) for t in texts]

        async def worker(n: int) -> int:
            agent = ("alpha", "beta")[n % 2]
            theirs, checked = other[agent], 0
            async with http_client(served, agent) as session:
                for r in range(n, rounds * clients, clients):
                    step = (r // clients) % 5
                    if step == 0:
                        await call(session, "remember", content=f"{agent} note {r}")
                    elif step == 1:
                        found = await call(session, "recall", query=secrets_of[theirs][r % 4])
                        assert found["hits"], found
                        assert not any(theirs in h["content"] for h in found["hits"]), found
                    elif step == 2:
                        error = await tool_error(session, "get", episode_id=ids_of[theirs][r % 4])
                        assert error["code"] == "NX033"
                        receipt = await call(session, "forget", episode_id=ids_of[theirs][r % 4])
                        assert receipt["kinds"] == {"episode": 0}
                    elif step == 3:
                        rows = await call(session, "recent", limit_n=1000)
                        assert rows and not any(theirs in e["content"] for e in rows)
                    else:
                        error = await tool_error(session, "recent", agent=theirs)
                        assert error["code"] == "NX070" and "agent" in error["message"]
                        error = await tool_error(session, "update", episode_id=ids_of[theirs][0],
                                                 content="overwritten")
                        assert error["code"] == "NX033"
                    checked += 1
            return checked

        done = await asyncio.gather(*(worker(n) for n in range(clients)))
        assert sum(done) == rounds * clients

    asyncio.run(main())
    with su(served.cfg) as conn:
        rows = conn.execute("SELECT agent_id, content FROM nexus_memory.zep_episodic_memory "
                            "WHERE agent_id IN ('alpha', 'beta')").fetchall()
    assert all(agent in content for agent, content in rows)
    assert sum(1 for agent, _ in rows if agent == "beta") >= 4


def test_nexus_up_serves_mcp_and_the_token_commands_work(up_env: dict[str, str]) -> None:
    """What the README says: nexus up runs the MCP server (mcp_url in status), nexus agent token
    issues a token an MCP client uses, token list shows it, token revoke ends it. On the
    session's `nexus up` stack (conftest.up_env; test_supervision.py checks that `nexus down`
    stops the MCP server)."""
    env = up_env

    def nexus(*args: str) -> str:
        done = subprocess.run([NEXUS, *args], env=env, capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, done.stderr
        return done.stdout

    nexus("up", "--detach")
    status_doc = json.loads(nexus("status", "--json"))
    url = status_doc["mcp_url"]
    assert url == f"http://127.0.0.1:{env['NEXUS_MCP_PORT']}/mcp"
    assert status_doc["mcp"]["healthy"] and status_doc["healthy"]
    nexus("agent", "add", "remote")
    token = nexus("agent", "token", "remote", "--ttl", "30d", "--label", "ci").strip()
    assert mcp.TOKEN_FORMAT.fullmatch(token)
    listed = nexus("agent", "token", "list", "remote").splitlines()
    assert len(listed) == 1 and "\tactive\t" in listed[0] and listed[0].endswith("ci")
    token_id = listed[0].split("\t")[0]
    served = Served(config.load(env=env), env, url, {"remote": token}, {})

    async def remember() -> int:
        async with http_client(served, "remote") as session:
            return await call(session, "remember", content="over the stack's own server")

    assert isinstance(asyncio.run(remember()), int)
    assert "revoked" in nexus("agent", "token", "revoke", token_id)
    assert post(served, f"Bearer {token}").status_code == 401
