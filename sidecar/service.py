"""One sidecar process (embedding worker + HTTP), and the supervisor that runs N of them."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time

import redis.asyncio as aioredis
from aiohttp import web

from sidecar import secrets
from sidecar.cache import MirrorThread
from sidecar.config import Config
from sidecar.embedder import Embedder, ModelError
from sidecar.http import Context, make_app
from sidecar.metrics import Metrics
from sidecar.pgserver import ServerError, port_free
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


async def serve(cfg: Config) -> None:
    """Run one worker with its HTTP endpoints until SIGTERM/SIGINT; then drain and exit."""
    check_settings(cfg)
    if cfg.http_port and not port_free(cfg.http_host, cfg.http_port):
        raise ServerError(f"HTTP port {cfg.http_port} is already in use: set NEXUS_HTTP_PORT")
    embedder = Embedder(cfg.embed_model, cfg.worker_threads, batch_size=cfg.worker_batch)
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
        metrics.info.info({"worker_id": worker.id, "model": embedder.info.name,
                           "model_version": embedder.info.version})
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        if cfg.http_port:
            ctx = Context(cfg, pool, redis, embedder, metrics, worker.id, asyncio.Lock())
            runner = web.AppRunner(make_app(ctx), access_log=None)
            await runner.setup()
            await web.TCPSite(runner, cfg.http_host, cfg.http_port).start()
        log.info("worker %s ready (model %s, http %s:%s)", worker.id, embedder.info.name,
                 cfg.http_host, cfg.http_port)
        mirror = MirrorThread(cfg, metrics, cfg.reconcile_seconds)
        mirror.start()
        try:
            await worker.run(stop)
        finally:
            mirror.stop()
            await asyncio.to_thread(mirror.join, 10)
        log.info("worker %s stopped", worker.id)
    finally:
        if runner is not None:
            await runner.cleanup()
        await pool.close()
        await redis.aclose()


def run_one(cfg: Config) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        asyncio.run(serve(cfg))
    except (ModelError, ServerError, secrets.SecretError, ValueError) as exc:
        print(f"nexus worker: error: {exc}", file=sys.stderr)
        return 2
    return 0


def run_replicas(cfg: Config, replicas: int) -> int:
    """Run `replicas` worker processes (HTTP on consecutive ports), restarting any that crash,
    until SIGTERM/SIGINT, which is passed on so each drains."""
    if replicas == 1:
        return run_one(cfg)
    stopping = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    def spawn(i: int) -> subprocess.Popen:
        port = cfg.http_port + i if cfg.http_port else 0
        env = dict(os.environ, NEXUS_HOME=str(cfg.home), NEXUS_HTTP_PORT=str(port))
        return subprocess.Popen([sys.executable, "-m", "sidecar.cli", "worker", "--replicas", "1"],
                                env=env)

    children = {i: spawn(i) for i in range(replicas)}
    while not stopping:
        time.sleep(0.5)
        for i, child in list(children.items()):
            code = child.poll()
            if code is not None and not stopping:
                if code == 2:  # a configuration error: restarting will not help
                    print(f"nexus worker: replica {i} refused to start", file=sys.stderr)
                    stopping = True
                    break
                print(f"nexus worker: replica {i} exited with {code}; restarting", file=sys.stderr)
                children[i] = spawn(i)
    for child in children.values():
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    codes = [child.wait() for child in children.values()]
    return 0 if all(c in (0, -signal.SIGTERM) for c in codes) else 1
