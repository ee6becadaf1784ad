"""One sidecar process: the embedding worker, its HTTP endpoints and the cache mirror."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import time

import psycopg
import redis.asyncio as aioredis
from aiohttp import web
from psycopg_pool import AsyncConnectionPool
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from sidecar import secrets
from sidecar.cache import MirrorThread
from sidecar.config import Config
from sidecar.db import RETRY_SECONDS, Outage, postgresql_outage, redis_outage
from sidecar.embedder import Embedder, ModelError, auto_threads
from sidecar.http import Context, Health, make_app
from sidecar.metrics import Metrics
from sidecar.ports import ServerError, port_free
from sidecar.worker import RECONNECT_SECONDS, Worker, check_settings, make_pool

log = logging.getLogger("nexus.service")
# how long a starting replica waits for PostgreSQL before it exits (its supervisor restarts it)
START_SECONDS = 60


class DatabaseUnavailable(RuntimeError):
    pass


async def _database_target(pool: AsyncConnectionPool, pg: Outage) -> tuple[str, int]:
    """The model and dimension the database expects; PostgreSQL is waited for START_SECONDS at
    most (tried every second or so), then the error is the replica's exit."""
    deadline = time.monotonic() + START_SECONDS
    while True:
        try:
            async with pool.connection(timeout=RECONNECT_SECONDS) as conn:
                cur = await conn.execute(
                    "SELECT max(value) FILTER (WHERE name = 'embedding_model'), "
                    "max(value) FILTER (WHERE name = 'embedding_dimensions')::integer "
                    "FROM memory_system.settings")
                model, dims = await cur.fetchone()
            pg.back()
            return model, dims
        except psycopg.OperationalError as exc:
            if time.monotonic() >= deadline:
                raise DatabaseUnavailable(f"PostgreSQL did not answer within {START_SECONDS} s: "
                                          f"{exc}") from exc
            pg.lost(exc)
            await asyncio.sleep(RETRY_SECONDS)


async def _orphaned(stop: asyncio.Event, parent: int) -> None:
    """A replica whose supervisor is gone (killed) drains and exits rather than run unwatched."""
    while not stop.is_set():
        if os.getppid() != parent:
            log.warning("the supervisor (pid %s) is gone: draining and exiting", parent)
            stop.set()
            return
        await asyncio.sleep(1)


async def serve(cfg: Config, supervised: bool = False) -> None:
    """Run one worker with its HTTP endpoints until SIGTERM/SIGINT (or, `supervised`, until its
    supervisor is gone); then drain and exit."""
    parent = os.getppid()
    check_settings(cfg)
    if cfg.http_port and not port_free(cfg.http_host, cfg.http_port):
        raise ServerError(f"HTTP port {cfg.http_port} is already in use: set NEXUS_HTTP_PORT")
    threads = cfg.worker_threads or auto_threads(cfg.worker_replicas)
    embedder = Embedder(cfg.embed_model, threads, batch_size=cfg.worker_batch,
                        dtype=cfg.embed_dtype, device=cfg.embed_device)
    metrics = Metrics()
    pg, redis_state = postgresql_outage(metrics), redis_outage(metrics)
    pool = make_pool(cfg)
    await pool.open()
    # as the mirror's client (sidecar.cache.redis_client): a Redis that is down fails at once
    redis = aioredis.Redis(host=cfg.redis_host, port=cfg.redis_port,
                           password=secrets.password(cfg, "redis"), socket_timeout=2,
                           socket_connect_timeout=2, retry=Retry(NoBackoff(), 1))
    runner = None
    try:
        target, dims = await _database_target(pool, pg)
        embedder.check_dimension(dims)
        if target != embedder.info.name:
            log.warning("the database targets model %s but this worker runs %s: it will claim "
                        "nothing until they match", target, embedder.info.name)
        worker = Worker(cfg, embedder, pool, metrics, pg)
        model = embedder.info
        metrics.info.info({"worker_id": worker.id, "model": model.name,
                           "model_version": model.version, "precision": model.dtype,
                           "device": model.device, "threads": str(model.threads)})
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        tasks = []
        if cfg.http_port:
            ctx = Context(cfg, pool, redis, embedder, metrics, worker.id, asyncio.Lock(), pg,
                          redis_state)
            probe = Health(ctx)
            await probe.check()
            await probe.read_stats()
            tasks.append(asyncio.create_task(probe.run(stop)))
            runner = web.AppRunner(make_app(ctx, probe), access_log=None)
            await runner.setup()
            await web.TCPSite(runner, cfg.http_host, cfg.http_port).start()
        log.info("worker %s ready (model %s %s, precision %s (%s), %s, %d torch threads, "
                 "http %s:%s)", worker.id, model.name, model.version, model.dtype,
                 model.dtype_reason, model.device, model.threads, cfg.http_host, cfg.http_port)
        mirror = MirrorThread(cfg, metrics, cfg.reconcile_seconds, pg, redis_state)
        mirror.start()
        if supervised:
            tasks.append(asyncio.create_task(_orphaned(stop, parent)))
        try:
            await worker.run(stop)
        finally:
            for task in tasks:
                task.cancel()
            mirror.stop()
            await asyncio.to_thread(mirror.join, 10)
        log.info("worker %s stopped", worker.id)
    finally:
        if runner is not None:
            await runner.cleanup()
        await pool.close()
        await redis.aclose()


def run_one(cfg: Config, supervised: bool = False) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    # an outage is logged once each way by sidecar.db.Outage; the pool would log every try
    logging.getLogger("psycopg.pool").setLevel(logging.ERROR)
    try:
        asyncio.run(serve(cfg, supervised))
    except (ModelError, ServerError, secrets.SecretError, ValueError) as exc:
        print(f"nexus worker: error: {exc}", file=sys.stderr)
        return 2
    except DatabaseUnavailable as exc:
        print(f"nexus worker: error: {exc}", file=sys.stderr)
        return 1
    return 0
