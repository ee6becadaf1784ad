"""Faults, healed by themselves: the sidecar (its supervisor and two replicas) runs while agents
write, and the servers under it fail.

- PostgreSQL stopped hard (`pg_ctl -m immediate`: every backend killed, crash recovery at the next
  start) and started again after 10 s, 60 s and 300 s;
- PostgreSQL stopped hard in the middle of a `complete_batch` (held on a lock until the stop) and
  started again at once;
- Redis killed (SIGKILL) and started again empty (no persistence: the local stack's setting);
- a worker replica killed (SIGKILL) while it holds a batch.

Agents (two, each a thread with its own connection) record an episode and set a working-memory key
every 0.1 s all along, retrying a write that fails until it is acknowledged, as a client would.
After each fault: the time to healthy, from the moment the failed server accepts connections again
(or the replica is killed) to the moment every replica's /health says ok, an episode recorded then
is embedded and a working-memory key set then is in Redis; and at the end, for every acknowledged
episode, one queue item, done, and one vector whose checksum is the content's (anything else is
lost), and no queue item left pending, processing or dead once the queue has settled (stuck).
The same rig runs the short versions in tests/test_faults.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import psycopg
import redis

from bench.harness import (
    Benchmark,
    Figure,
    cloned_database,
    free_ports,
    write_waiting,
    writes_blocked,
)
from nexus import agents, secrets
from nexus.config import SUPERUSER, Config
from nexus.pgserver import as_server_user
from nexus.stack import Stack
from sidecar.cache import wm_key

REPLICAS = 2
AGENTS = ("fault_agent_a", "fault_agent_b")
WRITE_EVERY = 0.1
WM_KEYS = 50
# leases short enough that a killed replica's batch comes back within the run (default: 300 s)
LEASE_SECONDS = 20
HEARTBEAT_SECONDS = 5
OUTAGES = (10, 60, 300)
TARGET_RECOVERY_S = 5.0
TARGET_HEALTH_MS = 1000.0


def stop_postgresql_hard(st: Stack) -> None:
    """`pg_ctl -m immediate stop`: the postmaster kills every backend; no shutdown checkpoint."""
    result = subprocess.run(as_server_user([st.pg.bin("pg_ctl"), "-D", str(st.pg.data), "-m",
                                            "immediate", "-w", "stop"]),
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"pg_ctl -m immediate stop failed: {result.stderr}")


def get(port: int, path: str, timeout: float = 5) -> tuple[int, dict | None, float]:
    """Status, JSON body and milliseconds of a GET (status 0: no answer within `timeout`)."""
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
            status, body = r.status, r.read()
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read()
    except (urllib.error.URLError, OSError):
        status, body = 0, b""
    ms = (time.perf_counter() - started) * 1000
    try:
        doc = json.loads(body) if body else None
    except ValueError:
        doc = None
    return status, doc, ms


def wait_until(what: Callable[[], object], timeout: float, interval: float = 0.1) -> float:
    """Seconds until `what()` is true; TimeoutError after `timeout`."""
    started = time.monotonic()
    while True:
        if what():
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"not within {timeout:.0f} s: {what.__doc__ or what}")
        time.sleep(interval)


class Writer(threading.Thread):
    """One agent writing all along: an episode and a working-memory key every WRITE_EVERY
    seconds; a write that fails is tried again until it is acknowledged."""

    def __init__(self, cfg: Config, agent: str) -> None:
        super().__init__(name=f"writer-{agent}", daemon=True)
        self.cfg = cfg
        self.agent = agent
        self.stopping = threading.Event()
        self.episodes: list[int] = []
        self.failures = 0

    def run(self) -> None:
        n = 0
        conn: psycopg.Connection | None = None
        while not self.stopping.is_set():
            try:
                if conn is None or conn.closed:
                    conn = psycopg.connect(agents.dsn(self.cfg, self.agent), autocommit=True,
                                           connect_timeout=5)
                episode = conn.execute(
                    "SELECT nexus.record_episode(%s)",
                    (f"{self.agent} observed event {n}: the {('red', 'blue', 'green')[n % 3]} "
                     f"signal over harbor {n % 17} changed at step {n}.",)).fetchone()[0]
                self.episodes.append(episode)
                conn.execute("SELECT nexus.working_memory_set(%s, %s)",
                             (f"slot{n % WM_KEYS}", json.dumps({"n": n, "by": self.agent})))
                n += 1
            except psycopg.Error:
                self.failures += 1
                if conn is not None:
                    conn.close()
                conn = None
            self.stopping.wait(WRITE_EVERY)
        if conn is not None:
            conn.close()


@dataclass
class Outcome:
    lost: int
    stuck: int
    episodes: int
    settled_s: float


class Rig:
    """The sidecar (`nexus worker --replicas N`) on database `cfg.database` of the stack,
    its log in a file, and the agents writing."""

    def __init__(self, st: Stack, cfg: Config, replicas: int = REPLICAS,
                 lease: int = LEASE_SECONDS, heartbeat: int = HEARTBEAT_SECONDS) -> None:
        self.st = st
        self.cfg = cfg
        self.replicas = replicas
        self.lease = lease
        self.heartbeat = heartbeat
        self.ports = free_ports(replicas)
        self.log = st.cfg.home / "log" / f"faults-{cfg.database}.log"
        self.proc: subprocess.Popen | None = None
        self.writers: list[Writer] = []

    # -- connections -----------------------------------------------------------------------------
    def superuser(self) -> psycopg.Connection:
        return psycopg.connect(host=self.cfg.pg_host, port=self.cfg.pg_port,
                               dbname=self.cfg.database, user=SUPERUSER,
                               password=secrets.password(self.cfg, SUPERUSER), autocommit=True,
                               connect_timeout=5)

    def redis(self) -> redis.Redis:
        return self.st.redis.client()

    def add_agents(self) -> None:
        with self.superuser() as conn:
            for name in AGENTS:
                agents.add(conn, self.cfg, name)

    # -- the sidecar -----------------------------------------------------------------------------
    def start(self) -> None:
        env = dict(os.environ, NEXUS_HOME=str(self.cfg.home), NEXUS_DB=self.cfg.database,
                   NEXUS_PG_PORT=str(self.cfg.pg_port), NEXUS_REDIS_PORT=str(self.cfg.redis_port),
                   NEXUS_HTTP_PORT=str(self.ports[0]), WORKER_REPLICAS=str(self.replicas),
                   NEXUS_WORKER_LEASE_SECONDS=str(self.lease),
                   NEXUS_WORKER_HEARTBEAT_SECONDS=str(self.heartbeat))
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "nexus.cli", "worker"], env=env,
                                         stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
        wait_until(self.healthy, timeout=300, interval=0.5)

    def stop(self) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def healthy(self) -> bool:
        """every replica's /health ok"""
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"the sidecar exited with {self.proc.returncode}:\n{self.tail()}")
        return all((get(p, "/health")[1] or {}).get("status") == "ok" for p in self.ports)

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def log_size(self) -> int:
        return self.log.stat().st_size if self.log.exists() else 0

    def log_since(self, offset: int) -> str:
        with self.log.open("rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")

    def replica_pids(self) -> list[int]:
        doc = self.st.worker_state() or {}
        return [r["pid"] for r in doc.get("replicas", []) if r.get("pid")]

    # -- agents ----------------------------------------------------------------------------------
    @contextmanager
    def writing(self) -> Iterator[None]:
        self.writers = [Writer(self.cfg, a) for a in AGENTS]
        for w in self.writers:
            w.start()
        try:
            yield
        finally:
            for w in self.writers:
                w.stopping.set()
            for w in self.writers:
                w.join(30)

    def probe_writes(self, tag: str) -> tuple[int, str, str]:
        """An episode and a working-memory key written now, as the first agent, tried until
        acknowledged: (episode id, Redis key, value)."""
        agent = AGENTS[0]
        while True:
            try:
                with psycopg.connect(agents.dsn(self.cfg, agent), autocommit=True,
                                     connect_timeout=5) as conn:
                    episode = conn.execute("SELECT nexus.record_episode(%s)",
                                           (f"probe {tag}: written as the fault heals",)
                                           ).fetchone()[0]
                    value = json.dumps({"probe": tag})
                    conn.execute("SELECT nexus.working_memory_set(%s, %s)", (f"probe_{tag}", value))
                    stored = conn.execute("SELECT nexus.working_memory_get(%s)::text",
                                          (f"probe_{tag}",)).fetchone()[0]
                    return episode, wm_key(agent, f"probe_{tag}"), stored
            except psycopg.Error:
                time.sleep(0.05)

    # -- what is true ----------------------------------------------------------------------------
    def embedded(self, episode: int) -> bool:
        try:
            with self.superuser() as conn:
                return conn.execute(
                    "SELECT EXISTS (SELECT FROM nexus_memory.episode_embeddings AS x "
                    "JOIN nexus_memory.zep_episodic_memory AS e "
                    "  ON e.agent_id = x.agent_id AND e.id = x.episode_id "
                    "WHERE x.episode_id = %s AND x.content_sha256 = e.content_sha256)",
                    (episode,)).fetchone()[0]
        except psycopg.Error:
            return False

    def in_redis(self, key: str, value: str) -> bool:
        try:
            held = self.redis().hget(key, "v")
        except redis.RedisError:
            return False
        return held is not None and held.decode() == value

    def time_to_healthy(self, tag: str, since: float, timeout: float = 600) -> float:
        """Seconds from `since` (monotonic) until every replica's /health is ok, an episode
        recorded after `since` is embedded and a working-memory key set after it is in Redis."""
        episode, key, value = self.probe_writes(tag)
        pending = {"health": self.healthy, "embedded": lambda: self.embedded(episode),
                   "cached": lambda: self.in_redis(key, value)}
        deadline = since + timeout
        while pending:
            for name, check in list(pending.items()):
                if check():
                    del pending[name]
            if time.monotonic() > deadline:
                raise TimeoutError(f"not healthy {timeout:.0f} s after {tag}: {sorted(pending)}"
                                   f"\n{self.tail()}")
            if pending:
                time.sleep(0.05)
        return time.monotonic() - since

    def queue_states(self) -> dict[str, int]:
        with self.superuser() as conn:
            return dict(conn.execute("SELECT state, count(*) FROM memory_system.embeddings_queue "
                                     "GROUP BY state").fetchall())

    def settle(self, timeout: float) -> Outcome:
        """Wait (writers stopped) until no queue item is pending or processing, `timeout` at
        most; then count what was lost and what is stuck."""
        started = time.monotonic()
        with contextlib.suppress(TimeoutError):
            wait_until(lambda: not ({"pending", "processing"} & set(self.queue_states())),
                       timeout=timeout, interval=0.5)
        settled = time.monotonic() - started
        acknowledged = sorted({e for w in self.writers for e in w.episodes})
        with self.superuser() as conn:
            good = conn.execute(
                "WITH q AS (SELECT source_id, count(*) AS n, bool_and(state = 'done') AS done "
                "             FROM memory_system.embeddings_queue "
                "            WHERE source_table = 'zep_episodic_memory' GROUP BY source_id) "
                "SELECT count(*) FROM unnest(%s::bigint[]) AS a(id) "
                "JOIN nexus_memory.zep_episodic_memory AS e ON e.id = a.id "
                "JOIN nexus_memory.episode_embeddings AS x "
                "  ON x.agent_id = e.agent_id AND x.episode_id = e.id "
                " AND x.content_sha256 = e.content_sha256 "
                "JOIN q ON q.source_id = e.id AND q.n = 1 AND q.done",
                (acknowledged,)).fetchone()[0]
            stuck = conn.execute("SELECT count(*) FROM memory_system.embeddings_queue "
                                 "WHERE state <> 'done'").fetchone()[0]
        return Outcome(len(acknowledged) - good, stuck, len(acknowledged), settled)

    def cache_differences(self) -> int:
        """Working-memory keys whose value in Redis is not PostgreSQL's."""
        with self.superuser() as conn:
            rows = conn.execute("SELECT agent_id, context_key, value::text "
                                "FROM nexus_memory.working_memory_contexts").fetchall()
        client = self.redis()
        pipe = client.pipeline(transaction=False)
        for agent, key, _ in rows:
            pipe.hget(wm_key(agent, key), "v")
        held = pipe.execute()
        return sum(1 for (_, _, v), h in zip(rows, held, strict=True)
                   if h is None or h.decode() != v)

    # -- the faults ------------------------------------------------------------------------------
    def postgresql_outage(self, seconds: float) -> dict[str, float]:
        """PostgreSQL stopped hard for `seconds`, /health asked every second meanwhile. Returns
        the time to healthy after the start; /health's answer times (ms) and the answers that
        were not 503 "down" with the time PostgreSQL went away; the log lines written in the
        second half of the outage (nothing changes then: nothing should be written)."""
        stop_postgresql_hard(self.st)
        try:
            stopped = time.monotonic()
            samples: list[float] = []
            wrong = 0
            quiet_from = None
            while time.monotonic() - stopped < seconds:
                for port in self.ports:
                    status, doc, ms = get(port, "/health")
                    pg = ((doc or {}).get("checks") or {}).get("postgresql") or {}
                    wrong += status != 503 or doc.get("status") != "down" or not pg.get("since")
                    samples.append(ms)
                if quiet_from is None and time.monotonic() - stopped >= seconds / 2:
                    quiet_from = self.log_size()
                time.sleep(1.0)
            quiet_lines = self.log_since(quiet_from or self.log_size()).count("\n")
        finally:
            self.st.pg.start()
        up = time.monotonic()
        took = self.time_to_healthy(f"pg{seconds:g}", up)
        return {"recovery_s": took, "health_ms_max": max(samples),
                "health_ms_p50": statistics.median(samples), "wrong_answers": wrong,
                "quiet_lines": quiet_lines}

    def postgresql_restart_mid_complete(self) -> float:
        """PostgreSQL stopped hard while a replica's complete_batch waits on a lock, started
        again at once; the time to healthy from the start."""
        blocker = self.superuser()
        try:
            with writes_blocked(blocker), self.superuser() as watcher:
                wait_until(lambda: write_waiting(watcher), timeout=120)
                stop_postgresql_hard(self.st)
        except psycopg.OperationalError:
            pass  # the blocker's transaction ended with the server
        finally:
            blocker.close()
            self.st.pg.start()
        up = time.monotonic()
        return self.time_to_healthy("mid-complete", up)

    def redis_restart_empty(self, seconds: float) -> dict[str, float]:
        """Redis killed, started again empty after `seconds`: the time until every working-memory
        key is in Redis again and /health says ok."""
        pid = self.st.redis.pid()
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        try:
            with contextlib.suppress(TimeoutError):
                wait_until(lambda: self.st.redis.pid() is None, timeout=10)
            self.st.redis.pidfile.unlink(missing_ok=True)
            time.sleep(seconds)
        finally:
            self.st.redis.start()
        up = time.monotonic()
        took = self.time_to_healthy("redis", up)

        def mirrored() -> bool:
            """every working-memory key in Redis"""
            return self.cache_differences() == 0
        wait_until(mirrored, timeout=120, interval=0.2)
        return {"heal_s": max(took, time.monotonic() - up)}

    def kill_replica_mid_batch(self) -> dict[str, float]:
        """SIGKILL to a replica while it holds batches: every vector write is held back
        (writes_blocked) until it is dead, so that it dies with a batch waiting in complete_batch
        and more in hand; the time until every item it held is done."""
        pids = set(self.replica_pids())
        with self.superuser() as blocker, self.superuser() as conn, writes_blocked(blocker):
            owners: set[int] = set()

            def holding() -> bool:
                """a replica holding items, and a write waiting on the lock"""
                owners.clear()
                owners.update({int(o.split(":")[1]) for (o,) in conn.execute(
                    "SELECT DISTINCT lease_owner FROM memory_system.embeddings_queue "
                    "WHERE state = 'processing'").fetchall()} & pids)
                return bool(owners) and write_waiting(conn)
            wait_until(holding, timeout=120, interval=0.01)
            victim = owners.pop()
            os.kill(victim, signal.SIGKILL)
            killed = time.monotonic()
            with contextlib.suppress(TimeoutError):
                wait_until(lambda: not Path(f"/proc/{victim}").exists()
                           or Path(f"/proc/{victim}/stat").read_text().split()[2] == "Z",
                           timeout=10, interval=0.01)
            # what the dead replica still held: its lease, or its restart, brings it back
            held = [r[0] for r in conn.execute(
                "SELECT id FROM memory_system.embeddings_queue WHERE state = 'processing' "
                "AND split_part(lease_owner, ':', 2) = %s", (str(victim),)).fetchall()]

        def back() -> bool:
            """every item the killed replica held done"""
            with self.superuser() as conn:
                return conn.execute("SELECT count(*) FROM memory_system.embeddings_queue "
                                    "WHERE id = ANY(%s) AND state = 'done'",
                                    (held,)).fetchone()[0] == len(held)
        wait_until(back, timeout=self.lease * 3 + 120, interval=0.2)
        done = time.monotonic() - killed
        healthy = self.time_to_healthy("replica", killed)
        restarted = victim not in self.replica_pids() and len(self.replica_pids()) == self.replicas
        return {"heal_s": max(done, healthy), "held": len(held), "restarted": float(restarted)}


def bench_faults(st: Stack) -> list[Figure]:
    figures: list[Figure] = []
    with cloned_database(st, "bench_faults") as bdb:
        rig = Rig(st, replace(st.cfg, database=bdb.name))
        rig.add_agents()
        rig.start()
        try:
            health_ms: list[float] = []
            with rig.writing():
                time.sleep(5)
                for seconds in OUTAGES:
                    out = rig.postgresql_outage(seconds)
                    health_ms.append(out["health_ms_max"])
                    figures.append(Figure(
                        f"faults.pg_outage_recovery_s_{seconds}s", out["recovery_s"], "s",
                        note=f"PostgreSQL stopped hard for {seconds} s; from its start to every "
                             f"replica's /health ok, a new episode embedded and a new key in "
                             f"Redis; /health meanwhile p50 {out['health_ms_p50']:.0f} ms, max "
                             f"{out['health_ms_max']:.0f} ms, not 503 down with since: "
                             f"{out['wrong_answers']:.0f}; log lines in the outage's second "
                             f"half: {out['quiet_lines']:.0f}; target <= {TARGET_RECOVERY_S:g}: "
                             f"{'met' if out['recovery_s'] <= TARGET_RECOVERY_S else 'MISSED'}"))
                    time.sleep(5)
                mid = rig.postgresql_restart_mid_complete()
                figures.append(Figure("faults.pg_restart_mid_complete_recovery_s", mid, "s",
                                      note="PostgreSQL stopped hard while complete_batch waited "
                                           "on a lock, started at once; to healthy"))
                time.sleep(5)
                red = rig.redis_restart_empty(10)
                figures.append(Figure("faults.redis_restart_heal_s", red["heal_s"], "s",
                                      note="Redis killed, started empty after 10 s; to every "
                                           "working-memory key back in Redis and /health ok"))
                time.sleep(5)
                kill = rig.kill_replica_mid_batch()
                figures.append(Figure(
                    "faults.worker_kill_heal_s", kill["heal_s"], "s",
                    note=f"a replica holding {kill['held']:.0f} items kill -9'd; to all of them "
                         f"done (their lease: {LEASE_SECONDS} s) and /health ok; replica "
                         f"restarted: {'yes' if kill['restarted'] else 'NO'}"))
            outcome = rig.settle(timeout=LEASE_SECONDS * 3 + 300)
            differences = rig.cache_differences()
        finally:
            code = rig.stop()
        worst = max(health_ms)
        figures.append(Figure("faults.health_answer_ms_pg_down", worst, "ms",
                              note=f"slowest /health answer while PostgreSQL was down (1 probe a "
                                   f"second per replica, all outages); target <= "
                                   f"{TARGET_HEALTH_MS:g}: "
                                   f"{'met' if worst <= TARGET_HEALTH_MS else 'MISSED'}"))
        figures.append(Figure("faults.lost_items", outcome.lost, "items",
                              note=f"of {outcome.episodes} acknowledged episodes: not exactly one "
                                   f"queue item done and one vector of the content's checksum; "
                                   f"cache keys differing from PostgreSQL: {differences}; "
                                   f"sidecar exit {code}; target 0"))
        figures.append(Figure("faults.stuck_items", outcome.stuck, "items",
                              note=f"queue items not done after settling "
                                   f"({outcome.settled_s:.0f} s); target 0"))
    return figures


BENCHMARKS = [
    Benchmark("faults", ("faults.pg_outage_recovery_s_10s", "faults.pg_outage_recovery_s_60s",
                         "faults.pg_outage_recovery_s_300s",
                         "faults.pg_restart_mid_complete_recovery_s", "faults.redis_restart_heal_s",
                         "faults.worker_kill_heal_s", "faults.health_answer_ms_pg_down",
                         "faults.lost_items", "faults.stuck_items"), bench_faults),
]
