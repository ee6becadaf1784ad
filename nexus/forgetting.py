"""`nexus forget` and the verification pass of forgetting (docs/privacy.md).

The deleting is SQL's (nexus.forget, run as the agent; memory_system.agent_remove); here the
verification: memory_system.forget_leftovers for PostgreSQL, and Redis read directly for the
mirror's copies, waited for while the mirror applies the outbox.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

import psycopg
import redis
from psycopg import sql
from psycopg.types.json import Jsonb

from sidecar.cache import idx_key, recent_key, wm_key

# the code of a verification pass that found something left (the command exits 1)
LEFT_BEHIND = "NX093"
# how long a verification waits for the Redis mirror to apply what the forget queued
MIRROR_WAIT_SECONDS = 15.0
FILTERS = ("kinds", "tags_all", "session", "since", "until", "metadata_contains")


def forget(conn: psycopg.Connection, agent: str, filters: Mapping[str, Any],
           dry_run: bool, space: str | None = None) -> dict[str, Any]:
    """nexus.forget as `agent` (the owner's connection, SET LOCAL ROLE), in its own memory or
    in `space`: its receipt."""
    args: dict[str, Any] = {k: Jsonb(v) if k == "metadata_contains" else v
                            for k, v in filters.items() if v is not None}
    args["dry_run"] = dry_run
    if space is not None:
        args["space"] = space
    call = sql.SQL("SELECT nexus.forget({})").format(sql.SQL(", ").join(
        sql.SQL("{} => {}").format(sql.Identifier(k), sql.Placeholder(k)) for k in args))
    with conn.transaction():
        conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(agent)))
        row = conn.execute(call, args).fetchone()
    assert row is not None
    return row[0]


def pg_leftovers(conn: psycopg.Connection, agent: str,
                 filters: Mapping[str, Any]) -> dict[str, int]:
    """What PostgreSQL still holds (memory_system.forget_leftovers): place -> count."""
    rows = conn.execute(
        "SELECT place, remaining FROM memory_system.forget_leftovers(%s, "
        "coalesce(%s, '{episode,semantic,store}'::text[]), %s, %s, %s, %s, %s)",
        (agent, filters.get("kinds"), filters.get("tags_all"), filters.get("session"),
         filters.get("since"), filters.get("until"),
         None if filters.get("metadata_contains") is None
         else Jsonb(filters["metadata_contains"]))).fetchall()
    return {place: int(n) for place, n in rows}


def redis_leftovers(conn: psycopg.Connection, client: redis.Redis, agent: str,
                    whole: bool) -> dict[str, int]:
    """What Redis still holds: the whole agent's keys (working memory, recent list), or the
    episodes its cached recent list names that PostgreSQL no longer has."""
    held = client.get(recent_key(agent))
    if whole:
        keys = sum(1 for _ in client.scan_iter(match=wm_key(agent, "*"), count=1000))
        # the mirror's index hashes name each key (and so the agent and its working-memory key)
        prefix = wm_key(agent, "").encode()
        named = sum(v.startswith(prefix) for idx in client.scan_iter(match=idx_key(0)[:-1] + "*")
                    for v in client.hvals(idx))
        return {"redis keys": keys + (held is not None) + named}
    ids = [e["id"] for e in json.loads(held)] if held else []
    row = conn.execute("SELECT count(*) FROM unnest(%s::bigint[]) AS i(id) WHERE NOT EXISTS ("
                       "SELECT FROM nexus_memory.zep_episodic_memory AS e "
                       "WHERE e.agent_id = %s AND e.id = i.id)", (ids, agent)).fetchone()
    return {"redis recent list": int(row[0]) if row else 0}


def verify(conn: psycopg.Connection, client: redis.Redis | None, agent: str,
           filters: Mapping[str, Any], wait: float = MIRROR_WAIT_SECONDS) -> dict[str, int]:
    """The verification pass: every place that still holds something of the agent (no filter:
    all of it) or of the filter, with its count; empty when nothing is left. Waits up to `wait`
    seconds while only the Redis mirror's work is left (the outbox, Redis keys); without a Redis
    client, Redis counts as not verified."""
    whole = not any(filters.get(k) for k in FILTERS if k != "kinds")
    deadline = time.monotonic() + wait
    while True:
        left = pg_leftovers(conn, agent, filters)
        try:
            left |= redis_leftovers(conn, client, agent, whole) if client else {"redis": -1}
        except redis.RedisError:
            left["redis (unreachable)"] = -1
        left = {k: n for k, n in left.items() if n}
        # only what the mirror is still applying is worth waiting for
        waiting = set(left) <= {"cache outbox", "redis keys", "redis recent list"}
        if not left or not waiting or time.monotonic() >= deadline:
            return left
        time.sleep(0.2)


def report(left: Mapping[str, int]) -> str:
    if not left:
        return "verified: nothing left in PostgreSQL or Redis"
    places = ", ".join(f"{k} {'not checked' if n < 0 else n}" for k, n in left.items())
    return f"{LEFT_BEHIND}: the verification pass found something left: {places}"
