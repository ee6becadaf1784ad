"""Backups of the local stack: a pg_dump (custom format), a Redis snapshot, and a manifest
with the SHA-256 of each file and the row count of each table. Restore checks every checksum
before it touches anything."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

from psycopg import sql

from nexus import secrets
from nexus.config import SUPERUSER
from nexus.stack import Stack

PG_FILE = "postgresql.dump"
REDIS_FILE = "redis.rdb"
MANIFEST = "manifest.json"
COUNTED_SCHEMAS = ("nexus_memory", "memory_system", "consciousness")


class BackupError(RuntimeError):
    pass


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _pg_env(stack: Stack) -> dict[str, str]:
    return {**os.environ, "PGPASSWORD": secrets.password(stack.cfg, SUPERUSER)}


def _pg_args(stack: Stack) -> list[str]:
    cfg = stack.cfg
    return ["-h", cfg.pg_host, "-p", str(cfg.pg_port), "-U", SUPERUSER]


def row_counts(stack: Stack) -> dict[str, int]:
    counts = {}
    with stack.superuser_conn(autocommit=True) as conn:
        # keyed by the quoted name, as the manifests of earlier backups are
        tables = conn.execute(
            "SELECT format('%%I.%%I', schemaname, tablename), schemaname, tablename FROM pg_tables "
            "WHERE schemaname = ANY (%s) ORDER BY 1", (list(COUNTED_SCHEMAS),)).fetchall()
        for key, schema, table in tables:
            query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, table))
            counts[key] = conn.execute(query).fetchone()[0]
    return counts


def _redis_snapshot(stack: Stack, dest: Path) -> None:
    """BGSAVE, then wait until Redis counts one more successful save (LASTSAVE has a resolution of
    a second, so a save within the second the server started would go unseen)."""
    client = stack.redis.client()
    before = client.info("persistence")["rdb_saves"]
    client.bgsave()
    deadline = time.monotonic() + 120
    while True:
        info = client.info("persistence")
        if info["rdb_saves"] > before and not info["rdb_bgsave_in_progress"]:
            break
        if info["rdb_last_bgsave_status"] != "ok" and not info["rdb_bgsave_in_progress"]:
            raise BackupError("Redis could not write its snapshot (see its log)")
        if time.monotonic() > deadline:
            raise BackupError("Redis did not finish its snapshot within 120 s")
        time.sleep(0.1)
    shutil.copy2(stack.redis.dir / "dump.rdb", dest)


def backup(stack: Stack, out: Path) -> dict:
    """Write a backup of the running stack into `out` (which must not exist)."""
    if out.exists():
        raise BackupError(f"{out} exists: choose a new directory")
    out.mkdir(parents=True)
    os.chmod(out, 0o700)
    result = subprocess.run(
        [stack.pg.bin("pg_dump"), *_pg_args(stack), "-d", stack.cfg.database, "-Fc",
         "-f", str(out / PG_FILE)], env=_pg_env(stack), capture_output=True, text=True)
    if result.returncode != 0:
        raise BackupError(f"pg_dump failed: {result.stderr.strip()}")
    _redis_snapshot(stack, out / REDIS_FILE)
    with stack.superuser_conn(autocommit=True) as conn:
        migrations = [r[0] for r in conn.execute(
            "SELECT migration_id FROM nexus_migrations._yoyo_migration ORDER BY applied_at_utc"
        ).fetchall()]
    manifest = {
        "created_at": datetime.now(UTC).isoformat(),
        "database": stack.cfg.database,
        "migrations": migrations,
        "row_counts": row_counts(stack),
        "files": {name: {"sha256": sha256_file(out / name), "bytes": (out / name).stat().st_size}
                  for name in (PG_FILE, REDIS_FILE)},
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def prune(directory: Path, keep: int) -> list[Path]:
    """Remove all but the newest `keep` backups in `directory` (the subdirectories holding a
    manifest, by its created_at; anything else is left alone). Returns those removed. An older
    backup still holds every memory forgotten after it was taken (docs/privacy.md)."""
    if keep < 1:
        raise BackupError(f"--keep must be at least 1, got {keep}")
    found = []
    for manifest in directory.glob(f"*/{MANIFEST}"):
        try:
            found.append((json.loads(manifest.read_text())["created_at"], manifest.parent))
        except (OSError, ValueError, KeyError):
            continue  # not a backup this command wrote: not ours to remove
    old = [path for _, path in sorted(found, reverse=True)[keep:]]
    for path in old:
        shutil.rmtree(path)
    return old


def verify(directory: Path) -> dict:
    """The manifest of a backup whose files are all present and intact; BackupError otherwise."""
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
    except (FileNotFoundError, json.JSONDecodeError) as exc:
        raise BackupError(f"{directory}: no readable {MANIFEST} ({exc})") from None
    for name, expected in manifest["files"].items():
        path = directory / name
        if not path.exists():
            raise BackupError(f"{path} is missing")
        if sha256_file(path) != expected["sha256"]:
            raise BackupError(f"{path} does not match its checksum in the manifest: "
                              "the backup is damaged, nothing was restored")
    return manifest


def restore(stack: Stack, directory: Path) -> dict:
    """Replace the stack's database and Redis data with the backup in `directory`."""
    manifest = verify(directory)
    with stack.maintenance():
        stack.stop_worker()
        with stack.superuser_conn("postgres", autocommit=True) as conn:
            name = sql.Identifier(stack.cfg.database)
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
            conn.execute(sql.SQL("CREATE DATABASE {}").format(name))
        result = subprocess.run(
            [stack.pg.bin("pg_restore"), *_pg_args(stack), "-d", stack.cfg.database,
             "--exit-on-error", str(directory / PG_FILE)],
            env=_pg_env(stack), capture_output=True, text=True)
        if result.returncode != 0:
            raise BackupError(f"pg_restore failed: {result.stderr.strip()}")
        stack.redis.stop()
        shutil.copy2(directory / REDIS_FILE, stack.redis.dir / "dump.rdb")
        stack.redis.start()
        counts = row_counts(stack)
        if counts != manifest["row_counts"]:
            raise BackupError(f"row counts after restore differ from the backup's: {counts}")
        stack.start_worker()
    return manifest
