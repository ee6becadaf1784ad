"""The embedding worker: claim a batch, embed it off the event loop, hand the vectors back.

All decisions (leases, retries, dead letters, stale results) are made by the SQL queue functions;
this loop only moves data between PostgreSQL and the model and reports what happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import psycopg
from pgvector.psycopg import register_vector_async
from psycopg import sql
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from sidecar.config import Config, ConfigError
from sidecar.db import POOL_TIMEOUT, RETRY_SECONDS, Outage, conninfo
from sidecar.embedder import Embedder, EmbedError
from sidecar.metrics import Metrics

log = logging.getLogger("nexus.worker")
CHANNEL = "nexus_embeddings"


def check_settings(cfg: Config) -> None:
    if not 1 <= cfg.worker_batch <= 1000:
        raise ConfigError("NEXUS_WORKER_BATCH must be between 1 and 1000")
    if cfg.worker_lease_seconds < 2 * cfg.worker_heartbeat_seconds:
        raise ConfigError("NEXUS_WORKER_LEASE_SECONDS must be at least twice "
                          "NEXUS_WORKER_HEARTBEAT_SECONDS, or leases expire under a live worker")
    if cfg.worker_heartbeat_seconds < 1:
        raise ConfigError("NEXUS_WORKER_HEARTBEAT_SECONDS must be at least 1")


# psycopg_pool's reconnection backs off exponentially for reconnect_timeout, so a long outage cost
# minutes more: a try gives up after 2 s instead (why: docs/operations.md, "Faults")
RECONNECT_SECONDS = 2.0


def make_pool(cfg: Config) -> AsyncConnectionPool:
    # connections are checked on checkout, so a restarted PostgreSQL costs no failed request
    return AsyncConnectionPool(conninfo(cfg), kwargs={"autocommit": True}, min_size=1, max_size=4,
                               open=False, configure=register_vector_async,
                               check=AsyncConnectionPool.check_connection,
                               timeout=POOL_TIMEOUT, reconnect_timeout=RECONNECT_SECONDS)


class Worker:
    def __init__(self, cfg: Config, embedder: Embedder, pool: AsyncConnectionPool,
                 metrics: Metrics, pg: Outage) -> None:
        self.cfg = cfg
        self.embedder = embedder
        self.pool = pool
        self.metrics = metrics
        self.pg = pg
        self.id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.wake = asyncio.Event()
        self.lease = timedelta(seconds=cfg.worker_lease_seconds)

    # -- the loop -------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Work until `stop` is set; then finish the batch in hand and release anything held."""
        listener = asyncio.create_task(self._listen(stop))
        beater = asyncio.create_task(self._heartbeats(stop))
        try:
            await self._pipeline(stop)
        finally:
            listener.cancel()
            beater.cancel()
            await self._release()

    async def _pipeline(self, stop: asyncio.Event) -> None:
        """Claim, encode, complete, overlapping: while batch N encodes, N+1 is claimed and N-1
        written (docs/operations.md). On stop the batch encoding is finished and written; the
        one claimed ahead is released (by run) untouched."""
        ahead: asyncio.Task[list[dict]] | None = None
        writing: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        writing.set_result(None)  # nothing to write yet
        try:
            while not stop.is_set():
                items = await (ahead if ahead is not None else self._claim())
                ahead = None
                if stop.is_set():
                    break  # claimed but not started: released untouched
                if not items:
                    await writing
                    await self._idle(stop)
                    continue
                ahead = asyncio.create_task(self._claim())
                self.metrics.batch_size.observe(len(items))
                texts = [item["content"] for item in items]
                results = await asyncio.to_thread(self.embedder.embed, texts)
                await writing
                writing = asyncio.create_task(self._finish(items, results))
        finally:
            await writing
            if ahead is not None:
                await ahead

    async def _claim(self) -> list[dict]:
        """The next batch ([] when there is none, or the database is away: the caller idles)."""
        # a notification from now on means new work that this claim may not have seen
        self.wake.clear()
        try:
            async with self.pool.connection() as conn:
                cur = await conn.cursor(row_factory=dict_row).execute(
                    "SELECT * FROM memory_system.claim_batch(%s, %s, %s, %s)",
                    (self.id, self.cfg.worker_batch, self.lease, self.embedder.info.name))
                return await cur.fetchall()
        except psycopg.OperationalError as exc:
            self.pg.lost(exc)
        except psycopg.Error:  # must not stop the worker: it backs off, with the error logged
            log.exception("claim failed; backing off")
        return []

    async def _idle(self, stop: asyncio.Event) -> None:
        waiters = [asyncio.create_task(self.wake.wait()), asyncio.create_task(stop.wait())]
        await asyncio.wait(waiters, timeout=self.cfg.worker_poll_seconds,
                           return_when=asyncio.FIRST_COMPLETED)
        for w in waiters:
            w.cancel()

    async def _listen(self, stop: asyncio.Event) -> None:
        """LISTEN for new work (polling is the fallback). This connection is also the first to
        know that the database went away (a restart cuts it): it tries again every second, and
        once connected again wakes the loop and runs `_reconnected`."""
        lost = False
        while not stop.is_set():
            wait, began = RETRY_SECONDS, time.monotonic()
            try:
                async with await psycopg.AsyncConnection.connect(conninfo(self.cfg),
                                                                 autocommit=True) as conn:
                    await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(CHANNEL)))
                    if lost:
                        await self._reconnected(conn)
                    self.pg.back(began)
                    self.wake.set()
                    async for _ in conn.notifies():
                        self.wake.set()
            except psycopg.OperationalError as exc:
                self.pg.lost(exc)
            except (psycopg.Error, OSError) as exc:
                log.debug("listener: %s", exc)
                wait = self.cfg.worker_poll_seconds
            lost = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), wait)

    async def _reconnected(self, conn: psycopg.AsyncConnection) -> None:
        """After a lost connection the batch in hand may have died with it, and the heartbeats
        would keep its lease: hand back every item held (no try counted; a batch that completes
        still finds its items gone), beat, and drop the pool's dead connections."""
        await self.pool.check()
        async with conn.transaction():
            cur = await conn.execute("SELECT memory_system.release(%s)", (self.id,))
            released = (await cur.fetchone())[0]
            await self._beat(conn)
        if released:
            log.info("handed back %d items held when the connection was lost", released)

    async def _beat(self, conn: psycopg.AsyncConnection) -> None:
        info = {"pid": os.getpid(), **self.embedder.info.labels()}
        await conn.execute("SELECT memory_system.heartbeat(%s, %s, %s)",
                           (self.id, self.lease, psycopg.types.json.Jsonb(info)))

    async def _heartbeats(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            began = time.monotonic()
            try:
                async with self.pool.connection() as conn:
                    await self._beat(conn)
                    # expired working memory and store items are invisible already; this
                    # reclaims their rows. Then the retention rules' batch (docs/privacy.md)
                    cur = await conn.execute("SELECT memory_system.purge_expired_working_memory()"
                                             " + memory_system.purge_expired_store_items(),"
                                             " memory_system.retention_sweep()")
                    purged, retained = await cur.fetchone()
                    self.metrics.retention_removed.inc(retained)
                    if purged or retained:
                        log.info("purged %d expired working-memory keys and store items, %d "
                                 "memories under retention rules", purged, retained)
                self.pg.back(began)
            except psycopg.OperationalError as exc:
                self.pg.lost(exc)
            except (psycopg.Error, OSError) as exc:
                log.warning("heartbeat failed: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.cfg.worker_heartbeat_seconds)

    async def _release(self) -> None:
        try:
            async with self.pool.connection(timeout=5) as conn:
                cur = await conn.execute("SELECT memory_system.release(%s)", (self.id,))
                released = (await cur.fetchone())[0]
                if released:
                    log.info("released %d items on shutdown", released)
        except (psycopg.Error, OSError) as exc:
            log.warning("could not release items (their lease will expire): %s", exc)

    # -- one batch's results -------------------------------------------------------------
    async def _finish(self, items: list[dict],
                      results: list[np.ndarray | EmbedError | None]) -> None:
        """Write a batch's vectors, close its empty items, record its failures. If the database
        is away, the batch's lease brings its items back."""
        pairs = list(zip(items, results, strict=True))
        empty = [item for item, result in pairs if result is None]
        failed = [(item, str(result)) for item, result in pairs if isinstance(result, EmbedError)]
        done = [(item, result) for item, result in pairs if isinstance(result, np.ndarray)]
        try:
            async with self.pool.connection() as conn:
                if empty:
                    await conn.execute("SELECT memory_system.skip_batch(%s, %s, %s)",
                                       (self.id, [i["item_id"] for i in empty], "empty content"))
                    self.metrics.skipped.inc(len(empty))
                failed += await self._complete(conn, done)
                for item, error in failed:
                    await self._fail(conn, item, error)
        except psycopg.OperationalError as exc:
            # the batch's items are handed back when the connection is back (_reconnected)
            self.pg.lost(exc)
        except psycopg.Error:
            log.exception("writing a batch failed: its items come back when their lease expires")

    async def _complete(self, conn: psycopg.AsyncConnection,
                        done: list[tuple[dict, np.ndarray]]) -> list[tuple[dict, str]]:
        """Write the vectors; if the batch write fails, write one by one: a bad one fails alone."""
        if not done:
            return []
        try:
            await self._write(conn, done)
            return []
        except psycopg.Error as exc:
            if len(done) == 1:
                return [(done[0][0], f"write failed: {exc.sqlstate} {exc}")]
        return [failed for pair in done for failed in await self._complete(conn, [pair])]

    async def _write(self, conn: psycopg.AsyncConnection,
                     done: list[tuple[dict, np.ndarray]]) -> None:
        info = self.embedder.info
        cur = await conn.execute(
            # vectors in binary (%b): formatting 384 floats as text costs more than the write
            "SELECT written, stale, lost FROM memory_system.complete_batch(%s, %s, %b, %s, %s, %s)",
            (self.id, [i["item_id"] for i, _ in done], [v.astype(np.float32) for _, v in done],
             [i["content_sha256"] for i, _ in done], info.name, info.version))
        written, stale, lost = await cur.fetchone()
        self.metrics.processed.inc(written)
        self.metrics.stale.inc(stale)
        if lost:
            log.warning("%d items were no longer ours (lease expired)", lost)
        now = datetime.now(UTC)
        for item, _ in done:
            self.metrics.latency.observe((now - item["enqueued_at"]).total_seconds())

    async def _fail(self, conn: psycopg.AsyncConnection, item: dict, error: str) -> None:
        self.metrics.failures.inc()
        try:
            cur = await conn.execute("SELECT memory_system.fail_item(%s, %s, %s)",
                                     (self.id, item["item_id"], error))
            state = (await cur.fetchone())[0]
        except psycopg.Error as exc:
            log.warning("could not record failure of item %s: %s", item["item_id"], exc)
            return
        log.warning("item %s failed (%s): %s", item["item_id"], state, error)
        if state == "dead":
            self.metrics.dead.inc()
