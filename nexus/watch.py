"""The local stack's watchdog: `nexus up` keeps PostgreSQL, Redis and the worker's supervisor
running. A component that dies is started again with backoff (1 s doubling to 30 s, back to 1 s
after a minute up), each restart logged and counted in $NEXUS_HOME/run/stack.json (read by
`nexus status`). It gives up on a component only when restarting cannot help: the worker refused
its configuration (exit 2), or a server failed to start GIVE_UP_AFTER times in a row (a
configuration or data-directory problem, said with the server's own error).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from nexus.ports import ServerError
from nexus.stack import Stack
from nexus.supervisor import Backoff, write_state
from sidecar.config import CONFIG_ERROR

GIVE_UP_AFTER = 5


@dataclass
class Component:
    name: str
    state: str = "running"       # running | restarting | failed
    restarts: int = 0
    failures: int = 0            # failed starts in a row
    backoff: Backoff = field(default_factory=Backoff)
    next_start: float = 0.0
    up_since: float = 0.0
    error: str = ""


def _log(message: str) -> None:
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} nexus: {message}", file=sys.stderr, flush=True)


class Watchdog:
    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        now = time.monotonic()
        names = ["postgresql", "redis"] + (["worker"] if stack.cfg.worker_replicas > 0 else [])
        names += ["mcp"] if stack.mcp_url else []
        self.parts = {n: Component(n, up_since=now) for n in names}
        self.checks: dict[str, tuple[Callable[[], bool], Callable[[], None]]] = {
            "postgresql": (lambda: stack.pg.pid() is not None, self._start_pg),
            "redis": (lambda: stack.redis.pid() is not None, stack.redis.start),
            "worker": (lambda: stack.worker_pid() is not None, stack.start_worker),
            "mcp": (lambda: stack.mcp_pid() is not None, stack.start_mcp),
        }
        self.write()

    def _start_pg(self) -> None:
        self.stack.pg.start()
        self.stack.ensure_database()

    def write(self) -> None:
        write_state(self.stack.watch_file, {n: asdict(c) for n, c in self.parts.items()})

    def step(self) -> None:
        """Look at every component once; start again what is due (nothing during maintenance)."""
        if self.stack.in_maintenance():
            return
        now, changed = time.monotonic(), False
        for name, part in self.parts.items():
            alive, start = self.checks[name]
            if part.state == "failed":
                continue
            if part.state == "running":
                if alive():
                    continue
                if name == "worker" and self.stack.worker_exit_code() == CONFIG_ERROR:
                    part.state, part.error = "failed", "the worker refused its configuration"
                    _log(f"{part.error} (exit 2): not restarting it; see "
                         f"{self.stack.cfg.home / 'log' / 'worker.log'}")
                    changed = True
                    continue
                wait = part.backoff.next(now - part.up_since)
                part.state, part.next_start = "restarting", now + wait
                _log(f"{name} stopped unexpectedly; restarting it in {wait:.0f} s")
                changed = True
            elif now >= part.next_start:
                changed = True
                try:
                    start()
                except ServerError as exc:
                    part.failures += 1
                    part.error = str(exc).splitlines()[0][:300]
                    if part.failures >= GIVE_UP_AFTER:
                        part.state = "failed"
                        _log(f"{name} failed to start {part.failures} times; giving up "
                             f"(a restart cannot fix this): {exc}")
                        continue
                    wait = part.backoff.next()
                    part.next_start = time.monotonic() + wait
                    _log(f"{name} did not start ({part.error}); next try in {wait:.0f} s")
                    continue
                part.state, part.failures, part.error = "running", 0, ""
                part.restarts += 1
                part.up_since = time.monotonic()
                _log(f"{name} restarted (restart {part.restarts})")
        if changed:
            self.write()

    @property
    def failed(self) -> list[str]:
        return [n for n, c in self.parts.items() if c.state == "failed"]
