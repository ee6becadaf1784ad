"""The supervisor of `nexus worker` (and so of `nexus up`): WORKER_REPLICAS runtime processes
(`python -m sidecar`, one replica each; one at least), each restarted when it dies, with backoff
(1 s doubling to 30 s, back to 1 s after a minute of health). It gives up only when a replica
refuses its configuration (exit 2). SIGTERM/SIGINT are passed on, each replica drains; one that
has not finished within STOP_SECONDS is killed (its lease brings its items back). A replica gets
SIGTERM, and drains, if the supervisor dies (Linux: the parent-death signal). At its start and
whenever a replica dies, it ends at once the leases of this host's workers whose process is gone
(`expire_dead_workers`), rather than when they run out.

Its state (replicas, pids, restarts) is written to $NEXUS_HOME/run/worker.json for `nexus status`.
In a container there is none of this: the container runs one replica, and is restarted by compose.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psycopg

from sidecar.config import CONFIG_ERROR, Config
from sidecar.db import conninfo

BACKOFF_FIRST = 1.0
BACKOFF_MAX = 30.0
HEALTHY_AFTER = 60.0
STOP_SECONDS = 10.0
PR_SET_PDEATHSIG = 1
_PRCTL = getattr(ctypes.CDLL(None), "prctl", None)  # Linux


@dataclass
class Backoff:
    """How long to wait before starting again something that stopped: BACKOFF_FIRST, doubling at
    each start up to BACKOFF_MAX, back to BACKOFF_FIRST once a run lasted HEALTHY_AFTER."""
    delay: float = BACKOFF_FIRST

    def next(self, ran_for: float = 0.0) -> float:
        """The wait before the next start, after a run of `ran_for` seconds (0: a failed start)."""
        if ran_for >= HEALTHY_AFTER:
            self.delay = BACKOFF_FIRST
        wait, self.delay = self.delay, min(self.delay * 2, BACKOFF_MAX)
        return wait


def write_state(path: Path, doc: object) -> None:
    """Write a JSON state file at once (a reader never sees half of it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc))
    tmp.replace(path)


def process_alive(pid: int | None) -> bool:
    """Is `pid` a live process: not gone, and not a zombie waiting to be reaped? (Linux)"""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def dead_neighbours(worker_ids: list[str], host: str, me: int) -> list[str]:
    """The workers among `worker_ids` (host:pid:tag, not stopped) of this host whose process is
    gone, or has this one's pid `me` (a worker of an earlier process that had it)."""
    dead = []
    for worker_id in worker_ids:
        pid = worker_id.removeprefix(f"{host}:").split(":", 1)[0]
        if pid.isdigit() and (int(pid) == me or not process_alive(int(pid))):
            dead.append(worker_id)
    return dead


def expire_dead_workers(cfg: Config) -> None:
    """A worker of this host whose process is gone holds leases nobody will finish: end them now
    instead of when they run out (a container's worker that died: its lease does it)."""
    host = socket.gethostname()
    try:
        with psycopg.connect(conninfo(cfg), autocommit=True) as conn:
            rows = conn.execute("SELECT worker_id FROM memory_system.worker_heartbeats "
                                "WHERE stopped_at IS NULL AND starts_with(worker_id, %s)",
                                (host + ":",)).fetchall()
            dead = dead_neighbours([w for (w,) in rows], host, os.getpid())
            if dead:
                ended = conn.execute("SELECT memory_system.expire_leases(%s)",
                                     (dead,)).fetchone()[0]
                print(f"nexus worker: ended {ended} leases of {len(dead)} dead worker(s) of this "
                      f"host: {', '.join(dead)}", file=sys.stderr, flush=True)
    except (psycopg.Error, OSError, ValueError) as exc:  # ConfigError: a missing secret
        print(f"nexus worker: could not check for dead workers of this host: {exc}",
              file=sys.stderr, flush=True)


@dataclass
class Replica:
    index: int
    port: int
    pid: int | None = None
    state: str = "starting"      # running | restarting | stopped | refused
    restarts: int = 0
    last_exit: int | None = None
    started_at: float = 0.0
    next_start: float = 0.0
    backoff: Backoff = field(default_factory=Backoff)


def state_file(cfg: Config) -> Path:
    return cfg.home / "run" / "worker.json"


def _exit_with(parent: int) -> None:
    """In a new replica (between fork and exec): SIGTERM when the supervisor dies."""
    if _PRCTL is not None:
        _PRCTL(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # died already
        os.kill(os.getpid(), signal.SIGTERM)


class Supervisor:
    def __init__(self, cfg: Config, replicas: int) -> None:
        self.cfg = cfg
        self.replicas = [Replica(i, cfg.http_port + i if cfg.http_port else 0)
                         for i in range(replicas)]
        self.children: dict[int, subprocess.Popen] = {}
        self.stopping = False

    def spawn(self, r: Replica) -> None:
        # WORKER_REPLICAS: each replica sizes its torch threads to its share of the cores
        env = dict(os.environ, NEXUS_HOME=str(self.cfg.home), NEXUS_HTTP_PORT=str(r.port),
                   WORKER_REPLICAS=str(len(self.replicas)))
        me = os.getpid()
        child = subprocess.Popen([sys.executable, "-m", "sidecar"], env=env,
                                 preexec_fn=lambda: _exit_with(me))
        self.children[r.index] = child
        r.pid, r.state, r.started_at = child.pid, "running", time.monotonic()

    def reap(self, r: Replica, code: int) -> None:
        """A replica exited on its own: schedule its restart, or give up on a config error."""
        del self.children[r.index]
        r.pid, r.last_exit = None, code
        if code == CONFIG_ERROR:
            r.state = "refused"
            print(f"nexus worker: replica {r.index} refused its configuration (exit 2); "
                  "not restarting", file=sys.stderr, flush=True)
            self.stopping = True
            return
        expire_dead_workers(self.cfg)
        now = time.monotonic()
        wait = r.backoff.next(now - r.started_at)
        r.state, r.next_start = "restarting", now + wait
        r.restarts += 1
        print(f"nexus worker: replica {r.index} exited with {code}; restarting in {wait:.0f} s "
              f"(restart {r.restarts})", file=sys.stderr, flush=True)

    def write_state(self) -> None:
        doc = {"supervisor_pid": os.getpid(), "stopping": self.stopping,
               "replicas": [asdict(r) | {"restart_in": max(0.0, r.next_start - time.monotonic())}
                            for r in self.replicas]}
        # a read-only home only costs `nexus status` its details
        with contextlib.suppress(OSError):
            write_state(state_file(self.cfg), doc)

    def run(self) -> int:
        def on_signal(signum: int, _frame: object) -> None:
            self.stopping = True

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        expire_dead_workers(self.cfg)
        for r in self.replicas:
            self.spawn(r)
        self.write_state()
        while not self.stopping:
            time.sleep(0.2)
            changed = False
            for r in self.replicas:
                child = self.children.get(r.index)
                if child is not None and (code := child.poll()) is not None:
                    self.reap(r, code)
                    changed = True
                elif (child is None and r.state == "restarting" and not self.stopping
                      and time.monotonic() >= r.next_start):
                    self.spawn(r)
                    changed = True
            if changed:
                self.write_state()
        return self.stop()

    def stop(self) -> int:
        for child in self.children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_SECONDS
        for child in self.children.values():
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        for r in self.replicas:
            r.pid = None
            r.state = "refused" if r.state == "refused" else "stopped"
        self.write_state()
        refused = any(r.state == "refused" for r in self.replicas)
        return CONFIG_ERROR if refused else 0
