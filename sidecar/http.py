"""HTTP endpoints of a sidecar process: /health, /metrics, /embed, /stats (docs/operations.md).

/health answers at once in every state: it reports what a background check (`Health`) found at
most a second or two ago, as ok (200), degraded (200: Redis down, or a deep queue) or down (503).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import psycopg
import redis.asyncio as aioredis
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from sidecar.config import Config
from sidecar.db import RETRY_SECONDS, Outage, iso
from sidecar.embedder import Embedder, EmbedError
from sidecar.metrics import Metrics

EMBED_CACHE_TTL = 24 * 3600
CHECK_TIMEOUT = 3.0
# queue statistics (a scan of the queue) younger than this are served as they are; older ones
# are refreshed, /health waiting at most STATS_WAIT for the new figures
STATS_FRESH = 5.0
STATS_WAIT = 0.5
# a background check that has not completed for this long is itself a failure: down
STALE_AFTER = 10.0


@dataclass
class Context:
    cfg: Config
    pool: AsyncConnectionPool
    redis: aioredis.Redis
    embedder: Embedder
    metrics: Metrics
    worker_id: str
    pg: Outage
    redis_state: Outage
    embed_lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # one /embed at a time


async def _one(ctx: Context, query: str) -> dict:
    """The first row of `query`, on a connection of the worker's pool."""
    async with ctx.pool.connection(timeout=CHECK_TIMEOUT) as conn:
        cur = await conn.cursor(row_factory=dict_row).execute(query)
        return await cur.fetchone()


async def _check(coro: Awaitable[object]) -> tuple[object, BaseException | None]:
    try:
        return await asyncio.wait_for(coro, CHECK_TIMEOUT), None
    except TimeoutError:
        return None, TimeoutError(f"no answer within {CHECK_TIMEOUT:g} s")
    except (psycopg.Error, aioredis.RedisError, OSError) as exc:
        return None, exc


class Health:
    """The background check behind /health: every second, does PostgreSQL answer through the
    worker's pool (which keeps the pool reconnecting in an outage), and does Redis; the queue
    statistics (a scan) are read when /health asks and they are old or show a problem."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.checked_at: float | None = None         # monotonic, of the last completed check
        self.checked_wall = 0.0
        self.pg_error: str | None = None
        self.redis_error: str | None = None
        self.stats: dict | None = None
        self.stats_at = 0.0
        self._refresh: asyncio.Task | None = None
        self.status: str | None = None
        self.since = time.time()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.check()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), RETRY_SECONDS)

    async def check(self) -> None:
        ctx, began = self.ctx, time.monotonic()
        (_, pg_exc), (_, redis_exc) = await asyncio.gather(
            _check(_one(ctx, "SELECT 1")), _check(ctx.redis.ping()))
        self.pg_error = ctx.pg.report(pg_exc, began)
        self.redis_error = ctx.redis_state.report(redis_exc, began)
        self.checked_at, self.checked_wall = time.monotonic(), time.time()
        self.document()  # keeps `since` (when the status began) true to the second

    async def read_stats(self) -> None:
        stats, exc = await _check(_one(self.ctx, "SELECT * FROM memory_system.queue_stats()"))
        if exc is None:
            self.stats, self.stats_at = stats, time.monotonic()  # type: ignore[assignment]
            for state in ("pending", "processing", "done", "dead"):
                self.ctx.metrics.queue_depth.labels(state).set(stats[state])

    async def fresh_stats(self) -> None:
        """Refresh the queue statistics (for /health, /metrics and /stats alike) if they are old
        or show a problem (news of a recovery must not wait), waiting STATS_WAIT at most."""
        if self.pg_error is not None or self.ctx.pg.since is not None:
            return
        checks = self.document()[0]["checks"]
        fine = checks["worker"]["ok"] and checks["queue"]["ok"]
        if fine and time.monotonic() - self.stats_at < STATS_FRESH:
            return
        if self._refresh is None or self._refresh.done():
            self._refresh = asyncio.create_task(self.read_stats())
        await asyncio.wait({self._refresh}, timeout=STATS_WAIT)

    def document(self) -> tuple[dict, int]:
        now = time.monotonic()
        checked_age = None if self.checked_at is None else now - self.checked_at
        status, code, checks = assess(self.pg_error, self.ctx.pg.since, self.redis_error,
                                      self.ctx.redis_state.since, checked_age, self.stats,
                                      round(now - self.stats_at, 1), self.ctx.cfg.health_max_queue)
        if status != self.status:
            self.status, self.since = status, time.time()
        return {"status": status, "since": iso(self.since),
                "checked_at": iso(self.checked_wall) if self.checked_at else None,
                "checks": checks, "worker_id": self.ctx.worker_id}, code


def assess(pg_error: str | None, pg_since: float | None, redis_error: str | None,
           redis_since: float | None, checked_age: float | None, stats: dict | None,
           stats_age: float, max_queue: int) -> tuple[str, int, dict]:
    """The status, its HTTP code and the checks of /health, from each server's last check error
    (None: it answered) and its Outage's `since` (a connection of this process lost it, maybe
    before the check did), the last check's age (None: never) and the queue statistics'."""
    lost = "a connection of this process lost it"
    pg_error = pg_error or (lost if pg_since else None)
    redis_error = redis_error or (lost if redis_since else None)
    if checked_age is None or checked_age > STALE_AFTER:
        pg_error = f"no health check completed in the last {STALE_AFTER:.0f} s"
    checks = {"postgresql": _server_check(pg_error, pg_since),
              "redis": _server_check(redis_error, redis_since)}
    if pg_error is None and stats is not None:
        live, pending = int(stats["live_workers"]), int(stats["pending"])
        checks["worker"] = {"ok": live > 0, "live_workers": live, "age_s": stats_age}
        checks["queue"] = {"ok": pending < max_queue, "pending": pending,
                           "threshold": max_queue, "dead": int(stats["dead"]), "age_s": stats_age}
    else:
        why = "PostgreSQL unreachable" if pg_error is not None else "not read yet"
        checks["worker"] = {"ok": False, "error": f"unknown: {why}"}
        checks["queue"] = {"ok": False, "error": f"unknown: {why}"}
    if pg_error is not None or not checks["worker"]["ok"]:
        return "down", 503, checks
    if redis_error is not None or not checks["queue"]["ok"]:
        return "degraded", 200, checks
    return "ok", 200, checks


def _server_check(error: str | None, since: float | None) -> dict:
    if error is None:
        return {"ok": True}
    return {"ok": False, "error": error, **({"since": iso(since)} if since else {})}


async def health(request: web.Request) -> web.Response:
    probe: Health = request.app["health"]
    await probe.fresh_stats()
    doc, code = probe.document()
    return web.json_response(doc, status=code)


async def metrics(request: web.Request) -> web.Response:
    ctx: Context = request.app["ctx"]
    probe: Health = request.app["health"]
    await probe.fresh_stats()  # the queue gauges with them
    # while PostgreSQL is away the process's own metrics are served at once, without its gauges
    if ctx.pg.since is None:
        with contextlib.suppress(psycopg.Error, OSError):
            async with ctx.pool.connection(timeout=CHECK_TIMEOUT) as conn:
                async for name, calls, seconds in await conn.execute(
                        "SELECT funcname, calls, total_time / 1000.0 FROM pg_stat_user_functions "
                        "WHERE schemaname = 'nexus'"):
                    ctx.metrics.sql_calls.labels(name).set(calls)
                    ctx.metrics.sql_seconds.labels(name).set(seconds)
    body = generate_latest(ctx.metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def stats(request: web.Request) -> web.Response:
    ctx: Context = request.app["ctx"]
    probe: Health = request.app["health"]
    await probe.fresh_stats()
    counts = {name: ctx.metrics.registry.get_sample_value(f"embeddings_{name}_total")
              for name in ("processed", "skipped", "stale", "failures", "dead")}
    return web.json_response({"worker_id": ctx.worker_id, **ctx.embedder.info.labels(), **counts,
                              "queue": probe.stats},
                             dumps=functools.partial(json.dumps, default=str))


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def embed(request: web.Request) -> web.Response:
    ctx: Context = request.app["ctx"]
    if request.content_type != "application/json":
        return _error(415, "send JSON: Content-Type: application/json")
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return _error(400, "malformed JSON")
    text = body.get("text") if isinstance(body, dict) else None
    if not isinstance(text, str):
        return _error(400, 'expected {"text": "..."}')
    if not text.strip():
        return _error(400, "text is empty")
    if len(text) > ctx.cfg.embed_max_chars:
        return _error(413, f"text is {len(text)} characters; the limit is "
                           f"{ctx.cfg.embed_max_chars} (NEXUS_EMBED_MAX_CHARS)")
    info = ctx.embedder.info
    # the version carries the precision: a vector of another precision is not served from cache
    key = f"nexus:embed:{info.name}:{info.version}:{hashlib.sha256(text.encode()).hexdigest()}"
    cached = await _best_effort(ctx, ctx.redis.get(key))
    ctx.metrics.embed_cache.labels("miss" if cached is None else "hit").inc()
    if cached is not None:
        vector = np.frombuffer(cached, dtype=np.float32)
    else:
        async with ctx.embed_lock:  # not whitespace: a vector or its EmbedError
            [vector] = await asyncio.to_thread(ctx.embedder.embed, [text])
        if isinstance(vector, EmbedError):
            return _error(422, f"could not embed the text: {vector}")
        await _best_effort(ctx, ctx.redis.set(key, vector.astype(np.float32).tobytes(),
                                              ex=EMBED_CACHE_TTL))
    return web.json_response({"model": info.name, "model_version": info.version,
                              "dimension": int(vector.shape[0]), "cached": cached is not None,
                              "embedding": [float(x) for x in vector]})


async def _best_effort(ctx: Context, call: Awaitable[Any]) -> Any:
    """A Redis call of /embed's cache; a failure is counted and answers None."""
    try:
        return await call
    except (aioredis.RedisError, OSError):
        ctx.metrics.cache_errors.inc()
        return None


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def instrument(request: web.Request, handler: Handler) -> web.StreamResponse:
    ctx: Context = request.app["ctx"]
    endpoint = request.match_info.route.resource.canonical if request.match_info.route.resource \
        else "unknown"
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        ctx.metrics.requests.labels(endpoint, request.method, str(status)).inc()
        ctx.metrics.api_latency.labels(endpoint).observe(time.perf_counter() - started)


def make_app(ctx: Context, probe: Health) -> web.Application:
    app = web.Application(middlewares=[instrument], client_max_size=1024 * 1024)
    app["ctx"] = ctx
    app["health"] = probe
    app.router.add_get("/health", health)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/stats", stats)
    app.router.add_post("/embed", embed)
    return app
