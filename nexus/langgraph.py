"""LangGraph's long-term memory on NEXUS: `NexusStore` and `AsyncNexusStore` (a `BaseStore`).

    store = NexusStore(agent_dsn, index={"fields": ["content"]})
    graph = builder.compile(store=store)

Each item lives in `nexus_memory.store_items` of the connected agent (row-level security: two
agents with the same namespaces and keys never see each other's items). Every operation of a
batch is one call of a `nexus.store_*` SQL function by name, with named arguments; reads run
before writes and the last put of a key wins, as LangGraph specifies, all in one transaction.
Searching with a query ranks by NEXUS's hybrid fusion (BM25 over the items' indexed texts and HNSW
over their vectors); the query vector comes from the sidecar's `POST /embed`, and without a sidecar
the search is text only. The texts to index are taken from each value with LangGraph's own path
helper (`index` fields, or `put(..., index=[...])`); the worker embeds them in the background.

The store is built on nexus.client: its `Memory` makes the calls (from the catalog of the API
functions, each argument cast to its declared type), raises NEXUS's SQLSTATEs as its errors, and
acts as the agent. Connections: the agent's own DSN (a pool of its logins), or an orchestrator's
pool (role nexus_app) plus the agent's name: each batch then runs in a transaction under
`SET LOCAL ROLE <agent>`, which ends with it, before the connection goes back to the pool.
Requires the optional extra: `pip install 'nexus-memory[langgraph]'`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any, Literal

from langgraph.store.base import (
    BaseStore,
    GetOp,
    Item,
    ListNamespacesOp,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
    TTLConfig,
    get_text_at_path,
    tokenize_path,
    validate_op_namespace,
)
from psycopg_pool import AsyncConnectionPool, ConnectionPool
from typing_extensions import TypedDict

from nexus.client import (
    DEFAULT_EMBED_URL,
    AsyncMemory,
    EmbedUnavailable,
    InvalidInput,
    Memory,
    query_vector,
)

log = logging.getLogger("nexus.langgraph")
DIMENSIONS = "SELECT value::integer FROM memory_system.settings WHERE name = 'embedding_dimensions'"


class NexusIndexConfig(TypedDict, total=False):
    """What to index. `fields`: LangGraph paths ("content", "facts[*]", "a.b"; default ["$"], the
    whole value). `dims`: checked against the model's (384 for all-MiniLM-L6-v2). No `embed`:
    vectors are NEXUS's own model's, made by its workers."""

    dims: int
    fields: list[str] | None


# NEXUS refused an argument: the client's InvalidInput, a ValueError with the SQLSTATE in `sqlstate`
# (NX060 namespace, key, texts, ttl, limit or offset; NX061 filter; NX011 size; NX012 value not an
# object; NX013 vector)
StoreInputError = InvalidInput


@dataclass(frozen=True)
class Call:
    """One op as one SQL call: the function, its named arguments, and how its rows become the
    op's result."""

    index: int
    function: str
    args: dict[str, Any]
    kind: Literal["get", "search", "namespaces", "put"]
    namespace: tuple[str, ...] = ()
    key: str = ""

    def result(self, rows: list[dict[str, Any]]) -> Result:
        if self.kind == "get":
            if not rows:
                return None
            r = rows[0]
            return Item(namespace=self.namespace, key=self.key, value=r["value"],
                        created_at=r["created_at"], updated_at=r["updated_at"])
        if self.kind == "search":
            return [SearchItem(namespace=tuple(r["namespace"]), key=r["key"], value=r["value"],
                               created_at=r["created_at"], updated_at=r["updated_at"],
                               score=r["score"]) for r in rows]
        if self.kind == "namespaces":
            return [tuple(r["namespace"]) for r in rows]
        return None


class _Planner:
    """What NexusStore and AsyncNexusStore share: the index configuration, texts of a value, and
    the translation of LangGraph ops into SQL calls."""

    def __init__(self, index: NexusIndexConfig | None, embed_url: str | None,
                 embed_query: Callable[[str], Sequence[float]] | None,
                 space: str | None = None) -> None:
        # a space's store instead of the agent's own (docs/spaces.md): every call names it
        self.space = space
        index = dict(index or {})
        if index.get("embed") is not None:
            raise ValueError("NexusStore embeds with NEXUS's own model (its workers and the "
                             "sidecar's /embed): leave 'embed' out of the index configuration")
        unknown = set(index) - {"dims", "fields", "embed"}
        if unknown:
            raise ValueError(f"unknown index option(s): {', '.join(sorted(unknown))}")
        self.dims: int | None = index.get("dims")
        self.fields = [(p, tokenize_path(p) if p != "$" else p)
                       for p in (index.get("fields") or ["$"])]
        self.embed_url = embed_url
        self.embed_query = embed_query
        self._warned = False

    def check_dims(self, model_dims: int) -> None:
        if self.dims is not None and self.dims != model_dims:
            raise ValueError(f"index dims is {self.dims}, but NEXUS's embedding model makes "
                             f"{model_dims}-dimensional vectors: use dims={model_dims} or leave "
                             "dims out")

    def texts(self, op: PutOp) -> dict[str, str] | None:
        """The texts to search an item by, path -> text, as LangGraph's own stores name them."""
        if op.value is None or op.index is False:
            return None
        paths = self.fields if op.index is None else [(p, tokenize_path(p)) for p in op.index]
        texts: dict[str, str] = {}
        for path, tokens in paths:
            found = get_text_at_path(op.value, tokens)
            if len(found) == 1:
                texts[path] = found[0]
            else:
                texts.update((f"{path}.{i}", text) for i, text in enumerate(found))
        return texts

    def plan(self, ops: Iterable[Op]) -> tuple[int, list[Call], list[str]]:
        """(number of ops, the calls in the order they run: reads, then the last put of each
        key, and the query texts to embed)."""
        reads: list[Call] = []
        puts: dict[tuple[tuple[str, ...], str], Call] = {}
        queries: list[str] = []
        count = 0
        for i, op in enumerate(ops):
            count += 1
            validate_op_namespace(op)
            if isinstance(op, GetOp):
                reads.append(Call(i, "store_get", {"namespace": list(op.namespace),
                                                   "key": op.key, "refresh_ttl": op.refresh_ttl},
                                  "get", op.namespace, op.key))
            elif isinstance(op, SearchOp):
                args: dict[str, Any] = {"namespace_prefix": list(op.namespace_prefix),
                                        "filter": op.filter or None,
                                        "limit_n": op.limit, "offset_n": op.offset,
                                        "refresh_ttl": op.refresh_ttl}
                if op.query:
                    args["query"] = op.query
                    queries.append(op.query)
                reads.append(Call(i, "store_search", args, "search"))
            elif isinstance(op, ListNamespacesOp):
                reads.append(self._list(i, op))
            elif isinstance(op, PutOp):
                puts.pop((op.namespace, op.key), None)
                if op.value is None:
                    call = Call(i, "store_delete", {"namespace": list(op.namespace),
                                                    "key": op.key}, "put")
                else:
                    texts = self.texts(op)
                    call = Call(i, "store_put", {
                        "namespace": list(op.namespace), "key": op.key,
                        "value": dict(op.value), "texts": texts,
                        "ttl": timedelta(minutes=op.ttl) if op.ttl is not None else None}, "put")
                puts[(op.namespace, op.key)] = call
            else:
                raise ValueError(f"unknown operation: {type(op).__name__}")
        calls = [*reads, *puts.values()]
        if self.space is not None:
            calls = [replace(c, args={**c.args, "space": self.space}) for c in calls]
        return count, calls, queries

    @staticmethod
    def _list(i: int, op: ListNamespacesOp) -> Call:
        args: dict[str, Any] = {"max_depth": op.max_depth, "limit_n": op.limit,
                                "offset_n": op.offset}
        for condition in op.match_conditions or ():
            name = condition.match_type
            if name not in ("prefix", "suffix"):
                raise ValueError(f"unknown namespace match type {name!r}")
            if not condition.path:
                continue
            if name in args:
                raise ValueError(f"at most one {name} condition per list_namespaces")
            args[name] = list(condition.path)
        return Call(i, "store_list_namespaces", args, "namespaces")

    def with_vectors(self, calls: list[Call],
                     vectors: dict[str, Sequence[float] | None]) -> list[Call]:
        out = []
        for call in calls:
            vector = vectors.get(call.args.get("query") or "") if call.kind == "search" else None
            if vector is not None:
                call = Call(call.index, call.function,
                            {**call.args, "query_embedding": vector}, call.kind)
            out.append(call)
        return out

    def embed_queries(self, queries: Sequence[str]) -> dict[str, Sequence[float] | None]:
        """The query vectors: `embed_query`'s, else the sidecar's; None (a text-only search) if
        there is no sidecar or it refused the text (logged: an unreachable sidecar once)."""
        vectors: dict[str, Sequence[float] | None] = {}
        for query in dict.fromkeys(queries):
            if self.embed_query is not None:
                vectors[query] = self.embed_query(query)
                continue
            vectors[query] = None
            if self.embed_url is None or not query.strip():
                continue
            vector = query_vector(query, self.embed_url, text_only_if_refused=True)
            vectors[query] = vector.embedding
            if vector.error is not None:
                once = isinstance(vector.error, EmbedUnavailable)
                if not (once and self._warned):
                    log.warning("%s", vector.note)
                self._warned |= once
        return vectors


def _calls(calls: list[Call]) -> list[tuple[str, dict[str, Any]]]:
    return [(call.function, call.args) for call in calls]


def _results(count: int, calls: list[Call], rows: list[list[dict[str, Any]]]) -> list[Result]:
    results: list[Result] = [None] * count
    for call, r in zip(calls, rows, strict=True):
        results[call.index] = call.result(r)
    return results


class _Store(BaseStore):
    """What NexusStore and AsyncNexusStore share: their arguments."""

    supports_ttl = True

    def _configure(self, dsn: str | None, pool: object, agent: str | None,
                   index: NexusIndexConfig | None, ttl: TTLConfig | None, embed_url: str | None,
                   embed_query: Callable[[str], Sequence[float]] | None,
                   space: str | None = None) -> None:
        if (dsn is None) == (pool is None) or (pool is not None and not agent):
            raise TypeError("give either an agent's dsn, or pool= and agent=")
        self._planner = _Planner(index, embed_url, embed_query, space)
        self.ttl_config = ttl
        self._own_pool = pool is None


class NexusStore(_Store):
    """LangGraph's `BaseStore` on NEXUS, synchronous. See the module's documentation.

    NexusStore(dsn)                          connect as the agent (its own login)
    NexusStore(pool=pool, agent="aria")      an orchestrator's pool (nexus_app), SET LOCAL ROLE aria
    index: {"fields": [...], "dims": 384}    what to index (default: the whole value)
    ttl: {"default_ttl": minutes, "refresh_on_read": bool}   expiry is swept by NEXUS's workers
    embed_url: the sidecar's base URL for query vectors (None: text-only search)
    embed_query: a function giving the query vector instead (NEXUS's model run in this process)
    space: a space's store instead of the agent's own (docs/spaces.md): reads need read on it,
           puts and deletes write (NX080 otherwise)
    """

    def __init__(self, dsn: str | None = None, *, pool: ConnectionPool | None = None,
                 agent: str | None = None, index: NexusIndexConfig | None = None,
                 ttl: TTLConfig | None = None, embed_url: str | None = DEFAULT_EMBED_URL,
                 embed_query: Callable[[str], Sequence[float]] | None = None,
                 space: str | None = None) -> None:
        self._configure(dsn, pool, agent, index, ttl, embed_url, embed_query, space)
        self._pool = pool or ConnectionPool(dsn, min_size=1, max_size=4,
                                            kwargs={"autocommit": True}, open=True)
        self._memory = Memory(pool=self._pool, agent=agent)
        try:
            self.agent: str = self._memory.current_agent()
            with self._memory.session() as conn:
                self._planner.check_dims(conn.execute(DIMENSIONS).fetchone()[0])
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self._own_pool:
            self._pool.close()

    def __enter__(self) -> NexusStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        count, calls, queries = self._planner.plan(ops)
        calls = self._planner.with_vectors(calls, self._planner.embed_queries(queries))
        return _results(count, calls, self._memory.calls(_calls(calls)))

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        return await asyncio.get_running_loop().run_in_executor(None, self.batch, list(ops))


class AsyncNexusStore(_Store):
    """LangGraph's `BaseStore` on NEXUS for asyncio (the same arguments as NexusStore, with an
    `AsyncConnectionPool`). Use it as `async with AsyncNexusStore(...) as store:`, or call
    `await store.setup()` first: that is when the agent and the index dims are checked."""

    def __init__(self, dsn: str | None = None, *, pool: AsyncConnectionPool | None = None,
                 agent: str | None = None, index: NexusIndexConfig | None = None,
                 ttl: TTLConfig | None = None, embed_url: str | None = DEFAULT_EMBED_URL,
                 embed_query: Callable[[str], Sequence[float]] | None = None,
                 space: str | None = None) -> None:
        self._configure(dsn, pool, agent, index, ttl, embed_url, embed_query, space)
        self._pool = pool or AsyncConnectionPool(dsn, min_size=1, max_size=4,
                                                 kwargs={"autocommit": True}, open=False)
        self._memory = AsyncMemory(pool=self._pool, agent=agent)
        self._ready = False
        self.agent = agent or ""
        self._loop: asyncio.AbstractEventLoop | None = None

    async def setup(self) -> None:
        """Open the pool, and check the agent and the index dims (ValueError if they differ)."""
        if self._ready:
            return
        self._loop = asyncio.get_running_loop()
        if self._own_pool:
            await self._pool.open()
        self.agent = await self._memory.current_agent()
        async with self._memory.session() as conn:
            row = await (await conn.execute(DIMENSIONS)).fetchone()
        self._planner.check_dims(row[0])
        self._ready = True

    async def close(self) -> None:
        if self._own_pool:
            await self._pool.close()

    async def __aenter__(self) -> AsyncNexusStore:
        try:
            await self.setup()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        await self.setup()
        count, calls, queries = self._planner.plan(ops)
        vectors = await asyncio.to_thread(self._planner.embed_queries, queries) if queries else {}
        calls = self._planner.with_vectors(calls, vectors)
        return _results(count, calls, await self._memory.calls(_calls(calls)))

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        """The sync API from another thread than the store's event loop (as LangGraph's own
        async stores allow); in the loop's thread, use the a* methods."""
        loop = self._loop
        if loop is None or not loop.is_running():
            raise RuntimeError("AsyncNexusStore: call `await store.setup()` (or use it as "
                               "`async with`) and use the async methods (aget, asearch, ...)")
        try:
            if asyncio.get_running_loop() is loop:
                raise asyncio.InvalidStateError(
                    "synchronous calls of AsyncNexusStore from its own event loop would block "
                    "it: use the async methods (aget, asearch, aput, ...)")
        except RuntimeError:
            pass  # no loop in this thread: run on the store's
        return asyncio.run_coroutine_threadsafe(self.abatch(list(ops)), loop).result()
