"""The Python client of NEXUS memory: one method per `nexus.*` SQL function, sync and asyncio.

    from nexus.client import Memory

    with Memory("postgresql://aria@127.0.0.1:55432/nexus?passfile=...") as memory:
        memory.record_episode("The user prefers invoices in PDF", tags=["billing"])
        for hit in memory.search("how does the user want invoices?").hits:
            print(hit.kind, hit.id, hit.fused_score, hit.snippet)

A client is built from an agent's connection string (or an open connection of the agent, or a pool
of them), or from an orchestrator's pool (logged in as `nexus_app`) plus an agent name: then every
call runs in a transaction of its own under `SET LOCAL ROLE <agent>`, so the role ends with the
call, before the connection goes back to the pool. Either way the database decides what the agent
sees: each method is exactly one call of its `nexus.*` function, by name, with named arguments; no
row is filtered here. An argument left out is left out of the call (the SQL default applies); None
is SQL NULL. `calls()` runs several calls in one transaction (nexus.langgraph's batches).

Errors: NX033 raises NotFound, NX035 Conflict (with the key's current version), any other NX0xx
InvalidInput (its code kept), all three psycopg.Error subclasses; everything else (connection
trouble, PostgreSQL's own codes) is raised as psycopg raised it.
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager, nullcontext
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal
from uuid import UUID

import psycopg
from psycopg import sql
from psycopg.adapt import PyFormat
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool, ConnectionPool

if TYPE_CHECKING:  # imported where used: the `nexus` command starts without it (0.1 s)
    import aiohttp

DEFAULT_EMBED_URL = "http://127.0.0.1:58080"
EMBED_TIMEOUT = 30.0  # seconds for one /embed call
MODES = ("hybrid", "text", "vector")
# the options of nexus.memory_search a caller may pass by name
SEARCH_OPTIONS = frozenset({
    "limit_n", "kinds", "session", "since", "until", "tags_all", "metadata_contains", "text_mode",
    "rrf_k", "text_weight", "vector_weight", "recency_weight", "recency_half_life", "candidates",
    "df_budget", "neighbour_weight", "context", "as_of", "include_history", "spaces", "scope",
})


class _Default:
    def __repr__(self) -> str:
        return "DEFAULT"


# "leave this argument out of the call": the SQL function's own default applies
DEFAULT: Any = _Default()


# -- errors -------------------------------------------------------------------------------------
class EmbedUnavailable(RuntimeError):
    """The sidecar's /embed could not be reached (not running, wrong port)."""


class EmbedRefused(ValueError):
    """The sidecar answered but refused the text (empty, too long, not embeddable)."""


class NexusError(psycopg.Error):
    """An error NEXUS raised on purpose: its SQLSTATE (NX..., also as `sqlstate`), message, detail
    and hint. A psycopg.Error still: `except psycopg.Error` keeps catching every database error."""

    def __init__(self, code: str, message: str, detail: str | None = None,
                 hint: str | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.sqlstate = code
        self.code, self.message, self.detail, self.hint = code, message, detail, hint


class NotFound(NexusError):
    """NX033: the id is not one of the agent's memories (another agent's id is not found either)."""


class Conflict(NexusError):
    """NX035: a consensus compare-and-set lost; `current_version` is the key's version now
    (0: the key does not exist)."""

    def __init__(self, code: str, message: str, detail: str | None = None,
                 hint: str | None = None) -> None:
        super().__init__(code, message, detail, hint)
        found = re.search(r"current_version=(\d+)", detail or "")
        self.current_version = int(found.group(1)) if found else 0


class InvalidInput(NexusError, ValueError):
    """Any other NX error: a bad argument, a payload too large, not an agent... (the code says
    which: docs/errors.md)."""


_NEXUS_CODE = re.compile(r"NX\d\d\d")


def translate(exc: psycopg.Error) -> NexusError | None:
    """Our typed exception for a NEXUS SQLSTATE, None for anything else (left as it is)."""
    code = exc.sqlstate or ""
    if not _NEXUS_CODE.fullmatch(code):
        return None
    cls = {"NX033": NotFound, "NX035": Conflict}.get(code, InvalidInput)
    diag = exc.diag
    return cls(code, diag.message_primary or str(exc), diag.message_detail, diag.message_hint)


# -- typed results ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Episode:
    id: int
    episode_uuid: UUID
    session_id: str | None
    action_type: str
    source: str
    content: str
    metadata: dict[str, Any]
    tags: list[str]
    importance: float
    valid_at: datetime | None
    created_at: datetime
    updated_at: datetime
    # get_episode: whether its current content has a vector; recent_episodes does not say
    embedded: bool | None = None
    # recent_episodes: the agent that wrote it (docs/spaces.md)
    author: str | None = None


@dataclass(frozen=True)
class Fact:
    id: int
    content: str
    metadata: dict[str, Any]
    tags: list[str]
    importance: float
    source_episode_id: int | None
    created_at: datetime
    updated_at: datetime
    embedded: bool
    # its validity (docs/facts.md): the key it is the value of, when it held (valid_to None while
    # it holds), what ended it (superseded, invalidated) and when that was recorded, the fact that
    # replaced it, and whether it holds now
    fact_key: str | None
    valid_from: datetime
    valid_to: datetime | None
    ended_by: str | None
    ended_at: datetime | None
    superseded_by: int | None
    is_current: bool


@dataclass(frozen=True)
class SearchHit:
    kind: str
    id: int
    content: str
    snippet: str | None
    text_rank: int | None
    text_score: float | None
    vector_rank: int | None
    vector_score: float | None
    fused_score: float
    created_at: datetime
    session_id: str | None
    tags: list[str]
    metadata: dict[str, Any]
    valid_at: datetime | None = None
    # with context => N: up to N episodes before and after the hit in its session
    neighbours: list[dict[str, Any]] | None = None
    # a fact's key and validity (docs/facts.md); None for episodes and store texts
    fact_key: str | None = None
    valid_from: datetime | None = None
    valid_to: datetime | None = None
    ended_by: str | None = None
    superseded_by: int | None = None
    # its space (None: the caller's own memory) and the agent that wrote it (docs/spaces.md)
    space: str | None = None
    author: str | None = None


@dataclass(frozen=True)
class SimilarHit:
    kind: str
    id: int
    content: str
    snippet: str | None
    vector_rank: int
    vector_score: float
    created_at: datetime
    session_id: str | None
    tags: list[str]
    metadata: dict[str, Any]
    # a fact's key and validity (docs/facts.md); None for episodes and store texts
    fact_key: str | None = None
    valid_from: datetime | None = None
    valid_to: datetime | None = None
    ended_by: str | None = None
    superseded_by: int | None = None


@dataclass(frozen=True)
class SpaceInfo:
    """A space the agent is in (nexus.spaces, docs/spaces.md): its rights, read or write."""
    space: str
    rights: str
    owner: str | None
    may_grant: bool
    created_at: datetime
    description: str


@dataclass(frozen=True)
class TextCandidate:
    kind: str
    id: int
    score: float


@dataclass(frozen=True)
class WorkingMemoryKey:
    key: str
    expires_at: datetime | None
    updated_at: datetime


@dataclass(frozen=True)
class Checkpoint:
    id: int
    checkpoint_name: str
    state: Any
    metadata: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True)
class CheckpointInfo:
    id: int
    checkpoint_name: str
    metadata: dict[str, Any]
    state_bytes: int
    created_at: datetime


@dataclass(frozen=True)
class ConsensusEntry:
    consensus_key: str
    value: Any
    version: int
    updated_by: str
    updated_at: datetime


@dataclass(frozen=True)
class KindStats:
    kind: str
    total: int
    embedded: int | None
    embedded_share: float | None
    pending: int | None
    processing: int | None
    dead: int | None
    # current vectors per model version (the version carries the precision: "+bf16")
    model_versions: dict[str, int] | None = None
    # facts (kind semantic; None for the others): those that hold now, and those that stopped
    # holding, replaced by another fact or invalidated
    current: int | None = None
    superseded: int | None = None
    invalidated: int | None = None
    # episodes and facts: how many the agent's retention rules removed (docs/privacy.md)
    removed_by_retention: int | None = None


@dataclass(frozen=True)
class StoreItem:
    value: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    expires_at: datetime | None


@dataclass(frozen=True)
class StoreHit:
    namespace: list[str]
    key: str
    value: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    # the fused score and the branches' ranks and scores; None without a query
    score: float | None
    text_rank: int | None
    text_score: float | None
    vector_rank: int | None
    vector_score: float | None


@dataclass(frozen=True)
class StoreNamespace:
    namespace: list[str]


@dataclass(frozen=True)
class RetentionRule:
    """A retention rule of the agent (docs/privacy.md): what the sweep removed under it, and
    `matching`, what it would take now."""
    kind: str
    older_than: timedelta
    importance_below: float | None
    set_by: str
    created_at: datetime
    updated_at: datetime
    removed: int
    last_swept_at: datetime | None
    matching: int


@dataclass(frozen=True)
class ReadRecord:
    """A recorded read of the agent (docs/privacy.md): `kinds[i]` and `ids[i]` are the i-th
    memory returned."""
    read_at: datetime
    function: str
    query_sha256: bytes | None
    query: str | None
    kinds: list[str]
    ids: list[int]


@dataclass(frozen=True)
class SearchResult:
    """What `search()` found, and how: "hybrid" (the sidecar embedded the query) or "text" (no
    sidecar answered: `note` says why; the text branch alone ranked the hits)."""
    mode: str
    hits: list[SearchHit]
    note: str | None = None


# -- the catalog: each API function's parameters and their types ------------------------------
@dataclass(frozen=True)
class Param:
    name: str
    type: str           # as format_type() spells it: text, text[], jsonb, vector, real, interval...
    has_default: bool


@dataclass(frozen=True)
class Signature:
    name: str
    params: tuple[Param, ...]
    columns: tuple[str, ...]  # OUT columns of a TABLE function; () for a scalar one
    volatility: str           # i(mmutable) s(table) v(olatile)
    comment: str

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)


CATALOG_QUERY = """
SELECT p.proname::text AS name, p.provolatile::text AS volatility, p.pronargdefaults AS defaults,
       coalesce(obj_description(p.oid, 'pg_proc'), '') AS comment,
       coalesce(array_agg(a.name ORDER BY a.n) FILTER (WHERE a.mode IN ('i', 'b', 'v')), '{}')
           AS in_names,
       coalesce(array_agg(format_type(a.type, NULL) ORDER BY a.n)
                    FILTER (WHERE a.mode IN ('i', 'b', 'v')), '{}') AS in_types,
       coalesce(array_agg(a.name ORDER BY a.n) FILTER (WHERE a.mode IN ('o', 't')), '{}')
           AS out_names
  FROM pg_catalog.pg_proc AS p
  LEFT JOIN LATERAL unnest(coalesce(p.proallargtypes, p.proargtypes::oid[]), p.proargnames,
                           coalesce(p.proargmodes, array_fill('i'::"char", ARRAY[p.pronargs])))
            WITH ORDINALITY AS a (type, name, mode, n) ON true
 WHERE p.pronamespace = 'nexus'::regnamespace AND p.proname !~ '^_' AND p.prokind = 'f'
 GROUP BY p.oid
 ORDER BY 1
"""


def _signatures(rows: list[dict[str, Any]]) -> dict[str, Signature]:
    out = {}
    for r in rows:
        first_default = len(r["in_names"]) - r["defaults"]
        params = tuple(Param(n, t, i >= first_default)
                       for i, (n, t) in enumerate(zip(r["in_names"], r["in_types"], strict=True)))
        out[r["name"]] = Signature(r["name"], params, tuple(r["out_names"]), r["volatility"],
                                   r["comment"])
    return out


def read_catalog(conn: psycopg.Connection) -> dict[str, Signature]:
    """The API functions of schema nexus (not the internal `_...` ones), from pg_proc."""
    with conn.cursor(row_factory=dict_row) as cur:
        return _signatures(cur.execute(CATALOG_QUERY).fetchall())


async def read_catalog_async(conn: psycopg.AsyncConnection) -> dict[str, Signature]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(CATALOG_QUERY)
        return _signatures(await cur.fetchall())


def vector_literal(vector: list[float]) -> str:
    return "[" + ",".join(repr(float(x)) for x in vector) + "]"


def statement(sig: Signature, args: Mapping[str, Any]) -> tuple[sql.Composed, dict[str, Any]]:
    """`SELECT * FROM nexus.<function>(name => value::type, ...)`: the one statement of a call.
    Arguments whose value is DEFAULT are left out; each value is cast to its declared type. A
    vector given as numbers goes as a binary float8[] (cheaper to send and to read than text);
    an as_of given as text goes through memory_system._as_of (NX039 if it is no timestamp)."""
    parts, values = [], {}
    for name, value in args.items():
        if value is DEFAULT:
            continue
        param = sig.param(name)
        if param is None:
            raise TypeError(f"nexus.{sig.name}() has no parameter {name!r}")
        placeholder, cast = sql.Placeholder(name), sql.SQL(param.type)
        if name == "as_of" and isinstance(value, str):
            # as_of as text (MCP): a timestamp, or NX039 rather than PostgreSQL's 22007
            parts.append(sql.SQL("{} => memory_system._as_of({}::text)").format(
                sql.Identifier(name), placeholder))
            values[name] = value
            continue
        if value is not None and param.type == "jsonb":
            value = Jsonb(value)
        elif value is not None and param.type.endswith("vector") and not isinstance(value, str):
            value = [float(x) for x in value]
            placeholder = sql.Placeholder(name, PyFormat.BINARY)
            cast = sql.SQL("float8[]::" + param.type)
        parts.append(sql.SQL("{} => {}::{}").format(sql.Identifier(name), placeholder, cast))
        values[name] = value
    return (sql.SQL("SELECT * FROM nexus.{}({})").format(sql.Identifier(sig.name),
                                                         sql.SQL(", ").join(parts)), values)


def _signature(catalog: Mapping[str, Signature], function: str) -> Signature:
    sig = catalog.get(function)
    if sig is None:
        raise TypeError(f"nexus.{function} is not an API function")
    return sig


def _set_role(agent: str) -> sql.Composed:
    return sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(agent))


@contextmanager
def _translated() -> Iterator[None]:
    """Raise a NEXUS SQLSTATE as our typed exception (translate); anything else as it is."""
    try:
        yield
    except psycopg.Error as exc:
        typed = translate(exc)
        if typed is None:
            raise
        raise typed from exc


# -- how each function's rows become a result --------------------------------------------------
Shape = Literal["value", "one", "first", "rows"]


@dataclass(frozen=True)
class Result:
    """How a function answers: a scalar ("value"), exactly one row ("one"), one row or none
    ("first") or rows; `row` is the dataclass of a row."""
    shape: Shape
    row: type | None = None


RESULTS: dict[str, Result] = {
    "current_agent": Result("value"),
    "record_episode": Result("value"),
    "get_episode": Result("one", Episode),
    "update_episode": Result("value"),
    "delete_episode": Result("value"),
    "forget": Result("value"),
    "recent_episodes": Result("rows", Episode),
    "remember_fact": Result("value"),
    "get_fact": Result("rows", Fact),
    "delete_fact": Result("value"),
    "invalidate_fact": Result("value"),
    "fact_history": Result("rows", Fact),
    "working_memory_set": Result("value"),
    "working_memory_get": Result("value"),
    "working_memory_delete": Result("value"),
    "working_memory_keys": Result("rows", WorkingMemoryKey),
    "save_checkpoint": Result("value"),
    "load_checkpoint": Result("first", Checkpoint),
    "list_checkpoints": Result("rows", CheckpointInfo),
    "consensus_read": Result("first", ConsensusEntry),
    "consensus_cas": Result("value"),
    "memory_stats": Result("rows", KindStats),
    "memory_search": Result("rows", SearchHit),
    "memory_similar": Result("rows", SimilarHit),
    "text_candidates": Result("rows", TextCandidate),
    "store_put": Result("value"),
    "store_get": Result("first", StoreItem),
    "store_delete": Result("value"),
    "store_search": Result("rows", StoreHit),
    "store_list_namespaces": Result("rows", StoreNamespace),
    "spaces": Result("rows", SpaceInfo),
    "space_grant": Result("value"),
    "space_revoke": Result("value"),
    "retention_set": Result("value"),
    "retention_remove": Result("value"),
    "retention_rules": Result("rows", RetentionRule),
    "read_log": Result("rows", ReadRecord),
}


def shaped(function: str, rows: list[dict[str, Any]]) -> Any:
    """The rows of a call as its result: a value, a row (dict) or None, or the rows."""
    shape = RESULTS[function].shape if function in RESULTS else "rows"
    if shape == "value":
        return next(iter(rows[0].values())) if rows else None
    if shape in ("one", "first"):
        return rows[0] if rows else None
    return rows


def _typed(function: str, rows: list[dict[str, Any]]) -> Any:
    result, value = RESULTS[function], shaped(function, rows)
    if result.row is None or value is None:
        return value
    if result.shape == "rows":
        return [result.row(**r) for r in value]
    return result.row(**value)


def _args(frame: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in frame.items() if k != "self"}


def _embed_request(text: str) -> bytes:
    return json.dumps({"text": text}).encode()


def embed(text: str, url: str = DEFAULT_EMBED_URL, timeout: float = EMBED_TIMEOUT) -> list[float]:
    """The query vector of `text`, from the sidecar (which caches it in Redis)."""
    request = urllib.request.Request(
        url.rstrip("/") + "/embed", data=_embed_request(text),
        headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return [float(x) for x in json.load(response)["embedding"]]
    except urllib.error.HTTPError as exc:
        try:
            message = json.load(exc).get("error", exc.reason)
        except (ValueError, AttributeError):
            message = exc.reason
        raise EmbedRefused(f"/embed refused the text ({exc.code}): {message}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise EmbedUnavailable(f"the sidecar's /embed is not reachable at {url}: {exc}") from exc


async def embed_async(session: aiohttp.ClientSession, text: str,
                      url: str = DEFAULT_EMBED_URL, timeout: float = EMBED_TIMEOUT) -> list[float]:
    """embed() on an aiohttp session (kept open by the caller, so connections are reused)."""
    import aiohttp
    try:
        async with session.post(url.rstrip("/") + "/embed", data=_embed_request(text),
                                headers={"Content-Type": "application/json"},
                                timeout=aiohttp.ClientTimeout(total=timeout)) as response:
            doc = await response.json(content_type=None)
            if response.status != 200:
                message = doc.get("error", response.reason) if isinstance(doc, dict) else doc
                raise EmbedRefused(f"/embed refused the text ({response.status}): {message}")
            return [float(x) for x in doc["embedding"]]
    except (TimeoutError, aiohttp.ClientConnectionError, OSError) as exc:
        raise EmbedUnavailable(f"the sidecar's /embed is not reachable at {url}: {exc}") from exc


# -- a search's query vector: "embed the query with /embed, else search by text only" -----------
@dataclass(frozen=True)
class QueryVector:
    """The query's vector from the sidecar, or none and the error why: then the search is by
    text only, and `note` is what the caller is told."""
    embedding: list[float] | None
    error: Exception | None = None  # EmbedUnavailable (EmbedRefused: see _text_only_after)

    @property
    def mode(self) -> str:
        return "text" if self.embedding is None else "hybrid"

    @property
    def note(self) -> str | None:
        return None if self.error is None else f"{self.error}; searching text only"

    def args(self) -> dict[str, Any]:
        """memory_search's query_embedding, or nothing (its default: no vector branch)."""
        return {} if self.embedding is None else {"query_embedding": self.embedding}

    def result(self, hits: list[SearchHit]) -> SearchResult:
        return SearchResult(self.mode, hits, self.note)


def _text_only_after(if_refused: bool) -> tuple[type[Exception], ...]:
    """The /embed errors after which a search goes on by text only: no sidecar answered (not
    running, wrong port, no answer within EMBED_TIMEOUT). A text the sidecar refused (empty, over
    NEXUS_EMBED_MAX_CHARS) is the caller's error, raised, unless `text_only_if_refused` (for a
    caller with no one to tell: LangGraph's store logs it and searches by text)."""
    return (EmbedUnavailable, EmbedRefused) if if_refused else (EmbedUnavailable,)


def query_vector(text: str, url: str = DEFAULT_EMBED_URL, *,
                 text_only_if_refused: bool = False) -> QueryVector:
    """The query vector of a search from the sidecar, or why the search is text only."""
    try:
        return QueryVector(embed(text, url))
    except _text_only_after(text_only_if_refused) as exc:
        return QueryVector(None, exc)


async def query_vector_async(session: aiohttp.ClientSession, text: str,
                             url: str = DEFAULT_EMBED_URL, *,
                             text_only_if_refused: bool = False) -> QueryVector:
    """query_vector() on an aiohttp session."""
    try:
        return QueryVector(await embed_async(session, text, url))
    except _text_only_after(text_only_if_refused) as exc:
        return QueryVector(None, exc)


# -- the sync client ----------------------------------------------------------------------------
class Memory:
    """An agent's memory, synchronously. One of:
      Memory(dsn)                  an agent's connection string (the connection is the client's)
      Memory(connection=conn)      an open connection of the agent (left open by close())
      Memory(pool=pool)            a pool of the agent's own connections
      Memory(pool=pool, agent=a)   an orchestrator's pool (nexus_app): each call under SET ROLE a
    """

    def __init__(self, dsn: str | None = None, *, connection: psycopg.Connection | None = None,
                 pool: ConnectionPool | None = None, agent: str | None = None,
                 embed_url: str = DEFAULT_EMBED_URL,
                 catalog: dict[str, Signature] | None = None) -> None:
        if sum(x is not None for x in (dsn, connection, pool)) != 1:
            raise TypeError("give one of: dsn, connection, pool (with agent)")
        if agent is not None and pool is None:
            raise TypeError("agent goes with pool (an orchestrator acting as that agent)")
        self._owned = psycopg.connect(dsn, autocommit=True) if dsn is not None else None
        self._conn = self._owned or connection
        self._pool, self.agent, self.embed_url = pool, agent, embed_url
        self._catalog = catalog

    def close(self) -> None:
        if self._owned is not None:
            self._owned.close()

    def __enter__(self) -> Memory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def session(self, calls: int = 1) -> Iterator[psycopg.Connection]:
        """A connection acting as the agent, for `calls` calls (or SQL of one's own): the agent's
        own (in a transaction if more than one call), or a pooled one of nexus_app in a transaction
        under SET LOCAL ROLE (which ends with the transaction, before the pool has it back)."""
        with (nullcontext(self._conn) if self._pool is None else self._pool.connection()) as conn, \
                conn.transaction() if calls > 1 or self.agent is not None else nullcontext():
            if self.agent is not None:
                conn.execute(_set_role(self.agent))
            yield conn

    def catalog(self) -> dict[str, Signature]:
        if self._catalog is None:
            if self._pool is not None:
                with self._pool.connection() as conn:
                    self._catalog = read_catalog(conn)
            else:
                self._catalog = read_catalog(self._conn)  # type: ignore[arg-type]
        return self._catalog

    def call(self, function: str, **args: Any) -> list[dict[str, Any]]:
        """Call nexus.<function> with these named arguments; its rows, as dicts."""
        return self.calls([(function, args)])[0]

    def calls(self, calls: Sequence[tuple[str, Mapping[str, Any]]]) -> list[list[dict[str, Any]]]:
        """Several calls (function, named arguments), in this order and in one transaction; the
        rows of each."""
        statements = [statement(_signature(self.catalog(), f), args) for f, args in calls]
        with _translated(), self.session(len(statements)) as conn, \
                conn.cursor(row_factory=dict_row) as cur:
            return [cur.execute(query, values).fetchall() for query, values in statements]

    def _invoke(self, function: str, args: dict[str, Any]) -> Any:
        return _typed(function, self.call(function, **_args(args)))

    def search(self, query: str, **options: Any) -> SearchResult:
        """Hybrid search for a text: the sidecar's /embed gives the query vector; if no sidecar
        answers, a text-only search (the result says so). options: those of memory_search."""
        vector = query_vector(query, self.embed_url)
        return vector.result(self.memory_search(query=query, **vector.args(), **options))

    # one method per nexus.* function (tests/test_client.py compares them with the catalog)
    def current_agent(self) -> str:
        return self._invoke("current_agent", locals())

    def record_episode(self, content: str, action_type: str = DEFAULT,
                       metadata: dict[str, Any] = DEFAULT, tags: list[str] = DEFAULT,
                       importance: float = DEFAULT, session: str | None = DEFAULT,
                       source: str = DEFAULT, valid_at: datetime | None = DEFAULT,
                       space: str | None = DEFAULT) -> int:
        return self._invoke("record_episode", locals())

    def get_episode(self, episode_id: int) -> Episode:
        return self._invoke("get_episode", locals())

    def update_episode(self, episode_id: int, content: str | None = DEFAULT,
                       metadata: dict[str, Any] | None = DEFAULT, tags: list[str] | None = DEFAULT,
                       importance: float | None = DEFAULT, action_type: str | None = DEFAULT,
                       session: str | None = DEFAULT) -> datetime:
        return self._invoke("update_episode", locals())

    def delete_episode(self, episode_id: int) -> bool:
        return self._invoke("delete_episode", locals())

    def forget(self, kinds: list[str] = DEFAULT, tags_all: list[str] | None = DEFAULT,
               session: str | None = DEFAULT, since: datetime | None = DEFAULT,
               until: datetime | None = DEFAULT, metadata_contains: dict[str, Any] | None = DEFAULT,
               space: str | None = DEFAULT, dry_run: bool | None = DEFAULT,
               episode_id: int | None = DEFAULT) -> dict[str, Any]:
        """nexus.forget: the receipt (a dry run unless dry_run=False; docs/privacy.md)."""
        return self._invoke("forget", locals())

    def recent_episodes(self, limit_n: int = DEFAULT, session: str | None = DEFAULT,
                        since: datetime | None = DEFAULT, until: datetime | None = DEFAULT,
                        tags_all: list[str] | None = DEFAULT,
                        before_created_at: datetime | None = DEFAULT,
                        before_id: int | None = DEFAULT,
                        space: str | None = DEFAULT) -> list[Episode]:
        return self._invoke("recent_episodes", locals())

    def remember_fact(self, content: str, metadata: dict[str, Any] = DEFAULT,
                      tags: list[str] = DEFAULT, importance: float = DEFAULT,
                      source_episode_id: int | None = DEFAULT, key: str | None = DEFAULT,
                      supersedes: int | None = DEFAULT,
                      valid_from: datetime | str | None = DEFAULT,
                      space: str | None = DEFAULT) -> int:
        return self._invoke("remember_fact", locals())

    def get_fact(self, fact_id: int | None = DEFAULT, key: str | None = DEFAULT,
                 as_of: datetime | str | None = DEFAULT,
                 include_history: bool = DEFAULT, space: str | None = DEFAULT) -> list[Fact]:
        """The fact (by id, or of a key) if it holds now, or at as_of: one row or none; with
        include_history, whatever its validity (every fact of the key, oldest first); in `space`,
        a shared space's."""
        return self._invoke("get_fact", locals())

    def delete_fact(self, fact_id: int) -> bool:
        return self._invoke("delete_fact", locals())

    def invalidate_fact(self, fact_id: int, at: datetime | str | None = DEFAULT) -> datetime:
        return self._invoke("invalidate_fact", locals())

    def fact_history(self, fact_id: int | None = DEFAULT, key: str | None = DEFAULT,
                     space: str | None = DEFAULT) -> list[Fact]:
        return self._invoke("fact_history", locals())

    def working_memory_set(self, key: str, value: Any,
                           ttl: timedelta | str | None = DEFAULT) -> datetime | None:
        return self._invoke("working_memory_set", locals())

    def working_memory_get(self, key: str) -> Any:
        return self._invoke("working_memory_get", locals())

    def working_memory_delete(self, key: str) -> bool:
        return self._invoke("working_memory_delete", locals())

    def working_memory_keys(self, prefix: str | None = DEFAULT) -> list[WorkingMemoryKey]:
        return self._invoke("working_memory_keys", locals())

    def save_checkpoint(self, state: Any, name: str = DEFAULT,
                        metadata: dict[str, Any] = DEFAULT) -> int:
        return self._invoke("save_checkpoint", locals())

    def load_checkpoint(self, name: str = DEFAULT) -> Checkpoint | None:
        return self._invoke("load_checkpoint", locals())

    def list_checkpoints(self, name: str | None = DEFAULT,
                         limit_n: int = DEFAULT) -> list[CheckpointInfo]:
        return self._invoke("list_checkpoints", locals())

    def consensus_read(self, key: str) -> ConsensusEntry | None:
        return self._invoke("consensus_read", locals())

    def consensus_cas(self, key: str, expected_version: int, value: Any) -> int:
        return self._invoke("consensus_cas", locals())

    def memory_stats(self, space: str | None = DEFAULT) -> list[KindStats]:
        return self._invoke("memory_stats", locals())

    def memory_search(self, query: str | None = DEFAULT,
                      query_embedding: list[float] | None = DEFAULT, limit_n: int = DEFAULT,
                      kinds: list[str] = DEFAULT, session: str | None = DEFAULT,
                      since: datetime | None = DEFAULT, until: datetime | None = DEFAULT,
                      tags_all: list[str] | None = DEFAULT,
                      metadata_contains: dict[str, Any] | None = DEFAULT,
                      text_mode: str = DEFAULT, rrf_k: int = DEFAULT, text_weight: float = DEFAULT,
                      vector_weight: float = DEFAULT, recency_weight: float = DEFAULT,
                      recency_half_life: timedelta | str = DEFAULT, candidates: int = DEFAULT,
                      df_budget: int | None = DEFAULT, neighbour_weight: float = DEFAULT,
                      context: int = DEFAULT, as_of: datetime | str | None = DEFAULT,
                      include_history: bool = DEFAULT, spaces: list[str] | None = DEFAULT,
                      scope: str = DEFAULT) -> list[SearchHit]:
        return self._invoke("memory_search", locals())

    def memory_similar(self, memory_kind: str, memory_id: int, limit_n: int = DEFAULT,
                       kinds: list[str] = DEFAULT, candidates: int = DEFAULT,
                       as_of: datetime | str | None = DEFAULT,
                       include_history: bool = DEFAULT) -> list[SimilarHit]:
        return self._invoke("memory_similar", locals())

    def text_candidates(self, query: str, kinds: list[str] = DEFAULT, candidates: int = DEFAULT,
                        df_budget: int | None = DEFAULT, k1: float = DEFAULT,
                        b: float = DEFAULT, as_of: datetime | str | None = DEFAULT,
                        include_history: bool = DEFAULT,
                        agent_ids: list[str] | None = DEFAULT) -> list[TextCandidate]:
        return self._invoke("text_candidates", locals())

    # the store (LangGraph BaseStore, see nexus.langgraph); namespaces as lists of labels
    def store_put(self, namespace: list[str], key: str, value: dict[str, Any],
                  texts: dict[str, str] | None = DEFAULT,
                  ttl: timedelta | str | None = DEFAULT,
                  space: str | None = DEFAULT) -> datetime:
        return self._invoke("store_put", locals())

    def store_get(self, namespace: list[str], key: str,
                  refresh_ttl: bool = DEFAULT,
                  space: str | None = DEFAULT) -> StoreItem | None:
        return self._invoke("store_get", locals())

    def store_delete(self, namespace: list[str], key: str,
                     space: str | None = DEFAULT) -> bool:
        return self._invoke("store_delete", locals())

    def store_search(self, namespace_prefix: list[str] = DEFAULT, query: str | None = DEFAULT,
                     query_embedding: list[float] | None = DEFAULT,
                     filter: dict[str, Any] | None = DEFAULT, limit_n: int = DEFAULT,
                     offset_n: int = DEFAULT, refresh_ttl: bool = DEFAULT, rrf_k: int = DEFAULT,
                     candidates: int = DEFAULT,
                     df_budget: int | None = DEFAULT,
                     space: str | None = DEFAULT) -> list[StoreHit]:
        return self._invoke("store_search", locals())

    def store_list_namespaces(self, prefix: list[str] | None = DEFAULT,
                              suffix: list[str] | None = DEFAULT,
                              max_depth: int | None = DEFAULT, limit_n: int = DEFAULT,
                              offset_n: int = DEFAULT,
                              space: str | None = DEFAULT) -> list[StoreNamespace]:
        return self._invoke("store_list_namespaces", locals())

    # spaces (docs/spaces.md): the caller's, and its owner's grants
    def spaces(self) -> list[SpaceInfo]:
        return self._invoke("spaces", locals())

    def space_grant(self, space: str, agent: str, rights: str) -> None:
        return self._invoke("space_grant", locals())

    def space_revoke(self, space: str, agent: str) -> None:
        return self._invoke("space_revoke", locals())

    def retention_set(self, kind: str, older_than: timedelta | str,
                      importance_below: float | None = DEFAULT, dry_run: bool = DEFAULT) -> int:
        return self._invoke("retention_set", locals())

    def retention_remove(self, kind: str) -> bool:
        return self._invoke("retention_remove", locals())

    def retention_rules(self) -> list[RetentionRule]:
        return self._invoke("retention_rules", locals())

    def read_log(self, agent: str | None = DEFAULT, since: datetime | None = DEFAULT,
                 until: datetime | None = DEFAULT, limit_n: int = DEFAULT) -> list[ReadRecord]:
        return self._invoke("read_log", locals())


# -- the asyncio client -------------------------------------------------------------------------
class AsyncMemory:
    """Memory for asyncio; the same methods, awaited. One of:
      await AsyncMemory.connect(dsn)    an agent's connection string
      AsyncMemory(connection=conn)      an open AsyncConnection of the agent
      AsyncMemory(pool=pool)            an AsyncConnectionPool of the agent's own connections
      AsyncMemory(pool=pool, agent=a)   an orchestrator's AsyncConnectionPool (nexus_app)
    """

    def __init__(self, *, connection: psycopg.AsyncConnection | None = None,
                 pool: AsyncConnectionPool | None = None, agent: str | None = None,
                 embed_url: str = DEFAULT_EMBED_URL, catalog: dict[str, Signature] | None = None,
                 http: aiohttp.ClientSession | None = None) -> None:
        if (connection is None) == (pool is None):
            raise TypeError("give one of: connection, pool (with agent)")
        if agent is not None and pool is None:
            raise TypeError("agent goes with pool (an orchestrator acting as that agent)")
        self._conn, self._pool, self.agent, self.embed_url = connection, pool, agent, embed_url
        self._catalog = catalog
        self._http, self._own_http = http, http is None
        self._owned = False

    @classmethod
    async def connect(cls, dsn: str, **kwargs: Any) -> AsyncMemory:
        memory = cls(connection=await psycopg.AsyncConnection.connect(dsn, autocommit=True),
                     **kwargs)
        memory._owned = True
        return memory

    async def close(self) -> None:
        if self._owned and self._conn is not None:
            await self._conn.close()
        if self._own_http and self._http is not None:
            await self._http.close()
            self._http = None

    async def __aenter__(self) -> AsyncMemory:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @asynccontextmanager
    async def session(self, calls: int = 1) -> AsyncIterator[psycopg.AsyncConnection]:
        """A connection acting as the agent, for `calls` calls (see Memory.session)."""
        async with (nullcontext(self._conn) if self._pool is None
                    else self._pool.connection()) as conn, \
                conn.transaction() if calls > 1 or self.agent is not None else nullcontext():
            if self.agent is not None:
                await conn.execute(_set_role(self.agent))
            yield conn

    async def catalog(self) -> dict[str, Signature]:
        if self._catalog is None:
            if self._pool is not None:
                async with self._pool.connection() as conn:
                    self._catalog = await read_catalog_async(conn)
            else:
                self._catalog = await read_catalog_async(self._conn)  # type: ignore[arg-type]
        return self._catalog

    async def call(self, function: str, **args: Any) -> list[dict[str, Any]]:
        """Call nexus.<function> with these named arguments; its rows, as dicts."""
        return (await self.calls([(function, args)]))[0]

    async def calls(self, calls: Sequence[tuple[str, Mapping[str, Any]]]
                    ) -> list[list[dict[str, Any]]]:
        """Several calls in one transaction (see Memory.calls)."""
        catalog = await self.catalog()
        statements = [statement(_signature(catalog, f), args) for f, args in calls]
        rows = []
        with _translated():
            async with self.session(len(statements)) as conn, \
                    conn.cursor(row_factory=dict_row) as cur:
                for query, values in statements:
                    await cur.execute(query, values)
                    rows.append(await cur.fetchall())
        return rows

    async def _invoke(self, function: str, args: dict[str, Any]) -> Any:
        return _typed(function, await self.call(function, **_args(args)))

    def _http_session(self) -> aiohttp.ClientSession:
        if self._http is None:
            import aiohttp
            self._http = aiohttp.ClientSession()
        return self._http

    async def embed(self, text: str) -> list[float]:
        return await embed_async(self._http_session(), text, self.embed_url)

    async def search(self, query: str, **options: Any) -> SearchResult:
        """Hybrid search for a text (see Memory.search)."""
        vector = await query_vector_async(self._http_session(), query, self.embed_url)
        return vector.result(await self.memory_search(query=query, **vector.args(), **options))

    async def current_agent(self) -> str:
        return await self._invoke("current_agent", locals())

    async def record_episode(self, content: str, action_type: str = DEFAULT,
                             metadata: dict[str, Any] = DEFAULT, tags: list[str] = DEFAULT,
                             importance: float = DEFAULT, session: str | None = DEFAULT,
                             source: str = DEFAULT, valid_at: datetime | None = DEFAULT,
                             space: str | None = DEFAULT) -> int:
        return await self._invoke("record_episode", locals())

    async def get_episode(self, episode_id: int) -> Episode:
        return await self._invoke("get_episode", locals())

    async def update_episode(self, episode_id: int, content: str | None = DEFAULT,
                             metadata: dict[str, Any] | None = DEFAULT,
                             tags: list[str] | None = DEFAULT, importance: float | None = DEFAULT,
                             action_type: str | None = DEFAULT,
                             session: str | None = DEFAULT) -> datetime:
        return await self._invoke("update_episode", locals())

    async def delete_episode(self, episode_id: int) -> bool:
        return await self._invoke("delete_episode", locals())

    async def forget(self, kinds: list[str] = DEFAULT, tags_all: list[str] | None = DEFAULT,
                     session: str | None = DEFAULT, since: datetime | None = DEFAULT,
                     until: datetime | None = DEFAULT,
                     metadata_contains: dict[str, Any] | None = DEFAULT,
                     space: str | None = DEFAULT, dry_run: bool | None = DEFAULT,
                     episode_id: int | None = DEFAULT) -> dict[str, Any]:
        return await self._invoke("forget", locals())

    async def recent_episodes(self, limit_n: int = DEFAULT, session: str | None = DEFAULT,
                              since: datetime | None = DEFAULT, until: datetime | None = DEFAULT,
                              tags_all: list[str] | None = DEFAULT,
                              before_created_at: datetime | None = DEFAULT,
                              before_id: int | None = DEFAULT,
                              space: str | None = DEFAULT) -> list[Episode]:
        return await self._invoke("recent_episodes", locals())

    async def remember_fact(self, content: str, metadata: dict[str, Any] = DEFAULT,
                            tags: list[str] = DEFAULT, importance: float = DEFAULT,
                            source_episode_id: int | None = DEFAULT, key: str | None = DEFAULT,
                            supersedes: int | None = DEFAULT,
                            valid_from: datetime | str | None = DEFAULT,
                            space: str | None = DEFAULT) -> int:
        return await self._invoke("remember_fact", locals())

    async def get_fact(self, fact_id: int | None = DEFAULT, key: str | None = DEFAULT,
                       as_of: datetime | str | None = DEFAULT,
                       include_history: bool = DEFAULT,
                       space: str | None = DEFAULT) -> list[Fact]:
        return await self._invoke("get_fact", locals())

    async def delete_fact(self, fact_id: int) -> bool:
        return await self._invoke("delete_fact", locals())

    async def invalidate_fact(self, fact_id: int,
                              at: datetime | str | None = DEFAULT) -> datetime:
        return await self._invoke("invalidate_fact", locals())

    async def fact_history(self, fact_id: int | None = DEFAULT, key: str | None = DEFAULT,
                           space: str | None = DEFAULT) -> list[Fact]:
        return await self._invoke("fact_history", locals())

    async def working_memory_set(self, key: str, value: Any,
                                 ttl: timedelta | str | None = DEFAULT) -> datetime | None:
        return await self._invoke("working_memory_set", locals())

    async def working_memory_get(self, key: str) -> Any:
        return await self._invoke("working_memory_get", locals())

    async def working_memory_delete(self, key: str) -> bool:
        return await self._invoke("working_memory_delete", locals())

    async def working_memory_keys(self, prefix: str | None = DEFAULT) -> list[WorkingMemoryKey]:
        return await self._invoke("working_memory_keys", locals())

    async def save_checkpoint(self, state: Any, name: str = DEFAULT,
                              metadata: dict[str, Any] = DEFAULT) -> int:
        return await self._invoke("save_checkpoint", locals())

    async def load_checkpoint(self, name: str = DEFAULT) -> Checkpoint | None:
        return await self._invoke("load_checkpoint", locals())

    async def list_checkpoints(self, name: str | None = DEFAULT,
                               limit_n: int = DEFAULT) -> list[CheckpointInfo]:
        return await self._invoke("list_checkpoints", locals())

    async def consensus_read(self, key: str) -> ConsensusEntry | None:
        return await self._invoke("consensus_read", locals())

    async def consensus_cas(self, key: str, expected_version: int, value: Any) -> int:
        return await self._invoke("consensus_cas", locals())

    async def memory_stats(self, space: str | None = DEFAULT) -> list[KindStats]:
        return await self._invoke("memory_stats", locals())

    async def memory_search(self, query: str | None = DEFAULT,
                            query_embedding: list[float] | None = DEFAULT,
                            limit_n: int = DEFAULT, kinds: list[str] = DEFAULT,
                            session: str | None = DEFAULT, since: datetime | None = DEFAULT,
                            until: datetime | None = DEFAULT, tags_all: list[str] | None = DEFAULT,
                            metadata_contains: dict[str, Any] | None = DEFAULT,
                            text_mode: str = DEFAULT, rrf_k: int = DEFAULT,
                            text_weight: float = DEFAULT, vector_weight: float = DEFAULT,
                            recency_weight: float = DEFAULT,
                            recency_half_life: timedelta | str = DEFAULT,
                            candidates: int = DEFAULT,
                            df_budget: int | None = DEFAULT, neighbour_weight: float = DEFAULT,
                            context: int = DEFAULT, as_of: datetime | str | None = DEFAULT,
                            include_history: bool = DEFAULT, spaces: list[str] | None = DEFAULT,
                            scope: str = DEFAULT) -> list[SearchHit]:
        return await self._invoke("memory_search", locals())

    async def memory_similar(self, memory_kind: str, memory_id: int, limit_n: int = DEFAULT,
                             kinds: list[str] = DEFAULT, candidates: int = DEFAULT,
                             as_of: datetime | str | None = DEFAULT,
                             include_history: bool = DEFAULT) -> list[SimilarHit]:
        return await self._invoke("memory_similar", locals())

    async def text_candidates(self, query: str, kinds: list[str] = DEFAULT,
                              candidates: int = DEFAULT, df_budget: int | None = DEFAULT,
                              k1: float = DEFAULT, b: float = DEFAULT,
                              as_of: datetime | str | None = DEFAULT,
                              include_history: bool = DEFAULT,
                              agent_ids: list[str] | None = DEFAULT) -> list[TextCandidate]:
        return await self._invoke("text_candidates", locals())

    async def store_put(self, namespace: list[str], key: str, value: dict[str, Any],
                        texts: dict[str, str] | None = DEFAULT,
                        ttl: timedelta | str | None = DEFAULT,
                        space: str | None = DEFAULT) -> datetime:
        return await self._invoke("store_put", locals())

    async def store_get(self, namespace: list[str], key: str,
                        refresh_ttl: bool = DEFAULT,
                        space: str | None = DEFAULT) -> StoreItem | None:
        return await self._invoke("store_get", locals())

    async def store_delete(self, namespace: list[str], key: str,
                           space: str | None = DEFAULT) -> bool:
        return await self._invoke("store_delete", locals())

    async def store_search(self, namespace_prefix: list[str] = DEFAULT,
                           query: str | None = DEFAULT,
                           query_embedding: list[float] | None = DEFAULT,
                           filter: dict[str, Any] | None = DEFAULT, limit_n: int = DEFAULT,
                           offset_n: int = DEFAULT, refresh_ttl: bool = DEFAULT,
                           rrf_k: int = DEFAULT, candidates: int = DEFAULT,
                           df_budget: int | None = DEFAULT,
                           space: str | None = DEFAULT) -> list[StoreHit]:
        return await self._invoke("store_search", locals())

    async def store_list_namespaces(self, prefix: list[str] | None = DEFAULT,
                                    suffix: list[str] | None = DEFAULT,
                                    max_depth: int | None = DEFAULT, limit_n: int = DEFAULT,
                                    offset_n: int = DEFAULT,
                                    space: str | None = DEFAULT) -> list[StoreNamespace]:
        return await self._invoke("store_list_namespaces", locals())

    async def spaces(self) -> list[SpaceInfo]:
        return await self._invoke("spaces", locals())

    async def space_grant(self, space: str, agent: str, rights: str) -> None:
        return await self._invoke("space_grant", locals())

    async def space_revoke(self, space: str, agent: str) -> None:
        return await self._invoke("space_revoke", locals())

    async def retention_set(self, kind: str, older_than: timedelta | str,
                            importance_below: float | None = DEFAULT,
                            dry_run: bool = DEFAULT) -> int:
        return await self._invoke("retention_set", locals())

    async def retention_remove(self, kind: str) -> bool:
        return await self._invoke("retention_remove", locals())

    async def retention_rules(self) -> list[RetentionRule]:
        return await self._invoke("retention_rules", locals())

    async def read_log(self, agent: str | None = DEFAULT, since: datetime | None = DEFAULT,
                       until: datetime | None = DEFAULT,
                       limit_n: int = DEFAULT) -> list[ReadRecord]:
        return await self._invoke("read_log", locals())


# -- helpers on an agent's own connection (nexus search, and callers that hold a connection) ----
def search(conn: psycopg.Connection, query: str | None = None, *, mode: str = "hybrid",
           embedding: list[float] | None = None, embed_url: str = DEFAULT_EMBED_URL,
           **options: Any) -> list[dict[str, Any]]:
    """Search the connected agent's memories; rows as dicts.

    mode: "hybrid" (text and vector, fused), "text" (BM25 only, no model needed) or "vector".
    The query vector is `embedding` if given, else the sidecar's embedding of `query`.
    options: any of SEARCH_OPTIONS (e.g. limit_n=5, tags_all=["billing"], recency_weight=0.5).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    unknown = set(options) - SEARCH_OPTIONS
    if unknown:
        raise TypeError(f"unknown search option(s): {', '.join(sorted(unknown))}")
    args: dict[str, Any] = dict(options)
    if mode in ("hybrid", "text"):
        if not query:
            raise ValueError(f"a {mode} search needs a query text")
        args["query"] = query
    if mode in ("hybrid", "vector"):
        if embedding is None:
            if not query:
                raise ValueError("a vector search needs a query text or an embedding")
            embedding = embed(query, embed_url)
        args["query_embedding"] = embedding
    return [asdict(hit) for hit in Memory(connection=conn).memory_search(**args)]


def similar(conn: psycopg.Connection, kind: str, memory_id: int,
            limit_n: int = 10) -> list[dict[str, Any]]:
    """Memories like one of the agent's own (by its stored vector; no model needed)."""
    return [asdict(hit) for hit in
            Memory(connection=conn).memory_similar(kind, memory_id, limit_n=limit_n)]


def working_memory_get(conn: psycopg.Connection, cache: Any, agent: str, key: str) -> Any:
    """The fast path for working memory: read the Redis mirror, fall back to PostgreSQL.

    `cache` is a redis.Redis client (or None); `agent` must be the agent `conn` is connected as:
    Redis has no row-level security, so give this helper only to trusted services. A key that is
    absent from Redis, expired or unreadable is read from PostgreSQL (the truth), as is everything
    when Redis is down: give it a client that fails fast (docs/cache.md). Returns the JSON value, or
    None if the key is absent or expired.
    """
    if cache is not None:
        try:
            value, expires = cache.hmget(f"nexus:wm:{agent}:{key}", ["v", "x"])
        except Exception:  # noqa: BLE001 - any Redis trouble means: ask PostgreSQL
            value = None
        if value is not None and (not expires or int(expires) > _now_ms()):
            return json.loads(value)
    return Memory(connection=conn).working_memory_get(key)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


__all__ = [
    "DEFAULT", "AsyncMemory", "Checkpoint", "CheckpointInfo", "Conflict", "ConsensusEntry",
    "EmbedRefused", "EmbedUnavailable", "Episode", "Fact", "InvalidInput", "KindStats", "Memory",
    "NexusError", "NotFound", "QueryVector", "SearchHit", "SearchResult", "SimilarHit",
    "TextCandidate", "WorkingMemoryKey", "embed", "query_vector", "query_vector_async", "search",
    "similar", "working_memory_get",
]
