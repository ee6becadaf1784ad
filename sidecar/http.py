"""HTTP endpoints of a sidecar process: /health, /metrics, /embed, /stats.

/health answers a load balancer and a person alike (docs/operations.md):
  ok        200  PostgreSQL reachable, a live worker, Redis up, queue under its threshold
  degraded  200  only Redis is down (the cache is best effort) or the queue is deep
  down      503  PostgreSQL unreachable, or no worker has sent a heartbeat in the last minute
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import numpy as np
import psycopg
import redis.asyncio as aioredis
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from sidecar.config import Config
from sidecar.embedder import Embedder, EmbedError
from sidecar.metrics import Metrics

EMBED_CACHE_TTL = 24 * 3600
CHECK_TIMEOUT = 3.0


@dataclass
class Context:
    cfg: Config
    pool: AsyncConnectionPool
    redis: aioredis.Redis
    embedder: Embedder
    metrics: Metrics
    worker_id: str
    embed_lock: asyncio.Lock


async def _queue_stats(ctx: Context) -> dict:
    async with ctx.pool.connection(timeout=CHECK_TIMEOUT) as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute("SELECT * FROM memory_system.queue_stats()")
        return await cur.fetchone()


async def _check(coro: Awaitable[object]) -> tuple[bool, object]:
    try:
        return True, await asyncio.wait_for(coro, CHECK_TIMEOUT)
    except (psycopg.Error, aioredis.RedisError, OSError, TimeoutError) as exc:
        return False, f"{type(exc).__name__}: {exc}".strip()


async def health(request: web.Request) -> web.Response:
    ctx: Context = request.app["ctx"]
    pg_ok, stats = await _check(_queue_stats(ctx))
    redis_ok, redis_detail = await _check(ctx.redis.ping())
    checks: dict[str, dict] = {
        "postgresql": {"ok": pg_ok, **({} if pg_ok else {"error": stats})},
        "redis": {"ok": redis_ok, **({} if redis_ok else {"error": redis_detail})},
    }
    if pg_ok:
        assert isinstance(stats, dict)
        live = int(stats["live_workers"])
        pending = int(stats["pending"])
        checks["worker"] = {"ok": live > 0, "live_workers": live}
        checks["queue"] = {"ok": pending < ctx.cfg.health_max_queue, "pending": pending,
                           "threshold": ctx.cfg.health_max_queue, "dead": int(stats["dead"])}
    else:
        checks["worker"] = {"ok": False, "error": "unknown: PostgreSQL unreachable"}
        checks["queue"] = {"ok": False, "error": "unknown: PostgreSQL unreachable"}
    if not pg_ok or not checks["worker"]["ok"]:
        status, code = "down", 503
    elif not redis_ok or not checks["queue"]["ok"]:
        status, code = "degraded", 200
    else:
        status, code = "ok", 200
    return web.json_response({"status": status, "checks": checks, "worker_id": ctx.worker_id},
                             status=code)


async def metrics(request: web.Request) -> web.Response:
    ctx: Context = request.app["ctx"]
    try:
        stats = await _queue_stats(ctx)
        for state in ("pending", "processing", "done", "dead"):
            ctx.metrics.queue_depth.labels(state).set(stats[state])
        async with ctx.pool.connection(timeout=CHECK_TIMEOUT) as conn:
            cur = await conn.execute(
                "SELECT funcname, calls, total_time / 1000.0 FROM pg_stat_user_functions "
                "WHERE schemaname = 'nexus'")
            for name, calls, seconds in await cur.fetchall():
                ctx.metrics.sql_calls.labels(name).set(calls)
                ctx.metrics.sql_seconds.labels(name).set(seconds)
    except (psycopg.Error, OSError):
        pass  # the process metrics are still worth serving while the database is away
    body = generate_latest(ctx.metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def stats(request: web.Request) -> web.Response:
    ctx: Context = request.app["ctx"]
    queue = await _queue_stats(ctx)
    counts = {name: ctx.metrics.registry.get_sample_value(f"embeddings_{name}_total")
              for name in ("processed", "skipped", "stale", "failures", "dead")}
    return web.json_response({
        "worker_id": ctx.worker_id,
        "model": ctx.embedder.info.name, "model_version": ctx.embedder.info.version,
        "precision": ctx.embedder.info.dtype, "device": ctx.embedder.info.device,
        "threads": ctx.embedder.info.threads,
        **counts,
        "queue": {k: (str(v) if v is not None and not isinstance(v, int) else v)
                  for k, v in queue.items()},
    })


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
    cached = await _cache_get(ctx, key)
    if cached is not None:
        ctx.metrics.embed_cache.labels("hit").inc()
        vector = np.frombuffer(cached, dtype=np.float32)
    else:
        ctx.metrics.embed_cache.labels("miss").inc()
        loop = asyncio.get_running_loop()
        async with ctx.embed_lock:
            try:
                vector = await loop.run_in_executor(None, ctx.embedder.embed_query, text)
            except EmbedError as exc:
                return _error(422, f"could not embed the text: {exc}")
        await _cache_set(ctx, key, vector.astype(np.float32).tobytes())
    return web.json_response({"model": info.name, "model_version": info.version,
                              "dimension": int(vector.shape[0]), "cached": cached is not None,
                              "embedding": [float(x) for x in vector]})


async def _cache_get(ctx: Context, key: str) -> bytes | None:
    try:
        return await ctx.redis.get(key)
    except (aioredis.RedisError, OSError):
        ctx.metrics.cache_errors.inc()
        return None


async def _cache_set(ctx: Context, key: str, value: bytes) -> None:
    try:
        await ctx.redis.set(key, value, ex=EMBED_CACHE_TTL)
    except (aioredis.RedisError, OSError):
        ctx.metrics.cache_errors.inc()


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


def make_app(ctx: Context) -> web.Application:
    app = web.Application(middlewares=[instrument], client_max_size=1024 * 1024)
    app["ctx"] = ctx
    app.router.add_get("/health", health)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/stats", stats)
    app.router.add_post("/embed", embed)
    return app
