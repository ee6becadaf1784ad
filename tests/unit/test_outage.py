"""The outage tracker (sidecar/db.py Outage): however many connections report a lost server and
however often, the log says once that it went and once that it is back, and the metrics count one
outage; a pool timeout that began before the server came back is not a new outage."""

from __future__ import annotations

import logging
import threading
import time

import pytest
from psycopg_pool import PoolTimeout

from sidecar.db import Outage
from sidecar.metrics import Metrics


def sample(metrics: Metrics, name: str, server: str) -> float | None:
    return metrics.registry.get_sample_value(name, {"server": server})


def test_an_outage_is_logged_once_each_way_and_counted_once(
        caplog: pytest.LogCaptureFixture) -> None:
    metrics = Metrics()
    pg = Outage("PostgreSQL", metrics)
    assert sample(metrics, "nexus_server_up", "postgresql") == 1
    assert pg.since is None and pg.back(time.monotonic()) is None
    caplog.set_level(logging.INFO, logger="nexus.db")
    assert pg.lost(OSError("connection refused")) is True
    assert [pg.lost(OSError(f"try {i}")) for i in range(5)] == [False] * 5
    assert pg.since is not None
    assert sample(metrics, "nexus_server_up", "postgresql") == 0
    took = pg.back(time.monotonic())
    assert took is not None and took >= 0
    assert pg.back(time.monotonic()) is None and pg.since is None
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2, messages
    assert messages[0].startswith("PostgreSQL unreachable (OSError: connection refused)")
    assert messages[1].startswith("PostgreSQL is back after")
    assert sample(metrics, "nexus_server_up", "postgresql") == 1
    assert sample(metrics, "nexus_server_outages_total", "postgresql") == 1
    assert sample(metrics, "nexus_server_outages_total", "redis") in (None, 0)


def test_a_timeout_that_began_before_the_server_came_back_is_not_a_new_outage() -> None:
    metrics = Metrics()
    pg = Outage("PostgreSQL", metrics)
    pg.lost(OSError("gone"))
    pg.back(time.monotonic())
    assert pg.lost(PoolTimeout("waited 10 s")) is False
    assert pg.since is None
    assert pg.lost(OSError("gone again")) is True, "a cut connection says so at once"
    assert sample(metrics, "nexus_server_outages_total", "postgresql") == 2


def test_a_try_begun_before_the_outage_does_not_end_it(caplog: pytest.LogCaptureFixture) -> None:
    """A server stopped hard cuts its connections one by one: a query in flight on one it has
    not cut yet succeeds after another connection reported the loss. That is no comeback."""
    pg = Outage("PostgreSQL")
    caplog.set_level(logging.INFO, logger="nexus.db")
    in_flight = time.monotonic()
    assert pg.lost(OSError("server closed the connection unexpectedly")) is True
    assert pg.back(in_flight) is None and pg.since is not None
    assert pg.lost(OSError("connection refused")) is False, "still the same outage"
    assert pg.back(time.monotonic()) is not None and pg.since is None
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2 and "is back" in messages[1], messages


def test_many_threads_reporting_the_same_outage_log_it_once(
        caplog: pytest.LogCaptureFixture) -> None:
    redis = Outage("Redis")  # without metrics
    caplog.set_level(logging.INFO, logger="nexus.db")
    began = []
    threads = [threading.Thread(target=lambda: began.append(redis.lost(OSError("reset"))))
               for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert began.count(True) == 1
    assert len(caplog.records) == 1 and "Redis unreachable" in caplog.records[0].getMessage()
    assert "nothing is lost" in caplog.records[0].getMessage()
