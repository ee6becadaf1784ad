"""Knowledge that changes, ranked with the real model: in each of the 7 "the fact changed"
conversations (bench/knowledge_data.py), recorded as the episodes of one session and embedded by a
running worker, a hybrid search in that session (what MCP's recall does) puts a turn that states
the value holding now first. Before issue 25's ranking rules, 3 of the 7 did (a reply lifted above
the statement that earned it, an older statement above the newer one that corrects it)."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from bench.knowledge_data import CONVERSATIONS, Conversation
from conftest import clone_template, drop_database
from nexus import agents, client
from nexus.config import Config
from nexus.stack import Stack
from tests.test_worker import start_worker, stop, su, wait_for

AGENT = "teller"


@pytest.fixture(scope="module")
def told(stack: Stack) -> Iterator[tuple[Config, int, dict[str, list[int]]]]:
    """The 7 conversations recorded by `teller`, one session each, embedded by a worker."""
    cfg = clone_template(stack, "nexus_ranking_e2e")
    with su(cfg) as conn:
        agents.add(conn, cfg, AGENT, "", None)
    proc, port = start_worker(cfg)
    try:
        with psycopg.connect(agents.dsn(cfg, AGENT), autocommit=True) as conn:
            ids = {c.name: [conn.execute("SELECT nexus.record_episode(%s, session => %s)",
                                         (turn, c.name)).fetchone()[0] for turn in c.turns]
                   for c in CONVERSATIONS}
            total = sum(len(c.turns) for c in CONVERSATIONS)

            def embedded() -> bool:
                row = conn.execute("SELECT total, embedded FROM nexus.memory_stats() "
                                   "WHERE kind = 'episode'").fetchone()
                return row == (total, total)

            wait_for(embedded)
        yield cfg, port, ids
    finally:
        stop(proc)
        drop_database(stack, cfg.database)


@pytest.mark.parametrize("conv", CONVERSATIONS, ids=[c.name for c in CONVERSATIONS])
def test_the_current_value_ranks_first(told: tuple[Config, int, dict[str, list[int]]],
                                       conv: Conversation) -> None:
    cfg, port, ids = told
    with psycopg.connect(agents.dsn(cfg, AGENT), autocommit=True) as conn:
        hits = client.search(conn, conv.query, embed_url=f"http://127.0.0.1:{port}",
                             session=conv.name)
    turns = [ids[conv.name].index(h["id"]) for h in hits]
    assert hits[0]["vector_rank"] is not None  # hybrid: the sidecar embedded the query
    assert turns[0] in conv.current, [conv.turns[t] for t in turns]
    # the statement it replaced is still found: episodes are history, never hidden
    assert conv.stale <= set(turns)
