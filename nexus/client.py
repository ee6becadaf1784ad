"""A small Python helper for agents that do not run the model: embed the query with the sidecar's
`POST /embed`, then search with `nexus.memory_search` over the agent's own connection.

    conn = psycopg.connect(agent_dsn)
    for hit in client.search(conn, "what did the user ask about invoices?"):
        print(hit["kind"], hit["id"], hit["fused_score"], hit["snippet"])

Searching is SQL; this module only does the round trip (embed, then SQL) and names the options.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

DEFAULT_EMBED_URL = "http://127.0.0.1:58080"
MODES = ("hybrid", "text", "vector")
# the options of nexus.memory_search a caller may pass by name
SEARCH_OPTIONS = frozenset({
    "limit_n", "kinds", "session", "since", "until", "tags_all", "metadata_contains", "text_mode",
    "rrf_k", "text_weight", "vector_weight", "recency_weight", "recency_half_life", "candidates",
    "df_budget",
})


class EmbedUnavailable(RuntimeError):
    """The sidecar's /embed could not be reached (not running, wrong port)."""


class EmbedRefused(ValueError):
    """The sidecar answered but refused the text (empty, too long, not embeddable)."""


def embed(text: str, url: str = DEFAULT_EMBED_URL, timeout: float = 30.0) -> list[float]:
    """The query vector of `text`, from the sidecar (which caches it in Redis)."""
    request = urllib.request.Request(
        url.rstrip("/") + "/embed", data=json.dumps({"text": text}).encode(),
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


def vector_literal(vector: list[float]) -> str:
    return "[" + ",".join(repr(float(x)) for x in vector) + "]"


def search(conn: psycopg.Connection, query: str | None = None, *, mode: str = "hybrid",
           embedding: list[float] | None = None, embed_url: str = DEFAULT_EMBED_URL,
           **options: Any) -> list[dict[str, Any]]:
    """Search the connected agent's memories.

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
        args["query_embedding"] = vector_literal(embedding)
    return _call(conn, "memory_search", args)


def similar(conn: psycopg.Connection, kind: str, memory_id: int,
            limit_n: int = 10) -> list[dict[str, Any]]:
    """Memories like one of the agent's own (by its stored vector; no model needed)."""
    return _call(conn, "memory_similar",
                 {"memory_kind": kind, "memory_id": memory_id, "limit_n": limit_n})


def _call(conn: psycopg.Connection, function: str, args: dict[str, Any]) -> list[dict[str, Any]]:
    casts = {"query_embedding": "::public.vector", "metadata_contains": "::jsonb",
             "recency_half_life": "::interval"}
    named = sql.SQL(", ").join(
        sql.SQL("{} => {}" + casts.get(name, "")).format(sql.Identifier(name),
                                                          sql.Placeholder(name))
        for name in args)
    values = {k: (json.dumps(v) if k == "metadata_contains" and not isinstance(v, str) else v)
              for k, v in args.items()}
    with conn.cursor(row_factory=dict_row) as cur:
        statement = sql.SQL("SELECT * FROM nexus.{}({})").format(sql.Identifier(function), named)
        cur.execute(statement, values)
        return cur.fetchall()


def working_memory_get(conn: psycopg.Connection, cache: Any, agent: str, key: str) -> Any:
    """The fast path for working memory: read the Redis mirror, fall back to PostgreSQL.

    `cache` is a redis.Redis client (or None); `agent` must be the agent `conn` is connected as:
    Redis has no row-level security, so give this helper only to trusted services. A key that is
    absent from Redis, expired or unreadable is read from PostgreSQL (the truth), as is everything
    when Redis is down. Returns the JSON value, or None if the key is absent or expired.
    """
    if cache is not None:
        try:
            value, expires = cache.hmget(f"nexus:wm:{agent}:{key}", ["v", "x"])
        except Exception:  # noqa: BLE001 - any Redis trouble means: ask PostgreSQL
            value = None
        if value is not None and (not expires or int(expires) > _now_ms()):
            return json.loads(value)
    row = conn.execute("SELECT nexus.working_memory_get(%s)", (key,)).fetchone()
    return row[0] if row else None


def _now_ms() -> int:
    return time.time_ns() // 1_000_000
