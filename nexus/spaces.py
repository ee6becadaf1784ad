"""Spaces (docs/spaces.md), memory agents share: `nexus space ...`, one SQL function each."""

from __future__ import annotations

import argparse

import psycopg


def space_id(conn: psycopg.Connection, name: str | None) -> str | None:
    """The id a space's rows carry as their agent_id (docs/spaces.md), or None if no space has
    that name (the owner's connection sees every space)."""
    row = conn.execute("SELECT space_id FROM memory_system.spaces WHERE name = %s",
                       (name,)).fetchone()
    return row[0] if row else None


def run(conn: psycopg.Connection, args: argparse.Namespace) -> list[str]:
    """One `nexus space` command as the owner of the database; the lines it prints."""
    cmd = args.space_cmd
    if cmd == "create":
        conn.execute("SELECT memory_system.space_create(%s, %s, %s, %s)",
                     (args.name, args.owner, args.owner_may_grant, args.description))
        owner = f", owner {args.owner}" + (" (may grant)" if args.owner_may_grant else "") \
            if args.owner else ""
        return [f"created space {args.name}{owner}"]
    if cmd == "grant":
        rights = "write" if args.write else "read"
        conn.execute("SELECT memory_system.space_grant(%s, %s, %s)",
                     (args.name, args.agent, rights))
        return [f"{args.agent} may now {rights} space {args.name}"]
    if cmd == "revoke":
        conn.execute("SELECT memory_system.space_revoke(%s, %s)", (args.name, args.agent))
        return [f"{args.agent} no longer reads or writes space {args.name}"]
    if cmd == "members":
        rows = conn.execute("SELECT agent_id, rights, may_grant "
                            "FROM memory_system.space_members(%s)", (args.name,)).fetchall()
        return [f"{a}\t{r}" + ("\tmay grant" if g else "") for a, r, g in rows]
    if cmd == "drop":
        row = conn.execute("SELECT memory_system.space_drop(%s, %s)",
                           (args.name, args.delete_memories)).fetchone()
        return [f"dropped space {args.name} ({row[0] if row else 0} memory rows deleted)"]
    rows = conn.execute("SELECT name, coalesce(owner, '-'), readers, writers, memories, "
                        "created_at::text FROM memory_system.space_list()").fetchall()
    return ["\t".join(str(v) for v in r) for r in rows]


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("space", help="spaces: memory agents share, with read and write grants")
    ssub = p.add_subparsers(dest="space_cmd", required=True)
    s = ssub.add_parser("create", help="create a space (its name must be no agent's)")
    s.add_argument("name")
    s.add_argument("--owner", help="an agent that gets write on it")
    s.add_argument("--owner-may-grant", action="store_true",
                   help="the owner may grant and revoke rights on it (nexus.space_grant)")
    s.add_argument("--description", default="")
    s = ssub.add_parser("grant", help="give an agent read or write (write includes read)")
    s.add_argument("name")
    s.add_argument("agent")
    rights = s.add_mutually_exclusive_group(required=True)
    rights.add_argument("--read", action="store_true")
    rights.add_argument("--write", action="store_true")
    s = ssub.add_parser("revoke", help="take every right on the space from an agent, at once")
    s.add_argument("name")
    s.add_argument("agent")
    ssub.add_parser("list", help="spaces: name, owner, readers, writers, memories, created")
    s = ssub.add_parser("members", help="a space's members and their rights")
    s.add_argument("name")
    s = ssub.add_parser("drop", help="drop a space (refused while it has members or memories)")
    s.add_argument("name")
    s.add_argument("--delete-memories", action="store_true",
                   help="drop it with its members and memories")
    return p
