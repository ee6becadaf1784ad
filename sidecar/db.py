"""Connections of the sidecar (the tooling's connection strings and pgpass files: nexus/dsn.py),
and how the sidecar notices, logs and counts a server going away and coming back."""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime

import psycopg
from prometheus_client import Counter, Gauge
from psycopg_pool import PoolTimeout

from sidecar.config import Config
from sidecar.metrics import Metrics

log = logging.getLogger("nexus.db")

# The longest wait between two tries of any connection of the sidecar, whatever the outage's
# length: a server that is back is used again within about this long.
RETRY_SECONDS = 1.0
# The longest a request waits for a connection of the worker's pool (sidecar.worker.make_pool)
POOL_TIMEOUT = 10.0


def connect(cfg: Config, role: str, password: str, dbname: str | None = None,
            **kwargs: object) -> psycopg.Connection:
    return psycopg.connect(
        host=cfg.pg_host, port=cfg.pg_port, dbname=dbname or cfg.database,
        user=role, password=password, connect_timeout=10, **kwargs,
    )


def describe(error: BaseException) -> str:
    """The error's type and the first line of its message."""
    detail = (str(error).strip().splitlines() or [""])[0]
    return f"{type(error).__name__}: {detail}" if detail else type(error).__name__


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


class Outage:
    """Whether this process reaches a server (PostgreSQL, Redis), as its connections find out.

    Every connection reports here: `lost(error)` when a try fails for want of the server,
    `back()` when one succeeds. The log says once that the server went away (with the first
    error) and once that it is back (with how long it was away), however many connections notice
    and however often they try. Thread-safe (the cache mirror runs in a thread of its own)."""

    def __init__(self, server: str, log: logging.Logger, meanwhile: str,
                 up: Gauge | None = None, outages: Counter | None = None) -> None:
        self.server = server
        self.meanwhile = meanwhile
        self._log = log
        self._up = up
        self._outages = outages
        self._lock = threading.Lock()
        self._since: float | None = None
        self._started = 0.0
        self._back_at = -POOL_TIMEOUT
        if up is not None:
            up.set(1)

    @property
    def since(self) -> float | None:
        """When the server went away (epoch seconds), or None while it answers."""
        return self._since

    def lost(self, error: BaseException) -> bool:
        """A try failed; True if this begins an outage (and was logged). A timeout is a wait
        that began up to POOL_TIMEOUT seconds earlier: if the server came back meanwhile, it is
        news of the outage that just ended, not of a new one (a new one cuts connections, and
        they say so at once)."""
        with self._lock:
            if self._since is not None:
                return False
            if (isinstance(error, PoolTimeout | TimeoutError)
                    and time.monotonic() - self._back_at < POOL_TIMEOUT):
                return False
            self._since, self._started = time.time(), time.monotonic()
        if self._up is not None:
            self._up.set(0)
        if self._outages is not None:
            self._outages.inc()
        self._log.warning("%s unreachable (%s); %s", self.server, describe(error),
                          self.meanwhile)
        return True

    def back(self) -> float | None:
        """A try succeeded; the outage's length in seconds if this ends one (and was logged)."""
        if self._since is None:  # the common case, without the lock
            return None
        with self._lock:
            if self._since is None:
                return None
            self._back_at = time.monotonic()
            took, self._since = self._back_at - self._started, None
        if self._up is not None:
            self._up.set(1)
        self._log.info("%s is back after %.1f s unreachable", self.server, took)
        return took


def postgresql_outage(metrics: Metrics | None = None) -> Outage:
    return Outage("PostgreSQL", log, "retrying every second or two; logged again when it is back",
                  *_series(metrics, "postgresql"))


def redis_outage(metrics: Metrics | None = None) -> Outage:
    return Outage("Redis", log, "nothing is lost: the cache is reconciled with PostgreSQL when it "
                  "is back", *_series(metrics, "redis"))


def _series(metrics: Metrics | None, server: str) -> tuple[Gauge | None, Counter | None]:
    if metrics is None:
        return None, None
    return metrics.server_up.labels(server), metrics.outages.labels(server)
