"""Import from a legacy store and our own JSONL, against real servers.

The legacy store is built inside the test: plain tables `episodic_memory` and `working_memory` in
a database of their own on the test PostgreSQL, and working-memory keys in a redis-server of the
module's own (live, and saved to an RDB file). The import runs through `nexus import` as a user
runs it, and through nexus.imports for the finer checks."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
import redis

from conftest import NEXUS, clone_template, drop_database
from nexus import agents, imports, secrets
from nexus.config import SUPERUSER, Config
from nexus.ports import free_port
from nexus.redisserver import RedisServer
from nexus.stack import Stack
from tests.helpers import stop, su, wait_for, worker_env

LEGACY_EPISODES = 1200


@dataclass
class Legacy:
    cfg: Config                 # the NEXUS database (a clone of the template)
    dsn: str                    # the legacy PostgreSQL database
    redis_url: str
    server: RedisServer

    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.redis_url)

    def legacy_sql(self, query: str, *params: object) -> list[tuple]:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            cur = conn.execute(query, params or None)
            return cur.fetchall() if cur.description else []

    def nexus(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([NEXUS, *args], env=worker_env(self.cfg, free_port()),
                              capture_output=True, text=True, timeout=600)


def make_legacy(conn: psycopg.Connection) -> None:
    """The plan's old store: episodes of two agents, working memory with an expired key."""
    conn.execute("""
        CREATE TABLE episodic_memory (
            id bigserial PRIMARY KEY, agent_id text NOT NULL, session_id text,
            action_type text, content text, metadata jsonb, tags text[], importance real,
            created_at timestamptz DEFAULT now());
        CREATE TABLE working_memory (
            id serial PRIMARY KEY, agent_id text NOT NULL, context_key text NOT NULL,
            value jsonb, expires_at timestamptz, updated_at timestamptz DEFAULT now());""")
    conn.execute("""
        INSERT INTO episodic_memory (agent_id, session_id, action_type, content, metadata, tags,
                                     importance, created_at)
        SELECT CASE WHEN g %% 4 = 0 THEN 'bob' ELSE 'aria' END, 's' || (g %% 7), 'observation',
               'legacy episode ' || g || ': the '
                 || (ARRAY['cat', 'moon', 'river', 'lamp'])[1 + g %% 4]
                 || E' said \\\\ "hello"\\nline two ' || repeat('é', g %% 3),
               jsonb_build_object('n', g), ARRAY['legacy', 't' || (g %% 5)], (g %% 10) / 10.0,
               timestamptz '2025-01-01 00:00+00' + g * interval '1 minute'
          FROM generate_series(1, %s) AS g""", (LEGACY_EPISODES,))
    conn.execute("""
        INSERT INTO working_memory (agent_id, context_key, value, expires_at) VALUES
            ('aria', 'goal', '{"text": "find the cat"}', NULL),
            ('aria', 'mood', '"calm"', NULL),
            ('aria', 'stale', '1', now() - interval '1 hour'),
            ('bob', 'goal', '{"text": "sleep"}', now() + interval '1 day')""")


@pytest.fixture(scope="module")
def legacy(stack: Stack) -> Iterator[Legacy]:
    home = Path(tempfile.mkdtemp(prefix="nexus-import-"))
    home.chmod(0o755)
    cfg = clone_template(stack, "nexus_import_t")
    server = RedisServer(replace(cfg, home=home, redis_port=free_port()), "legacy-redis-pw")
    server.start()
    password = secrets.password(cfg, SUPERUSER)
    with su(cfg) as conn:
        conn.execute("DROP DATABASE IF EXISTS legacy_t")
        conn.execute("CREATE DATABASE legacy_t")
        for name in ("aria", "bob"):
            agents.add(conn, cfg, name, "", None)
    dsn = f"postgresql://{SUPERUSER}:{password}@{cfg.pg_host}:{cfg.pg_port}/legacy_t"
    with psycopg.connect(dsn, autocommit=True) as conn:
        make_legacy(conn)
    url = f"redis://:legacy-redis-pw@127.0.0.1:{server.cfg.redis_port}/0"
    r = redis.Redis.from_url(url)
    r.set("working_memory:aria:mood", '"excited"')                 # newer than the table's
    r.hset("working_memory:aria:plan", mapping={"step1": "look", "step2": "find"})
    r.set("working_memory:bob:note", "plain text, not JSON", px=3_600_000)
    r.set("unrelated:key", "ignored")
    try:
        yield Legacy(cfg, dsn, url, server)
    finally:
        server.stop()
        shutil.rmtree(home, ignore_errors=True)
        drop_database(stack, "legacy_t")
        drop_database(stack, cfg.database)


# the whole state an import may touch, row by row (sequences aside)
STATE_QUERIES = {
    "episodes": "SELECT to_jsonb(e) FROM nexus_memory.zep_episodic_memory AS e",
    "facts": "SELECT to_jsonb(m) FROM nexus_memory.semantic_memories AS m",
    "working_memory": "SELECT to_jsonb(w) FROM nexus_memory.working_memory_contexts AS w",
    "checkpoints": "SELECT to_jsonb(c) FROM consciousness.consciousness_checkpoints AS c",
    "queue": "SELECT to_jsonb(q) - 'id' FROM memory_system.embeddings_queue AS q",
    "postings": "SELECT to_jsonb(p) FROM nexus_memory.text_postings AS p",
    # corpus counters are spread over slots (against write contention): their sums are the state
    "stats": "SELECT jsonb_build_array(agent_id, sum(docs), sum(tokens)) "
             "FROM nexus_memory.text_stats GROUP BY agent_id HAVING sum(docs) <> 0",
    "ledger": "SELECT to_jsonb(r) FROM memory_system.import_rows AS r",
}


def state(cfg: Config) -> dict[str, list[str]]:
    with su(cfg) as conn:
        return {k: sorted(json.dumps(r[0], sort_keys=True) for r in conn.execute(q))
                for k, q in STATE_QUERIES.items()}


def count(cfg: Config, query: str, *params: object) -> int:
    with su(cfg) as conn:
        return int(conn.execute(query, params or None).fetchone()[0])


def target_conn(cfg: Config) -> psycopg.Connection:
    return psycopg.connect(host=cfg.pg_host, port=cfg.pg_port, dbname=cfg.database, user=SUPERUSER,
                           password=secrets.password(cfg, SUPERUSER))


def run_legacy(lg: Legacy, **kwargs: object) -> dict:
    opts = imports.LegacyOptions(pg=lg.dsn, redis_url=lg.redis_url, **kwargs)  # type: ignore[arg-type]
    with target_conn(lg.cfg) as conn:
        return imports.import_legacy(conn, opts)


# -- errors before anything is written -----------------------------------------------------------
def test_bad_sources_are_refused_before_anything_is_written(legacy: Legacy, tmp_path: Path) -> None:
    before = state(legacy.cfg)
    bad_port = legacy.dsn.replace(f":{legacy.cfg.pg_port}/", f":{free_port()}/")
    garbage = tmp_path / "broken.rdb"
    garbage.write_bytes(b"REDIS0011" + b"\x00garbage" * 50)
    unknown_cols = tmp_path / "unknown.toml"
    unknown_cols.write_text('[episodes]\ncontent = "body"\nagent_id = "owner"\n')
    missing_table = tmp_path / "missing.toml"
    missing_table.write_text('[episodes]\ntable = "memories"\n')
    cases = [
        (["--pg", bad_port], "cannot connect to the legacy database"),
        (["--pg", "not a dsn ==="], "not a valid connection string"),
        (["--pg", legacy.dsn, "--mapping", str(missing_table)], "table memories not found"),
        (["--pg", legacy.dsn, "--mapping", str(unknown_cols)],
         "names column(s) ['body', 'owner'] that table episodic_memory does not have"),
        # redis-server's own reason (its start-up WARNING about memory overcommit is no reason)
        (["--pg", legacy.dsn, "--redis-rdb", str(garbage)], "Fatal error loading the DB"),
        (["--pg", legacy.dsn, "--redis-rdb", str(tmp_path / "none.rdb")], "does not exist"),
        (["--pg", legacy.dsn, "--redis", "redis://127.0.0.1:1/0"], "cannot reach the legacy Redis"),
    ]
    # each refused on its own, so all at once (they write nothing)
    with ThreadPoolExecutor(len(cases)) as pool:
        results = list(pool.map(lambda case: legacy.nexus("import", "legacy", *case[0]), cases))
    for (args, message), done in zip(cases, results, strict=True):
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert message in done.stderr, (args, done.stderr)
        assert "Traceback" not in done.stderr and "WARNING" not in done.stderr
    # the password of the DSN is never echoed
    assert secrets.password(legacy.cfg, SUPERUSER) not in "".join(
        legacy.nexus("import", "legacy", "--pg", bad_port).stderr)
    # an agent that is not registered: named, nothing written
    legacy.legacy_sql("INSERT INTO episodic_memory (agent_id, content) VALUES ('carol', 'x')")
    try:
        done = legacy.nexus("import", "legacy", "--pg", legacy.dsn)
        assert done.returncode == 2 and "agent(s) not registered: carol" in done.stderr
    finally:
        legacy.legacy_sql("DELETE FROM episodic_memory WHERE agent_id = 'carol'")
    assert state(legacy.cfg) == before
    assert count(legacy.cfg, "SELECT count(*) FROM memory_system.imports") == 0


# -- the whole cycle -----------------------------------------------------------------------------
def test_import_validate_reimport_corrupt_rollback(legacy: Legacy) -> None:
    cfg = legacy.cfg
    # the agent already has a key the import replaces, and an episode of its own
    with psycopg.connect(agents.dsn(cfg, "aria"), autocommit=True) as aria:
        aria.execute("SELECT nexus.working_memory_set('mood', '\"before the import\"')")
        aria.execute("SELECT nexus.record_episode('written in NEXUS before the import')")
    before = state(cfg)

    done = legacy.nexus("import", "legacy", "--pg", legacy.dsn, "--redis", legacy.redis_url,
                        "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    import_id = report["import_id"]
    ep, wm = report["kinds"]["episode"], report["kinds"]["working_memory"]
    assert report["ok"] is True
    assert (ep["source"], ep["target"], ep["equal"], ep["missing"], ep["mismatched"]) == \
        (LEGACY_EPISODES, LEGACY_EPISODES, LEGACY_EPISODES, 0, 0)
    # goal x2 and mood from the table (minus the expired key), plan and note from Redis;
    # mood is in both: Redis (the live value) wins
    assert (wm["source"], wm["equal"]) == (5, 5)
    assert report["import"]["working_memory"]["superseded_by_redis"] == 1
    assert report["import"]["working_memory"]["expired_not_imported"] == 1

    with su(cfg) as conn:
        wmem = {(a, k): (v, e) for a, k, v, e in conn.execute(
            "SELECT agent_id, context_key, value, expires_at IS NOT NULL "
            "FROM nexus_memory.working_memory_contexts")}
        assert wmem[("aria", "mood")] == ("excited", False)
        assert wmem[("aria", "plan")] == ({"step1": "look", "step2": "find"}, False)
        assert wmem[("bob", "note")] == ("plain text, not JSON", True)       # a TTL in Redis
        assert wmem[("bob", "goal")] == ({"text": "sleep"}, True)
        assert ("aria", "stale") not in wmem
        # every field came over, and each imported episode waits in the queue to be embedded
        row = conn.execute(
            "SELECT e.agent_id, e.session_id, e.metadata, e.tags, e.importance, e.created_at, "
            "       e.content FROM nexus_memory.zep_episodic_memory AS e "
            "  JOIN memory_system.import_rows AS r ON r.kind = 'episode' AND r.target_id = e.id "
            " WHERE r.source_ref = 'legacy/episodic_memory/7'").fetchone()
        src = legacy.legacy_sql("SELECT agent_id, session_id, metadata, tags, importance, "
                                "created_at, content FROM episodic_memory WHERE id = 7")[0]
        assert row == src
        assert conn.execute(
            "SELECT count(*) FROM memory_system.embeddings_queue AS q "
            "  JOIN memory_system.import_rows AS r "
            "    ON r.kind = 'episode' AND r.target_id = q.source_id "
            " WHERE q.source_table = 'zep_episodic_memory' AND q.state = 'pending'"
        ).fetchone()[0] == LEGACY_EPISODES
    # the imported episodes are searchable by their agent, and only by it
    with psycopg.connect(agents.dsn(cfg, "bob"), autocommit=True) as bob:
        hits = bob.execute("SELECT count(*) FROM nexus.memory_search('cat', limit_n => 50)")
        assert hits.fetchone()[0] == 50
        # aria's episodes are about the moon, the river and the lamp: bob finds none of them
        hits = bob.execute("SELECT count(*) FROM nexus.memory_search('moon river lamp')")
        assert hits.fetchone()[0] == 0

    # a second run imports nothing twice
    after_first = state(cfg)
    again = run_legacy(legacy)
    assert again["ok"] and again["import"]["episode"]["written"] == 0
    assert again["import"]["episode"]["skipped"] == LEGACY_EPISODES
    assert again["import"]["working_memory"]["written"] == 0
    assert {k: v for k, v in state(cfg).items() if k != "queue"} == \
        {k: v for k, v in after_first.items() if k != "queue"}

    # one corrupted row is caught, named, and the command fails
    with su(cfg) as conn:
        conn.execute("UPDATE nexus_memory.zep_episodic_memory AS e SET content = 'tampered' "
                     "  FROM memory_system.import_rows AS r "
                     " WHERE r.kind = 'episode' AND r.target_id = e.id "
                     "   AND r.source_ref = 'legacy/episodic_memory/42'")
    done = legacy.nexus("import", "legacy", "--pg", legacy.dsn, "--redis", legacy.redis_url)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "VALIDATION FAILED" in done.stdout
    assert "mismatched: legacy/episodic_memory/42" in done.stdout
    assert "nexus import rollback" in done.stdout

    # rollback of the first import: the database is as it was before it, exactly
    done = legacy.nexus("import", "rollback", str(import_id))
    assert done.returncode == 0, done.stderr
    assert f"{LEGACY_EPISODES} episodes" in done.stdout
    assert "1 replaced keys restored" in done.stdout
    after = state(cfg)
    assert after == before
    again = legacy.nexus("import", "rollback", str(import_id))
    assert again.returncode == 2 and "already rolled back" in again.stderr
    listing = legacy.nexus("import", "list").stdout
    assert f"{import_id:>5}  legacy rolled_back" in listing


def test_a_bad_row_is_rejected_by_name_and_imported_once_fixed(legacy: Legacy) -> None:
    bad_id = legacy.legacy_sql("INSERT INTO episodic_memory (agent_id, content, metadata) "
                               "VALUES ('bob', 'metadata is a list', '[1, 2]') RETURNING id")[0][0]
    try:
        report = run_legacy(legacy)
        ep = report["kinds"]["episode"]
        assert report["ok"] is False
        assert ep["rejected"] == 1 and ep["missing"] == 1
        assert ep["examples"]["rejected"] == [{
            "source_ref": f"legacy/episodic_memory/{bad_id}", "sqlstate": "NX012",
            "reason": "metadata must be a JSON object, got array"}]
        # every other row of the batch is in
        assert ep["equal"] == ep["source"] - 1
        legacy.legacy_sql("UPDATE episodic_memory SET metadata = '{\"fixed\": true}' WHERE id = %s",
                          bad_id)
        fixed = run_legacy(legacy)
        assert fixed["ok"] is True and fixed["import"]["episode"]["written"] == 1
    finally:
        legacy.legacy_sql("DELETE FROM episodic_memory WHERE id = %s", bad_id)
    with target_conn(legacy.cfg) as conn:
        for i in imports.list_imports(conn):
            if i["state"] != "rolled_back":
                imports.rollback(conn, i["import_id"])


def test_adapt_keeps_odd_metadata_and_oversize_content_and_validates_them(
        legacy: Legacy, tmp_path: Path) -> None:
    """--adapt metadata,oversize: rows that would be rejected are written adapted, each counted,
    listed and compared with its source; what still does not fit is rejected by name."""
    words = " ".join(f"word{i % 5000}" for i in range(60_000))          # ~500 KB
    legacy.legacy_sql("CREATE TABLE odd (id int PRIMARY KEY, agent_id text, content text, "
                      "metadata text)")
    legacy.legacy_sql(
        "INSERT INTO odd VALUES (1, 'bob', 'a plain row', '{\"ok\": 1}'), "
        "(2, 'bob', 'metadata that is not JSON', 'source=crm; id=7 {'), "
        "(3, 'bob', 'metadata that is a JSON array', '[1, 2]'), "
        "(4, 'bob', %s, NULL), (5, 'bob', %s, '\"a JSON string\"')",
        words[:300_000], words)
    mapping = tmp_path / "odd.toml"
    mapping.write_text('[episodes]\ntable = "odd"\n[working_memory]\nenabled = false\n')
    common = ["import", "legacy", "--pg", legacy.dsn, "--mapping", str(mapping),
              "--source-name", "odd", "--json"]
    try:
        plain = legacy.nexus(*common)
        assert plain.returncode == 1
        ep = json.loads(plain.stdout)["kinds"]["episode"]
        assert (ep["equal"], ep["rejected"], ep["adapted"]) == (1, 4, 0)
        assert sorted(r["sqlstate"] for r in ep["examples"]["rejected"]) == \
            ["NX011", "NX011", "NX012", "NX012"]

        adapted = legacy.nexus(*common, "--adapt", "metadata", "--adapt", "oversize",
                               "--max-content-bytes", "400000")
        assert adapted.returncode == 1, "row 5's content is over the import's own limit too"
        report = json.loads(adapted.stdout)
        ep = report["kinds"]["episode"]
        assert report["import"]["episode"]["written"] == 3
        assert (ep["source"], ep["equal"], ep["mismatched"], ep["adapted"]) == (5, 4, 0, 3)
        assert ep["adapted_by"] == {"metadata": 2, "oversize": 1}
        assert ep["examples"]["adapted"] == [
            {"source_ref": "odd/odd/2", "adapted": ["metadata"]},
            {"source_ref": "odd/odd/3", "adapted": ["metadata"]},
            {"source_ref": "odd/odd/4", "adapted": ["oversize"]}]
        assert [(r["source_ref"], r["sqlstate"]) for r in ep["examples"]["rejected"]] == \
            [("odd/odd/5", "NX011")]
        with su(legacy.cfg) as conn:
            kept = dict(conn.execute(
                "SELECT r.source_ref, e.metadata FROM nexus_memory.zep_episodic_memory AS e "
                "  JOIN memory_system.import_rows AS r ON r.kind = 'episode' "
                "   AND r.target_id = e.id WHERE r.source_ref IN ('odd/odd/2', 'odd/odd/3')"))
            assert kept == {"odd/odd/2": {"legacy_metadata": "source=crm; id=7 {"},
                            "odd/odd/3": {"legacy_metadata": "[1, 2]"}}
            whole = conn.execute(
                "SELECT octet_length(e.content) FROM nexus_memory.zep_episodic_memory AS e "
                "  JOIN memory_system.import_rows AS r ON r.kind = 'episode' "
                "   AND r.target_id = e.id WHERE r.source_ref = 'odd/odd/4'").fetchone()[0]
            assert whole == 300_000, "the oversize content is kept whole"
            # kept metadata that no longer matches the source is a mismatch, named
            conn.execute("UPDATE nexus_memory.zep_episodic_memory AS e "
                         "   SET metadata = '{\"legacy_metadata\": \"edited\"}' "
                         "  FROM memory_system.import_rows AS r WHERE r.kind = 'episode' "
                         "   AND r.target_id = e.id AND r.source_ref = 'odd/odd/2'")
        again = json.loads(legacy.nexus(*common, "--adapt", "metadata,oversize").stdout)
        ep = again["kinds"]["episode"]
        assert ep["examples"]["mismatched"] == ["odd/odd/2"]
        assert ep["rejected"] == 0 and ep["equal"] == 4, "4 MiB by default: row 5 is in"

        # the import's limit is not an agent's: setting it in an agent's session changes nothing
        with psycopg.connect(agents.dsn(legacy.cfg, "bob"), autocommit=True) as bob:
            bob.execute("SET nexus.import_max_content_bytes = '100000000'")
            for statement in ("SELECT nexus.record_episode(%s)",
                              "INSERT INTO nexus_memory.zep_episodic_memory (content) VALUES (%s)"):
                with pytest.raises(psycopg.Error) as refused:
                    bob.execute(statement, (words[:300_000],))
                assert refused.value.sqlstate == "NX011"
        bad = legacy.nexus(*common, "--adapt", "everything")
        assert bad.returncode == 2 and "can adapt metadata, oversize" in bad.stderr
    finally:
        legacy.legacy_sql("DROP TABLE odd")
        with target_conn(legacy.cfg) as conn:
            for i in imports.list_imports(conn):
                if i["state"] != "rolled_back":
                    imports.rollback(conn, i["import_id"])


def test_mapping_file_and_rdb_file(legacy: Legacy, tmp_path: Path) -> None:
    legacy.legacy_sql("""
        CREATE TABLE memories (memory_id uuid PRIMARY KEY DEFAULT gen_random_uuid(), body text,
                               labels json, ts timestamp);
        INSERT INTO memories (body, labels, ts)
        SELECT 'mapped memory ' || g, '["a", "b"]', timestamp '2024-05-01' + g * interval '1 hour'
          FROM generate_series(1, 30) AS g""")
    mapping = tmp_path / "mapping.toml"
    mapping.write_text('[episodes]\ntable = "memories"\nid = "memory_id"\ncontent = "body"\n'
                       'tags = "labels"\ncreated_at = "ts"\n\n[working_memory]\nenabled = false\n\n'
                       '[redis]\npattern = "wm/{key}"\n')
    r = legacy.redis()
    r.select(0)
    r.set("wm/topic", '{"t": "rdb"}')
    r.save()
    rdb = legacy.server.dir / "dump.rdb"
    r.delete("wm/topic")
    try:
        done = legacy.nexus("import", "legacy", "--pg", legacy.dsn, "--mapping", str(mapping),
                            "--redis-rdb", str(rdb), "--agent", "aria", "--source-name", "old2",
                            "--json")
        assert done.returncode == 0, done.stdout + done.stderr
        report = json.loads(done.stdout)
        assert report["kinds"]["episode"]["equal"] == 30
        assert report["kinds"]["working_memory"]["equal"] == 1
        with su(legacy.cfg) as conn:
            tags, created, agent = conn.execute(
                "SELECT tags, created_at::text, agent_id FROM nexus_memory.zep_episodic_memory "
                " WHERE content = 'mapped memory 3'").fetchone()
            assert (tags, agent) == (["a", "b"], "aria")
            assert created.startswith("2024-05-01 03:00:00")
            assert conn.execute("SELECT value FROM nexus_memory.working_memory_contexts "
                                "WHERE agent_id = 'aria' AND context_key = 'topic'"
                                ).fetchone()[0] == {"t": "rdb"}
        assert legacy.nexus("import", "rollback", str(report["import_id"])).returncode == 0
    finally:
        legacy.legacy_sql("DROP TABLE memories")


# -- JSONL ---------------------------------------------------------------------------------------
def fill_agent(cfg: Config, name: str) -> None:
    with psycopg.connect(agents.dsn(cfg, name), autocommit=True) as conn:
        for i in range(40):
            conn.execute("SELECT nexus.record_episode(%s, action_type => 'message', session => %s, "
                         "metadata => %s::jsonb, tags => %s::text[], importance => %s::real)",
                         (f"episode {i} with a tab\tand a quote \" and ünïcode", f"s{i % 3}",
                          json.dumps({"i": i, "nested": {"x": [1, 2]}}), [f"t{i % 4}"], i / 40))
        eid = conn.execute("SELECT max(id) FROM nexus_memory.zep_episodic_memory").fetchone()[0]
        conn.execute("SELECT nexus.remember_fact('water boils at 100 C', "
                     "source_episode_id => %s)", (eid,))
        conn.execute("SELECT nexus.remember_fact('the sky is blue', tags => ARRAY['sky'])")
        # facts that changed (docs/facts.md): a key's history with a fact learned late and a value
        # that came back, an invalidation, a supersession
        for text, since in (("lives in Austin", "2024-01-01"), ("lives in Denver", "2024-06-01"),
                            ("lives in Chicago", "2024-03-01"), ("lives in Austin", None)):
            conn.execute("SELECT nexus.remember_fact(%s, key => 'user.city', valid_from => %s)",
                         (text, since))
        job = conn.execute("SELECT nexus.remember_fact('works at Acme', key => 'user.job')")
        conn.execute("SELECT nexus.invalidate_fact(%s)", job.fetchone())
        tea = conn.execute("SELECT nexus.remember_fact('likes tea')").fetchone()
        conn.execute("SELECT nexus.remember_fact('likes coffee', supersedes => %s)", tea)
        conn.execute("SELECT nexus.working_memory_set('goal', '{\"g\": 1}')")
        conn.execute("SELECT nexus.working_memory_set('ttl', '2', ttl => interval '1 day')")
        conn.execute("SELECT nexus.save_checkpoint('{\"step\": 1}')")
        conn.execute("SELECT nexus.save_checkpoint('{\"step\": 2}', name => 'other')")


def test_jsonl_round_trip_is_identical(stack: Stack, legacy: Legacy, tmp_path: Path) -> None:
    src = legacy.cfg
    with su(src) as conn:
        agents.add(conn, src, "carla", "", None)
    fill_agent(src, "carla")
    first = tmp_path / "carla.jsonl"
    done = legacy.nexus("export", "--agent", "carla", "--out", str(first))
    assert done.returncode == 0, done.stderr
    assert "exported 40 episode, 9 semantic, 2 working_memory, 2 checkpoint" in done.stderr

    other = clone_template(stack, "nexus_import_rt")
    try:
        with su(other) as conn:
            agents.add(conn, other, "carla", "", None)
        with target_conn(other) as conn:
            report = imports.import_jsonl(conn, first)
        assert report["ok"], report
        assert {k: v["equal"] for k, v in report["kinds"].items()} == \
            {"episode": 40, "semantic": 9, "working_memory": 2, "checkpoint": 2}
        second = tmp_path / "again.jsonl"
        with target_conn(other) as conn, second.open("w") as out:
            imports.export_agent(conn, "carla", out)
        assert second.read_bytes() == first.read_bytes()
        # keys, valid times and chains came along: the same histories, linked by ids of their own
        histories = []
        for cfg in (src, other):
            with psycopg.connect(agents.dsn(cfg, "carla")) as conn:
                histories.append([conn.execute(
                    "SELECT h.content, h.valid_from, h.valid_to, h.ended_by, s.content "
                    "  FROM nexus.fact_history(key => %s) AS h"
                    "  LEFT JOIN nexus_memory.semantic_memories AS s ON s.id = h.superseded_by",
                    (key,)).fetchall() for key in ("user.city", "user.job")])
                histories[-1].append(conn.execute(
                    "SELECT content, ended_by FROM nexus.fact_history("
                    "  (SELECT id FROM nexus_memory.semantic_memories WHERE content = 'likes tea'))"
                ).fetchall())
        assert histories[0] == histories[1]
        assert [r[0] for r in histories[1][0]] == ["lives in Austin", "lives in Chicago",
                                                   "lives in Denver", "lives in Austin"]
        assert histories[1][1][0][3] == "invalidated"
        assert histories[1][2] == [("likes tea", "superseded"), ("likes coffee", None)]
        # the fact keeps its link to the episode it came from
        with su(other) as conn:
            origin = conn.execute(
                "SELECT e.content FROM nexus_memory.semantic_memories AS m "
                "  JOIN nexus_memory.zep_episodic_memory AS e ON e.id = m.source_episode_id "
                " WHERE m.content = 'water boils at 100 C'").fetchone()[0]
            assert origin.startswith("episode 39")
        # again: nothing new; and the same file into the database it came from adds nothing
        before = state(other)
        with target_conn(other) as conn:
            again = imports.import_jsonl(conn, first)
        assert again["ok"] and all(r["written"] == 0 for r in again["import"].values())
        # a fact whose validity is not the file's is caught, though its content is
        coffee = ("UPDATE nexus_memory.semantic_memories SET valid_from = valid_from + %s "
                  "WHERE agent_id = 'carla' AND content = 'likes coffee'")
        with su(other) as conn:
            conn.execute(coffee, (timedelta(days=-1),))
        with target_conn(other) as conn:
            tampered = imports.import_jsonl(conn, first)
            imports.rollback(conn, tampered["import_id"])
        with su(other) as conn:
            conn.execute(coffee, (timedelta(days=1),))
        facts = tampered["kinds"]["semantic"]
        assert not tampered["ok"] and (facts["equal"], facts["mismatched"]) == (8, 1)
        before_src = state(src)
        with target_conn(src) as conn:
            home = imports.import_jsonl(conn, first)
        assert home["ok"] and home["kinds"]["episode"]["equal"] == 40
        assert {k: v for k, v in state(src).items() if k != "ledger"} == \
            {k: v for k, v in before_src.items() if k != "ledger"}
        # rolling that back deletes nothing it found already there
        with target_conn(src) as conn:
            result = imports.rollback(conn, home["import_id"])
        assert result["episodes_deleted"] == 0 and result["facts_deleted"] == 0
        assert state(src) == before_src | {"ledger": state(src)["ledger"]}
        # rolling back the import into the other database empties it again
        with target_conn(other) as conn:
            imports.rollback(conn, report["import_id"])
        left = state(other)
        assert not any(left[k] for k in ("episodes", "facts", "working_memory", "checkpoints",
                                         "queue", "postings", "stats", "ledger")), left
        assert before["episodes"]
    finally:
        drop_database(stack, other.database)


def test_jsonl_version_1_files_still_import(legacy: Legacy, tmp_path: Path) -> None:
    """An export of before facts had a validity: its facts are known by their content (one that
    holds is adopted) and hold from their created_at."""
    with psycopg.connect(agents.dsn(legacy.cfg, "bob"), autocommit=True) as conn:
        held = conn.execute("SELECT nexus.remember_fact('v1 fact one')").fetchone()[0]
    old = tmp_path / "v1.jsonl"
    old.write_text('{"type": "nexus-export", "version": 1, "agent": "bob"}\n'
                   '{"type": "semantic", "content": "v1 fact one", "metadata": {}, "tags": [], '
                   '"importance": 0.5, "created_at": "2025-02-01T00:00:00+00:00", '
                   '"updated_at": "2025-02-02T00:00:00+00:00"}\n'
                   '{"type": "semantic", "content": "v1 fact two", '
                   '"created_at": "2025-03-01T00:00:00+00:00"}\n')
    with target_conn(legacy.cfg) as conn:
        report = imports.import_jsonl(conn, old)
    assert report["ok"] and report["kinds"]["semantic"]["equal"] == 2, report
    with su(legacy.cfg) as conn:
        rows = conn.execute(
            "SELECT id, content, valid_from = created_at, fact_key, valid_to "
            "  FROM nexus_memory.semantic_memories "
            " WHERE agent_id = 'bob' AND content LIKE 'v1 fact%' ORDER BY content").fetchall()
    assert [r[0] for r in rows][:1] == [held]
    assert [r[1:] for r in rows] == [("v1 fact one", True, None, None),
                                     ("v1 fact two", True, None, None)]
    with target_conn(legacy.cfg) as conn:
        undone = imports.rollback(conn, report["import_id"])
    assert undone["facts_deleted"] == 1
    assert count(legacy.cfg, "SELECT count(*) FROM nexus_memory.semantic_memories "
                             "WHERE agent_id = 'bob' AND content LIKE 'v1 fact%%'") == 1


def test_jsonl_errors(legacy: Legacy, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"type": "nexus-export", "version": 1, "agent": "aria"}\n'
                   '{"type": "episode", "uuid": "00000000-0000-0000-0000-000000000001", '
                   '"content": "ok"}\nnot json\n')
    done = legacy.nexus("import", "jsonl", str(bad))
    assert done.returncode == 2 and "bad.jsonl:3: not JSON" in done.stderr
    notours = tmp_path / "other.jsonl"
    notours.write_text('{"hello": 1}\n')
    done = legacy.nexus("import", "jsonl", str(notours))
    assert done.returncode == 2 and "is not a NEXUS export" in done.stderr
    assert count(legacy.cfg, "SELECT count(*) FROM memory_system.imports WHERE format = 'jsonl' "
                             "AND source IN ('bad.jsonl', 'other.jsonl')") == 0


def test_wait_reports_everything_embedded(legacy: Legacy) -> None:
    """--wait with the real worker and model: the report shows every imported episode embedded."""
    cfg = legacy.cfg
    legacy.legacy_sql("CREATE TABLE small AS SELECT * FROM episodic_memory WHERE id <= 25")
    mapping = Path(tempfile.mkdtemp()) / "small.toml"
    mapping.write_text('[episodes]\ntable = "small"\n[working_memory]\nenabled = false\n')
    # --wait waits for the whole queue: the earlier tests' imports (thousands of episodes no test
    # reads a vector of) would be embedded first
    with su(cfg) as conn:
        conn.execute("DELETE FROM memory_system.embeddings_queue WHERE state = 'pending'")
    # the worker loads its model while the import runs: --wait waits for it
    worker = subprocess.Popen([sys.executable, "-m", "sidecar"], env=worker_env(cfg, free_port()),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        done = legacy.nexus("import", "legacy", "--pg", legacy.dsn, "--mapping", str(mapping),
                            "--source-name", "small", "--wait", "600", "--json")
        assert worker.poll() is None, worker.stdout.read()
        assert done.returncode == 0, done.stdout + done.stderr
        ep = json.loads(done.stdout)["kinds"]["episode"]
        assert ep["equal"] == 25 and ep["embedded"] == 25
    finally:
        stop(worker)
        legacy.legacy_sql("DROP TABLE small")


def test_a_killed_import_is_finished_by_running_it_again(legacy: Legacy, tmp_path: Path) -> None:
    """kill -9 in the middle of an import, a batch in flight: what committed stays, nothing is
    written twice, and the same command finishes the job; the interrupted import shows as such and
    can be rolled back."""
    cfg = legacy.cfg
    legacy.legacy_sql("CREATE TABLE crash AS SELECT * FROM episodic_memory")
    total = legacy.legacy_sql("SELECT count(*) FROM crash")[0][0]
    # batches of 200 by one writer, in id order: the first row of the fourth batch is held by
    # another session's uncommitted ledger entry for it (the ledger's unique key), so the import
    # is killed with exactly three batches committed and the fourth waiting in its transaction
    held_id, held_agent = legacy.legacy_sql("SELECT id, agent_id FROM crash ORDER BY id "
                                            "OFFSET 600 LIMIT 1")[0]
    mapping = tmp_path / "crash.toml"
    mapping.write_text('[episodes]\ntable = "crash"\n[working_memory]\nenabled = false\n')
    args = ["import", "legacy", "--pg", legacy.dsn, "--mapping", str(mapping),
            "--source-name", "crash", "--batch", "200", "--jobs", "1"]
    before = count(cfg, "SELECT count(*) FROM nexus_memory.zep_episodic_memory")
    with su(cfg) as holder:
        holder.execute("BEGIN")
        held = holder.execute("INSERT INTO memory_system.imports (format, source) "
                              "VALUES ('legacy', 'the test') RETURNING import_id").fetchone()[0]
        holder.execute("INSERT INTO memory_system.import_rows (import_id, kind, agent_id, "
                       "source_ref, target_id, source_sha256) VALUES (%s, 'episode', %s, %s, 0, "
                       "'\\x00')", (held, held_agent, f"crash/crash/{held_id}"))
        proc = subprocess.Popen([NEXUS, *args], env=worker_env(cfg, free_port()),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            waiting = wait_for(lambda: proc.poll() is not None or count(
                cfg, "SELECT coalesce(min(pid), 0) FROM pg_stat_activity WHERE datname = %s "
                     "AND wait_event_type = 'Lock' AND query LIKE '%%import_batch%%'",
                cfg.database), timeout=300, interval=0.1)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.communicate()
        holder.execute("ROLLBACK")
    assert proc.returncode == -signal.SIGKILL, "the import ended before it was killed"
    # the batch in flight ends with its session, which the kill closed
    wait_for(lambda: not count(cfg, "SELECT count(*) FROM pg_stat_activity WHERE pid = %s",
                               waiting), interval=0.1)
    first = count(cfg, "SELECT max(import_id) FROM memory_system.imports")
    written = count(cfg, "SELECT count(*) FROM memory_system.import_rows WHERE import_id = %s",
                    first)
    assert written == 600 < total
    # every committed batch is whole: its rows and their ledger entries, nothing else
    assert count(cfg, "SELECT count(*) FROM nexus_memory.zep_episodic_memory") == before + written
    listing = legacy.nexus("import", "list").stdout
    assert f"{first:>5}  legacy interrupted" in listing, listing

    done = legacy.nexus(*args, "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["kinds"]["episode"]["equal"] == total
    assert report["import"]["episode"] == {"staged": total, "written": total - written,
                                           "rejected": 0, "skipped": written}
    assert count(cfg, "SELECT count(*) FROM nexus_memory.zep_episodic_memory") == before + total
    # the two imports undo together to the state before the first
    for import_id in (report["import_id"], first):
        assert legacy.nexus("import", "rollback", str(import_id)).returncode == 0
    assert count(cfg, "SELECT count(*) FROM nexus_memory.zep_episodic_memory") == before
    legacy.legacy_sql("DROP TABLE crash")


def test_create_agents_registers_missing_agents(legacy: Legacy, tmp_path: Path) -> None:
    legacy.legacy_sql("CREATE TABLE newcomer (id int, who text, body text)")
    legacy.legacy_sql("INSERT INTO newcomer VALUES (1, 'dora', 'dora remembers the harbour')")
    mapping = tmp_path / "newcomer.toml"
    mapping.write_text('[episodes]\ntable = "newcomer"\nagent_id = "who"\ncontent = "body"\n'
                       '[working_memory]\nenabled = false\n')
    args = ["import", "legacy", "--pg", legacy.dsn, "--mapping", str(mapping),
            "--source-name", "newcomer"]
    try:
        refused = legacy.nexus(*args)
        assert refused.returncode == 2 and "agent(s) not registered: dora" in refused.stderr
        done = legacy.nexus(*args, "--create-agents")
        assert done.returncode == 0, done.stdout + done.stderr
        assert "created agent dora" in done.stderr
        # dora logs in with her own role and finds her memory
        dsn = legacy.nexus("agent", "dsn", "dora").stdout.strip()
        with psycopg.connect(dsn, autocommit=True) as dora:
            assert dora.execute("SELECT count(*) FROM nexus.memory_search('harbour')"
                                ).fetchone()[0] == 1
    finally:
        legacy.legacy_sql("DROP TABLE newcomer")
