"""One sidecar process: the embedding worker, its HTTP endpoints and the cache mirror."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys

import redis.asyncio as aioredis
from aiohttp import web

from sidecar import secrets
from sidecar.cache import MirrorThread
from sidecar.config import Config
from sidecar.embedder import Embedder, ModelError, auto_threads
from sidecar.http import Context, make_app
from sidecar.metrics import Metrics
from sidecar.ports import ServerError, port_free
from sidecar.worker import Worker, check_settings, make_pool

log = logging.getLogger("nexus.service")


async def _database_target(pool) -> tuple[str, int]:  # noqa: ANN001
    async with pool.connection(timeout=60) as conn:
        cur = await conn.execute(
            "SELECT max(value) FILTER (WHERE name = 'embedding_model'), "
            "max(value) FILTER (WHERE name = 'embedding_dimensions')::integer "
            "FROM memory_system.settings")
        model, dims = await cur.fetchone()
    return model, dims


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
    pool = make_pool(cfg)
    await pool.open(wait=True, timeout=60)
    redis = aioredis.Redis(host=cfg.redis_host, port=cfg.redis_port,
                           password=secrets.password(cfg, "redis"), socket_timeout=2,
                           socket_connect_timeout=2)
    runner = None
    try:
        target, dims = await _database_target(pool)
        embedder.check_dimension(dims)
        if target != embedder.info.name:
            log.warning("the database targets model %s but this worker runs %s: it will claim "
                        "nothing until they match", target, embedder.info.name)
        metrics = Metrics()
        worker = Worker(cfg, embedder, pool, metrics)
        model = embedder.info
        metrics.info.info({"worker_id": worker.id, "model": model.name,
                           "model_version": model.version, "precision": model.dtype,
                           "device": model.device, "threads": str(model.threads)})
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        if cfg.http_port:
            ctx = Context(cfg, pool, redis, embedder, metrics, worker.id, asyncio.Lock())
            runner = web.AppRunner(make_app(ctx), access_log=None)
            await runner.setup()
            await web.TCPSite(runner, cfg.http_host, cfg.http_port).start()
        log.info("worker %s ready (model %s %s, precision %s (%s), %s, %d torch threads, "
                 "http %s:%s)", worker.id, model.name, model.version, model.dtype,
                 model.dtype_reason, model.device, model.threads, cfg.http_host, cfg.http_port)
        mirror = MirrorThread(cfg, metrics, cfg.reconcile_seconds)
        mirror.start()
        watch = asyncio.create_task(_orphaned(stop, parent)) if supervised else None
        try:
            await worker.run(stop)
        finally:
            if watch is not None:
                watch.cancel()
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
    try:
        asyncio.run(serve(cfg, supervised))
    except (ModelError, ServerError, secrets.SecretError, ValueError) as exc:
        print(f"nexus worker: error: {exc}", file=sys.stderr)
        return 2
    return 0
