"""Knowledge that changes, ranked with the real model: in each of the 7 "the fact changed"
conversations (bench/knowledge_data.py), recorded as the episodes of one session and embedded by
the session's `nexus up` stack (conftest.up_env: its worker, no stack or model started for this
module), a hybrid search in that session (what MCP's recall does) puts a turn that states the value
holding now first. Before issue 25's ranking rules, 3 of the 7 did (a reply lifted above the
statement that earned it, an older statement above the newer one that corrects it)."""

from __future__ import annotations

import subprocess

import psycopg
import pytest

from bench.knowledge_data import CONVERSATIONS, Conversation
from conftest import NEXUS
from nexus import agents, client, config
from tests.helpers import wait_for

AGENT = "teller"


@pytest.fixture(scope="module")
def told(up_env: dict[str, str]) -> tuple[str, str, dict[str, list[int]]]:
    """The 7 conversations recorded by `teller`, one session each, embedded by the stack's worker:
    the agent's DSN, the sidecar's URL and the episode ids of each conversation's turns."""
    for args in (("up", "--detach"), ("agent", "add", AGENT)):
        done = subprocess.run([NEXUS, *args], env=up_env, capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, done.stderr
    dsn = agents.dsn(config.load(env=up_env), AGENT)
    with psycopg.connect(dsn, autocommit=True) as conn:
        ids = {c.name: [conn.execute("SELECT nexus.record_episode(%s, session => %s)",
                                     (turn, c.name)).fetchone()[0] for turn in c.turns]
               for c in CONVERSATIONS}
        total = sum(len(c.turns) for c in CONVERSATIONS)

        def embedded() -> bool:
            row = conn.execute("SELECT total, embedded FROM nexus.memory_stats() "
                               "WHERE kind = 'episode'").fetchone()
            return row == (total, total)

        wait_for(embedded)
    return dsn, f"http://127.0.0.1:{up_env['NEXUS_HTTP_PORT']}", ids


@pytest.mark.parametrize("conv", CONVERSATIONS, ids=[c.name for c in CONVERSATIONS])
def test_the_current_value_ranks_first(told: tuple[str, str, dict[str, list[int]]],
                                       conv: Conversation) -> None:
    dsn, url, ids = told
    with psycopg.connect(dsn, autocommit=True) as conn:
        hits = client.search(conn, conv.query, embed_url=url, session=conv.name)
    turns = [ids[conv.name].index(h["id"]) for h in hits]
    assert hits[0]["vector_rank"] is not None  # hybrid: the sidecar embedded the query
    assert turns[0] in conv.current, [conv.turns[t] for t in turns]
    # the statement it replaced is still found: episodes are history, never hidden
    assert conv.stale <= set(turns)
