"""The docs match the code, where that can be checked without a server: every SQLSTATE the code
raises is documented (and every documented one is raised), every `nexus` command and option the
docs show exists in the parser, every environment variable they name is read, every SQL name they
mention exists, and tables that mirror the code (search parameters, the Citus table, the MCP tools,
the /embed cache key) list what the code has. The README's tour runs in test_readme_tour.py."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from nexus import cli, config

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PYTHON_DIRS = ("nexus", "sidecar", "bench")
SCHEMAS = ("nexus", "memory_system", "nexus_memory", "consciousness")


def _sql_sources() -> str:
    files = [*ROOT.glob("db/**/*.sql"), *ROOT.glob("migrations/*.sql")]
    return "\n".join(p.read_text() for p in sorted(files)
                     if "tests" not in p.relative_to(ROOT).parts)


def _python_sources() -> str:
    files = [p for d in PYTHON_DIRS for p in (ROOT / d).rglob("*.py")]
    return "\n".join(p.read_text() for p in sorted(files))


def _doc_text() -> str:
    return "\n".join(p.read_text() for p in DOCS)


def _section(text: str, heading: str) -> str:
    """The text of the markdown section `heading` (up to the next heading of its level or above)."""
    level = heading.split(" ", 1)[0]
    start = text.index(heading + "\n")
    rest = text[start + len(heading) + 1:]
    end = re.search(rf"^#{{1,{len(level)}}} ", rest, re.M)
    return rest[:end.start()] if end else rest


# -- error codes --------------------------------------------------------------------------------
def _documented_codes() -> set[str]:
    return set(re.findall(r"\| `(NX\d{3})` \|", (ROOT / "docs/errors.md").read_text()))


def test_every_raised_sqlstate_is_documented() -> None:
    raised = set(re.findall(r"ERRCODE\s*=\s*'(NX\d{3})'", _sql_sources()))
    assert raised, "no SQLSTATE found: the pattern is wrong"
    # codes the doors raise themselves (nexus mcp): module constants `NAME = "NX0nn"`
    raised |= set(re.findall(r'^[A-Z_]+ = "(NX\d{3})"', _python_sources(), re.M))
    documented = _documented_codes()
    assert raised <= documented, f"raised but not in docs/errors.md: {sorted(raised - documented)}"
    stale = sorted(documented - raised)
    assert not stale, f"in docs/errors.md but never raised: {stale}"


def test_every_nx_code_named_anywhere_is_documented() -> None:
    """Codes the Python code (MCP, client, tools) and the docs name are in docs/errors.md too."""
    named = set(re.findall(r"\bNX\d{3}\b", _python_sources() + _doc_text()))
    missing = named - _documented_codes()
    assert not missing, f"named but not in docs/errors.md's table: {sorted(missing)}"


# -- SQL names ----------------------------------------------------------------------------------
def _defined_sql_names() -> set[str]:
    pattern = (r"(?:FUNCTION|TABLE|VIEW|TRIGGER|INDEX|SEQUENCE)\s+(?:IF NOT EXISTS\s+)?"
               rf"((?:{'|'.join(SCHEMAS)})\.\w+)")
    return set(re.findall(pattern, _sql_sources(), re.I))


def _python_module(name: str) -> bool:
    package, _, module = name.partition(".")
    return (ROOT / package / f"{module}.py").exists() or (ROOT / package / module).is_dir()


# what looks like an SQL name but is not one: a file, and a logger name (sidecar/db.py)
NOT_SQL = {"nexus.conf", "nexus.db"}


def test_every_sql_name_in_the_docs_exists() -> None:
    defined = _defined_sql_names()
    assert {"nexus.memory_search", "memory_system.claim_batch",
            "nexus_memory.zep_episodic_memory"} <= defined, "the pattern is wrong"
    wrong = []
    for doc in DOCS:
        for m in re.finditer(rf"\b((?:{'|'.join(SCHEMAS)})\.[a-z_]+)(\*?)", doc.read_text()):
            name, wildcard = m.groups()
            if name in defined or name in NOT_SQL or _python_module(name):
                continue
            if wildcard and any(d.startswith(name) for d in defined):
                continue
            wrong.append(f"{doc.name}: {name}{wildcard}")
    assert not wrong, f"SQL names in the docs that no migration or db/ file defines: {wrong}"


def test_readme_tour_names_existing_functions() -> None:
    readme = (ROOT / "README.md").read_text()
    called = set(re.findall(r"nexus\.([a-z_]+)\(", readme))
    defined = {n.split(".", 1)[1] for n in _defined_sql_names() if n.startswith("nexus.")}
    assert {"record_episode", "memory_search", "working_memory_get"} <= called
    assert called <= defined, f"README calls undefined functions: {sorted(called - defined)}"


def _sql_parameters(function: str) -> dict[str, str | None]:
    """Parameter -> default (as written in SQL, None if none) of a function in db/."""
    m = re.search(rf"CREATE OR REPLACE FUNCTION {re.escape(function)}\((.*?)\)\s*RETURNS",
                  _sql_sources(), re.S)
    assert m, f"{function} not found in db/"
    params = {}
    for line in re.split(r",\s*\n", m.group(1)):
        words = line.split(None, 2)
        default = re.search(r"DEFAULT\s+(.+)$", line.strip(), re.S)
        params[words[0]] = default.group(1).strip() if default else None
    return params


def _same_default(doc: str, sql: str | None) -> bool:
    doc = doc.strip("` ")
    sql = (sql or "NULL").strip("'")
    try:
        return float(doc) == float(sql)
    except ValueError:
        return doc == sql


def test_search_parameters_table_is_memory_search_signature() -> None:
    table = _section((ROOT / "docs/search.md").read_text(), "## Parameters")
    sql = _sql_parameters("nexus.memory_search")
    documented: dict[str, str] = {}
    for row in re.findall(r"^\| (`.+?) \| (.+?) \|", table, re.M):
        names = re.findall(r"`(\w+)`", row[0])
        defaults = [row[1]] if len(names) == 1 else row[1].split(", ")
        if len(defaults) == 1:  # one default for all of them
            defaults *= len(names)
        assert len(defaults) == len(names), f"defaults of {names}: {row[1]}"
        documented.update(zip(names, defaults, strict=True))
    assert list(documented) == list(sql), "docs/search.md's parameters are not memory_search's"
    wrong = {n: (d, sql[n]) for n, d in documented.items() if not _same_default(d, sql[n])}
    assert not wrong, f"defaults in docs/search.md differ from the SQL (doc, sql): {wrong}"


# -- commands -----------------------------------------------------------------------------------
def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _options(parser: argparse.ArgumentParser) -> set[str]:
    return {o for a in parser._actions for o in a.option_strings}


def _check_command(words: list[str]) -> str | None:
    """None if `nexus <words>` names commands and options the parser has, else what is wrong."""
    parser, path = cli.build_parser(), ["nexus"]
    for raw in words:
        word = raw.strip("[]()")
        if word.endswith(":"):  # a log line such as `nexus worker: replica 1 exited`
            return None
        if word == "\\|":  # a table's alternatives: --redis URL \| --redis-rdb FILE
            continue
        if word in ("--", "|", "/") or word.startswith(("#", ">", "<", "$", "`")):
            break
        subs = _subcommands(parser)
        if word.startswith("-"):
            option = word.split("=", 1)[0]
            if option not in _options(parser):
                return f"{' '.join(path)} has no option {option}"
        elif subs and re.fullmatch(r"[a-z][a-z-]*", word):
            if word not in subs:
                return f"{' '.join(path)} has no subcommand {word}"
            parser, path = subs[word], [*path, word]
        elif subs and path == ["nexus"]:
            return f"nexus has no subcommand {word}"
    return None


_COMMAND = re.compile(r"(?:^|[\s`(\"'])(?:\.venv/bin/)?nexus ((?:\\\||[^`\n|;)])+)")


def _commands_in(text: str) -> list[str]:
    """Every `nexus ...` the text shows: in inline code spans and in sh code blocks."""
    found = []
    spans = re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", text, flags=re.S))
    blocks = re.findall(r"```sh\n(.*?)```", text, re.S)
    for chunk in [*spans, *blocks]:
        found += [m.group(1).strip() for m in _COMMAND.finditer(chunk)]
    return found


def test_every_nexus_command_in_the_docs_exists() -> None:
    checked, wrong = 0, []
    for doc in DOCS:
        for command in _commands_in(doc.read_text()):
            problem = _check_command(command.split())
            checked += 1
            if problem:
                wrong.append(f"{doc.name}: nexus {command}: {problem}")
    assert checked > 30, f"only {checked} commands found: the pattern is wrong"
    assert not wrong, "\n".join(wrong)


def test_readme_command_table_names_every_command() -> None:
    """The README's table of the `nexus` command: each row's commands exist (a fragment such as
    `dsn NAME` continues the row's first command), and every public subcommand has a row."""
    table = _section((ROOT / "README.md").read_text(), "## The `nexus` command")
    rows = re.findall(r"^\| (`nexus .+?) \| ", table, re.M)
    assert len(rows) > 10
    listed, wrong = set(), []
    for row in rows:
        fragments = re.findall(r"`([^`]+)`", row)
        head = fragments[0].split()[:2]
        for fragment in fragments:
            words = fragment.split()
            if words[0] != "nexus":
                words = [*head, *words] if _check_command([*head[1:], words[0]]) is None \
                    else head[:1] + words
            listed.add(words[1])
            if problem := _check_command(words[1:]):
                wrong.append(f"{fragment}: {problem}")
    assert not wrong, "\n".join(wrong)
    hidden = {"watch"}  # what `nexus up --detach` leaves running
    missing = set(_subcommands(cli.build_parser())) - listed - hidden
    assert not missing, f"subcommands missing from the README's table: {sorted(missing)}"


def test_check_command_catches_what_does_not_exist() -> None:
    assert _check_command(["agent", "add", "scout"]) is None
    assert _check_command(["psql", "scout", "--", "-c", "x"]) is None
    assert _check_command(["agent", "frobnicate"]) is not None
    assert _check_command(["up", "--frobnicate"]) is not None
    assert _check_command(["frobnicate"]) is not None


# -- environment variables ----------------------------------------------------------------------
_ENV = re.compile(r"\b((?:NEXUS|REDIS)_[A-Z0-9_]*[A-Z0-9]|WORKER_REPLICAS)\b")


def _read_by_config(name: str) -> bool:
    """Does the configuration change (or refuse the value) when `name` is set?"""
    try:
        return config.load(env={name: "7"}) != config.load(env={})
    except (SystemExit, ValueError):
        return True


def test_every_env_var_in_the_docs_is_read() -> None:
    """...except those docs/upgrading.md lists as removed, which nothing may read."""
    removed = set(_ENV.findall(_section((ROOT / "docs/upgrading.md").read_text(),
                                        "## Settings removed")))
    assert "NEXUS_EMBED_DEVICE" in removed
    named = set(_ENV.findall(_doc_text()))
    assert {"NEXUS_HOME", "WORKER_REPLICAS", "NEXUS_HTTP_PORT"} <= named
    code = _python_sources()
    unread = {n for n in named if not _read_by_config(n) and f'"{n}"' not in code}
    assert unread <= removed, f"the docs name settings nothing reads: {sorted(unread - removed)}"
    assert removed <= unread, f"settings said removed are still read: {sorted(removed - unread)}"


def test_every_setting_config_reads_is_documented() -> None:
    # the table of settings: the runtime's (sidecar/config.py) and the tooling's (nexus/config.py)
    read = {env for env, _, _ in config.settings()} | set(config.Config.SECRET_ENV.values())
    assert len(read) > 20, "the table is not read"
    named = set(_ENV.findall(_doc_text()))
    assert read <= named, f"settings read but documented nowhere: {sorted(read - named)}"


# -- tables that mirror the code ----------------------------------------------------------------
def test_scaling_citus_table_places_every_table() -> None:
    tables = set(re.findall(r"CREATE TABLE (?:IF NOT EXISTS )?(?:memory_system|nexus_memory|"
                            r"consciousness)\.(\w+)", _sql_sources()))
    assert {"zep_episodic_memory", "store_texts", "agent_tokens"} <= tables
    citus = _section((ROOT / "docs/scaling.md").read_text(), "## Distributing by agent_id (Citus)")
    placed = set(re.findall(r"`(?:\w+\.)?(\w+)`", citus))
    assert tables <= placed, f"tables missing from scaling.md's Citus table: {tables - placed}"


def test_readme_lists_every_mcp_tool() -> None:
    from nexus import mcp

    tools = {t.name for t in mcp.TOOLS}
    readme = (ROOT / "README.md").read_text()
    paragraph = readme[readme.index("The tools: "):].split("\n\n", 1)[0]
    listed = set(re.findall(r"`(\w+)`", paragraph))
    for group in re.findall(r"`(\w+)_(\w+(?:/\w+)+)`", paragraph):
        listed |= {f"{group[0]}_{w}" for w in group[1].split("/")}
    assert tools <= listed, f"MCP tools missing from the README: {sorted(tools - listed)}"


def test_embed_cache_key_in_the_docs_has_the_code_s_parts() -> None:
    code = (ROOT / "sidecar" / "http.py").read_text()
    key = re.search(r'f"(nexus:embed:[^"]+)"', code)
    assert key, "the /embed cache key is not where it was: update this test"
    parts = key.group(1).count("{")
    for doc in ("docs/cache.md", "docs/operations.md"):
        documented = re.findall(r"`(nexus:embed:[^`]+)`", (ROOT / doc).read_text())
        assert documented, doc
        for d in documented:
            assert d.count("<") == parts, f"{doc}: {d} has not the key's {parts} parts"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_relative_links_resolve(doc: Path) -> None:
    broken = []
    for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", doc.read_text()):
        if not (doc.parent / target).exists():
            broken.append(target)
    assert not broken, f"{doc.name} links to missing files: {broken}"
