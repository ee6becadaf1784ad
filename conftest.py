"""Test fixtures shared by the Python tests and the pgTAP files.

One real PostgreSQL 18 + pgvector and one real Redis for the whole session, started by the
project's own code (`Stack`), on free ports, in a throw-away state directory. The database
`nexus_template` is migrated once; each pgTAP file and each test that asks for `fresh_db`
runs on its own clone of it.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from bench.harness import clone_database, drop_database
from nexus import config, secrets
from nexus.config import SUPERUSER, Config
from nexus.ports import free_port
from nexus.stack import Stack
from nexus.supervisor import process_alive  # noqa: F401 (the tests import it from here)
from sidecar.embedder import BF16_FLAGS, cpu_flags

ROOT = Path(__file__).resolve().parent
TEMPLATE = "nexus_template"
TEST_SETTINGS = {
    # the tests need a real server, not a durable one
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",
}
_clone_ids = itertools.count(1)


_session: dict[str, object] = {}


def session_stack() -> Stack:
    """Start the session's stack on first use; stopped by pytest_sessionfinish."""
    if "stack" in _session:
        return _session["stack"]  # type: ignore[return-value]
    home = Path(tempfile.mkdtemp(prefix="nexus-test-"))
    os.chmod(home, 0o755)
    _session["home"] = home
    # no embedding worker on the template: tests start their own on their clones
    cfg = config.load(env={}, home=home, pg_port=free_port(), redis_port=free_port(),
                      database=TEMPLATE, worker_replicas=0)
    st = Stack.from_config(cfg, memory_budget_mb=1024, extra_settings=TEST_SETTINGS)
    _session["stack"] = st
    st.up()
    with st.superuser_conn(autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pgtap WITH SCHEMA public")
        conn.execute((ROOT / "db" / "tests" / "_helpers.sql").read_text())
    return st


def pytest_sessionfinish(session: pytest.Session) -> None:
    st = _session.pop("stack", None)
    if st is not None:
        st.down()  # type: ignore[attr-defined]
    home = _session.pop("home", None)
    if home is not None:
        shutil.rmtree(home, ignore_errors=True)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def stack() -> Stack:
    return session_stack()


def clone_template(st: Stack, name: str) -> Config:
    """A clone of the migrated template database (bench.harness.clone_database)."""
    return clone_database(st, name)


@pytest.fixture
def fresh_db(stack: Stack) -> Iterator[Config]:
    """A Config pointing at a fresh clone of the migrated template database."""
    name = f"nexus_t{next(_clone_ids)}"
    cfg = clone_template(stack, name)
    try:
        yield cfg
    finally:
        drop_database(stack, name)


def superuser_password(st: Stack) -> str:
    return secrets.password(st.cfg, SUPERUSER)


def schema_dump(st: Stack, cfg: Config) -> str:
    """`pg_dump --schema-only` of the database of `cfg` (test_migrations.py, test_upgrade.py)."""
    out = subprocess.run(
        [st.pg.bin("pg_dump"), "--schema-only", "-h", cfg.pg_host, "-p", str(cfg.pg_port),
         "-U", SUPERUSER, "-d", cfg.database],
        capture_output=True, text=True, check=True,
        env={"PGPASSWORD": superuser_password(st), "PATH": "/usr/bin:/bin"},
    ).stdout
    # PG 18 writes a random \restrict key into every dump
    return "\n".join(line for line in out.splitlines()
                     if not line.startswith(("\\restrict", "\\unrestrict")))


# -- precisions -------------------------------------------------------------------------------
def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--bf16", choices=("auto", "full", "short"), default="auto",
        help="the precision-parametrized tests: 'full' runs the embedder's and the worker's in "
             "float32 and bf16; 'short' in float32 only (the short bf16 checks run either way); "
             "'auto' (default): where the CPU has bf16 units (avx512_bf16 or amx_bf16) the "
             "embedder's in both and the worker's (crashes, replicas, drains: not about "
             "precision) in bf16, the precision its worker runs in; elsewhere, where bf16 is "
             "emulated and several times slower, short")


def precisions(config: pytest.Config) -> tuple[str, ...]:
    """The precisions the parametrized worker and embedder tests run in (--bf16)."""
    mode = config.getoption("--bf16")
    if mode == "auto":
        mode = "full" if cpu_flags() & BF16_FLAGS else "short"
    return ("float32", "bfloat16") if mode == "full" else ("float32",)


def worker_precisions(config: pytest.Config) -> tuple[str, ...]:
    """The precisions the worker tests run in (--bf16): both only when asked for ('full')."""
    if config.getoption("--bf16") == "full":
        return ("float32", "bfloat16")
    return precisions(config)[-1:]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "precision" in metafunc.fixturenames:
        metafunc.parametrize("precision", worker_precisions(metafunc.config), indirect=True)


@pytest.fixture
def precision(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """A worker test's precision (NEXUS_EMBED_DTYPE of the workers it starts): see --bf16."""
    monkeypatch.setenv("NEXUS_EMBED_DTYPE", request.param)
    return request.param


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The unit tests (tests/unit: no service, seconds) run first."""
    unit = ROOT / "tests" / "unit"
    items.sort(key=lambda item: not item.path.is_relative_to(unit))


# -- pgTAP files ------------------------------------------------------------------------------
_TAP_LINE = re.compile(r"^(not ok|ok) (\d+)")
_TAP_PLAN = re.compile(r"^1\.\.(\d+)")


def run_pgtap(st: Stack, cfg: Config, path: Path) -> str:
    """Run one pgTAP file with psql; raise AssertionError unless every test passed."""
    env = {**os.environ, "PGPASSWORD": superuser_password(st)}
    result = subprocess.run(
        [st.pg.bin("psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", cfg.pg_host,
         "-p", str(cfg.pg_port), "-U", SUPERUSER, "-d", cfg.database, "-f", str(path)],
        capture_output=True, text=True, env=env, timeout=600,
    )
    out = result.stdout
    lines = [line.strip() for line in out.splitlines()]
    results = [m for line in lines if (m := _TAP_LINE.match(line))]
    plans = [int(m.group(1)) for line in lines if (m := _TAP_PLAN.match(line))]
    failed = [m.string for m in results if m.group(1) == "not ok"]
    problems = []
    if result.returncode != 0:
        problems.append(f"psql exited {result.returncode}: {result.stderr.strip()}")
    if failed:
        problems.append("failed: " + "; ".join(failed))
    if not plans:
        problems.append("no plan line (1..N)")
    elif plans[0] != len(results):
        problems.append(f"planned {plans[0]} tests, ran {len(results)}")
    if not results:
        problems.append("no test ran")
    if problems:
        raise AssertionError("\n".join(problems) + "\n--- output ---\n" + out + result.stderr)
    return out


class PgTapFile(pytest.File):
    def collect(self) -> Iterator[pytest.Item]:
        yield PgTapItem.from_parent(self, name=self.path.name)


class PgTapItem(pytest.Item):
    def runtest(self) -> None:
        st = session_stack()
        name = f"nexus_tap{next(_clone_ids)}"
        cfg = clone_template(st, name)
        try:
            run_pgtap(st, cfg, self.path)
        finally:
            drop_database(st, name)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style=None) -> str:  # noqa: ANN001
        if isinstance(excinfo.value, AssertionError):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"pgTAP {self.path.name}"


def pytest_collect_file(parent: pytest.Collector, file_path: Path) -> pytest.Collector | None:
    if (file_path.suffix == ".sql" and file_path.parent == ROOT / "db" / "tests"
            and not file_path.name.startswith("_")):
        return PgTapFile.from_parent(parent, path=file_path)
    return None


@pytest.fixture
def psql_bin(stack: Stack) -> str:
    return stack.pg.bin("psql")


def connect_as(cfg: Config, role: str, password: str, **kwargs: object) -> psycopg.Connection:
    return psycopg.connect(host=cfg.pg_host, port=cfg.pg_port, dbname=cfg.database, user=role,
                           password=password, connect_timeout=10, **kwargs)


NEXUS = str(Path(sys.executable).parent / "nexus")


@pytest.fixture(scope="session")
def up_env() -> Iterator[dict[str, str]]:
    """The environment of one stack run by `nexus up --detach` (what `make run` runs: the worker
    with one replica in batches of 8, the MCP server) shared by the session's tests of it, so
    that it is started once (15 to 25 s, and as much to stop). A test calls `nexus up --detach`
    first (2 s when it is up; it starts it again after a test that ended with `nexus down`),
    leaves it running, and counts only its own agents' rows."""
    with own_stack_env("nexus-up-", WORKER_REPLICAS="1", NEXUS_WORKER_POLL_SECONDS="1",
                       NEXUS_WORKER_BATCH="8") as env:
        yield env


@contextmanager
def own_stack_env(prefix: str, **settings: str) -> Iterator[dict[str, str]]:
    """The environment of a stack of its own for the `nexus` command (a private state directory,
    free ports); `nexus down` and removal at the end."""
    home = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(home, 0o755)
    env = {"PATH": os.environ["PATH"], "NEXUS_HOME": str(home / ".nexus"),
           "NEXUS_PG_PORT": str(free_port()), "NEXUS_REDIS_PORT": str(free_port()),
           "NEXUS_HTTP_PORT": str(free_port()), "NEXUS_MCP_PORT": str(free_port()),
           "NEXUS_PG_MEMORY_MB": "512", **settings}
    try:
        yield env
    finally:
        subprocess.run([NEXUS, "down"], env=env, capture_output=True)
        shutil.rmtree(home, ignore_errors=True)
