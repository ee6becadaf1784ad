"""What every benchmark shares: figures, the results table and JSON, a throw-away stack.

A benchmark is a function that takes the running `Stack` and returns `Figure`s; each module
in `bench/` lists its benchmarks in `BENCHMARKS` with the figure names each one produces
(stable names: `--only PREFIX` picks benchmarks by them, and results are compared by them).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import psycopg
from psycopg import sql

from nexus import config, migrate, secrets
from nexus import dsn as db
from nexus.config import SUPERUSER, WORKER, Config
from nexus.ports import free_port, port_free
from nexus.stack import Stack
from sidecar.embedder import Chunker

RESULTS_DIR = Path(__file__).resolve().parent / "results"
# data sets kept outside the repository (SciFact, LoCoMo): NEXUS_BENCH_DATA, by default the
# folder shared/data beside the repository's root
DATA_ENV = "NEXUS_BENCH_DATA"
DEFAULT_DATA_DIR = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
# the database the stack migrates; each benchmark works on its own clone of it
TEMPLATE_DB = "nexus_bench"
# sized like a small production box; durable settings (no fsync=off): write paths are measured
MEMORY_BUDGET_MB = 2048
REPEATS = 3


@dataclass
class Figure:
    name: str
    value: float | None
    unit: str
    baseline: float | None = None
    ratio: float | None = None
    note: str = ""
    failed: bool = False

    def as_json(self) -> dict[str, object]:
        return {"name": self.name, "value": self.value, "unit": self.unit,
                "baseline": self.baseline, "ratio": self.ratio, "note": self.note}


@dataclass(frozen=True)
class Benchmark:
    """`run(stack)` returns the figures; a `selective` one is `run(stack, wanted)` and measures
    only what the wanted figures need (`--only`). Either way only wanted figures are reported."""
    name: str
    figures: tuple[str, ...]
    run: Callable[..., list[Figure]]
    selective: bool = False

    def wanted(self, prefix: str | None) -> tuple[str, ...]:
        """The figures `--only PREFIX` names (all of them without a prefix)."""
        return tuple(f for f in self.figures if prefix is None or f.startswith(prefix))

    def measure(self, st: Stack, wanted: tuple[str, ...]) -> list[Figure]:
        produced = self.run(st, frozenset(wanted)) if self.selective else self.run(st)
        return [f for f in produced if f.name in wanted]


def failed_figures(wanted: tuple[str, ...], done: list[Figure],
                   error: BaseException) -> list[Figure]:
    """The wanted figures that were not produced, marked failed with the error."""
    have = {f.name for f in done}
    reason = f"FAILED: {type(error).__name__}: {error}".splitlines()[0][:300]
    return [Figure(name, None, "", note=reason, failed=True) for name in wanted if name not in have]


class MissingData(Exception):
    """A benchmark's data set is not where NEXUS_BENCH_DATA says: its figures are skipped."""


def bench_data(name: str, required: tuple[str, ...] = ()) -> Path:
    """The folder of data set `name` under NEXUS_BENCH_DATA (default ../shared/data beside the
    repository); MissingData if it, or one of the `required` files in it, is absent."""
    root = Path(os.environ.get(DATA_ENV) or DEFAULT_DATA_DIR)
    folder = root / name
    missing = [r for r in required if not (folder / r).exists()] if folder.is_dir() else [""]
    if missing:
        what = folder if missing == [""] else ", ".join(str(folder / m) for m in missing)
        raise MissingData(f"no data: {what} not found (set {DATA_ENV} to the folder that "
                          f"holds {name}/)")
    return folder


def skipped_figures(names: tuple[str, ...], reason: MissingData) -> list[Figure]:
    """Every figure of a benchmark whose data is missing: no value, the reason as the note."""
    return [Figure(name, None, "", note=f"SKIPPED: {reason}") for name in names]


def log(scope: str, message: str) -> None:
    """One progress line on stderr, `[scope HH:MM:SS] message` (a module binds its scope:
    `log = functools.partial(harness.log, "mcp")`)."""
    print(f"[{scope} {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def percentile(values: list[float], p: float) -> float:
    """The `p`-th percentile (0 to 100) of `values`, interpolated linearly between the two
    nearest ranks: numpy's default, Hyndman & Fan's type 7 (the median at p = 50). Every
    percentile a benchmark reports is this one, so that its figures compare."""
    return float(np.percentile(np.asarray(values, dtype=float), p))


def median(values: list[float]) -> float:
    """The middle run (the lower of the two middle ones for an even count): a run that happened,
    so that its diagnostics can be shown next to it."""
    return statistics.median_low(values)


def ratio(value: float | None, baseline: float | None) -> float | None:
    if value is None or not baseline:
        return None
    return value / baseline


def target_note(value: float | None, target: float) -> str:
    if value is None:
        return f"target >= {target:g}"
    return f"target >= {target:g}: {'met' if value >= target else 'MISSED'}"


def runs_note(values: list[float], fmt: str = "{:,.0f}", label: str = "runs") -> str:
    return f"{label} " + " / ".join(fmt.format(v) for v in values)


def free_ports(count: int) -> list[int]:
    """`count` consecutive free ports: `nexus worker --replicas N` serves replica i's HTTP on
    NEXUS_HTTP_PORT + i, so the ports after a free one must be free too."""
    while True:
        base = free_port()
        ports = list(range(base, base + count))
        if all(port_free("127.0.0.1", p) for p in ports):
            return ports


# -- the stack ---------------------------------------------------------------------------------
@contextmanager
def throwaway_stack() -> Iterator[Stack]:
    """A stack of its own (temporary home, free ports, durable defaults), stopped and removed
    at the end whatever happens."""
    home = Path(tempfile.mkdtemp(prefix="nexus-bench-"))
    os.chmod(home, 0o755)
    # no embedding worker: it would compete for the CPU and hold sessions on the template database
    cfg = config.load(env={"WORKER_REPLICAS": "0"}, home=home, pg_port=free_port(),
                      redis_port=free_port(), database=TEMPLATE_DB)
    st = Stack.from_config(cfg, memory_budget_mb=MEMORY_BUDGET_MB)
    try:
        st.up()
        yield st
    finally:
        st.down()
        shutil.rmtree(st.cfg.home, ignore_errors=True)
        shutil.rmtree(home, ignore_errors=True)


@dataclass(frozen=True)
class BenchDb:
    """A clone of the migrated database, for one benchmark."""

    stack: Stack
    name: str

    def superuser(self, **kwargs: object) -> psycopg.Connection:
        return self.stack.superuser_conn(self.name, autocommit=True, **kwargs)

    def worker(self, **kwargs: object) -> psycopg.Connection:
        cfg = self.stack.cfg
        return db.connect(cfg, WORKER, secrets.read(cfg.secret_file(WORKER)), self.name,
                          autocommit=True, **kwargs)


def clone_database(st: Stack, name: str) -> Config:
    """CREATE DATABASE `name` TEMPLATE the stack's migrated database (dropped first if it
    exists), with the database-level grants a clone does not inherit; its Config. The tests'
    per-file databases (conftest.py) and the benchmarks' are made by this one function."""
    drop_database(st, name)
    with st.superuser_conn("postgres", autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(name), sql.Identifier(st.cfg.database)))
    cfg = replace(st.cfg, database=name)
    # a clone does not inherit the template's database-level grants (CONNECT): the loader sets them
    with db.connect(cfg, SUPERUSER, secrets.password(cfg, SUPERUSER), autocommit=True) as conn:
        migrate.apply_repeatables(conn)
    return cfg


def drop_database(st: Stack, name: str) -> None:
    with st.superuser_conn("postgres", autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(name)))


@contextmanager
def cloned_database(st: Stack, name: str) -> Iterator[BenchDb]:
    """A clone of the migrated database (clone_database), dropped at the end."""
    clone_database(st, name)
    try:
        yield BenchDb(st, name)
    finally:
        drop_database(st, name)


def write_waiting(conn: psycopg.Connection) -> bool:
    """Is a worker's complete_batch waiting on a lock (`writes_blocked`)? `conn` in autocommit:
    pg_stat_activity is read once per transaction."""
    return conn.execute(
        "SELECT count(*) > 0 FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
        "AND datname = current_database() AND query LIKE '%complete_batch%'").fetchone()[0]


@contextmanager
def writes_blocked(conn: psycopg.Connection) -> Iterator[None]:
    """While inside, no worker can write a vector: `conn` (autocommit) holds a lock that its
    complete_batch waits for. A worker then stops at a known point, holding at most three
    batches (sidecar/worker.py's pipeline): one waiting in complete_batch, the next encoded, the
    one after claimed ahead. Crash and drain tests (and bench/faults.py) use it to land mid-batch
    by construction."""
    with conn.transaction():
        conn.execute("LOCK TABLE nexus_memory.episode_embeddings IN SHARE MODE")
        yield


def settle_stats() -> None:
    """Give backends that just disconnected time to flush their statistics."""
    time.sleep(1.0)


# -- output ------------------------------------------------------------------------------------
def _fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    if unit == "ratio" or abs(value) < 10:
        return f"{value:.2f}"
    return f"{value:,.0f}"


def table(figures: list[Figure]) -> str:
    header = ("name", "value", "unit", "baseline", "ratio", "note")
    rows = [(f.name, _fmt(f.value, f.unit), f.unit, _fmt(f.baseline, f.unit),
             _fmt(f.ratio, "ratio"), f.note) for f in figures]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(5)]
    aligns = ("<", ">", "<", ">", ">")

    def line(r: tuple[str, ...]) -> str:
        cells = [f"{r[i]:{aligns[i]}{widths[i]}}" for i in range(5)]
        return "  ".join(cells) + "  " + r[5]

    rule = "  ".join("-" * w for w in widths) + "  ----"
    return "\n".join([line(header), rule, *map(line, rows)])


def write_json(figures: list[Figure], path: Path | None = None, merge: bool = False) -> Path:
    """Write the figures (each stamped with the time of its run); with merge, keep the figures of
    earlier runs that this run did not produce."""
    path = path or RESULTS_DIR / "latest.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    new = [{**f.as_json(), "measured_at": stamp} for f in figures]
    kept: list[dict[str, object]] = []
    if merge and path.exists():
        names = {f.name for f in figures}
        with contextlib.suppress(ValueError):
            kept = [f for f in json.loads(path.read_text()) if f.get("name") not in names]
    rows = sorted([*kept, *new], key=lambda f: str(f.get("name")))
    path.write_text(json.dumps(rows, indent=2) + "\n")
    return path


def chunk_text(chunker: Chunker, text: str) -> list[str]:
    """The chunks the Embedder (or its tokenizer alone, `chunker`) cuts `text` into, as text:
    none for whitespace, `text` itself if it fits (sidecar/embedder.py)."""
    if not text.strip():
        return []
    spans = chunker.tokenize([text])[0][1]
    bounds = chunker.chunk_bounds(text, spans)
    if len(bounds) == 1:
        return [text]
    return [text[spans[s][0]:spans[e - 1][1]] for s, e in bounds]
