"""The Redis mirror of working memory and recent episodes: PostgreSQL first, Redis second. It
drains the outbox the triggers fill (woken by an empty NOTIFY nexus_cache), and reconciles Redis
with per-range checksums computed in SQL. How, and the keys (wm_key, idx_key, recent_key below,
and /embed's cache): docs/cache.md.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass

import psycopg
import redis
import redis.asyncio as aioredis
from psycopg import sql
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.retry import Retry

from sidecar.config import Config
from sidecar.db import RETRY_SECONDS, Outage, conninfo
from sidecar.metrics import Metrics

log = logging.getLogger("nexus.cache")

CHANNEL = "nexus_cache"
RANGE_SIZE = 10_000
RECENT_LIMIT = 50
BATCH = 1_000
LEADER_LOCK = "nexus_cache_mirror"
# how often a replica that is not the mirror's leader asks for the lock again
FOLLOWER_SECONDS = 5.0
# the outbox is drained on every wake-up, and at least this often (a lost wake-up costs no more)
DRAIN_SECONDS = 5.0
SEP = "\x1f"


# id, key name and the five fields of every key an index hash names (missing fields: nil)
READ_RANGE = """
local idx = redis.call('HGETALL', KEYS[1])
local out = {}
for i = 1, #idx, 2 do
  local kind = redis.call('TYPE', idx[i + 1]).ok
  local h = {}
  if kind == 'hash' then h = redis.call('HMGET', idx[i + 1], 'id', 'a', 'k', 'v', 'x') end
  out[#out + 1] = idx[i]
  out[#out + 1] = idx[i + 1]
  out[#out + 1] = kind
  for j = 1, 5 do out[#out + 1] = h[j] or false end
end
return out
"""


def wm_key(agent: str, key: str) -> str:
    return f"nexus:wm:{agent}:{key}"


def idx_key(range_no: int) -> str:
    return f"nexus:wm:idx:{range_no}"


def recent_key(agent: str) -> str:
    return f"nexus:recent:{agent}"


def digest(agent: str, key: str, value: str, expires_ms: str) -> str:
    """The digest memory_system._wm_digest computes in SQL."""
    return hashlib.md5(SEP.join((agent, key, value, expires_ms)).encode()).hexdigest()


def range_checksum(entries: Iterable[tuple[int, str]]) -> str:
    """md5 of "id:digest" joined by "," in id order (memory_system.cache_range_checksums)."""
    return hashlib.md5(",".join(f"{i}:{d}" for i, d in sorted(entries)).encode()).hexdigest()


@dataclass
class Report:
    ranges: int = 0
    dirty_ranges: int = 0
    rows_read: int = 0
    written: int = 0
    deleted: int = 0
    recent_fixed: int = 0
    seconds: float = 0.0


class Mirror:
    """Writes PostgreSQL's working memory and recent episodes into Redis, and reconciles them.
    `conn`: an autocommit connection as nexus_worker; `metrics`: a private registry if None."""

    def __init__(self, conn: psycopg.Connection, client: redis.Redis,
                 metrics: Metrics | None = None) -> None:
        self.conn = conn
        self.redis = client
        self.metrics = metrics or Metrics()
        self._read_range = client.register_script(READ_RANGE)

    # -- write-through ---------------------------------------------------------------------------
    def drain(self) -> int:
        """Apply every change queued in the outbox, (u|d, row id, None) or (r, None, agent);
        returns Redis writes. Each batch is taken in a transaction committed once Redis has it,
        so a Redis failure leaves it queued."""
        done = 0
        while True:
            with self.conn.transaction():
                changes = self.conn.execute(
                    "SELECT op, row_id, agent_id FROM memory_system.cache_outbox_drain(%s)",
                    (BATCH * 10,)).fetchall()
                ids = sorted({row_id for op, row_id, _ in changes if op != "r"})
                for start in range(0, len(ids), BATCH):
                    done += self.sync_ids(ids[start:start + BATCH])
                done += self.refresh_recent(sorted({a for op, _, a in changes if op == "r"}))
            if len(changes) < BATCH * 10:
                return done

    def sync_ids(self, ids: list[int]) -> int:
        """Make Redis hold exactly PostgreSQL's live rows among `ids` (absent ones removed)."""
        rows = self.conn.execute(
            "SELECT id, agent_id, context_key, value, expires_ms, digest "
            "FROM memory_system.cache_working_memory(%s)", (ids,)).fetchall()
        found = {r[0] for r in rows}
        written = self._write(rows)
        deleted = self._delete([i for i in ids if i not in found])
        self.metrics.cache_writes.labels("wm", "set").inc(written)
        self.metrics.cache_writes.labels("wm", "delete").inc(deleted)
        return written + deleted

    def _write(self, rows: list[tuple], held: dict[int, str] | None = None) -> int:
        """Write rows; `held` maps ids to the key names Redis holds now (looked up if None)."""
        if not rows:
            return 0
        if held is None:
            held = self._held([row[0] for row in rows])
        pipe = self.redis.pipeline(transaction=False)
        for rid, agent, key, value, expires_ms, _ in rows:
            name = wm_key(agent, key)
            old = held.get(rid)
            # an id whose key name changed leaves its old key behind
            if old is not None and old != name:
                pipe.delete(old)
            pipe.hset(name, mapping={"id": rid, "a": agent, "k": key, "v": value,
                                     "x": "" if expires_ms is None else str(expires_ms)})
            if expires_ms is not None:
                pipe.pexpireat(name, expires_ms)
            else:
                pipe.persist(name)
            pipe.hset(idx_key(rid // RANGE_SIZE), rid, name)
        pipe.execute()
        return len(rows)

    def _held(self, ids: list[int]) -> dict[int, str]:
        """The key names the index hashes give these ids (ids absent from them left out)."""
        pipe = self.redis.pipeline(transaction=False)
        for rid in ids:
            pipe.hget(idx_key(rid // RANGE_SIZE), rid)
        return {rid: name.decode() for rid, name in zip(ids, pipe.execute(), strict=True)
                if name is not None}

    def _delete(self, ids: list[int]) -> int:
        held = self._held(ids) if ids else {}
        pipe = self.redis.pipeline(transaction=False)
        for rid, name in held.items():
            pipe.delete(name)
            pipe.hdel(idx_key(rid // RANGE_SIZE), rid)
        pipe.execute()
        return len(held)

    def refresh_recent(self, agents: list[str], only_if_different: bool = False) -> int:
        changed = 0
        for start in range(0, len(agents), 500):
            part = agents[start:start + 500]
            rows = self.conn.execute(
                "SELECT agent_id, episodes, digest "
                "FROM memory_system.cache_recent_episodes(%s, %s)",
                (part, RECENT_LIMIT)).fetchall()
            if only_if_different:
                held = self.redis.mget([recent_key(a) for a, _, _ in rows])
                rows = [r for r, h in zip(rows, held, strict=True)
                        if (h and hashlib.md5(h).hexdigest()) != r[2]]
            pipe = self.redis.pipeline(transaction=False)
            for agent, episodes, _ in rows:
                if episodes:
                    pipe.set(recent_key(agent), episodes)
                else:  # no episode left (forgotten, or the agent removed): no key
                    pipe.delete(recent_key(agent))
            pipe.execute()
            changed += len(rows)
        self.metrics.cache_writes.labels("recent", "set").inc(changed)
        return changed

    # -- reconciliation --------------------------------------------------------------------------
    def redis_range(self, range_no: int) -> dict[int, tuple[str, str]]:
        """id -> (key name, digest of what Redis holds) for the range; dangling entries get "".
        One round trip: a Lua script reads the index and every key it names inside Redis."""
        flat = self._read_range(keys=[idx_key(range_no)])
        out: dict[int, tuple[str, str]] = {}
        wrong_type: list[str] = []
        for i in range(0, len(flat), 8):
            rid, name, kind, hid, agent, key, value, expires = flat[i:i + 8]
            rid = int(rid)
            if kind not in (b"hash", b"none"):
                wrong_type.append(name.decode())  # not ours to keep: a hash is written there
            ok = None not in (hid, agent, key, value, expires) and int(hid) == rid
            out[rid] = (name.decode(), digest(agent.decode(), key.decode(), value.decode(),
                                              expires.decode()) if ok else "")
        if wrong_type:
            self.redis.delete(*wrong_type)
        return out

    def _redis_ranges(self) -> set[int]:
        prefix = len(idx_key(0)) - 1
        return {int(k[prefix:]) for k in self.redis.scan_iter(match=idx_key(0)[:-1] + "*",
                                                             count=1000)}

    def _pg_rows(self, range_no: int) -> Iterator[tuple]:
        lo = range_no * RANGE_SIZE
        # a server-side cursor: a range is read in batches, never held whole by the driver
        with self.conn.transaction(), self.conn.cursor(name=f"reconcile_{range_no}") as cur:
            cur.itersize = BATCH
            cur.execute("SELECT id, agent_id, context_key, value, expires_ms, digest "
                        "FROM memory_system.cache_working_memory_range(%s, %s)",
                        (lo, lo + RANGE_SIZE))
            yield from cur

    def reconcile(self) -> Report:
        started = time.monotonic()
        report = Report()
        pg = {r: (n, c) for r, n, c in self.conn.execute(
            "SELECT range_no, rows, checksum FROM memory_system.cache_range_checksums(%s)",
            (RANGE_SIZE,))}
        ranges = sorted(set(pg) | self._redis_ranges())
        report.ranges = len(ranges)
        for range_no in ranges:
            held = self.redis_range(range_no)
            live = [(i, d) for i, (_, d) in held.items() if d]
            expected = pg.get(range_no)
            if expected and expected[0] == len(live) and expected[1] == range_checksum(live) \
                    and len(live) == len(held):
                continue
            report.dirty_ranges += 1
            names = {i: n for i, (n, _) in held.items()}
            seen: set[int] = set()
            batch: list[tuple] = []
            for row in self._pg_rows(range_no):
                report.rows_read += 1
                seen.add(row[0])
                if held.get(row[0], ("", ""))[1] != row[5]:
                    batch.append(row)
                if len(batch) >= BATCH:
                    report.written += self._write(batch, names)
                    batch = []
            report.written += self._write(batch, names)
            report.deleted += self._delete([i for i in held if i not in seen])
        agents = [r[0] for r in self.conn.execute("SELECT * FROM memory_system.cache_agents()")]
        report.recent_fixed = self.refresh_recent(agents, only_if_different=True)
        # the lists of agents removed while no mirror listened
        known = {recent_key(a).encode() for a in agents}
        stale = [k for k in self.redis.scan_iter(match=recent_key("*"), count=1000)
                 if k not in known]
        report.recent_fixed += self.redis.delete(*stale) if stale else 0
        report.seconds = time.monotonic() - started
        m = self.metrics
        m.reconcile_runs.inc()
        m.reconcile_ranges.labels("dirty").inc(report.dirty_ranges)
        m.reconcile_ranges.labels("clean").inc(report.ranges - report.dirty_ranges)
        m.reconcile_repairs.labels("written").inc(report.written)
        m.reconcile_repairs.labels("deleted").inc(report.deleted)
        m.reconcile_repairs.labels("recent").inc(report.recent_fixed)
        m.reconcile_seconds.set(report.seconds)
        if report.dirty_ranges or report.recent_fixed:
            log.info("reconcile: %s", json.dumps(asdict(report)))
        return report


def worker_conn(cfg: Config) -> psycopg.Connection:
    return psycopg.connect(conninfo(cfg), autocommit=True)


def redis_client(cfg: Config, asynchronous: bool = False) -> redis.Redis | aioredis.Redis:
    """The mirror's client, or (asynchronous) /embed's and the health check's. One immediate
    retry (a connection Redis dropped when it restarted), not redis-py's default of ten with
    backoff: a Redis that is down fails a call at once, and is tried again later."""
    module, retry, timeout = (aioredis, AsyncRetry, 2) if asynchronous else (redis, Retry, 5)
    return module.Redis(host=cfg.redis_host, port=cfg.redis_port, password=cfg.password("redis"),
                        socket_timeout=timeout, socket_connect_timeout=2,
                        retry=retry(NoBackoff(), 1))


class MirrorThread(threading.Thread):
    """In each sidecar process: the replica holding the leader lock mirrors (write-through, and
    reconciliation every NEXUS_RECONCILE_SECONDS and whenever Redis answers again); the others wait
    for the lock (docs/cache.md). `pg`, `redis_state`: the process's Outage of each server."""

    def __init__(self, cfg: Config, metrics: Metrics, pg: Outage | None = None,
                 redis_state: Outage | None = None) -> None:
        super().__init__(name="cache-mirror", daemon=True)
        self.cfg = cfg
        self.metrics = metrics
        self.pg = pg or Outage("PostgreSQL")
        self.redis_state = redis_state or Outage("Redis")
        self.stopping = threading.Event()

    def stop(self) -> None:
        self.stopping.set()

    def run(self) -> None:
        while not self.stopping.is_set():
            wait = FOLLOWER_SECONDS
            try:
                self._lead()
            except psycopg.OperationalError as exc:
                self.pg.lost(exc)
                wait = RETRY_SECONDS
            except (psycopg.Error, OSError) as exc:
                log.warning("cache mirror: database: %s", exc)
            self.stopping.wait(wait)

    def _lead(self) -> None:
        began = time.monotonic()
        with worker_conn(self.cfg) as conn, worker_conn(self.cfg) as listener:
            self.pg.back(began)
            got = conn.execute("SELECT pg_try_advisory_lock(hashtext(%s))", (LEADER_LOCK,))
            if not got.fetchone()[0]:
                return
            listener.execute(sql.SQL("LISTEN {}").format(sql.Identifier(CHANNEL)))
            # what was queued before this lead is covered by the reconciliation that comes first
            conn.execute("SELECT memory_system.cache_outbox_clear()")
            client = redis_client(self.cfg)
            mirror = Mirror(conn, client, self.metrics)
            next_reconcile = next_look = next_drain = 0.0
            run_id = None
            log.info("cache mirror: leading (reconcile every %d s)", self.cfg.reconcile_seconds)
            while not self.stopping.is_set():
                # wake at the first notification, then take the ones already there with it
                woken = bool(list(listener.notifies(timeout=0.2, stop_after=1)))
                if woken:
                    list(listener.notifies(timeout=0.001, stop_after=10_000))
                try:
                    if (began := time.monotonic()) >= next_look:
                        # every second: a Redis that restarted (a new run_id) lost the cache,
                        # and one that failed a write may have missed some: reconcile at once
                        seen = client.info("server")["run_id"]
                        if seen != run_id:
                            run_id, next_reconcile = seen, 0.0
                        next_look = time.monotonic() + RETRY_SECONDS
                        self.redis_state.back(began)
                    if time.monotonic() >= next_reconcile:
                        mirror.reconcile()
                        next_reconcile = time.monotonic() + self.cfg.reconcile_seconds
                    if woken or time.monotonic() >= next_drain:
                        mirror.drain()
                        next_drain = time.monotonic() + DRAIN_SECONDS
                except (redis.RedisError, OSError) as exc:
                    # PostgreSQL is the truth and has every write: heal once Redis is back
                    self.metrics.cache_errors.inc()
                    self.redis_state.lost(exc)
                    next_reconcile = next_look = next_drain = 0.0
                    self.stopping.wait(RETRY_SECONDS)
