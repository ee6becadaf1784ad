"""Search end to end with the real model: the worker embeds what an agent records, and the agent
finds it by text, by vector and by both, from SQL, from `nexus search` and from nexus.client. On
the session's `nexus up` stack (conftest.up_env), whose worker embeds for every module."""

from __future__ import annotations

import json
import subprocess

import psycopg
import pytest

from conftest import NEXUS
from nexus import agents, client, config
from nexus.config import Config
from nexus.stack import resolve_home
from tests.helpers import su, wait_for, worker_env

EPISODES = [
    "A violent storm with gale-force winds hit the harbour and sank two fishing boats.",
    "The quarterly invoice for ACME Corporation is thirty days overdue.",
    "Grandmother's recipe: knead the bread dough for ten minutes, then let it rise.",
    "The Kubernetes cluster ran out of memory and evicted the database pods.",
    "Our cat sleeps all afternoon on the warm windowsill in the kitchen.",
]


@pytest.fixture(scope="module")
def searched(up_env: dict[str, str]) -> tuple[Config, int, dict[str, int]]:
    """An agent `finder` with EPISODES embedded (and an `intruder` agent) on the session's
    `nexus up` stack (conftest.up_env: its worker, no worker or model started for this module);
    the tests only read, each agent's own rows."""
    up = subprocess.run([NEXUS, "up", "--detach"], env=up_env, capture_output=True, text=True,
                        timeout=600)
    assert up.returncode == 0, up.stdout + up.stderr
    cfg = resolve_home(config.load(env=up_env))
    with su(cfg) as conn:
        agents.add(conn, cfg, "finder", "", None)
        agents.add(conn, cfg, "intruder", "", None)
    with psycopg.connect(agents.dsn(cfg, "finder"), autocommit=True) as conn:
        ids = {text: conn.execute("SELECT nexus.record_episode(%s)", (text,)).fetchone()[0]
               for text in EPISODES}

        def embedded() -> bool:
            row = conn.execute("SELECT total, embedded FROM nexus.memory_stats() "
                               "WHERE kind = 'episode'").fetchone()
            return row == (len(EPISODES), len(EPISODES))

        wait_for(embedded)
    return cfg, cfg.http_port, ids


def run_search(cfg: Config, port: int, *args: str) -> list[dict]:
    out = subprocess.run([NEXUS, "search", *args, "--json"], env=worker_env(cfg, port),
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_found_by_text_vector_and_both(searched: tuple[Config, int, dict[str, int]]) -> None:
    cfg, port, ids = searched
    storm = ids[EPISODES[0]]
    # words the storm episode does not contain: only the vector branch can find it
    hits = run_search(cfg, port, "bad weather at sea", "--agent", "finder", "--mode", "vector")
    assert hits[0]["id"] == storm and hits[0]["text_rank"] is None
    # the text branch alone, on a word it does contain
    hits = run_search(cfg, port, "storm", "--agent", "finder", "--mode", "text")
    assert [h["id"] for h in hits] == [storm] and hits[0]["vector_rank"] is None
    # auto: the sidecar answers /embed, so both branches run and agree on the top row
    hits = run_search(cfg, port, "storm at sea", "--agent", "finder")
    assert hits[0]["id"] == storm
    assert hits[0]["text_rank"] == 1 and hits[0]["vector_rank"] == 1
    assert "**storm**" in hits[0]["snippet"]


def test_client_helper_and_similar(searched: tuple[Config, int, dict[str, int]]) -> None:
    cfg, port, ids = searched
    url = f"http://127.0.0.1:{port}"
    with psycopg.connect(agents.dsn(cfg, "finder"), autocommit=True) as conn:
        hits = client.search(conn, "servers crashing", embed_url=url, limit_n=2)
        assert hits[0]["id"] == ids[EPISODES[3]]
        hits = client.search(conn, "unpaid bills", mode="vector", embed_url=url, kinds=["episode"])
        assert hits[0]["id"] == ids[EPISODES[1]]
        similar = client.similar(conn, "episode", ids[EPISODES[0]], limit_n=4)
        assert ids[EPISODES[0]] not in [h["id"] for h in similar] and len(similar) == 4
        with pytest.raises(TypeError):
            client.search(conn, "x", mode="text", no_such_option=1)
        with pytest.raises(client.EmbedUnavailable):
            client.search(conn, "x", embed_url="http://127.0.0.1:9")


def test_intruder_finds_nothing_even_with_the_exact_vector(
        searched: tuple[Config, int, dict[str, int]]) -> None:
    cfg, port, ids = searched
    with su(cfg) as conn:
        vector = conn.execute("SELECT embedding::text FROM nexus_memory.episode_embeddings "
                              "WHERE episode_id = %s", (ids[EPISODES[0]],)).fetchone()[0]
    with psycopg.connect(agents.dsn(cfg, "intruder"), autocommit=True) as conn:
        hits = client.search(conn, EPISODES[0], embedding=json.loads(vector), limit_n=10)
        assert hits == []
        with pytest.raises(psycopg.Error) as exc:
            client.similar(conn, "episode", ids[EPISODES[0]])
        assert exc.value.sqlstate == "NX033"
    # the CLI as the intruder: the sidecar embeds the query, the database shows nothing
    assert run_search(cfg, port, EPISODES[0], "--agent", "intruder") == []


def test_search_opens_only_the_agents_own_vector_partitions(
        searched: tuple[Config, int, dict[str, int]]) -> None:
    """Every agent has a vector partition (HNSW graph) of its own (migration 0010), and the vector
    branch is planned with the agent as a constant: a search locks, so plans and reads, the
    caller's partitions and no other agent's, however many searches the session has run (a
    cached generic plan would lock every partition at each run)."""
    cfg, _, ids = searched
    with su(cfg) as conn:
        vector = conn.execute("SELECT embedding::text FROM nexus_memory.episode_embeddings "
                              "WHERE episode_id = %s", (ids[EPISODES[1]],)).fetchone()[0]
        others = conn.execute("SELECT count(*) FROM pg_catalog.pg_inherits WHERE inhparent ="
                              " 'nexus_memory.episode_embeddings'::regclass").fetchone()[0]
    assert others >= 3  # finder's, intruder's and the DEFAULT partition at least
    with psycopg.connect(agents.dsn(cfg, "finder")) as conn:
        for text in EPISODES * 2:
            conn.execute("SELECT count(*) FROM nexus.memory_search(%s, %s::public.vector)",
                         (text, vector)).fetchone()
        locked = {r[0] for r in conn.execute(
            "SELECT c.relname FROM pg_catalog.pg_locks AS l"
            " JOIN pg_catalog.pg_class AS c ON c.oid = l.relation"
            " WHERE l.pid = pg_backend_pid() AND c.relkind = 'r'"
            " AND c.relnamespace = 'nexus_parts'::regnamespace")}
        mine = conn.execute("SELECT left(md5(current_user), 16)").fetchone()[0]
        conn.rollback()
    assert locked == {f"episode_embeddings_{mine}", f"semantic_memory_embeddings_{mine}"}


def test_every_api_function_has_a_comment(fresh_db: Config) -> None:
    with su(fresh_db) as conn:
        missing = conn.execute(
            "SELECT p.oid::regprocedure::text FROM pg_proc AS p "
            "WHERE p.pronamespace = 'nexus'::regnamespace "
            "AND coalesce(obj_description(p.oid, 'pg_proc'), '') = ''").fetchall()
        count = conn.execute("SELECT count(*) FROM pg_proc "
                             "WHERE pronamespace = 'nexus'::regnamespace").fetchone()[0]
    assert count >= 20
    assert missing == []


def test_cli_as_of_and_history(searched: tuple[Config, int, dict[str, int]]) -> None:
    """`nexus search --as-of TS` finds the facts that held then, `--include-history` every fact
    with its validity; "true now" by default (docs/facts.md)."""
    cfg, port, _ = searched
    with su(cfg) as conn:
        agents.add(conn, cfg, "historian", "", None)
    with psycopg.connect(agents.dsn(cfg, "historian"), autocommit=True) as conn:
        remember = "SELECT nexus.remember_fact(%s, key => 'home', valid_from => %s)"
        boston, denver = (conn.execute(remember, (text, at)).fetchone()[0]
                          for text, at in (("The user lives in Boston", "2024-01-01T00:00:00Z"),
                                           ("The user lives in Denver", "2025-01-01T00:00:00Z")))
    query = ("where does the user live", "--agent", "historian", "--mode", "text")
    assert [h["id"] for h in run_search(cfg, port, *query)] == [denver]
    then = run_search(cfg, port, *query, "--as-of", "2024-06-01T00:00:00Z")
    assert [h["id"] for h in then] == [boston] and then[0]["valid_to"] is not None
    assert {h["id"] for h in run_search(cfg, port, *query, "--include-history")} == {boston, denver}
    out = subprocess.run([NEXUS, "search", *query, "--as-of", "last spring"],
                         env=worker_env(cfg, port), capture_output=True, text=True, timeout=120)
    assert out.returncode != 0 and "NX039" in out.stderr
    out = subprocess.run([NEXUS, "search", *query, "--include-history"],
                         env=worker_env(cfg, port), capture_output=True, text=True, timeout=120)
    assert "home: held from 2024-01-01" in out.stdout, out.stdout
