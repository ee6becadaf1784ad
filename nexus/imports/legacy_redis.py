"""The legacy Redis working memory: a live server or an RDB file, read key by key."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from nexus.imports.common import ImportFailed
from nexus.ports import free_port


# -- Redis ---------------------------------------------------------------------------------------
@contextmanager
def redis_source(url: str | None, rdb: Path | None) -> Iterator[list[redis.Redis]]:
    """Clients on the legacy Redis: the live server's database of the URL, or every database of
    an RDB file, loaded by a private redis-server (any RDB version this redis-server reads)."""
    if url is None and rdb is None:
        yield []
        return
    if url is not None:
        client = redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=5)
        try:
            client.ping()
        except redis.RedisError as exc:
            raise ImportFailed(f"cannot reach the legacy Redis: {exc}") from exc
        yield [client]
        return
    assert rdb is not None
    if not rdb.is_file():
        raise ImportFailed(f"RDB file {rdb} does not exist")
    binary = shutil.which("redis-server")
    if binary is None:
        raise ImportFailed("reading an RDB file needs redis-server (make setup installs it)")
    with tempfile.TemporaryDirectory(prefix="nexus-rdb-") as tmp:
        shutil.copyfile(rdb, Path(tmp) / "dump.rdb")
        port = free_port()
        proc = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", tmp,
             "--dbfilename", "dump.rdb", "--save", "", "--appendonly", "no", "--daemonize", "no"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        # polled every 0.05 s below: no retries of its own (redis-py's default waits 4.5 s)
        client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=10,
                             retry=Retry(NoBackoff(), 0))
        try:
            deadline = time.monotonic() + 60
            while True:
                if proc.poll() is not None:
                    raise ImportFailed(f"cannot read RDB file {rdb}: "
                                       f"{_exit_reason(proc.stdout.read() if proc.stdout else '')}")
                try:
                    if client.ping() and client.info("persistence").get("loading") == 0:
                        break
                except redis.BusyLoadingError:
                    pass
                except redis.ConnectionError:
                    pass
                if time.monotonic() > deadline:
                    raise ImportFailed(f"redis-server did not load RDB file {rdb} within 60 s")
                time.sleep(0.05)
            dbs = sorted(int(name[2:]) for name in client.info("keyspace"))
            yield [redis.Redis(host="127.0.0.1", port=port, db=n, socket_timeout=10) for n in dbs]
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


def _pattern_regex(pattern: str) -> tuple[str, re.Pattern[str]]:
    glob, rx = "", ""
    for part in re.split(r"(\{agent\}|\{key\})", pattern):
        if part == "{agent}":
            glob, rx = glob + "*", rx + r"(?P<agent>[^:]+)"
        elif part == "{key}":
            glob, rx = glob + "*", rx + r"(?P<key>.+)"
        else:
            glob += re.sub(r"([*?\[\]\\])", r"\\\1", part)
            rx += re.escape(part)
    return glob, re.compile(rx + r"\Z", re.S)


def _exit_reason(log: str) -> str:
    """Why redis-server exited, from its log: its last two warnings ('#' lines: "Can't handle RDB
    format version 11; Fatal error loading the DB ..."), never its start-up advice."""
    said = [line.split(" # ", 1)[1].strip() for line in log.splitlines()
            if " # " in line and " # WARNING" not in line]
    return "; ".join(said[-2:]) or log.strip()[-300:]


# the Redis types a working-memory key may have (others are skipped)
REDIS_TYPES = ("string", "hash", "list", "set", "zset")


def _redis_value(client: redis.Redis, name: bytes) -> str | None:
    kind = client.type(name).decode()
    if kind == "string":
        return client.get(name).decode("utf-8", "replace")
    if kind == "hash":
        return json.dumps({k.decode(): v.decode("utf-8", "replace")
                           for k, v in sorted(client.hgetall(name).items())})
    if kind == "list":
        return json.dumps([v.decode("utf-8", "replace") for v in client.lrange(name, 0, -1)])
    if kind in ("set", "zset"):
        items = client.smembers(name) if kind == "set" else client.zrange(name, 0, -1)
        return json.dumps(sorted(v.decode("utf-8", "replace") for v in items))
    return None


def redis_agents(clients: list[redis.Redis], pattern: str, agent: str | None) -> set[str]:
    """The agents of the Redis keys an import would read: key names and types only, no values."""
    glob, rx = _pattern_regex(pattern)
    found: set[str] = set()
    for client in clients:
        for name in client.scan_iter(match=glob, count=1000):
            m = rx.match(name.decode("utf-8", "replace"))
            who = (m.groupdict().get("agent") or agent) if m else None
            if who is not None and who not in found and client.type(name).decode() in REDIS_TYPES:
                found.add(who)
    return found


def redis_rows(clients: list[redis.Redis], pattern: str,
               agent: str | None) -> Iterator[tuple[Any, ...]]:
    """Working-memory rows from Redis keys matching the pattern, in staging column order."""
    glob, rx = _pattern_regex(pattern)
    for client in clients:
        yield from _redis_rows(client, glob, rx, agent)


def _redis_rows(client: redis.Redis, glob: str, rx: re.Pattern[str],
                agent: str | None) -> Iterator[tuple[Any, ...]]:
    for name in sorted(client.scan_iter(match=glob, count=1000)):
        m = rx.match(name.decode("utf-8", "replace"))
        if not m:
            continue
        who = m.groupdict().get("agent") or agent
        value = _redis_value(client, name)
        if value is None or who is None:
            continue
        ttl = client.pttl(name)
        expires = (datetime.now(UTC) + timedelta(milliseconds=ttl)).isoformat() if ttl > 0 else None
        yield (f"redis/{name.decode('utf-8', 'replace')}", who, m.group("key"), value, expires,
               None, None, 1)


