"""Rows into the session staging tables by COPY, streamed; progress on a terminal."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterable
from typing import IO, Any

import psycopg
from psycopg import sql


def copy_between(src: psycopg.Connection, query: sql.Composable, dst: psycopg.Connection,
                 table: str, columns: Iterable[str], progress: Progress | None = None,
                 schema: str = "pg_temp") -> int:
    """Stream a query's rows from one server into a table of another, without holding them."""
    rows = 0
    copy_in = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(schema, table), sql.SQL(", ").join(map(sql.Identifier, columns)))
    with src.cursor().copy(sql.SQL("COPY ({}) TO STDOUT").format(query)) as out, \
            dst.cursor().copy(copy_in) as into:
        for data in out:
            into.write(data)
            n = bytes(data).count(b"\n")
            rows += n
            if progress:
                progress.add(n)
    return rows


def copy_rows(dst: psycopg.Connection, table: str, columns: Iterable[str],
              rows: Iterable[tuple[Any, ...]]) -> int:
    n = 0
    copy_in = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier("pg_temp", table), sql.SQL(", ").join(map(sql.Identifier, columns)))
    with dst.cursor().copy(copy_in) as into:
        for row in rows:
            into.write_row(row)
            n += 1
    return n


# -- progress on a terminal ----------------------------------------------------------------------
class Progress:
    """A progress bar on a terminal (nothing otherwise); several threads may add to it."""

    def __init__(self, label: str, total: int | None, stream: IO[str] | None = None) -> None:
        self.label, self.total, self.done = label, total, 0
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty()
        self.t0 = self.last = time.monotonic()
        self.lock = threading.Lock()

    def add(self, n: int) -> None:
        with self.lock:
            self.done += n
            now = time.monotonic()
            if self.tty and now - self.last >= 0.2:
                self.last = now
                self._draw()

    def _draw(self, end: str = "") -> None:
        rate = self.done / max(time.monotonic() - self.t0, 1e-6)
        if self.total:
            share = min(self.done / self.total, 1.0)
            bar = "#" * int(share * 30)
            text = f"{self.label:<16} [{bar:<30}] {self.done:,}/{self.total:,} {rate:,.0f} rows/s"
        else:
            text = f"{self.label:<16} {self.done:,} rows {rate:,.0f} rows/s"
        self.stream.write("\r" + text + end)
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self._draw("\n")


