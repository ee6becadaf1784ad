"""nexus backup --keep N: backup.prune keeps the newest N backups (by their manifest's time) and
removes the others, and leaves alone what is not a backup."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nexus import backup


def _backup(root: Path, name: str, created_at: str) -> Path:
    path = root / name
    path.mkdir()
    (path / backup.MANIFEST).write_text(json.dumps({"created_at": created_at}))
    (path / backup.PG_FILE).write_bytes(b"dump")
    return path


def test_prune_keeps_the_newest(tmp_path: Path) -> None:
    # names sort otherwise than times: the manifest's time decides
    b1 = _backup(tmp_path, "z-oldest", "2026-01-01T00:00:00+00:00")
    b2 = _backup(tmp_path, "a-middle", "2026-02-01T00:00:00+00:00")
    b3 = _backup(tmp_path, "m-newest", "2026-03-01T00:00:00+00:00")
    (tmp_path / "notes").mkdir()
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / backup.MANIFEST).write_text("not json")
    assert backup.prune(tmp_path, 2) == [b1]
    assert not b1.exists() and b2.exists() and b3.exists()
    assert (tmp_path / "notes").exists() and (tmp_path / "broken").exists()
    assert backup.prune(tmp_path, 1) == [b2]
    assert backup.prune(tmp_path, 1) == []
    with pytest.raises(backup.BackupError):
        backup.prune(tmp_path, 0)
