"""`nexus mcp`: the MCP server, on the official `mcp` package (its low-level `Server`: the tools are
read from the database, not written as Python functions).

Each tool is one `nexus.*` SQL function: its parameters and their types are the function's
signature (pg_proc), its description and its parameters' descriptions the MCP section of the
function's COMMENT (the one source: see tool_text), and a call is exactly one call of that function
by name with named arguments, as the agent's own role, once the arguments have passed the tool's
input schema. Every tool error carries a code (NX..., or PostgreSQL's SQLSTATE) and a plain
message. Two transports:
  stdio       a local agent: the process connects as that agent (nexus mcp --agent NAME, or
              NEXUS_AGENT_DSN).
  HTTP        remote agents (nexus mcp --http): streamable HTTP, stateless, at /mcp. Each request
              carries `Authorization: Bearer <token>` (nexus agent token NAME); the server logs in
              as nexus_app and runs each call in a transaction under SET LOCAL ROLE to the token's
              agent. A missing, malformed, unknown, expired or revoked token gets 401 with a
              WWW-Authenticate header and reaches no API function. A body over 17 MiB gets 413,
              headers over 16 KiB 431.
Both serve the initialize handshake (2024-11-05 to 2025-11-25, 2025-06-18 included) and the newest
revision the package speaks (2026-07-28).
"""

from __future__ import annotations

import asyncio
import contextlib
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
import h11
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
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http import h11_impl as uvicorn_h11

from nexus.client import (
    AsyncMemory,
    EmbedRefused,
    NexusError,
    Param,
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
    ToolSpec("forget", "forget", destructive=True, idempotent=True),
    ToolSpec("similar", "memory_similar", read_only=True),
    ToolSpec("remember_fact", "remember_fact", idempotent=True),
    ToolSpec("get_fact", "get_fact", read_only=True),
    ToolSpec("forget_fact", "delete_fact", destructive=True, idempotent=True),
    ToolSpec("invalidate_fact", "invalidate_fact", destructive=True),
    ToolSpec("fact_history", "fact_history", read_only=True),
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
# recall: the server embeds the query, so the agent gives text (required), never a vector
RECALL_HIDDEN = ("query_embedding",)
RECALL_REQUIRED = ("query",)

INT4, INT8 = 2**31, 2**63
JSON_TYPES: dict[str, dict[str, Any]] = {
    "text": {"type": "string"},
    "integer": {"type": "integer", "minimum": -INT4, "maximum": INT4 - 1},
    "bigint": {"type": "integer", "minimum": -INT8, "maximum": INT8 - 1},
    "real": {"type": "number"},
    "double precision": {"type": "number"},
    "boolean": {"type": "boolean"},
    "jsonb": {},
    "text[]": {"type": "array", "items": {"type": "string"}},
    "timestamp with time zone": {"type": "string", "format": "date-time"},
    "interval": {"type": "string"},
}


@dataclass(frozen=True)
class ToolText:
    """The MCP section of a function's COMMENT: what the tool is for, and each parameter."""
    description: str
    params: dict[str, str]


_MCP_SECTION = re.compile(r"^MCP:", re.MULTILINE)
_PARAM_LINE = re.compile(r"- (\w+): (.*)")


def tool_text(comment: str) -> ToolText | None:
    """The MCP section of a COMMENT ON FUNCTION, None if it has none. The section starts at a line
    `MCP: <what the tool does>` (the text before it is for DBAs, and MCP never shows it), followed
    by one `- <parameter>: <meaning, range, example>` per parameter; a line that starts neither
    way continues the line before it."""
    found = _MCP_SECTION.search(comment)
    if found is None:
        return None
    description: list[str] = []
    params: dict[str, list[str]] = {}
    current = description
    for line in comment[found.end():].splitlines():
        item = _PARAM_LINE.fullmatch(line)
        if item:
            current = params.setdefault(item.group(1), [])
            line = item.group(2)
        current.append(line.strip())
    return ToolText(" ".join(w for w in description if w),
                    {name: " ".join(w for w in words if w) for name, words in params.items()})


def visible_params(spec: ToolSpec, sig: Signature) -> list[Param]:
    return [p for p in sig.params if not (spec.name == "recall" and p.name in RECALL_HIDDEN)]


def input_schema(spec: ToolSpec, sig: Signature, text: ToolText) -> dict[str, Any]:
    """The JSON Schema of a tool's arguments: names and types from the SQL function's parameters,
    descriptions from its COMMENT's MCP section."""
    properties, required = {}, []
    for p in visible_params(spec, sig):
        properties[p.name] = {**JSON_TYPES.get(p.type, {}), "description": text.params[p.name]}
        if not p.has_default or (spec.name == "recall" and p.name in RECALL_REQUIRED):
            required.append(p.name)
    return {"type": "object", "properties": properties, "required": required,
            "additionalProperties": False}


def build_tool(spec: ToolSpec, sig: Signature) -> types.Tool:
    """The tool of one API function. Its COMMENT must describe it and each of its parameters
    (they are its only description, so a parameter added without one is caught here)."""
    text = tool_text(sig.comment)
    where = f"the COMMENT of nexus.{spec.function}"
    if text is None or not text.description:
        raise RuntimeError(f"{where} has no MCP section (a line 'MCP: ...'): run nexus migrate")
    names = [p.name for p in visible_params(spec, sig)]
    undescribed = [n for n in names if not text.params.get(n)]
    unknown = sorted(set(text.params) - set(names))
    if undescribed or unknown:
        raise RuntimeError(f"{where} describes no parameter {undescribed} and unknown ones "
                           f"{unknown}: run nexus migrate")
    return types.Tool(
        name=spec.name, title=f"nexus.{spec.function}", description=text.description,
        input_schema=input_schema(spec, sig, text),
        annotations=types.ToolAnnotations(
            read_only_hint=spec.read_only, destructive_hint=spec.destructive,
            idempotent_hint=spec.idempotent, open_world_hint=False))


def build_tools(catalog: dict[str, Signature]) -> dict[str, tuple[ToolSpec, types.Tool]]:
    missing = [t.function for t in TOOLS if t.function not in catalog]
    if missing:
        raise RuntimeError(f"the database has no nexus.{', nexus.'.join(missing)}: "
                           "run nexus migrate")
    return {spec.name: (spec, build_tool(spec, catalog[spec.function])) for spec in TOOLS}


# -- checking arguments against a tool's schema, before any SQL ----------------------------------
# the codes of the errors the MCP server raises itself (docs/errors.md)
BAD_CALL = "NX070"          # unknown tool or argument, missing argument, wrong type, NUL
NOT_EMBEDDABLE = "NX071"    # recall: /embed refused the query
SERVER_ERROR = "NX079"      # the server's fault or the database unreachable: retry later

_JSON_NAMES = {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
               int: "an integer", float: "a number", type(None): "null"}
_EXPECTED = {"string": "a string", "integer": "an integer", "number": "a number",
             "boolean": "true or false", "array": "an array of strings"}


class ToolCallError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def _has_nul(value: Any) -> bool:
    """Whether a string anywhere in a JSON value (keys included) holds U+0000, which PostgreSQL's
    text and jsonb cannot store."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _type_problem(schema: dict[str, Any], value: Any) -> str | None:
    """What is wrong with a (non-null) value for a property of our schemas, or None."""
    kind = schema.get("type")
    if kind == "string":
        ok = isinstance(value, str)
    elif kind == "integer":
        ok = (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer())
        if ok and not schema["minimum"] <= value <= schema["maximum"]:
            return f"must be between {schema['minimum']} and {schema['maximum']}"
    elif kind == "number":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    elif kind == "boolean":
        ok = isinstance(value, bool)
    elif kind == "array":
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
    else:  # any JSON value
        ok = True
    if not ok:
        got = _JSON_NAMES.get(type(value), type(value).__name__)
        if isinstance(value, list) and kind == "array":
            got = "an array with an item that is not a string"
        return f"must be {_EXPECTED[kind]}, got {got}"
    if _has_nul(value):
        return "holds a NUL character (U+0000), which cannot be stored: remove it"
    return None


def check_arguments(tool: types.Tool, arguments: dict[str, Any]) -> dict[str, Any]:
    """The arguments of a call, checked against the tool's input schema (names, required ones,
    JSON types, integer ranges, no NUL character); whole-number floats given for integers become
    ints. Raises ToolCallError (NX070) naming every problem. null is SQL NULL, allowed for an
    optional argument (the function says whether NULL is meaningful) but not a required one."""
    properties: dict[str, Any] = tool.input_schema["properties"]
    required: list[str] = tool.input_schema["required"]
    problems = []
    unknown = [name for name in arguments if name not in properties]
    if unknown:
        problems.append(f"unknown argument{'s' * (len(unknown) > 1)} {', '.join(unknown)} "
                        f"(its arguments are: {', '.join(properties) or 'none'})")
    missing = [name for name in required if arguments.get(name) is None]
    if missing:
        problems.append(f"missing {', '.join(missing)} (required, not null)")
    checked = dict(arguments)
    for name, value in arguments.items():
        schema = properties.get(name)
        if schema is None or value is None:
            continue
        problem = _type_problem(schema, value)
        if problem:
            problems.append(f"{name} {problem}")
        elif schema.get("type") == "integer":
            checked[name] = int(value)
    if problems:
        raise ToolCallError(BAD_CALL, f"{tool.name}: " + "; ".join(problems))
    return checked


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


def _error(code: str, message: str, **extra: str | None) -> types.CallToolResult:
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
            return _error(BAD_CALL, f"unknown tool {params.name!r}; the tools are: "
                                    f"{', '.join(self.tools)}")
        spec, tool = entry
        try:
            args = check_arguments(tool, dict(params.arguments or {}))
            if spec.name == "recall" and not args["query"].strip():
                return _error("NX030", "recall: query is empty; give the words or the question "
                                       "to search for")
            memory = self.memory_for(ctx)
            if spec.name == "recall":
                return _result(await self.recall(memory, args))
            return _result(shaped(spec.function, await memory.call(spec.function, **args)))
        except ToolCallError as exc:
            return _error(exc.code, exc.message)
        except NexusError as exc:
            return _error(exc.code, exc.message, detail=exc.detail, hint=exc.hint)
        except EmbedRefused as exc:
            return _error(NOT_EMBEDDABLE, f"recall: the query could not be embedded ({exc}); "
                                          "shorten or rephrase it")
        except psycopg.Error as exc:
            if exc.sqlstate is None:  # raised by the client: no connection, pool exhausted
                log.warning("tool %s: %s", spec.name, exc)
                return _error(SERVER_ERROR, "the memory database did not answer; retry later")
            # PostgreSQL's primary message only: no statement, no context lines
            return _error(exc.sqlstate, exc.diag.message_primary or type(exc).__name__)
        except Exception:  # noqa: BLE001 - logged here; the agent gets no stack trace
            log.exception("tool %s failed", spec.name)
            return _error(SERVER_ERROR, "internal error of the memory server (logged); retry "
                                        "later")

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
# A request body holds at most the largest value a tool takes (a checkpoint state of 16 MiB) and
# the JSON-RPC around it; the request line and headers 16 KiB, uvicorn's default (a bearer token is
# 47 characters). What a client sends past an early answer (401, 413, 431) is read and dropped, up
# to DRAIN_BYTES or DRAIN_SECONDS, before the connection closes: closing a socket with unread data
# resets it, and the client would never read the answer.
MAX_BODY_BYTES = 17 * 2**20
MAX_HEADER_BYTES = 16 * 2**10
DRAIN_BYTES = 64 * 2**20
DRAIN_SECONDS = 10.0


class ReadBodyBeforeAnswering:
    """ASGI middleware: a response is completed only once the request body has been read (what
    the app left unread is dropped, within the drain limits)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = {"read": False, "done": False}

        async def tracked_receive() -> Message:
            message = await receive()
            state["read"] = True
            state["done"] = message["type"] != "http.request" or not message.get("more_body")
            return message

        async def drain() -> None:
            # a client waiting for 100-continue sends no body unless asked to
            if not state["read"] and any(
                    k == b"expect" and v.lower() == b"100-continue" for k, v in scope["headers"]):
                return
            dropped = 0
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(DRAIN_SECONDS):
                    while not state["done"] and dropped <= DRAIN_BYTES:
                        dropped += len((await tracked_receive()).get("body", b""))

        async def answer(message: Message) -> None:
            if (message["type"] == "http.response.body" and not message.get("more_body")
                    and not state["done"]):
                await drain()
            await send(message)

        await self.app(scope, tracked_receive, answer)


class H11Protocol(uvicorn_h11.H11Protocol):
    """uvicorn's HTTP/1.1 protocol, but a request whose line and headers are over
    MAX_HEADER_BYTES gets 431 (uvicorn says 400 and closes at once), and what the client still
    sends is dropped before the connection closes."""

    dropped: int | None = None

    def data_received(self, data: bytes) -> None:
        if self.dropped is None:
            super().data_received(data)
            return
        self.dropped += len(data)
        if self.dropped > DRAIN_BYTES:
            self.transport.close()

    def send_400_response(self, msg: str) -> None:
        buffered = self.conn.trailing_data[0]
        if len(buffered) <= MAX_HEADER_BYTES or b"\r\n\r\n" in buffered:
            super().send_400_response(msg)
            return
        body = json.dumps({"error": f"request line and headers over {MAX_HEADER_BYTES} bytes"})
        headers = [(b"content-type", b"application/json"),
                   (b"content-length", str(len(body)).encode()), (b"connection", b"close")]
        for event in (h11.Response(status_code=431, headers=headers),
                      h11.Data(data=body.encode()), h11.EndOfMessage()):
            self.transport.write(self.conn.send(event))
        self.dropped = 0
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(DRAIN_SECONDS, self.transport.close)


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
            max_request_body_size=MAX_BODY_BYTES,
            auth=AuthSettings(issuer_url=url, resource_server_url=None),
            token_verifier=TokenVerifier(pool),
            custom_starlette_routes=[Route("/health", health, methods=["GET"])])
        yield ReadBodyBeforeAnswering(app)


async def serve_http(conninfo: str, embed_url: str, host: str, port: int) -> None:
    async with http_app(conninfo, embed_url, host, port) as app:
        config = uvicorn.Config(app, host=host, port=port, log_level="warning",
                                lifespan="on", access_log=False, http=H11Protocol,
                                h11_max_incomplete_event_size=MAX_HEADER_BYTES)
        print(f"nexus mcp: serving http://{host}:{port}{MCP_PATH}", file=sys.stderr, flush=True)
        await uvicorn.Server(config).serve()
