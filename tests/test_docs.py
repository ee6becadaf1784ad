"""The docs match the code: every SQLSTATE the SQL raises is documented, every API function has a
comment, and the README's tour calls only functions that exist."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _sql_sources() -> str:
    files = [*ROOT.glob("db/functions/**/*.sql"), *ROOT.glob("migrations/*.sql")]
    return "\n".join(p.read_text() for p in files)


def test_every_raised_sqlstate_is_documented() -> None:
    raised = set(re.findall(r"ERRCODE\s*=\s*'(NX\d{3})'", _sql_sources()))
    documented = set(re.findall(r"\| `(NX\d{3})` \|", (ROOT / "docs/errors.md").read_text()))
    assert raised, "no SQLSTATE found: the pattern is wrong"
    assert raised <= documented, f"raised but not in docs/errors.md: {sorted(raised - documented)}"


def test_readme_tour_names_existing_functions() -> None:
    readme = (ROOT / "README.md").read_text()
    called = set(re.findall(r"nexus\.([a-z_]+)\(", readme))
    defined = set(re.findall(r"FUNCTION nexus\.([a-z_]+)\(", _sql_sources()))
    assert {"record_episode", "memory_search", "working_memory_get"} <= called
    assert called <= defined, f"README calls undefined functions: {sorted(called - defined)}"
