"""A hostile agent with its own credentials, running arbitrary SQL over a real login.

It must see zero rows of another agent and change none, whatever it tries.
"""

from __future__ import annotations

import itertools

import psycopg
import pytest

from conftest import connect_as
from nexus import agents, secrets
from nexus.config import APP, READONLY, SUPERUSER, WORKER, Config

_names = itertools.count(1)

ROWS_OF = {
    "nexus_memory.zep_episodic_memory": "md5(row(content, metadata, tags, importance)::text)",
    "nexus_memory.semantic_memories": "md5(content)",
    "nexus_memory.working_memory_contexts": "md5(value::text)",
    "consciousness.consciousness_checkpoints": "md5(state::text)",
}

ATTACKS = [
    "SELECT * FROM nexus_memory.zep_episodic_memory WHERE agent_id = %(victim)s",
    "UPDATE nexus_memory.zep_episodic_memory SET content = 'pwned' WHERE agent_id = %(victim)s",
    "DELETE FROM nexus_memory.zep_episodic_memory WHERE agent_id = %(victim)s",
    "DELETE FROM nexus_memory.semantic_memories",
    "DELETE FROM nexus_memory.working_memory_contexts",
    "DELETE FROM consciousness.consciousness_checkpoints",
    "UPDATE nexus_memory.working_memory_contexts SET value = '\"pwned\"'",
    "INSERT INTO nexus_memory.zep_episodic_memory (agent_id, content) VALUES (%(victim)s, 'x')",
    "UPDATE nexus_memory.zep_episodic_memory SET agent_id = %(victim)s",
    "DELETE FROM nexus_memory.episode_embeddings",
    "SET ROLE %(victim_ident)s",
    "SET ROLE nexus_agent",
    "SET ROLE nexus_ro",
    "SET SESSION AUTHORIZATION %(victim_ident)s",
    "SET row_security = off; SELECT * FROM nexus_memory.zep_episodic_memory",
    "ALTER TABLE nexus_memory.zep_episodic_memory DISABLE ROW LEVEL SECURITY",
    "DROP POLICY agent_own ON nexus_memory.zep_episodic_memory",
    "TRUNCATE nexus_memory.zep_episodic_memory",
    "CREATE TABLE public.spy (x int)",
    "CREATE FUNCTION nexus.spy() RETURNS int LANGUAGE sql AS 'SELECT 1'",
    "CREATE TEMP TABLE spy (x int)",
    "SELECT rolpassword FROM pg_authid",
    "DELETE FROM memory_system.agents",
    "SELECT memory_system.agent_remove(%(victim)s, true)",
    "SELECT memory_system.agent_grant(%(victim)s, current_user)",
    "ALTER ROLE %(victim_ident)s PASSWORD 'x'",
    "GRANT %(victim_ident)s TO CURRENT_USER",
]


def _add_agent(conn: psycopg.Connection, cfg: Config, orchestrator: str | None = APP) -> str:
    name = f"agent{next(_names)}"
    agents.add(conn, cfg, name, orchestrator=orchestrator)
    return name


def _login(cfg: Config, role: str, **kwargs: object) -> psycopg.Connection:
    path = cfg.agent_secret_file(role) if role.startswith("agent") else cfg.secret_file(role)
    return connect_as(cfg, role, secrets.read(path), **kwargs)


def _seed(cfg: Config, agent: str, word: str) -> None:
    with _login(cfg, agent) as conn:
        conn.execute("INSERT INTO nexus_memory.zep_episodic_memory (content) VALUES (%s), (%s)",
                     (f"{word} one", f"{word} two"))
        conn.execute("INSERT INTO nexus_memory.semantic_memories (content) VALUES (%s)", (word,))
        conn.execute("INSERT INTO nexus_memory.working_memory_contexts (context_key, value) "
                     "VALUES ('goal', %s)", (f'"{word}"',))
        conn.execute("INSERT INTO consciousness.consciousness_checkpoints (state) VALUES (%s)",
                     (f'{{"w": "{word}"}}',))


def _snapshot(conn: psycopg.Connection, agent: str) -> list[tuple]:
    rows: list[tuple] = []
    for table, digest in ROWS_OF.items():
        rows += conn.execute(
            f"SELECT %s, id, {digest} FROM {table} WHERE agent_id = %s ORDER BY id",
            (table, agent)).fetchall()
    return rows


@pytest.fixture
def two_agents(fresh_db: Config):
    cfg = fresh_db
    with connect_as(cfg, SUPERUSER, secrets.password(cfg, SUPERUSER), autocommit=True) as su:
        victim = _add_agent(su, cfg)
        attacker = _add_agent(su, cfg)
    _seed(cfg, victim, "victim")
    _seed(cfg, attacker, "attacker")
    return cfg, victim, attacker


def test_hostile_agent_sees_nothing_and_changes_nothing(two_agents) -> None:
    cfg, victim, attacker = two_agents
    with connect_as(cfg, SUPERUSER, secrets.password(cfg, SUPERUSER)) as su:
        before = _snapshot(su, victim)
    assert len(before) == 5

    seen = 0
    outcomes = {}
    params = {"victim": victim, "victim_ident": f'"{victim}"'}
    with _login(cfg, attacker, autocommit=True) as conn:
        for table in ROWS_OF:
            seen += conn.execute(f"SELECT count(*) FROM {table} WHERE agent_id <> %s",
                                 (attacker,)).fetchone()[0]
        for attack in ATTACKS:
            statement = attack % {k: psycopg.sql.quote(v) if k == "victim" else v
                                  for k, v in params.items()}
            try:
                cur = conn.execute(statement)
                rows = cur.fetchall() if cur.description else []
                outcomes[attack] = ("ran", cur.rowcount, rows)
            except psycopg.Error as exc:
                outcomes[attack] = ("refused", exc.sqlstate, None)
            conn.execute("RESET ALL")
        assert conn.execute("SELECT current_user").fetchone()[0] == attacker

    assert seen == 0, "the attacker saw rows of another agent"
    for attack, (result, _detail, rows) in outcomes.items():
        if result == "ran":
            # whatever ran must have touched none of the victim's rows
            assert not any(victim in map(str, r) for r in rows or []), attack
            assert "victim" not in str(rows), attack
    # role switches and DDL are refused outright
    for attack in ATTACKS[10:]:
        assert outcomes[attack][0] == "refused", (attack, outcomes[attack])
    with connect_as(cfg, SUPERUSER, secrets.password(cfg, SUPERUSER)) as su:
        assert _snapshot(su, victim) == before


def test_orchestrator_acts_only_for_granted_agents(fresh_db: Config) -> None:
    cfg = fresh_db
    with connect_as(cfg, SUPERUSER, secrets.password(cfg, SUPERUSER), autocommit=True) as su:
        granted = _add_agent(su, cfg)
        private = _add_agent(su, cfg, orchestrator=None)
    _seed(cfg, granted, "granted")
    _seed(cfg, private, "private")

    with _login(cfg, APP, autocommit=True) as app:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            app.execute("SELECT count(*) FROM nexus_memory.zep_episodic_memory")
        app.execute(f'SET ROLE "{granted}"')
        assert app.execute("SELECT nexus.current_agent()").fetchone()[0] == granted
        contents = {r[0] for r in app.execute(
            "SELECT content FROM nexus_memory.zep_episodic_memory").fetchall()}
        assert contents == {"granted one", "granted two"}
        app.execute("RESET ROLE")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            app.execute(f'SET ROLE "{private}"')


def test_agent_cannot_switch_to_another_agent(two_agents) -> None:
    cfg, victim, attacker = two_agents
    with _login(cfg, attacker, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(f'SET ROLE "{victim}"')
        # a setting a caller can change does not change who it is
        conn.execute("SELECT set_config('nexus.agent_id', %s, false)", (victim,))
        assert conn.execute("SELECT nexus.current_agent()").fetchone()[0] == attacker


def test_worker_and_analyst_limits(two_agents) -> None:
    cfg, victim, _ = two_agents
    with _login(cfg, WORKER, autocommit=True) as worker:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            worker.execute("SELECT content FROM nexus_memory.zep_episodic_memory")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            worker.execute("UPDATE nexus_memory.zep_episodic_memory SET content = 'x'")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            worker.execute("DELETE FROM nexus_memory.episode_embeddings")
    with _login(cfg, READONLY, autocommit=True) as ro:
        count = "SELECT count(*) FROM nexus_memory.zep_episodic_memory"
        assert ro.execute(count).fetchone()[0] == 4
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            ro.execute("DELETE FROM nexus_memory.zep_episodic_memory")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            ro.execute("SELECT state FROM consciousness.consciousness_checkpoints")


def test_no_login_without_the_password(fresh_db: Config) -> None:
    for password in ("", "wrong-password"):
        with pytest.raises(psycopg.OperationalError, match="password"):
            connect_as(fresh_db, READONLY, password)
