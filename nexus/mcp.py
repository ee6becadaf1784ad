"""`nexus mcp`: the MCP server, on the official `mcp` package (its low-level `Server`: the tools are
read from the database, not written as Python functions).

Each tool is one `nexus.*` SQL function: its description is the function's COMMENT, its parameters
and their types the function's signature (pg_proc), and a call is exactly one call of that function
by name with named arguments, as the agent's own role. Two transports:
  stdio       a local agent: the process connects as that agent (nexus mcp --agent NAME, or
              NEXUS_AGENT_DSN).
  HTTP        remote agents (nexus mcp --http): streamable HTTP, stateless, at /mcp. Each request
              carries `Authorization: Bearer <token>` (nexus agent token NAME); the server logs in
              as nexus_app and runs each call in a transaction under SET LOCAL ROLE to the token's
              agent. A missing, malformed, unknown, expired or revoked token gets 401 with a
              WWW-Authenticate header and reaches no API function.
Both serve the initialize handshake (2024-11-05 to 2025-11-25, 2025-06-18 included) and the newest
revision the package speaks (2026-07-28).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import secrets
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import aiohttp
import mcp_types as types
import psycopg
import uvicorn
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server
from psycopg_pool import AsyncConnectionPool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from nexus.client import (
    AsyncMemory,
    EmbedRefused,
    NexusError,
    Signature,
    query_vector_async,
    read_catalog_async,
    shaped,
)

log = logging.getLogger("nexus.mcp")

TOKEN_PREFIX = "nxa_"
TOKEN_FORMAT = re.compile(r"nxa_[A-Za-z0-9_-]{43}")
MCP_PATH = "/mcp"


def new_token() -> str:
    """A bearer token: 32 random bytes, URL-safe, with a prefix that says what it is."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_sha256(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


_TTL = re.compile(r"(\d+)\s*([smhdw])")
_TTL_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def ttl_interval(ttl: str) -> str:
    """'30d' -> '30 days' (s, m, h, d, w); anything else is given to PostgreSQL as an interval."""
    found = _TTL.fullmatch(ttl.strip())
    return f"{found.group(1)} {_TTL_UNITS[found.group(2)]}" if found else ttl


def issue_token(conn: psycopg.Connection, agent: str, ttl: str | None,
                label: str) -> tuple[str, int, datetime | None]:
    """A new token of `agent` (as the owner): the token (shown once), its id and expiry."""
    token = new_token()
    row = conn.execute("SELECT token_id, expires_at FROM memory_system.token_issue(%s, %s, "
                       "%s::interval, %s)",
                       (agent, token_sha256(token), ttl_interval(ttl) if ttl else None,
                        label)).fetchone()
    assert row is not None
    return token, row[0], row[1]


def list_tokens(conn: psycopg.Connection, agent: str) -> list[tuple[Any, ...]]:
    return conn.execute("SELECT token_id, state, created_at, expires_at, revoked_at, label "
                        "FROM memory_system.token_list(%s)", (agent,)).fetchall()


def revoke_token(conn: psycopg.Connection, token_id: int) -> bool:
    row = conn.execute("SELECT memory_system.token_revoke(%s)", (token_id,)).fetchone()
    return bool(row and row[0])


# -- the tools ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class ToolSpec:
    name: str
    function: str
    read_only: bool = False
    destructive: bool = False
    idempotent: bool = False


TOOLS = (
    ToolSpec("remember", "record_episode"),
    ToolSpec("recall", "memory_search", read_only=True),
    ToolSpec("recent", "recent_episodes", read_only=True),
    ToolSpec("get", "get_episode", read_only=True),
    ToolSpec("update", "update_episode", destructive=True, idempotent=True),
    ToolSpec("forget", "delete_episode", destructive=True, idempotent=True),
    ToolSpec("similar", "memory_similar", read_only=True),
    ToolSpec("remember_fact", "remember_fact", idempotent=True),
    ToolSpec("get_fact", "get_fact", read_only=True),
    ToolSpec("forget_fact", "delete_fact", destructive=True, idempotent=True),
    ToolSpec("working_memory_set", "working_memory_set", destructive=True, idempotent=True),
    ToolSpec("working_memory_get", "working_memory_get", read_only=True),
    ToolSpec("working_memory_delete", "working_memory_delete", destructive=True, idempotent=True),
    ToolSpec("working_memory_keys", "working_memory_keys", read_only=True),
    ToolSpec("save_checkpoint", "save_checkpoint"),
    ToolSpec("load_checkpoint", "load_checkpoint", read_only=True),
    ToolSpec("list_checkpoints", "list_checkpoints", read_only=True),
    ToolSpec("consensus_read", "consensus_read", read_only=True),
    ToolSpec("consensus_cas", "consensus_cas", destructive=True),
    ToolSpec("memory_stats", "memory_stats", read_only=True),
)
# recall: the server embeds the query, so the agent gives text, never a vector
RECALL_HIDDEN = ("query_embedding",)
RECALL_NOTE = ("\n\nThrough MCP: give query (text); the server embeds it with the sidecar's "
               "model. The result's mode is hybrid, or text when no sidecar answered (then note "
               "says why).")

JSON_TYPES: dict[str, dict[str, Any]] = {
    "text": {"type": "string"},
    "integer": {"type": "integer"},
    "bigint": {"type": "integer"},
    "real": {"type": "number"},
    "double precision": {"type": "number"},
    "boolean": {"type": "boolean"},
    "jsonb": {},
    "text[]": {"type": "array", "items": {"type": "string"}},
    "timestamp with time zone": {"type": "string", "format": "date-time"},
    "interval": {"type": "string", "description": "a PostgreSQL interval, e.g. '10 minutes'"},
}


def input_schema(spec: ToolSpec, sig: Signature) -> dict[str, Any]:
    """The JSON Schema of a tool's arguments, from the SQL function's parameters."""
    properties, required = {}, []
    for p in sig.params:
        if spec.name == "recall" and p.name in RECALL_HIDDEN:
            continue
        schema = dict(JSON_TYPES.get(p.type, {}))
        words = [p.type + ("" if p.has_default else ", required"), schema.get("description")]
        schema["description"] = "; ".join(w for w in words if w)
        properties[p.name] = schema
        if not p.has_default or (spec.name == "recall" and p.name == "query"):
            required.append(p.name)
    return {"type": "object", "properties": properties, "required": required,
            "additionalProperties": False}


def build_tools(catalog: dict[str, Signature]) -> dict[str, tuple[ToolSpec, types.Tool]]:
    missing = [t.function for t in TOOLS if t.function not in catalog]
    if missing:
        raise RuntimeError(f"the database has no nexus.{', nexus.'.join(missing)}: "
                           "run nexus migrate")
    tools = {}
    for spec in TOOLS:
        sig = catalog[spec.function]
        tools[spec.name] = (spec, types.Tool(
            name=spec.name, title=f"nexus.{spec.function}",
            description=sig.comment + (RECALL_NOTE if spec.name == "recall" else ""),
            input_schema=input_schema(spec, sig),
            annotations=types.ToolAnnotations(
                read_only_hint=spec.read_only, destructive_hint=spec.destructive,
                idempotent_hint=spec.idempotent, open_world_hint=False)))
    return tools


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"not JSON: {type(value).__name__}")


def _result(value: Any, is_error: bool = False) -> types.CallToolResult:
    doc = json.loads(json.dumps({"error" if is_error else "result": value}, default=_json_default))
    return types.CallToolResult(content=[types.TextContent(text=json.dumps(doc))],
                                structured_content=doc, is_error=is_error)


def _error(code: str | None, message: str, **extra: str | None) -> types.CallToolResult:
    return _result({"code": code, "message": message, **{k: v for k, v in extra.items() if v}},
                   is_error=True)


# -- the server -----------------------------------------------------------------------------------
MemoryFor = Callable[[ServerRequestContext], AsyncMemory]


class NexusMCP:
    """The tools of one database; `memory_for(ctx)` says which agent a request acts as."""

    def __init__(self, catalog: dict[str, Signature], memory_for: MemoryFor, embed_url: str,
                 http: aiohttp.ClientSession) -> None:
        self.tools = build_tools(catalog)
        self.memory_for, self.embed_url, self.http = memory_for, embed_url, http
        self.server: Server = Server("nexus-memory", version="0.1.0",
                                     instructions="Long-term memory of this agent (NEXUS).",
                                     on_list_tools=self.list_tools, on_call_tool=self.call_tool)

    async def list_tools(self, ctx: ServerRequestContext,
                         params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        return types.ListToolsResult(tools=[tool for _spec, tool in self.tools.values()])

    async def call_tool(self, ctx: ServerRequestContext,
                        params: types.CallToolRequestParams) -> types.CallToolResult:
        entry = self.tools.get(params.name)
        if entry is None:
            return _error(None, f"unknown tool {params.name!r}")
        spec, tool = entry
        args = dict(params.arguments or {})
        unknown = sorted(set(args) - set(tool.input_schema["properties"]))
        missing = sorted(set(tool.input_schema["required"]) - set(args))
        if unknown or missing:
            return _error(None, f"{spec.name}: unknown argument(s) {unknown}, missing {missing}")
        try:
            memory = self.memory_for(ctx)
            if spec.name == "recall":
                return _result(await self.recall(memory, args))
            return _result(shaped(spec.function, await memory.call(spec.function, **args)))
        except NexusError as exc:
            return _error(exc.code, exc.message, detail=exc.detail, hint=exc.hint)
        except EmbedRefused as exc:
            return _error(None, str(exc))
        except psycopg.Error as exc:
            # PostgreSQL's primary message only: no statement, no context lines
            return _error(exc.sqlstate, exc.diag.message_primary or type(exc).__name__)
        except Exception:  # noqa: BLE001 - logged here; the agent gets no stack trace
            log.exception("tool %s failed", spec.name)
            return _error(None, "internal error")

    async def recall(self, memory: AsyncMemory, args: dict[str, Any]) -> dict[str, Any]:
        vector = await query_vector_async(self.http, args["query"], self.embed_url)
        hits = shaped("memory_search", await memory.call("memory_search", **args, **vector.args()))
        doc: dict[str, Any] = {"mode": vector.mode, "hits": hits}
        if vector.note:
            doc["note"] = vector.note
        return doc


# -- stdio ----------------------------------------------------------------------------------------
async def serve_stdio(dsn: str, embed_url: str) -> None:
    async with AsyncExitStack() as stack:
        memory = await stack.enter_async_context(await AsyncMemory.connect(dsn))
        await memory.current_agent()  # not an agent: NX001 now, not at the first tool call
        http = await stack.enter_async_context(aiohttp.ClientSession())
        nexus = NexusMCP(await memory.catalog(), lambda _ctx: memory, embed_url, http)
        async with stdio_server() as (read, write):
            await nexus.server.run(read, write, nexus.server.create_initialization_options())


# -- streamable HTTP ------------------------------------------------------------------------------
class TokenVerifier:
    """Bearer token -> agent, by memory_system.token_agent (nexus_app may execute nothing else).
    A token that is not of our format never reaches the database."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def verify_token(self, token: str) -> AccessToken | None:
        if not TOKEN_FORMAT.fullmatch(token):
            return None
        digest = token_sha256(token)
        async with self.pool.connection() as conn:
            cur = await conn.execute("SELECT memory_system.token_agent(%s)", (digest,))
            row = await cur.fetchone()
        if row is None or row[0] is None:
            return None
        return AccessToken(token=digest.hex(), client_id=row[0], scopes=[])


def _agent_of(ctx: ServerRequestContext) -> str:
    request = ctx.request
    user = request.scope.get("user") if isinstance(request, Request) else None
    if not isinstance(user, AuthenticatedUser):
        raise RuntimeError("a request without an authenticated agent reached a tool")
    return user.access_token.client_id


@asynccontextmanager
async def http_app(conninfo: str, embed_url: str, host: str, port: int,
                   pool_size: int = 16) -> AsyncIterator[Any]:
    """The ASGI app of the HTTP server, with its pool (nexus_app) and its /embed session open."""
    async with AsyncExitStack() as stack:
        # checked at each checkout: a PostgreSQL restart (watchdog, restore) costs no request
        pool = AsyncConnectionPool(conninfo, min_size=2, max_size=pool_size, open=False,
                                   kwargs={"autocommit": True},
                                   check=AsyncConnectionPool.check_connection)
        await pool.open(wait=True, timeout=30)
        stack.push_async_callback(pool.close)
        http = await stack.enter_async_context(aiohttp.ClientSession())
        async with pool.connection() as conn:
            catalog = await read_catalog_async(conn)

        def memory_for(ctx: ServerRequestContext) -> AsyncMemory:
            return AsyncMemory(pool=pool, agent=_agent_of(ctx), catalog=catalog)

        nexus = NexusMCP(catalog, memory_for, embed_url, http)

        async def health(_request: Request) -> JSONResponse:
            try:
                async with pool.connection(timeout=3) as conn:
                    await conn.execute("SELECT 1")
            except (psycopg.Error, TimeoutError) as exc:
                return JSONResponse({"status": "down", "error": type(exc).__name__}, 503)
            return JSONResponse({"status": "ok"})

        url = f"http://{host}:{port}"
        app = nexus.server.streamable_http_app(
            streamable_http_path=MCP_PATH, stateless_http=True, json_response=True, host=host,
            auth=AuthSettings(issuer_url=url, resource_server_url=None),
            token_verifier=TokenVerifier(pool),
            custom_starlette_routes=[Route("/health", health, methods=["GET"])])
        yield app


async def serve_http(conninfo: str, embed_url: str, host: str, port: int) -> None:
    async with http_app(conninfo, embed_url, host, port) as app:
        config = uvicorn.Config(app, host=host, port=port, log_level="warning",
                                lifespan="on", access_log=False)
        print(f"nexus mcp: serving http://{host}:{port}{MCP_PATH}", file=sys.stderr, flush=True)
        await uvicorn.Server(config).serve()
