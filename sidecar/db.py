"""Connections of the sidecar (the tooling's: nexus/dsn.py), and how the sidecar notices, logs
and counts a server going away and coming back."""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime

import psycopg
from psycopg_pool import PoolTimeout

from sidecar.config import WORKER, Config
from sidecar.metrics import Metrics

log = logging.getLogger("nexus.db")

# The longest wait between two tries of any connection of the sidecar, whatever the outage's
# length: a server that is back is used again within about this long.
RETRY_SECONDS = 1.0
# the newest migration of this release: a worker runs only against a database migrated to it
# (tests/unit/test_config.py checks it is migrations/' newest)
SCHEMA = "0025_facts_found_by_key"
# The longest a request waits for a connection of the worker's pool (sidecar.worker.make_pool)
POOL_TIMEOUT = 10.0
# what a process does while each server is away, as the log says it
MEANWHILE = {"PostgreSQL": "retrying every second or two; logged again when it is back",
             "Redis": "nothing is lost: the cache is reconciled with PostgreSQL when it is back"}


def conninfo(cfg: Config) -> str:
    """The connection string of every connection of the sidecar: as nexus_worker."""
    return psycopg.conninfo.make_conninfo(
        host=cfg.pg_host, port=cfg.pg_port, dbname=cfg.database, user=WORKER,
        password=cfg.password(WORKER), connect_timeout=5, application_name="nexus-worker")


def describe(error: BaseException) -> str:
    """The error's type and the first line of its message."""
    detail = (str(error).strip().splitlines() or [""])[0]
    return f"{type(error).__name__}: {detail}" if detail else type(error).__name__


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


class Outage:
    """Whether this process reaches a server, as its connections find out: each reports `lost`
    or `back`, and the log says once that the server went and once that it is back, however
    many connections notice (docs/operations.md, "Faults"). Thread-safe (the mirror's thread)."""

    def __init__(self, server: str, metrics: Metrics | None = None) -> None:
        self.server = server
        metrics = metrics or Metrics()  # a registry of its own: counted, never exported
        self._up = metrics.server_up.labels(server.lower())
        self._outages = metrics.outages.labels(server.lower())
        self._lock = threading.Lock()
        self.since: float | None = None  # when the server went away (epoch), None while it answers
        self._started = 0.0
        self._back_at = -POOL_TIMEOUT
        self._up.set(1)

    def lost(self, error: BaseException) -> bool:
        """A try failed; True if this begins an outage (and was logged). A timeout is a wait
        begun up to POOL_TIMEOUT earlier: if the server came back meanwhile, it is not news."""
        with self._lock:
            if self.since is not None:
                return False
            if (isinstance(error, PoolTimeout | TimeoutError)
                    and time.monotonic() - self._back_at < POOL_TIMEOUT):
                return False
            self.since, self._started = time.time(), time.monotonic()
        self._up.set(0)
        self._outages.inc()
        log.warning("%s unreachable (%s); %s", self.server, describe(error),
                    MEANWHILE[self.server])
        return True

    def back(self, began: float) -> float | None:
        """A try begun at `began` (monotonic) succeeded; the outage's length in seconds if this
        ends one (and was logged). A try begun before the outage (a query in flight on a
        connection the server had not cut yet) says nothing of the server now."""
        if self.since is None:  # the common case, without the lock
            return None
        with self._lock:
            if self.since is None or began < self._started:
                return None
            self._back_at = time.monotonic()
            took, self.since = self._back_at - self._started, None
        self._up.set(1)
        log.info("%s is back after %.1f s unreachable", self.server, took)
        return took

    def report(self, error: BaseException | None, began: float) -> str | None:
        """The result of a try begun at `began`: `back(began)` if it succeeded (None), else
        `lost(error)` and the error described."""
        if error is None:
            self.back(began)
            return None
        self.lost(error)
        return describe(error)

