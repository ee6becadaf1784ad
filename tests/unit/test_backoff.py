"""The restart backoff shared by the worker's supervisor and the stack's watchdog
(nexus/supervisor.py): 1 s doubling to 30 s, back to 1 s after a run of a minute; and the
supervisor's scheduling of a replica that exits."""

from __future__ import annotations

from pathlib import Path

import pytest

from nexus import supervisor
from nexus.config import load
from nexus.supervisor import BACKOFF_MAX, HEALTHY_AFTER, Backoff, Supervisor
from sidecar.config import CONFIG_ERROR


def test_waits_double_up_to_the_maximum() -> None:
    backoff = Backoff()
    waits = [backoff.next(ran_for=0.5) for _ in range(8)]
    assert waits == [1, 2, 4, 8, 16, 30, 30, 30]
    assert max(waits) == BACKOFF_MAX


def test_a_healthy_run_starts_the_waits_over() -> None:
    backoff = Backoff()
    assert [backoff.next(), backoff.next(), backoff.next()] == [1, 2, 4]
    assert backoff.next(ran_for=HEALTHY_AFTER) == 1
    assert backoff.next(ran_for=HEALTHY_AFTER - 1) == 2


def test_a_replica_that_exits_is_scheduled_with_backoff_and_counted(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(supervisor.time, "monotonic", lambda: now[0])
    sup = Supervisor(load(env={}, home=tmp_path, http_port=7000), 2)
    assert [r.port for r in sup.replicas] == [7000, 7001]
    r = sup.replicas[1]
    for restarts, wait in enumerate([1, 2, 4], start=1):
        sup.children[r.index] = None  # type: ignore[assignment]  # as spawned
        r.started_at = now[0]
        now[0] += 5
        sup.reap(r, -9)
        assert (r.state, r.restarts, r.last_exit) == ("restarting", restarts, -9)
        assert r.next_start == now[0] + wait
    sup.write_state()
    state = supervisor.state_file(sup.cfg).read_text()
    assert '"restarts": 3' in state and '"state": "restarting"' in state
    assert not sup.stopping


def test_a_replica_that_refuses_its_configuration_stops_the_supervisor(tmp_path: Path) -> None:
    sup = Supervisor(load(env={}, home=tmp_path), 1)
    r = sup.replicas[0]
    sup.children[r.index] = None  # type: ignore[assignment]
    sup.reap(r, CONFIG_ERROR)
    assert (r.state, r.restarts, sup.stopping) == ("refused", 0, True)


def test_state_files_are_replaced_whole(tmp_path: Path) -> None:
    path = tmp_path / "run" / "state.json"
    supervisor.write_state(path, {"a": 1})
    supervisor.write_state(path, {"b": 2})
    assert path.read_text() == '{"b": 2}'
    assert [p.name for p in path.parent.iterdir()] == ["state.json"]
