"""The loader: frozen migrations, idempotent re-runs, any PostgreSQL 16+ with pgvector."""

from __future__ import annotations

import hashlib
import os
import subprocess

import pytest
from psycopg import sql

from conftest import NEXUS, connect_as, drop_database, schema_dump, superuser_password
from nexus import migrate
from nexus.config import SUPERUSER, Config
from nexus.stack import Stack


def test_landed_migrations_never_change() -> None:
    recorded = {}
    for line in (migrate.MIGRATIONS_DIR / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split()
        recorded[name] = digest
    files = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in migrate.migration_files()}
    assert set(files) >= set(recorded), "a landed migration file was deleted"
    changed = [name for name, digest in recorded.items() if files[name] != digest]
    assert not changed, f"landed migrations changed (write a new migration instead): {changed}"
    unrecorded = sorted(set(files) - set(recorded))
    assert not unrecorded, f"record new migrations with `make freeze-migrations`: {unrecorded}"


def test_migrations_hold_only_stateful_ddl() -> None:
    for path in migrate.migration_files():
        text = path.read_text().upper()
        for word in ("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", "CREATE POLICY", "GRANT "):
            assert word not in text, f"{path.name}: {word.strip()} belongs in db/ (repeatable)"


def test_applying_twice_is_a_no_op(stack: Stack, fresh_db: Config) -> None:
    before = schema_dump(stack, fresh_db)
    result = migrate.migrate({"host": fresh_db.pg_host, "port": str(fresh_db.pg_port),
                              "dbname": fresh_db.database, "user": SUPERUSER,
                              "password": superuser_password(stack)})
    assert result.applied == []
    assert result.repeatables == len(migrate.repeatable_files())
    assert schema_dump(stack, fresh_db) == before


def test_migrate_cli_on_an_empty_database(stack: Stack) -> None:
    name = "nexus_empty_db"
    with stack.superuser_conn("postgres", autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        dsn = (f"host={stack.cfg.pg_host} port={stack.cfg.pg_port} dbname={name} "
               f"user={SUPERUSER} password={superuser_password(stack)}")
        env = {"PATH": "/usr/bin:/bin", "NEXUS_HOME": str(stack.cfg.home)}
        first = subprocess.run([str(NEXUS), "migrate", "--dsn", dsn], capture_output=True,
                               text=True, env=env)
        assert first.returncode == 0, first.stderr
        ids = [p.stem for p in migrate.migration_files()]
        assert f"migrations applied: {', '.join(ids)}" in first.stdout
        assert superuser_password(stack) not in first.stdout + first.stderr
        # no password in the DSN: it comes from the owner's secret file, Docker secrets style
        bare = dsn.replace(f" password={superuser_password(stack)}", "")
        env_file = dict(env, NEXUS_SUPERUSER_PASSWORD_FILE=str(stack.cfg.secret_file(SUPERUSER)))
        second = subprocess.run([str(NEXUS), "migrate", "--dsn", bare], capture_output=True,
                                text=True, env=env_file)
        assert second.returncode == 0, second.stderr
        assert "none (already up to date)" in second.stdout
        # it says what it did: the logins it enabled are those with a secret file, no more
        assert "login enabled from secret files: nexus_app, nexus_worker, nexus_ro" in second.stdout
        lone = dict(env_file, NEXUS_HOME=str(stack.cfg.home / "no-such-home"))
        third = subprocess.run([str(NEXUS), "migrate", "--dsn", bare], capture_output=True,
                               text=True, env=lone)
        assert third.returncode == 0, third.stderr
        assert "login enabled for no role" in third.stdout
        cfg = Config(home=stack.cfg.home, pg_host=stack.cfg.pg_host, pg_port=stack.cfg.pg_port,
                     database=name)
        with connect_as(cfg, SUPERUSER, superuser_password(stack)) as conn:
            tables = {r[0] for r in conn.execute(
                "SELECT table_schema || '.' || table_name FROM information_schema.tables "
                "WHERE table_schema IN ('nexus_memory', 'consciousness')").fetchall()}
            assert "nexus_memory.zep_episodic_memory" in tables
            in_public = conn.execute(
                "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = 'public' AND c.relkind = 'r'").fetchone()[0]
            assert in_public == 0, "yoyo's bookkeeping must not land in public"
    finally:
        drop_database(stack, name)


def test_a_database_migrated_by_a_newer_release_is_refused(stack: Stack, fresh_db: Config) -> None:
    with connect_as(fresh_db, SUPERUSER, superuser_password(stack), autocommit=True) as conn:
        conn.execute("INSERT INTO nexus_migrations._yoyo_migration "
                     "(migration_hash, migration_id, applied_at_utc) "
                     "VALUES (%s, '0999_from_a_newer_release', now())",
                     (hashlib.sha256(b"0999_from_a_newer_release").hexdigest(),))
        # what the newer release's repeatable files made: an older loader must not rewrite it
        conn.execute("COMMENT ON FUNCTION nexus.current_agent() IS 'a newer release'")
    params = {"host": fresh_db.pg_host, "port": str(fresh_db.pg_port),
              "dbname": fresh_db.database, "user": SUPERUSER,
              "password": superuser_password(stack)}
    with pytest.raises(migrate.MigrationError, match="0999_from_a_newer_release"):
        migrate.migrate(params)
    # the CLI says so, whether it migrates a DSN or the local stack (as `nexus up` does)
    dsn = " ".join(f"{k}={v}" for k, v in params.items())
    env = {"PATH": os.environ["PATH"], "NEXUS_HOME": str(stack.cfg.home),
           "NEXUS_PG_PORT": str(stack.cfg.pg_port), "NEXUS_DB": fresh_db.database}
    for args in (["migrate", "--dsn", dsn], ["migrate"]):
        run = subprocess.run([str(NEXUS), *args], capture_output=True, text=True, env=env)
        assert run.returncode == 2, run.stdout + run.stderr
        assert run.stderr.startswith("nexus: error: the database has migrations this code does "
                                     "not know: 0999_from_a_newer_release"), run.stderr
        assert "migrations applied" not in run.stdout
    with connect_as(fresh_db, SUPERUSER, superuser_password(stack)) as conn:
        comment = conn.execute("SELECT obj_description('nexus.current_agent()'::regprocedure)"
                               ).fetchone()
        assert comment == ("a newer release",)
