"""Spaces (docs/spaces.md) over real logins and the typed client: two agents writing one space at
once, and a revoke in the middle of a member's session. (Members, non-members, read-only members,
drop and forged authors in SQL: db/tests/17_spaces.sql; hostile agents: tests/test_isolation.py;
recall over MCP: tests/test_mcp.py.)"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import psycopg
import pytest

from nexus import InvalidInput, Memory, agents, cli, secrets
from nexus.config import SUPERUSER, Config
from tests.helpers import su

WRITES = 40  # per writer


@pytest.fixture
def team(fresh_db: Config) -> Config:
    with su(fresh_db) as conn:
        for name in ("ann", "ben", "cy"):
            agents.add(conn, fresh_db, name, "")
        conn.execute("SELECT memory_system.space_create('team')")
        conn.execute("SELECT memory_system.space_grant('team', 'ann', 'write')")
        conn.execute("SELECT memory_system.space_grant('team', 'ben', 'write')")
        conn.execute("SELECT memory_system.space_grant('team', 'cy', 'read')")
    return fresh_db


def test_two_agents_write_one_space_at_once(team: Config, tmp_path: Path) -> None:
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def write(agent: str) -> None:
        try:
            with Memory(agents.dsn(team, agent)) as memory:
                start.wait()
                for i in range(WRITES):
                    memory.record_episode(f"{agent} note {i} about the shared invoice",
                                          space="team")
                    memory.remember_fact(f"the invoice owner is {agent} ({i})", key="invoice.owner",
                                         space="team")
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(a,)) for a in ("ann", "ben")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    with su(team) as conn:
        space_id = conn.execute("SELECT space_id FROM memory_system.spaces WHERE name = 'team'"
                                ).fetchone()[0]
        authors = dict(conn.execute(
            "SELECT author, count(*) FROM nexus_memory.zep_episodic_memory WHERE agent_id = %s "
            "GROUP BY author", (space_id,)).fetchall())
        current = conn.execute(
            "SELECT count(*) FROM nexus_memory.semantic_memories WHERE agent_id = %s "
            "AND fact_key = 'invoice.owner' AND valid_to IS NULL", (space_id,)).fetchone()[0]
        facts = conn.execute(
            "SELECT count(*) FROM nexus_memory.semantic_memories WHERE agent_id = %s",
            (space_id,)).fetchone()[0]
    assert authors == {"ann": WRITES, "ben": WRITES}, "every write landed, with its own author"
    assert current == 1, "one current fact per key in the space, whichever member wrote it"
    assert facts == 2 * WRITES, "every fact of the key is in its history"
    # the operator exports the space (nexus export --space)
    out = tmp_path / "team.jsonl"
    dsn = psycopg.conninfo.make_conninfo(host=team.pg_host, port=team.pg_port, dbname=team.database,
                                         user=SUPERUSER, password=secrets.password(team, SUPERUSER))
    assert cli.main(["export", "--space", "team", "--dsn", dsn, "--out", str(out)]) == 0
    lines = out.read_text().splitlines()
    assert json.loads(lines[0])["agent"] == space_id and len(lines) == 1 + 4 * WRITES
    # imported into another space, every row keeps the member that wrote it
    with su(team) as conn:
        copy_id = conn.execute("SELECT space_id FROM memory_system.space_create('team_copy')"
                          ).fetchone()[0]
    assert cli.main(["import", "jsonl", str(out), "--space", "team_copy", "--dsn", dsn]) == 0
    with su(team) as conn:
        copied = dict(conn.execute(
            "SELECT author, count(*) FROM (SELECT author FROM nexus_memory.zep_episodic_memory"
            " WHERE agent_id = %(s)s UNION ALL SELECT author FROM nexus_memory.semantic_memories"
            " WHERE agent_id = %(s)s) AS a GROUP BY author", {"s": copy_id}).fetchall())
    assert copied == {"ann": 2 * WRITES, "ben": 2 * WRITES}, "authors kept by export and import"
    with Memory(agents.dsn(team, "cy")) as cy:
        assert len(cy.recent_episodes(limit_n=1000, space="team")) == 2 * WRITES
        hits = cy.memory_search(query="shared invoice", spaces=["team"], limit_n=5)
        assert hits and {(h.space, h.author in ("ann", "ben")) for h in hits} == {("team", True)}


def test_a_revoke_holds_from_the_members_next_statement(team: Config) -> None:
    with Memory(agents.dsn(team, "ann")) as ann:
        ann.record_episode("the team's plan is to ship on Friday", space="team")
    with Memory(agents.dsn(team, "cy")) as cy, cy.session() as conn:
        # one connection, held across the revoke
        seen = "SELECT count(*) FROM nexus.memory_search('plan ship Friday', scope => 'all')"
        assert conn.execute(seen).fetchone()[0] == 1
        assert [s.space for s in cy.spaces()] == ["team"]
        with su(team) as op:
            op.execute("SELECT memory_system.space_revoke('team', 'cy')")
        assert conn.execute(seen).fetchone()[0] == 0, "the same session reads nothing of it now"
        assert conn.execute("SELECT count(*) FROM nexus_memory.zep_episodic_memory").fetchone()[0] \
            == 0
        with pytest.raises(InvalidInput) as refused:
            cy.recent_episodes(space="team")
        assert refused.value.code == "NX080"
        assert cy.spaces() == []


def test_nexus_store_in_a_space(team: Config) -> None:
    """NexusStore(space=...): one agent's puts are another member's gets and searches (text only:
    no sidecar); a reader's put is refused, and nothing lands in anyone's own store."""
    from langgraph.store.base import PutOp

    from nexus.langgraph import NexusStore

    with NexusStore(agents.dsn(team, "ann"), space="team", embed_url=None) as ann:
        ann.put(("customers",), "acme", {"content": "ACME pays its invoices late"})
    with NexusStore(agents.dsn(team, "cy"), space="team", embed_url=None) as cy:
        assert cy.get(("customers",), "acme").value == {"content": "ACME pays its invoices late"}
        assert [i.key for i in cy.search(("customers",), query="who pays late")] == ["acme"]
        with pytest.raises(InvalidInput) as refused:
            cy.batch([PutOp(("customers",), "x", {"content": "x"})])
        assert refused.value.code == "NX080"
    with NexusStore(agents.dsn(team, "ann"), embed_url=None) as own:
        assert own.get(("customers",), "acme") is None
