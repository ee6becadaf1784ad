"""`nexus retention`: the operator's side of retention rules (docs/privacy.md, "Retention").

The rules live in SQL (memory_system.retention_set, retention_list, retention_remove); the
workers' heartbeat sweep applies them. This module only turns the command line into those calls.
"""

from __future__ import annotations

import argparse
import json

import psycopg
from psycopg.rows import dict_row

from nexus import spaces

NOUNS = {"episode": "episodes", "semantic": "facts"}


def run(conn: psycopg.Connection, args: argparse.Namespace) -> int:
    from nexus.mcp import ttl_interval  # '180d' -> '180 days'; anything else as PostgreSQL reads it

    # the memory a rule is for: an agent's name is its id; a space's rows carry its space id
    shown, args.agent = args.agent, spaces.space_id(conn, args.agent) or args.agent
    if args.retention_cmd == "set":
        n = conn.execute("SELECT memory_system.retention_set(%s, %s, %s::interval, %s::real, %s)",
                         (args.agent, args.kind, ttl_interval(args.older_than),
                          args.importance_below, args.dry_run)).fetchone()[0]
        what = f"{NOUNS[args.kind]} of {shown} older than {args.older_than}" + (
            f" with importance below {args.importance_below}" if args.importance_below is not None
            else "")
        if args.dry_run:
            print(f"dry run: the rule ({what}) would take {n} now; nothing stored")
        else:
            print(f"rule set ({what}): it takes {n} now, at the workers' next sweeps")
    elif args.retention_cmd == "remove":
        done = conn.execute("SELECT memory_system.retention_remove(%s, %s)",
                            (args.agent, args.kind)).fetchone()[0]
        print(f"rule for the {NOUNS[args.kind]} of {shown} "
              + ("removed" if done else "was not set"))
    else:
        rows = conn.cursor(row_factory=dict_row).execute(
            "SELECT * FROM memory_system.retention_list(%s)", (args.agent,)).fetchall()
        if args.json:
            print(json.dumps(rows, default=str, indent=2))
        for r in rows if not args.json else []:
            below = "" if r["importance_below"] is None else f" importance<{r['importance_below']}"
            print(f"{r['agent_id']}\t{r['kind']}\tolder than {r['older_than']}{below}\t"
                  f"removed {r['removed']}\tmatching now {r['matching']}\tset by {r['set_by']}")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("retention", help="retention rules: memories older than an age (and less "
                                         "important than a bound) removed by the workers")
    rsub = p.add_subparsers(dest="retention_cmd", required=True)
    r = rsub.add_parser("set", help="set an agent's (or space's) rule for a kind")
    r.add_argument("--agent", required=True, help="an agent, or a shared space, by its name")
    r.add_argument("--kind", required=True, choices=("episode", "semantic"))
    r.add_argument("--older-than", required=True, help="an age: 180d, 12h, '6 months'")
    r.add_argument("--importance-below", type=float, help="only memories less important (0-1)")
    r.add_argument("--dry-run", action="store_true", help="count what the rule would take now; "
                                                          "store nothing")
    r = rsub.add_parser("list", help="the rules, what they removed and would take now")
    r.add_argument("--agent")
    r.add_argument("--json", action="store_true")
    r = rsub.add_parser("remove", help="remove an agent's rule for a kind")
    r.add_argument("--agent", required=True)
    r.add_argument("--kind", required=True, choices=("episode", "semantic"))
    return p
