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


# -- spaces (docs/spaces.md) -------------------------------------------------------------------
SPACE_TABLES = ("nexus_memory.zep_episodic_memory", "nexus_memory.semantic_memories",
                "nexus_memory.store_items", "nexus_memory.episode_embeddings",
                "nexus_memory.text_postings", "nexus_memory.text_stats")


def _space_snapshot(su_conn: psycopg.Connection, space_id: str) -> list[tuple]:
    return [row for table in SPACE_TABLES[:3] for row in su_conn.execute(
        f"SELECT %s, id, md5(t::text) FROM {table} AS t WHERE agent_id = %s ORDER BY id",
        (table, space_id)).fetchall()]


def _refused_or_empty(conn: psycopg.Connection, statement: str, args: tuple = ()) -> int:
    """Rows a statement returned or touched (0 if refused)."""
    try:
        cur = conn.execute(statement, args)
        return len(cur.fetchall()) if cur.description else max(cur.rowcount, 0)
    except psycopg.Error:
        return 0


def test_spaces_leak_nothing_to_outsiders_revoked_members_or_readers(fresh_db: Config) -> None:
    cfg = fresh_db
    with connect_as(cfg, SUPERUSER, secrets.password(cfg, SUPERUSER), autocommit=True) as su:
        writer, reader, outsider, revoked = (_add_agent(su, cfg) for _ in range(4))
        space_id, read_role = su.execute(
            "SELECT space_id, reader_role FROM memory_system.space_create('vault')").fetchone()
        for agent, rights in ((writer, "write"), (reader, "read"), (revoked, "read")):
            su.execute("SELECT memory_system.space_grant('vault', %s, %s)", (agent, rights))
        # a mirror leads (its advisory lock), so that the cache's triggers queue what changes
        su.execute("SELECT pg_advisory_lock(hashtext('nexus_cache_mirror'))")
        with _login(cfg, outsider, autocommit=True) as listener:
            listener.execute("LISTEN nexus_cache")
            listener.execute("LISTEN nexus_embeddings")
            with _login(cfg, writer, autocommit=True) as w:
                episode = w.execute("SELECT nexus.record_episode('the vault secret is 4471', "
                                    "space => 'vault')").fetchone()[0]
                fact = w.execute("SELECT nexus.remember_fact('the vault secret changes weekly', "
                                 "key => 'vault.rule', space => 'vault')").fetchone()[0]
                w.execute("INSERT INTO nexus_memory.store_items (agent_id, namespace, key, value) "
                          "VALUES (%s, '{vault}', 'k', '{\"secret\": 4471}')", (space_id,))
            payloads = [n.payload for n in listener.notifies(timeout=1, stop_after=4)]
        assert payloads and set(payloads) == {""}, "notifications carry no content"
        su.execute("INSERT INTO nexus_memory.episode_embeddings (agent_id, episode_id, model, "
                   "content_sha256, embedding) SELECT agent_id, id, "
                   "memory_system._embedding_model(), content_sha256, "
                   "array_fill(0.1, ARRAY[384])::float4[]::public.vector "
                   "FROM nexus_memory.zep_episodic_memory WHERE agent_id = %s", (space_id,))
        assert su.execute("SELECT count(*) FROM memory_system.cache_outbox WHERE agent_id = %s",
                          (space_id,)).fetchone()[0] == 0, "no space row is queued for Redis"
        su.execute("SELECT pg_advisory_unlock(hashtext('nexus_cache_mirror'))")
        before = _space_snapshot(su, space_id)
    with _login(cfg, WORKER, autocommit=True) as worker:
        assert worker.execute("SELECT count(*) FROM memory_system.cache_recent_episodes(%s) "
                              "WHERE episodes IS NOT NULL",
                              ([space_id],)).fetchone()[0] == 0, "the mirror never reads a space"
        assert space_id not in {r[0] for r in worker.execute(
            "SELECT memory_system.cache_agents()").fetchall()}

    revoked_conn = _login(cfg, revoked, autocommit=True)
    assert revoked_conn.execute("SELECT count(*) FROM nexus_memory.zep_episodic_memory "
                                "WHERE agent_id = %s", (space_id,)).fetchone()[0] == 1
    with connect_as(cfg, SUPERUSER, secrets.password(cfg, SUPERUSER), autocommit=True) as su:
        su.execute("SELECT memory_system.space_revoke('vault', %s)", (revoked,))

    reads = [(f"SELECT * FROM {t} WHERE agent_id = %s", (space_id,)) for t in SPACE_TABLES] + [
        ("SELECT * FROM memory_system.spaces", ()),
        ("SELECT * FROM nexus.spaces()", ()),
        ("SELECT * FROM nexus.memory_search('vault secret', scope => 'all') "
         "WHERE space IS NOT NULL", ()),
        ("SELECT * FROM nexus.memory_search(query_embedding => "
         "array_fill(0.1, ARRAY[384])::float4[]::public.vector, scope => 'all')", ()),
        ("SELECT * FROM nexus.memory_search('vault secret', spaces => '{vault}')", ()),
        ("SELECT * FROM nexus.recent_episodes(space => 'vault')", ()),
        ("SELECT * FROM nexus.text_candidates('vault secret', agent_ids => ARRAY[%s])",
         (space_id,)),
        ("SELECT * FROM nexus.get_episode(%s)", (episode,)),
        ("SELECT * FROM nexus.get_fact(%s)", (fact,)),
        ("SELECT * FROM nexus.fact_history(%s)", (fact,)),
        ("SELECT * FROM nexus.memory_similar('episode', %s)", (episode,)),
        ("SELECT * FROM nexus.store_get('{vault}', 'k')", ()),
    ]
    writes = [
        ("UPDATE nexus_memory.zep_episodic_memory SET content = 'pwned' WHERE agent_id = %s",
         (space_id,)),
        ("DELETE FROM nexus_memory.zep_episodic_memory WHERE agent_id = %s", (space_id,)),
        ("DELETE FROM nexus_memory.semantic_memories WHERE agent_id = %s", (space_id,)),
        ("DELETE FROM nexus_memory.store_items WHERE agent_id = %s", (space_id,)),
        ("INSERT INTO nexus_memory.zep_episodic_memory (agent_id, content) VALUES (%s, 'x')",
         (space_id,)),
        ("INSERT INTO nexus_memory.zep_episodic_memory (agent_id, content, author) "
         "VALUES (%s, 'forged', %s)", (space_id, writer)),
        ("UPDATE nexus_memory.zep_episodic_memory SET author = %s", (writer,)),
        ("SELECT nexus.record_episode('x', space => 'vault')", ()),
        ("SELECT nexus.remember_fact('x', key => 'vault.rule', space => 'vault')", ()),
        ("SELECT nexus.remember_fact('x', supersedes => %s)", (fact,)),
        ("SELECT nexus.invalidate_fact(%s)", (fact,)),
        ("SELECT nexus.update_episode(%s, content => 'pwned')", (episode,)),
        ("SELECT nexus.delete_episode(%s)", (episode,)),
        ("SELECT nexus.space_grant('vault', current_user, 'write')", ()),
        (f'GRANT "{read_role}" TO CURRENT_USER', ()),
        (f'SET ROLE "{read_role}"', ()),
    ]
    seen = {}
    with _login(cfg, outsider, autocommit=True) as out, revoked_conn, \
            _login(cfg, reader, autocommit=True) as rd:
        for who, conn in (("outsider", out), ("revoked", revoked_conn)):
            for statement, args in reads:
                seen[(who, statement)] = _refused_or_empty(conn, statement, args)
        for conn in (out, revoked_conn, rd):
            for statement, args in writes:
                _refused_or_empty(conn, statement, args)
            assert conn.execute("SELECT current_user").fetchone()[0] != read_role
        # the reader reads it all the same (the reads above are not empty for a member), and
        # changed nothing
        assert sum(_refused_or_empty(rd, statement, args) for statement, args in reads) >= 10
    assert sum(seen.values()) == 0, {k: n for k, n in seen.items() if n}
    with connect_as(cfg, SUPERUSER, secrets.password(cfg, SUPERUSER)) as su:
        assert _space_snapshot(su, space_id) == before, "no space row changed"
