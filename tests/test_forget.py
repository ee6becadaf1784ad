"""Forgetting on the real stack (docs/privacy.md): memories in every place (row, vector, postings,
queue, the Redis mirror, the store) forgotten by a filter with `nexus forget`; the verification
pass finds nothing left; search, recent, the Redis mirror and MCP recall return none of them;
another agent's same memories stay; the same memories written again are found again; and
`nexus agent remove --delete-memories` ends verified, no Redis key left. On the session's
`nexus up` stack (conftest.up_env: the worker with the real model, the mirror, the MCP server).
The database's side in detail (filters, receipt, every derived copy, bad input): pgTAP
db/tests/18_forget.sql."""

from __future__ import annotations

import asyncio
import json
import subprocess

from conftest import NEXUS
from nexus import agents, config, forgetting, mcp
from nexus.client import Memory
from nexus.stack import resolve_home
from sidecar import cache
from tests.helpers import su, wait_for
from tests.test_mcp import Served, call, http_client

KEPT = ["The quiet harbour opens at dawn for the ferries.", "Bread rises best overnight."]
SECRET = ["The patient's diagnosis is kept in room 12 of the clinic.",
          "The clinic bills the patient on the first of the month."]
SECRET_FACT = "The patient is allergic to penicillin."


def nexus(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run([NEXUS, *args], env=env, capture_output=True, text=True, timeout=300)
    assert not check or done.returncode == 0, done.stderr
    return done


def write(memory: Memory, texts: list[str], fact: str | None, store: bool) -> list[int]:
    ids = [memory.record_episode(t, tags=["clinic"], session="visit") for t in texts]
    if fact:
        memory.remember_fact(fact, tags=["clinic"])
    if store:
        memory.store_put(["patients", "p1"], "notes", {"content": "penicillin allergy noted"},
                         {"content": "penicillin allergy noted"})
    return ids


def embedded(memory: Memory) -> bool:
    """Every memory of the agent has its vector (the worker's queue items are done)."""
    return all(k.embedded in (None, k.total) for k in memory.memory_stats())


def test_forget_by_filter_everywhere_then_verified_and_found_again(up_env: dict[str, str]) -> None:
    env = up_env
    nexus(env, "up", "--detach")
    cfg = resolve_home(config.load(env=env))
    r = cache.redis_client(cfg)
    with su(cfg) as conn:
        dsn = {a: agents.add(conn, cfg, a) for a in ("fg_alice", "fg_bob")}
        token, _, _ = mcp.issue_token(conn, "fg_alice", "1d", "tests")
        conn.execute("SELECT memory_system.reads_set(true, 'fg_alice')")  # her reads recorded
    url = cfg.sidecar_url
    with Memory(dsn["fg_alice"], embed_url=url) as alice, \
            Memory(dsn["fg_bob"], embed_url=url) as bob:
        write(alice, KEPT, None, False)
        with alice.session() as conn:
            since = conn.execute("SELECT clock_timestamp()").fetchone()[0]
        secret_ids = write(alice, SECRET, SECRET_FACT, True)
        bob_ids = write(bob, SECRET, SECRET_FACT, False)
        alice.working_memory_set("task", {"step": 1})
        # in every place: rows, vectors (the worker), postings, done queue items, the mirror
        wait_for(lambda: embedded(alice) and embedded(bob), timeout=120)
        wait_for(lambda: set(secret_ids) <= {e["id"] for e in json.loads(
            r.get("nexus:recent:fg_alice") or "[]")}, timeout=15)
        wait_for(lambda: r.exists("nexus:wm:fg_alice:task"), timeout=15)
        found = alice.search("patient clinic diagnosis")
        assert found.mode == "hybrid" and {h.id for h in found.hits} >= set(secret_ids)

        done = nexus(env, "forget", "--agent", "fg_alice", "--since", since.isoformat(), "--json")
        receipt = json.loads(done.stdout.splitlines()[0])
        assert receipt["kinds"] == {"episode": 2, "semantic": 1, "store": 1}
        places = receipt["places"]
        assert places["vectors"] == 4 and places["queue_items"] >= 4 and places["postings"] > 10
        assert "verified: nothing left" in done.stdout

        hits = alice.search("patient clinic diagnosis penicillin allergy").hits
        assert not {h.id for h in hits if h.kind == "episode"} & set(secret_ids)
        assert not [h for h in hits if "penicillin" in (h.content or "")]
        assert [e.content for e in alice.recent_episodes()] == KEPT[::-1]
        cached = [e["content"] for e in json.loads(r.get("nexus:recent:fg_alice"))]
        assert cached == KEPT[::-1]
        # MCP recall, over the stack's own server
        served = Served(cfg, env, f"http://127.0.0.1:{env['NEXUS_MCP_PORT']}/mcp",
                        {"fg_alice": token}, {})

        async def recall() -> list[str]:
            async with http_client(served, "fg_alice") as session:
                found = await call(session, "recall", query="patient clinic penicillin")
                return [h["content"] for h in found["hits"]]

        assert not [c for c in asyncio.run(recall()) if "patient" in c or "penicillin" in c]
        # another agent's same memories stay; a dry run counts them, takes nothing, and the
        # verification pass of that filter finds them left: exit 1
        dry = nexus(env, "forget", "--agent", "fg_bob", "--tag", "clinic", "--dry-run")
        assert dry.stdout.startswith("would forget 2 episode, 1 semantic, 0 store")
        left = nexus(env, "forget", "--agent", "fg_bob", "--tag", "clinic", "--verify",
                     check=False)
        assert left.returncode == 1 and "NX093" in left.stderr and "episodes 2" in left.stderr
        assert {h.id for h in bob.search("patient clinic diagnosis").hits} >= set(bob_ids)
        # written again, found again (embedded again: the old vectors and checksums are gone)
        again = write(alice, SECRET, SECRET_FACT, True)
        wait_for(lambda: embedded(alice), timeout=120)
        hits = [h for h in alice.search("patient clinic diagnosis").hits if h.kind == "episode"]
        assert {h.id for h in hits} >= set(again) and all(
            h.vector_rank for h in hits if h.id in again)

    with su(cfg) as conn:
        assert forgetting.verify(conn, r, "fg_alice", {}, wait=0).get("reads", 0) > 0
    removed = nexus(env, "agent", "remove", "fg_alice", "--delete-memories")
    assert "verified: nothing left" in removed.stdout
    assert not list(r.scan_iter(match="nexus:*fg_alice*"))
    with su(cfg) as conn:
        assert forgetting.verify(conn, r, "fg_alice", {}, wait=0) == {}
