"""`python -m sidecar`: one embedding worker, its HTTP endpoints and the cache mirror.

Settings come from the environment (below; sidecar/config.py). It runs until SIGTERM or SIGINT,
then drains; it exits 2 when it refuses its configuration (starting it again cannot help), 1 when
PostgreSQL did not answer at start. It is what the container runs; to run several replicas with
restarts: `nexus worker`.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import signal
import socket
import sys
import time

import psycopg
from aiohttp import web
from psycopg_pool import AsyncConnectionPool

from sidecar import config
from sidecar.cache import MirrorThread, redis_client
from sidecar.config import Config, ConfigError
from sidecar.db import RETRY_SECONDS, SCHEMA, Outage
from sidecar.embedder import Embedder, ModelError, auto_threads
from sidecar.http import Context, Health, make_app
from sidecar.metrics import Metrics
from sidecar.worker import RECONNECT_SECONDS, Worker, check_settings, make_pool

log = logging.getLogger("nexus.service")
# how long a starting worker waits for PostgreSQL before it exits (to be started again)
START_SECONDS = 60


async def _database_target(pool: AsyncConnectionPool, pg: Outage) -> tuple[str, int]:
    """The model and dimension the database expects, once its schema is this release's (else
    ConfigError); PostgreSQL is waited for START_SECONDS at most (tried every second or so), then
    the TimeoutError is the replica's exit."""
    deadline = time.monotonic() + START_SECONDS
    while True:
        began = time.monotonic()
        try:
            async with pool.connection(timeout=RECONNECT_SECONDS) as conn:
                cur = await conn.execute(
                    "SELECT max(value) FILTER (WHERE name = 'embedding_model'), "
                    "max(value) FILTER (WHERE name = 'embedding_dimensions')::integer, "
                    "memory_system.schema_migration() FROM memory_system.settings")
                model, dims, schema = await cur.fetchone()
            pg.back(began)
            if schema != SCHEMA:
                raise ConfigError(f"the database is migrated to {schema}, this worker's release to "
                                  f"{SCHEMA}: " + ("run its nexus migrate first" if schema < SCHEMA
                                                   else "run the release that migrated it"))
            return model, dims
        except psycopg.OperationalError as exc:
            if time.monotonic() >= deadline:
                raise TimeoutError(f"PostgreSQL did not answer within {START_SECONDS} s: "
                                   f"{exc}") from exc
            pg.lost(exc)
            await asyncio.sleep(RETRY_SECONDS)


def _listen(cfg: Config) -> socket.socket | None:
    """The HTTP port, bound now (a port in use is said at once), not listened on until it serves."""
    if not cfg.http_port:
        return None
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((cfg.http_host, cfg.http_port))
    except OSError as exc:
        raise ConfigError(f"HTTP port {cfg.http_port} of {cfg.http_host} cannot be used "
                          f"({exc.strerror}): set NEXUS_HTTP_PORT") from None
    return sock


async def serve(cfg: Config) -> None:
    """Run one worker with its HTTP endpoints until SIGTERM/SIGINT; then drain and exit."""
    check_settings(cfg)
    sock = _listen(cfg)
    metrics = Metrics()
    pg, redis_state = Outage("PostgreSQL", metrics), Outage("Redis", metrics)
    pool = make_pool(cfg)
    await pool.open()
    redis = redis_client(cfg, asynchronous=True)
    runner = None
    try:
        # the database first: a schema of another release is refused before the model loads
        target, dims = await _database_target(pool, pg)
        threads = cfg.worker_threads or auto_threads(cfg.worker_replicas)
        embedder = Embedder(cfg.embed_model, threads, batch_size=cfg.worker_batch,
                            dtype=cfg.embed_dtype)
        gc.freeze()  # the model lives as long as we do: not collected, nor at exit (1 s)
        model = embedder.info
        if model.dimension != dims:
            raise ModelError(f"model {model.name} makes {model.dimension}-dimensional vectors, but "
                             f"the database stores {dims}: configure a {dims}-dimensional model")
        if target != model.name:
            log.warning("the database targets model %s but this worker runs %s: it will claim "
                        "nothing until they match", target, model.name)
        worker = Worker(cfg, embedder, pool, metrics, pg)
        metrics.info.info({"worker_id": worker.id,
                           **{k: str(v) for k, v in model.labels().items()}})
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        tasks = []
        if sock is not None:
            ctx = Context(cfg, pool, redis, embedder, metrics, worker.id, pg, redis_state)
            probe = Health(ctx)
            await probe.check()
            await probe.read_stats()
            tasks.append(asyncio.create_task(probe.run(stop)))
            runner = web.AppRunner(make_app(ctx, probe), access_log=None)
            await runner.setup()
            await web.SockSite(runner, sock).start()
        log.info("worker %s ready (model %s %s, precision %s (%s), %d torch threads, http %s:%s)",
                 worker.id, model.name, model.version, model.dtype, model.dtype_reason,
                 model.threads, cfg.http_host, cfg.http_port)
        mirror = MirrorThread(cfg, metrics, pg, redis_state)
        mirror.start()
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
        if sock is not None:
            sock.close()
        await pool.close()
        await redis.aclose()


def main(argv: list[str] | None = None) -> int:
    epilog = "environment:\n" + "\n".join(f"  {env:<32} {meaning} (default {default})"
                                          for env, default, meaning in config.settings())
    parser = argparse.ArgumentParser(prog="python -m sidecar", description=__doc__.split("\n")[0],
                                     epilog=epilog,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    # an outage is logged once each way by sidecar.db.Outage; the pool would log every try
    logging.getLogger("psycopg.pool").setLevel(logging.ERROR)
    try:
        asyncio.run(serve(config.load()))
    except (ModelError, ValueError, TimeoutError) as exc:  # ConfigError: ValueError
        print(f"nexus worker: error: {exc}", file=sys.stderr)
        return 1 if isinstance(exc, TimeoutError) else config.CONFIG_ERROR
    return 0


if __name__ == "__main__":
    sys.exit(main())
