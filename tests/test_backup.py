"""nexus backup / restore: back up, wipe, restore, and every row is identical; a damaged backup
is refused before anything is touched."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import psycopg
import pytest
import redis

from conftest import NEXUS, own_stack_env
from nexus import config, secrets
from nexus.config import SUPERUSER

FAKE_VECTOR = "[" + ",".join(["0.5"] * 384) + "]"


@pytest.fixture(scope="module")
def env():
    with own_stack_env("nexus-backup-", WORKER_REPLICAS="0") as env:
        up = subprocess.run([NEXUS, "up", "--detach"], env=env, capture_output=True, text=True)
        assert up.returncode == 0, up.stderr
        yield env


def nexus(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([NEXUS, *args], env=env, capture_output=True, text=True, timeout=300)


def superuser(env: dict[str, str]) -> psycopg.Connection:
    cfg = config.load(env=env)
    return psycopg.connect(host=cfg.pg_host, port=cfg.pg_port, dbname=cfg.database,
                           user=SUPERUSER, password=secrets.password(cfg, SUPERUSER),
                           autocommit=True)


def redis_client(env: dict[str, str]) -> redis.Redis:
    cfg = config.load(env=env)
    return redis.Redis(port=cfg.redis_port, password=secrets.password(cfg, "redis"))


TABLES = ["nexus_memory.zep_episodic_memory", "nexus_memory.semantic_memories",
          "nexus_memory.working_memory_contexts", "nexus_memory.episode_embeddings",
          "consciousness.consciousness_checkpoints", "consciousness.distributed_consensus",
          "memory_system.embeddings_queue", "memory_system.agents"]


def snapshot(env: dict[str, str]) -> dict[str, tuple[int, str]]:
    with superuser(env) as conn:
        return {t: conn.execute(f"SELECT count(*), md5(coalesce(string_agg(x::text, '|' "
                                f"ORDER BY x::text), '')) FROM {t} AS x").fetchone()
                for t in TABLES}


def test_backup_wipe_restore_is_identical(env) -> None:
    dsn = nexus(env, "agent", "add", "keeper").stdout.strip()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO nexus_memory.zep_episodic_memory (content, tags, metadata) "
                     "SELECT 'episode ' || g, '{a,b}', jsonb_build_object('n', g) "
                     "FROM generate_series(1, 300) AS g")
        conn.execute("INSERT INTO nexus_memory.semantic_memories (content) VALUES ('a fact')")
        conn.execute("INSERT INTO nexus_memory.working_memory_contexts (context_key, value) "
                     "VALUES ('goal', '{\"g\": 1}')")
        conn.execute("INSERT INTO consciousness.consciousness_checkpoints (state) "
                     "VALUES ('{\"mood\": \"calm\"}')")
        conn.execute("INSERT INTO consciousness.distributed_consensus (consensus_key, value) "
                     "VALUES ('leader', '\"keeper\"')")
    with superuser(env) as conn:
        items = conn.execute("SELECT item_id, content_sha256 FROM "
                             "memory_system.claim_batch('w', 100)").fetchall()
        conn.execute("SELECT * FROM memory_system.complete_batch('w', %s, %s::vector[], %s, %s)",
                     ([i[0] for i in items], [FAKE_VECTOR] * len(items), [i[1] for i in items],
                      "sentence-transformers/all-MiniLM-L6-v2"))
    redis_client(env).set("nexus:test:key", b"cached value")
    before = snapshot(env)
    assert before["nexus_memory.episode_embeddings"][0] == 100

    out = Path(env["NEXUS_HOME"]) / "backups" / "one"
    made = nexus(env, "backup", "--out", str(out))
    assert made.returncode == 0, made.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["row_counts"]["nexus_memory.zep_episodic_memory"] == 300
    assert set(manifest["files"]) == {"postgresql.dump", "redis.rdb"}

    damaged = Path(env["NEXUS_HOME"]).parent / "damaged"  # not among the backups
    shutil.copytree(out, damaged)
    dump = damaged / "postgresql.dump"
    data = bytearray(dump.read_bytes())
    data[len(data) // 2] ^= 0xFF
    dump.write_bytes(bytes(data))
    refused = nexus(env, "restore", str(damaged), "--yes")
    assert refused.returncode == 2 and "checksum" in refused.stderr
    assert snapshot(env) == before, "a refused restore touches nothing"

    with superuser(env) as conn:
        conn.execute("DELETE FROM nexus_memory.episode_embeddings")
        conn.execute("DELETE FROM memory_system.embeddings_queue")
        conn.execute("DELETE FROM nexus_memory.zep_episodic_memory WHERE id % 2 = 0")
        conn.execute("DELETE FROM nexus_memory.working_memory_contexts")
    redis_client(env).flushall()
    assert snapshot(env) != before

    unconfirmed = nexus(env, "restore", str(out))
    assert unconfirmed.returncode == 2 and "--yes" in unconfirmed.stderr
    restored = nexus(env, "restore", str(out), "--yes")
    assert restored.returncode == 0, restored.stderr
    assert snapshot(env) == before, "every row is identical after the restore"
    assert redis_client(env).get("nexus:test:key") == b"cached value"
    doctor = nexus(env, "doctor")
    assert doctor.returncode == 1, doctor.stdout
    assert "FAIL  every episode embedded" in doctor.stdout and "100 of 300" in doctor.stdout
    assert "FAIL  health green" in doctor.stdout, "no worker runs in this stack"
    assert "PASS  last backup restorable" in doctor.stdout
    assert "PASS  schema at the latest migration" in doctor.stdout
    dsn = nexus(env, "agent", "dsn", "keeper").stdout.strip()
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT count(*) FROM nexus_memory.zep_episodic_memory"
                            ).fetchone()[0] == 300, "the agent logs in and sees its rows again"
