"""The /health document (sidecar/http.py `assess`): its status, HTTP code and checks from given
check results, without a server."""

from __future__ import annotations

import pytest

from sidecar.http import STALE_AFTER, assess

STATS = {"live_workers": 2, "pending": 10, "dead": 1}


def health(pg_error: str | None = None, pg_since: float | None = None,
           redis_error: str | None = None, redis_since: float | None = None,
           checked_age: float | None = 0.5, stats: dict | None = None,
           stats_age: float = 1.0, max_queue: int = 100) -> tuple[str, int, dict]:
    return assess(pg_error, pg_since, redis_error, redis_since, checked_age,
                  STATS if stats is None else stats, stats_age, max_queue)


def test_all_well_is_ok_with_the_figures() -> None:
    status, code, checks = health()
    assert (status, code) == ("ok", 200)
    assert checks == {
        "postgresql": {"ok": True}, "redis": {"ok": True},
        "worker": {"ok": True, "live_workers": 2, "age_s": 1.0},
        "queue": {"ok": True, "pending": 10, "threshold": 100, "dead": 1, "age_s": 1.0}}


@pytest.mark.parametrize(("kwargs", "status", "code", "failing"), [
    ({"redis_error": "ConnectionError: refused"}, "degraded", 200, "redis"),
    ({"stats": {"live_workers": 1, "pending": 100, "dead": 0}}, "degraded", 200, "queue"),
    ({"stats": {"live_workers": 0, "pending": 0, "dead": 0}}, "down", 503, "worker"),
    ({"pg_error": "OperationalError: refused"}, "down", 503, "postgresql"),
])
def test_a_failing_check_sets_the_status(kwargs: dict, status: str, code: int,
                                         failing: str) -> None:
    got_status, got_code, checks = health(**kwargs)
    assert (got_status, got_code) == (status, code)
    assert [name for name, check in checks.items() if not check["ok"]][0] == failing


def test_without_postgresql_the_worker_and_queue_are_unknown() -> None:
    status, code, checks = health(pg_error="OperationalError: refused", pg_since=1_700_000_000.0)
    assert (status, code) == ("down", 503)
    assert checks["postgresql"] == {"ok": False, "error": "OperationalError: refused",
                                    "since": "2023-11-14T22:13:20+00:00"}
    assert checks["worker"] == {"ok": False, "error": "unknown: PostgreSQL unreachable"}
    assert checks["queue"]["error"] == "unknown: PostgreSQL unreachable"


def test_a_connection_that_lost_a_server_is_heard_before_the_next_check() -> None:
    status, _, checks = health(redis_since=1_700_000_060.0)
    assert status == "degraded"
    assert checks["redis"] == {"ok": False, "error": "a connection of this process lost it",
                               "since": "2023-11-14T22:14:20+00:00"}


def test_statistics_not_read_yet_mean_down() -> None:
    status, code, checks = assess(None, None, None, None, 0.5, None, 0.0, 100)
    assert (status, code) == ("down", 503)
    assert checks["worker"]["error"] == "unknown: not read yet"


@pytest.mark.parametrize("checked_age", [None, STALE_AFTER + 1])
def test_a_check_that_has_not_completed_lately_is_itself_a_failure(
        checked_age: float | None) -> None:
    status, code, checks = health(checked_age=checked_age)
    assert (status, code) == ("down", 503)
    assert checks["postgresql"]["error"] == (
        f"no health check completed in the last {STALE_AFTER:.0f} s")
