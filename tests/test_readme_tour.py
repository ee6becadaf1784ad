"""The README runs as written: its shell commands (the tour's `nexus agent add` and `nexus psql
scout` with the SQL block on standard input, the analyst's `nexus psql --role ro`, the token), the
tour's `nexus search`, and its Python examples, on the session's `nexus up` stack with the
embedding worker (conftest.up_env; the tour waits for vectors and asks /embed for one). psql
stops at the first failing statement, so a README statement that fails fails the test.

docs/scaling.md's lists of what runs on a read replica and what needs the primary are checked here
too, on the tour's data: each read in a read-only transaction (as on a standby), each write refused
with 25006 there.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from conftest import NEXUS
from sidecar import config

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
VENV_NEXUS = ".venv/bin/nexus"


def _blocks(text: str) -> list[tuple[str, str]]:
    """The fenced code blocks of `text`, in order: (language, body)."""
    return re.findall(r"^```(\w*)\n(.*?)^```$", text, re.S | re.M)


def _section(heading: str) -> str:
    start = README.index(heading + "\n")
    end = README.find("\n## ", start + 1)
    return README[start:end if end >= 0 else None]


def _shell_lines(body: str) -> list[str]:
    lines = [line.split("  #", 1)[0].strip() for line in body.splitlines()]
    return [line for line in lines if line]


def _run(env: dict[str, str], line: str, stdin: str | None = None,
         timeout: float = 300) -> subprocess.CompletedProcess:
    """A README command line as written, with the venv's `nexus` (the test's own)."""
    assert line.startswith(VENV_NEXUS + " "), f"the README runs something this test cannot: {line}"
    command = shlex.quote(NEXUS) + line[len(VENV_NEXUS):]
    return subprocess.run(["bash", "-c", command], env=env, input=stdin, capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT)


@pytest.fixture(scope="module")
def env(up_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The session's `nexus up` stack (conftest.up_env), up, for psql with ON_ERROR_STOP."""
    psqlrc = tmp_path_factory.mktemp("psqlrc") / "psqlrc"
    # what a person sees at the first error; a script must stop there
    psqlrc.write_text("\\set ON_ERROR_STOP on\n")
    env = {**up_env, "PSQLRC": str(psqlrc)}
    up = subprocess.run([NEXUS, "up", "--detach"], env=env, capture_output=True, text=True,
                        timeout=600)
    assert up.returncode == 0, up.stdout + up.stderr
    return env


@pytest.fixture(scope="module")
def toured(env: dict[str, str]) -> dict[str, subprocess.CompletedProcess]:
    """Every shell block of the README after the quick start, in order; a block that ends in
    `nexus psql` gets the SQL block that follows it on standard input."""
    blocks = _blocks(README[README.index("## A tour in psql"):])
    http_default = config.load(env={}).http_port
    results: dict[str, subprocess.CompletedProcess] = {}
    for i, (lang, body) in enumerate(blocks):
        if lang != "sh":
            continue
        lines = _shell_lines(body)
        for n, line in enumerate(lines):
            stdin = None
            if n == len(lines) - 1 and line.startswith(VENV_NEXUS + " psql"):
                follows, sql = blocks[i + 1]
                assert follows == "sql", f"{line} is followed by a {follows} block, not SQL"
                if "/embed" in sql:
                    assert f"localhost:{http_default}/embed" in sql
                    sql = sql.replace(f"localhost:{http_default}/",
                                      f"localhost:{env['NEXUS_HTTP_PORT']}/")
                stdin = sql
            results[line] = result = _run(env, line, stdin)
            if result.returncode != 0:
                return results  # the tests say which line failed, and how
    return results


def _require(toured: dict[str, subprocess.CompletedProcess]) -> None:
    for line, result in toured.items():
        if result.returncode != 0:
            pytest.fail(f"the README's `{line}` failed (exit {result.returncode}):\n"
                        f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")


def test_the_readme_shell_and_sql_run_as_written(toured) -> None:
    _require(toured)
    lines = list(toured)
    assert lines[:2] == [f"{VENV_NEXUS} agent add scout", f"{VENV_NEXUS} psql scout"]
    tour = toured[f"{VENV_NEXUS} psql scout"].stdout
    # the text search, the similar memories and the hybrid search each found something; the only
    # empty result is the last run of the \watch that waited for the vectors
    assert tour.count("(0 rows)") == 1, tour
    assert "Invoice 1042 from ACME" in tour
    assert re.search(r"^ episode +\| +3 +\| +3 +\| +0$", tour, re.M), "not every episode embedded"
    analyst = toured[f"{VENV_NEXUS} psql --role ro"].stdout
    assert re.search(r"^ scout +\| +3$", analyst, re.M), analyst
    token = next(r for line, r in toured.items() if " agent token scout" in line)
    assert token.stdout.startswith("nxa_")


def test_the_tour_left_what_it_says(env, toured) -> None:
    _require(toured)
    dsn = subprocess.run([NEXUS, "agent", "dsn", "scout"], env=env, capture_output=True,
                         text=True, check=True).stdout.strip()
    with psycopg.connect(dsn) as conn:
        stats = {r[0]: r[1:] for r in conn.execute(
            "SELECT kind, total, embedded FROM nexus.memory_stats()")}
        assert stats["episode"] == (3, 3) and stats["semantic"] == (1, 1)
        assert conn.execute("SELECT nexus.working_memory_get('current_task')").fetchone()[0] \
            == {"goal": "chase ACME", "step": 2}
        assert conn.execute("SELECT version FROM nexus.consensus_read('leader')").fetchone()[0] == 1
        assert conn.execute("SELECT count(*) FROM nexus.list_checkpoints()").fetchone()[0] == 1


def test_the_tour_search_command_finds_with_both_branches(env, toured) -> None:
    _require(toured)
    tour = _section("## A tour in psql")
    commands = [c for c in re.findall(r"`([^`\n]+)`", tour) if c.startswith(VENV_NEXUS + " search")]
    assert commands, "the tour shows no nexus search"
    for command in commands:
        result = _run(env, command + " --json")
        assert result.returncode == 0, result.stderr
        hits = json.loads(result.stdout)
        assert hits and any(h["vector_rank"] and h["text_rank"] for h in hits), hits


def test_the_readme_python_runs(env, toured) -> None:
    _require(toured)
    dsn = subprocess.run([NEXUS, "agent", "dsn", "scout"], env=env, capture_output=True,
                         text=True, check=True).stdout.strip()
    blocks = [body for lang, body in _blocks(README) if lang == "python"]
    assert len(blocks) == 2, "the README's Python examples changed: update this test"
    for body in blocks:
        prelude = f"agent_dsn = dsn = {dsn!r}\n"
        result = subprocess.run([sys.executable, "-c", prelude + body], env=env,
                                capture_output=True, text=True, timeout=300, cwd=ROOT)
        assert result.returncode == 0, body + result.stderr
        # LangGraph's example answers with what it stored; the client's prints its hits
        expected = "green tea" if "NexusStore" in body else "episode"
        assert expected in result.stdout, body + result.stdout


# -- docs/scaling.md: read replicas ---------------------------------------------------------------
SCALING = (ROOT / "docs" / "scaling.md").read_text()


def _replica_lists() -> tuple[set[str], set[str]]:
    section = SCALING[SCALING.index("## Read replicas"):SCALING.index("## Distributing")]
    reads = section[section.index("**Agents' reads**"):section.index("**The MCP server")]
    primary = section.index("What needs the primary:")
    writes = section[primary:section.index("the embedding workers", primary)]
    names = re.compile(r"`(?:nexus\.)?([a-z_]+)`")
    return ({n for n in names.findall(reads) if n != "refresh_ttl"},
            {n for n in names.findall(writes) if n != "refresh_ttl"})


# each function's arguments on the tour's data ({episode} and {fact}: ids of scout's own)
READS = {
    "current_agent": "()", "memory_search": "('late payers')",
    "memory_similar": "('episode', {episode})", "text_candidates": "('invoice')",
    "recent_episodes": "()", "get_episode": "({episode})", "get_fact": "({fact})",
    "fact_history": "({fact})",
    "working_memory_get": "('current_task')", "working_memory_keys": "()",
    "load_checkpoint": "()", "list_checkpoints": "()", "consensus_read": "('leader')",
    "memory_stats": "()", "store_list_namespaces": "()",
    "store_get": "('{{notes}}', 'n1', refresh_ttl => false)",
    "store_search": "('{{notes}}', 'tea', refresh_ttl => false)",
    "retention_rules": "()", "read_log": "()",
}
WRITES = {
    "record_episode": "('x')", "update_episode": "({episode}, content => 'y')",
    "delete_episode": "({episode})", "remember_fact": "('x')", "delete_fact": "({fact})",
    "forget": "(episode_id => {episode})",
    "invalidate_fact": "({fact})",
    "working_memory_set": "('k', '1')", "working_memory_delete": "('current_task')",
    "save_checkpoint": "('{{}}')", "consensus_cas": "('leader', 1, '\"x\"')",
    "store_put": "('{{notes}}', 'n2', '{{}}')", "store_delete": "('{{notes}}', 'n1')",
    # their default refresh_ttl pushes back the expiry of what they return
    "store_get": "('{{notes}}', 'n1')", "store_search": "('{{notes}}', 'tea')",
    "retention_set": "('episode', '180 days')", "retention_remove": "('episode')",
}


def test_scaling_replica_lists_hold(env, toured) -> None:
    _require(toured)
    reads, writes = _replica_lists()
    assert reads == set(READS), "docs/scaling.md's replica list and this test differ"
    assert writes == set(WRITES), "docs/scaling.md's list of writes and this test differ"
    dsn = subprocess.run([NEXUS, "agent", "dsn", "scout"], env=env, capture_output=True,
                         text=True, check=True).stdout.strip()
    with psycopg.connect(dsn, autocommit=True) as conn:
        api = {r[0] for r in conn.execute(
            "SELECT p.proname FROM pg_proc AS p JOIN pg_namespace AS n ON n.oid = p.pronamespace "
            "WHERE n.nspname = 'nexus' AND p.proname NOT LIKE '\\_%'")}
        assert api == reads | writes, f"not in scaling.md's lists: {api - reads - writes}"
        conn.execute("""SELECT nexus.store_put('{notes}', 'n1', '{"content": "green tea"}',
                                               texts => '{"content": "green tea"}',
                                               ttl => '1 hour')""")
        ids = {"episode": conn.execute("SELECT min(id) FROM nexus.recent_episodes()").fetchone()[0],
               "fact": conn.execute("SELECT min(s.id) FROM nexus_memory.semantic_memories AS s"
                                    ).fetchone()[0]}
        for function, args in READS.items():
            with conn.transaction():
                conn.execute("SET TRANSACTION READ ONLY")
                conn.execute(f"SELECT * FROM nexus.{function}{args.format(**ids)}").fetchall()
        for function, args in WRITES.items():
            with conn.transaction():
                conn.execute("SET TRANSACTION READ ONLY")
                with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
                    conn.execute(f"SELECT * FROM nexus.{function}{args.format(**ids)}")
