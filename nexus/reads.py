"""`nexus reads`: the read record (docs/privacy.md, "Reads"): turn it on or off, per agent or for
all, and answer "what was this agent shown before it acted?".

Recording happens in SQL (memory_system._record_read, one call at the end of each read
function); this module only sets memory_system.reads_set and reads memory_system.reads.
"""

from __future__ import annotations

import argparse
import json

import psycopg
from psycopg.rows import dict_row


def _since(text: str | None) -> tuple[str | None, str | None]:
    """A time (ISO 8601) or an age back from now ('2h', '7d'): (timestamp, interval)."""
    from nexus.mcp import ttl_interval

    if text is None:
        return None, None
    age = ttl_interval(text)
    return (None, age) if age != text else (text, None)


def _show(conn: psycopg.Connection, args: argparse.Namespace) -> int:
    since, age = _since(args.since)
    rows = conn.cursor(row_factory=dict_row).execute(
        "SELECT read_at, function, login, encode(query_sha256, 'hex') AS query_sha256, query,"
        "       kinds, ids"
        "  FROM memory_system.reads_of(%(agent)s,"
        "         coalesce(%(since)s::timestamptz, now() - %(age)s::interval),"
        "         %(until)s, %(limit)s)",
        {"agent": args.agent, "since": since, "age": age, "until": args.until,
         "limit": args.limit}).fetchall()
    if args.json:
        print(json.dumps(rows, default=str, indent=2))
        return 0
    for r in rows:
        shown = " ".join(f"{k}:{i}" for k, i in zip(r["kinds"], r["ids"], strict=True)) or "-"
        query = repr(r["query"]) if r["query"] is not None else f"sha256 {r['query_sha256']}"
        print(f"{r['read_at']}\t{r['function']}\t{query}\t{shown}")
    return 0


def run(conn: psycopg.Connection, args: argparse.Namespace) -> int:
    if args.switch is None and args.keep_days is None and not args.query_text:
        if args.agent is not None:
            return _show(conn, args)
        conn.execute("SELECT memory_system._reads_maintain()")
        for agent, record, query_text, keep in conn.execute(
                "SELECT * FROM memory_system.reads_status()"):
            who = agent or "all agents"
            extra = f", kept {keep} days" if keep is not None else ""
            print(f"{who}: {'on' if record else 'off'}"
                  f"{', with query text' if query_text else ''}{extra}")
        return 0
    conn.execute("SELECT memory_system.reads_set(%s, %s, %s, %s)",
                 (None if args.switch is None else args.switch == "on", args.agent,
                  True if args.query_text else None, args.keep_days))
    print(f"reads of {args.agent or 'all agents'}: {args.switch or 'unchanged'}"
          + (" (with the query text)" if args.query_text else "")
          + (f"; {args.keep_days} days kept" if args.keep_days else ""))
    return 0


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("reads", help="the read record: `reads on|off [--agent NAME]`, "
                                     "`reads --agent NAME --since 2h`, or `reads` for the settings")
    p.add_argument("switch", nargs="?", choices=("on", "off"))
    p.add_argument("--agent", help="one agent (on/off: overrides the setting for all)")
    p.add_argument("--since", help="reads at or after this time (ISO 8601), or this long ago "
                                   "(2h, 7d)")
    p.add_argument("--until", help="reads before this time (ISO 8601)")
    p.add_argument("--limit", type=int, default=1000)
    p.add_argument("--json", action="store_true")
    p.add_argument("--query-text", action="store_true", help="with on: keep the query text too")
    p.add_argument("--keep-days", type=int, help="days of reads kept (for all; default 90)")
    return p
