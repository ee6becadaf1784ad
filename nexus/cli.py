"""`nexus`: run the local stack, migrate any database, manage agents and secrets."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import redis
from psycopg.conninfo import conninfo_to_dict

from nexus import (
    agents,
    backup,
    client,
    config,
    doctor,
    forgetting,
    imports,
    migrate,
    secrets,
    spaces,
)
from nexus.config import APP, READONLY, SUPERUSER, ConfigError
from nexus.ports import ServerError
from nexus.stack import Stack, apply_role_passwords, resolve_home
from nexus.supervisor import Supervisor, process_alive
from nexus.watch import Watchdog
from sidecar import cache


def _stack(args: argparse.Namespace) -> Stack:
    cfg = config.load(pg_port=getattr(args, "pg_port", None),
                      redis_port=getattr(args, "redis_port", None))
    return Stack.from_config(cfg)


def _print_connections(stack: Stack) -> None:
    print("PostgreSQL connection strings (passwords in pgpass files, never printed):")
    for role, url in stack.dsns().items():
        print(f"  {role:<16} {url}")
    print(f"Redis: {stack.redis.url} (password in {stack.cfg.secret_file('redis')})")
    print("Agents: nexus agent add NAME, then: nexus psql NAME "
          "(any other client: nexus agent dsn NAME)")
    if stack.mcp_url:
        print(f"MCP: {stack.mcp_url} (bearer tokens: nexus agent token NAME), "
              "or stdio: nexus mcp --agent NAME")


def _watch(stack: Stack, stopping: Callable[[], bool]) -> int:
    """Keep the stack running until `stopping()`; 1 if a component had to be given up."""
    dog = Watchdog(stack)
    while not stopping():
        dog.step()
        if dog.failed:
            print(f"nexus: stopping the stack: {', '.join(dog.failed)} cannot be restarted",
                  file=sys.stderr, flush=True)
            stack.down()
            return 1
        time.sleep(0.5)
    return 0


def _on_stop_signals() -> Callable[[], bool]:
    stopping = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    return lambda: stopping


def _watch_pidfile(stack: Stack) -> Path:
    return stack.cfg.home / "run" / "watch.pid"


def cmd_up(args: argparse.Namespace) -> int:
    stack = _stack(args)
    stopping = _on_stop_signals() if not args.detach else None
    stack.up()
    _print_connections(stack)
    if args.detach:
        _stop_watchdog(stack)
        env = dict(os.environ, NEXUS_HOME=str(stack.cfg.home), NEXUS_PG_PORT=str(stack.cfg.pg_port),
                   NEXUS_REDIS_PORT=str(stack.cfg.redis_port))
        (stack.cfg.home / "log").mkdir(parents=True, exist_ok=True)
        with (stack.cfg.home / "log" / "watch.log").open("ab") as log:
            proc = subprocess.Popen([sys.executable, "-m", "nexus.cli", "watch"], env=env,
                                    stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
        _watch_pidfile(stack).write_text(str(proc.pid))
        print("Stack running in the background, restarted if a part of it dies; "
              "stop it with: nexus down")
        return 0
    print("Stack running; Ctrl-C stops it.", flush=True)
    code = _watch(stack, stopping)  # type: ignore[arg-type]
    if code == 0:
        print("Stopping...", flush=True)
        stack.down()
        print("Stopped.")
    return code


def cmd_watch(args: argparse.Namespace) -> int:
    return _watch(_stack(args), _on_stop_signals())


def _stop_watchdog(stack: Stack) -> None:
    try:
        pid = int(_watch_pidfile(stack).read_text())
    except (FileNotFoundError, ValueError):
        return
    if process_alive(pid):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        while process_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
    _watch_pidfile(stack).unlink(missing_ok=True)


def cmd_down(args: argparse.Namespace) -> int:
    stack = _stack(args)
    _stop_watchdog(stack)
    stack.down()
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    status = _stack(args).status()
    if args.json:
        print(json.dumps(status, indent=2))
    else:
        print(f"home        {status['home']}")
        for name in ("postgresql", "redis"):
            s = status[name]
            state = "healthy" if s["healthy"] else ("running" if s["pid"] else "stopped")
            print(f"{name:<11} {state} (pid {s['pid']}, port {s['port']}, "
                  f"{s['restarts']} restarts)")
        w = status["worker"]
        if w["replicas"]:
            state = w["state"] + (f", health {w['health']}" if w["health"] else "")
            print(f"{'worker':<11} {state} (supervisor pid {w['pid']}, {w['replicas']} replicas, "
                  f"{w['restarts']} restarts, http {w['http_port']})")
        for role, url in status["dsns"].items():
            print(f"  {role:<16} {url}")
        print(f"redis_url   {status['redis_url']}")
        if status["mcp_url"]:
            health = "healthy" if status["mcp"]["healthy"] else "down"
            print(f"mcp_url     {status['mcp_url']} ({health}, pid {status['mcp']['pid']})")
    return 0 if status["healthy"] else 1


def cmd_migrate(args: argparse.Namespace) -> int:
    if args.dsn:
        cfg = config.load()
        params = conninfo_to_dict(args.dsn)
        # no password in the DSN: the owner's secret file (NEXUS_SUPERUSER_PASSWORD_FILE)
        if "password" not in params and cfg.secret_file(SUPERUSER).exists():
            params["password"] = secrets.read(cfg.secret_file(SUPERUSER))
        result = migrate.migrate(params)
        with psycopg.connect(**params, autocommit=True) as conn:
            result.logins = apply_role_passwords(conn, cfg)
    else:
        stack = _stack(args)
        if stack.pg.pid() is None:
            raise ServerError("the local stack is not running: nexus up --detach (or pass --dsn)")
        result = stack.migrate()
    applied = ", ".join(result.applied) or "none (already up to date)"
    print(f"migrations applied: {applied}")
    print(f"repeatable files applied: {result.repeatables}")
    if result.logins:
        print(f"login enabled from secret files: {', '.join(result.logins)}")
    else:
        print("login enabled for no role: no secret file of nexus_app, nexus_worker or nexus_ro "
              "(nexus secrets init, or NEXUS_*_PASSWORD_FILE)")
    return 0


def cmd_secrets_init(args: argparse.Namespace) -> int:
    cfg = config.load()
    created = secrets.init(cfg, compose=args.compose)
    for path in created:
        print(f"created {path}")
    if not created:
        print(f"all secrets present in {cfg.secrets_dir}")
    return 0


def _agent_conn(args: argparse.Namespace) -> tuple[Stack, psycopg.Connection]:
    stack = _stack(args)
    if stack.pg.pid() is None:
        raise ServerError("the local stack is not running: nexus up --detach")
    return stack, stack.superuser_conn(autocommit=True)


def cmd_agent(args: argparse.Namespace) -> int:
    if args.agent_cmd == "dsn":
        print(agents.dsn(_stack(args).cfg, args.name, args.show_password))
        return 0
    stack, conn = _agent_conn(args)
    with conn:
        if args.agent_cmd == "add":
            orchestrator = None if args.no_orchestrator else "nexus_app"
            print(agents.add(conn, stack.cfg, args.name, args.description, orchestrator))
        elif args.agent_cmd == "remove":
            deleted = agents.remove(conn, stack.cfg, args.name, args.delete_memories)
            print(f"removed agent {args.name} ({deleted} memory rows deleted)")
            if args.delete_memories:
                return _verified(conn, stack, args.name, {})
        elif args.agent_cmd == "token":
            return _agent_token(conn, args)
        elif args.agent_cmd == "grant":
            conn.execute("SELECT memory_system.agent_grant(%s, %s)", (args.name, args.to))
            print(f"{args.to} may now SET ROLE {args.name}")
        else:
            for agent_id, description, created in agents.list_agents(conn):
                print(f"{agent_id}\t{created}\t{description}")
    return 0


def cmd_space(args: argparse.Namespace) -> int:
    _, conn = _agent_conn(args)
    with conn:
        for line in spaces.run(conn, args):
            print(line)
    return 0


def _agent_token(conn: psycopg.Connection, args: argparse.Namespace) -> int:
    """nexus agent token NAME | token list NAME | token revoke ID: bearer tokens (MCP over HTTP)."""
    from nexus import mcp

    words = args.words
    if words[0] in ("list", "revoke") and len(words) == 2:
        if words[0] == "list":
            for row in mcp.list_tokens(conn, words[1]):
                print("\t".join("-" if v is None else str(v) for v in row))
        else:
            done = mcp.revoke_token(conn, int(words[1]))
            print(f"token {words[1]} " + ("revoked" if done else "was already revoked"))
        return 0
    if len(words) != 1:
        raise ServerError("usage: nexus agent token NAME [--ttl 30d] [--label L] | "
                          "token list NAME | token revoke ID")
    token, token_id, expires = mcp.issue_token(conn, words[0], args.ttl, args.label)
    print(token)
    print(f"token {token_id} of agent {words[0]}, expires {expires or 'never'}; shown once, "
          "only its SHA-256 is kept", file=sys.stderr)
    return 0


def _verified(conn: psycopg.Connection, stack: Stack, agent: str, filters: dict) -> int:
    """The verification pass of forgetting, printed; 1 if anything is left (docs/privacy.md)."""
    try:
        r = cache.redis_client(stack.cfg)
        r.ping()
    except redis.RedisError:
        r = None
    left = forgetting.verify(conn, r, agent, filters)
    print(forgetting.report(left), file=sys.stderr if left else sys.stdout)
    return 1 if left else 0


def cmd_forget(args: argparse.Namespace) -> int:
    """nexus forget --agent NAME FILTER... [--dry-run | --verify]: forget, then verify."""
    filters = {"kinds": args.kind, "tags_all": args.tag, "session": args.session,
               "since": args.since, "until": args.until,
               "metadata_contains": json.loads(args.metadata) if args.metadata else None}
    stack, conn = _agent_conn(args)
    with conn:
        if not args.verify:
            receipt = forgetting.forget(conn, args.agent, filters, args.dry_run, args.space)
            kinds = [k for k in ("episode", "semantic", "store") if k in receipt["kinds"]]
            places = ("rows", "store_texts", "vectors", "postings", "queue_items", "cache_outbox")
            print(json.dumps(receipt) if args.json else
                  ("would forget " if receipt["dry_run"] else "forgot ")
                  + ", ".join(f"{receipt['kinds'][k]} {k}" for k in kinds)
                  + " (" + ", ".join(f"{receipt['places'][p]} {p}" for p in places) + ")")
            if args.dry_run:
                return 0
        # in a space, what is left is looked for in the space's memory
        return _verified(conn, stack, _space_id(conn, args.space) if args.space else args.agent,
                         filters)


def cmd_mcp(args: argparse.Namespace) -> int:
    """The MCP server: stdio as one agent, or streamable HTTP with bearer tokens."""
    from nexus import mcp

    cfg = resolve_home(config.load(mcp_host=args.host, mcp_port=args.port,
                                   embed_url=args.embed_url))
    if args.http:
        conninfo = psycopg.conninfo.make_conninfo(
            host=cfg.pg_host, port=cfg.pg_port, dbname=cfg.database, user=APP,
            password=secrets.read(cfg.secret_file(APP)))
        asyncio.run(mcp.serve_http(conninfo, cfg.sidecar_url, cfg.mcp_host, cfg.mcp_port))
        return 0
    dsn = agents.dsn(cfg, args.agent) if args.agent else cfg.agent_dsn
    if not dsn:
        raise ServerError("nexus mcp needs --agent NAME or NEXUS_AGENT_DSN (or --http)")
    asyncio.run(mcp.serve_stdio(dsn, cfg.sidecar_url))
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    cfg = resolve_home(config.load(http_port=args.http_port))
    replicas = cfg.worker_replicas if args.replicas is None else args.replicas
    if not 1 <= replicas <= 16:
        raise ServerError("replicas must be between 1 and 16 (WORKER_REPLICAS or --replicas)")
    return Supervisor(cfg, replicas).run()


def cmd_backup(args: argparse.Namespace) -> int:
    if args.keep is not None and args.keep < 1:
        raise backup.BackupError(f"--keep must be at least 1, got {args.keep}")
    stack = _stack(args)
    if stack.pg.pid() is None or stack.redis.pid() is None:
        raise ServerError("the local stack is not running: nexus up --detach")
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    out = Path(args.out) if args.out else stack.cfg.home / "backups" / stamp
    manifest = backup.backup(stack, out)
    rows = sum(manifest["row_counts"].values())
    print(f"backup written to {out} ({rows} rows; manifest with checksums in {backup.MANIFEST})")
    if args.keep is not None:
        for path in backup.prune(out.parent, args.keep):
            print(f"removed older backup {path}")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    stack = _stack(args)
    if stack.pg.pid() is None or stack.redis.pid() is None:
        raise ServerError("the local stack is not running: nexus up --detach")
    manifest = backup.verify(Path(args.directory))
    if not args.yes:
        raise ServerError(f"restore replaces database {stack.cfg.database} and all Redis data "
                          f"with the backup of {manifest['created_at']}: add --yes")
    backup.restore(stack, Path(args.directory))
    print(f"restored {args.directory}: checksums verified, row counts equal")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    return 0 if doctor.report(doctor.run(_stack(args))) else 1


def cmd_reconcile(args: argparse.Namespace) -> int:
    cfg = resolve_home(config.load())
    with cache.worker_conn(cfg) as conn:
        report = cache.Mirror(conn, cache.redis_client(cfg)).reconcile()
    if args.json:
        print(json.dumps(dataclasses.asdict(report)))
    else:
        print(f"reconciled {report.ranges} range(s) in {report.seconds:.1f} s: "
              f"{report.dirty_ranges} differed, {report.rows_read} rows read, "
              f"{report.written} keys written, {report.deleted} removed, "
              f"{report.recent_fixed} recent-episode lists refreshed")
    return 0


def cmd_retention(args: argparse.Namespace) -> int:
    from nexus import retention
    with _agent_conn(args)[1] as conn:
        return retention.run(conn, args)


def cmd_reads(args: argparse.Namespace) -> int:
    from nexus import reads
    with _agent_conn(args)[1] as conn:
        return reads.run(conn, args)


def cmd_search(args: argparse.Namespace) -> int:
    cfg = config.load()
    url = args.embed_url or f"http://{cfg.http_host}:{cfg.http_port}"
    options = {"limit_n": args.limit}
    if args.kind:
        options["kinds"] = args.kind
    if args.tag:
        options["tags_all"] = args.tag
    if args.session:
        options["session"] = args.session
    if args.websearch:
        options["text_mode"] = "websearch"
    if args.space:
        options["spaces"] = args.space
    if args.all_spaces:
        options["scope"] = "all"
    if args.as_of:
        options["as_of"] = args.as_of
    if args.include_history:
        options["include_history"] = True
    mode = args.mode
    with psycopg.connect(agents.dsn(resolve_home(cfg), args.agent), autocommit=True) as conn:
        embedding = None
        if mode == "auto":
            vector = client.query_vector(args.query, url)
            if vector.note:
                print(f"nexus: {vector.note}", file=sys.stderr)
            mode, embedding = vector.mode, vector.embedding
        hits = client.search(conn, args.query, mode=mode, embedding=embedding, embed_url=url,
                             **options)
    if args.json:
        print(json.dumps(hits, default=str, indent=2))
        return 0
    print(f"{len(hits)} result(s), {mode} search as {args.agent}")
    for n, h in enumerate(hits, 1):
        ranks = f"text #{h['text_rank'] or '-'} vector #{h['vector_rank'] or '-'}"
        snippet = " ".join((h["snippet"] or "").split())
        where = f"  [{h['space']}, by {h['author']}]" if h.get("space") else ""
        print(f"{n:>3}. {h['kind']} {h['id']}  score {h['fused_score']:.4f}  ({ranks}){where}")
        if h.get("valid_from") is not None:
            until = h["valid_to"] or "now"
            print(f"     {h['fact_key'] or 'fact'}: held from {h['valid_from']} until {until}")
        print(f"     {snippet}")
    return 0


PSQL_ROLES = {"ro": READONLY, "app": APP, "superuser": SUPERUSER}


def cmd_psql(args: argparse.Namespace) -> int:
    """psql (the embedded PostgreSQL's own, same version as the server) as an agent or a role."""
    words = list(args.words)
    if args.role is None and (not words or words[0].startswith("-")):
        raise ServerError("nexus psql needs an agent or a role: nexus psql AGENT, or "
                          "nexus psql --role ro|app|superuser (psql's own options after --)")
    if args.role is not None and words and not words[0].startswith("-"):
        raise ServerError(f"nexus psql takes an agent or --role, not both ({words[0]!r} and "
                          f"--role {args.role}); psql's own arguments go after --")
    stack = _stack(args)
    if stack.pg.pid() is None:
        raise ServerError("the local stack is not running: nexus up --detach")
    if args.role is not None:
        dsn = stack.dsns()[PSQL_ROLES[args.role]]
    else:
        name = words.pop(0)
        with stack.superuser_conn(autocommit=True) as conn:
            known = conn.execute("SELECT 1 FROM memory_system.agents WHERE agent_id = %s",
                                 (name,)).fetchone()
        if known is None:
            raise ServerError(f"no agent {name!r} in database {stack.cfg.database}: "
                              f"nexus agent list, or nexus agent add {name}")
        dsn = agents.dsn(stack.cfg, name)
    psql = stack.pg.bin("psql")
    sys.stdout.flush()
    os.execv(psql, [psql, f"--dbname={dsn}", *words])


def _target(args: argparse.Namespace) -> tuple[psycopg.Connection, object]:
    """The NEXUS database an import or export works on (as the owner), and a way to add agents."""
    cfg = config.load()
    if getattr(args, "dsn", None):
        params = conninfo_to_dict(args.dsn)
        if "password" not in params and cfg.secret_file(SUPERUSER).exists():
            params["password"] = secrets.read(cfg.secret_file(SUPERUSER))
        return psycopg.connect(**params), None
    stack, conn = _agent_conn(args)
    conn.close()
    return stack.superuser_conn(), stack.cfg


def _print_report(report: dict, as_json: bool) -> int:
    print(json.dumps(report, indent=2, default=str) if as_json else imports.summary(report))
    return 0 if report["ok"] else 1


def cmd_import(args: argparse.Namespace) -> int:
    conn, cfg = _target(args)
    with conn:
        if args.import_cmd == "list":
            for i in imports.list_imports(conn):
                ok = {True: "valid", False: "INVALID", None: "-"}[i["ok"]]
                print(f"{i['import_id']:>5}  {i['format']:<6} {i['state']:<11} {ok:<7} "
                      f"{i['rows']:>9} rows  {i['started_at']:%Y-%m-%d %H:%M}  {i['source']}")
            return 0
        if args.import_cmd == "rollback":
            result = imports.rollback(conn, args.import_id)
            print(f"import {args.import_id} rolled back: {result['episodes_deleted']} episodes, "
                  f"{result['facts_deleted']} facts, {result['checkpoints_deleted']} checkpoints "
                  f"and "
                  f"{result['working_memory_deleted']} working-memory keys deleted; "
                  f"{result['working_memory_restored']} replaced keys restored")
            return 0
        create = None
        if args.create_agents:
            if cfg is None:
                raise imports.ImportFailed("--create-agents works on the local stack only "
                                            "(agents need secret files): nexus agent add NAME")

            def create(name: str) -> None:
                agents.add(conn, cfg, name, "imported")  # type: ignore[arg-type]
                print(f"nexus: created agent {name}", file=sys.stderr)
        if args.import_cmd == "legacy":
            opts = imports.LegacyOptions(
                pg=args.pg, redis_url=args.redis, agent=args.agent, source_name=args.source_name,
                redis_rdb=Path(args.redis_rdb) if args.redis_rdb else None,
                mapping=Path(args.mapping) if args.mapping else None, batch=args.batch,
                wait=args.wait, jobs=args.jobs,
                adapt=frozenset(w.strip() for a in args.adapt or () for w in a.split(",")),
                max_content_bytes=args.max_content_bytes)
            report = imports.import_legacy(conn, opts, create)
        else:
            # into a space: its rows are those of its id, each with its author (docs/spaces.md)
            agent = _space_id(conn, args.space) if args.space else args.agent
            report = imports.import_jsonl(conn, Path(args.file), agent, create, args.batch,
                                           args.wait)
    return _print_report(report, args.json)


def _space_id(conn: psycopg.Connection, name: str) -> str:
    found = spaces.space_id(conn, name)
    if found is None:
        raise ServerError(f"no space {name} (nexus space list)")
    return found


def cmd_export(args: argparse.Namespace) -> int:
    conn, _cfg = _target(args)
    with conn:
        # a space's rows are those of its id (docs/spaces.md)
        owner = _space_id(conn, args.space) if args.space else args.agent
        if args.out:
            with open(args.out, "w", encoding="utf-8") as out:
                counts = imports.export_agent(conn, owner, out)
        else:
            counts = imports.export_agent(conn, owner, sys.stdout)
    print("exported " + ", ".join(f"{n} {k}" for k, n in counts.items())
          + (f" to {args.out}" if args.out else ""), file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nexus", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def ports(p: argparse.ArgumentParser) -> None:
        p.add_argument("--pg-port", type=int,
                       help=f"PostgreSQL port ({config.describe('pg_port')})")
        p.add_argument("--redis-port", type=int,
                       help=f"Redis port ({config.describe('redis_port')})")

    p = sub.add_parser("up", help="start PostgreSQL + pgvector and Redis, migrate")
    p.add_argument("--detach", action="store_true", help="return once the stack is up")
    ports(p)
    p.set_defaults(func=cmd_up)

    p = sub.add_parser("watch")  # what `nexus up --detach` leaves running: the watchdog
    ports(p)
    p.set_defaults(func=cmd_watch)

    p = sub.add_parser("worker", help="embedding worker replicas (python -m sidecar each) with "
                       "/health, /metrics, restarted when they die")
    p.add_argument("--replicas", type=int,
                   help=f"worker processes ({config.describe('worker_replicas')})")
    p.add_argument("--http-port", type=int,
                   help="HTTP port of the first replica; the others use the next ones "
                        f"({config.describe('http_port')}; 0 for none)")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("down", help="stop the local stack")
    p.set_defaults(func=cmd_down)

    p = sub.add_parser("status", help="ports, pids, health and connection strings")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("migrate", help="apply migrations and the repeatable SQL files")
    p.add_argument("--dsn", help="any PostgreSQL 16+ with pgvector (default: the local stack)")
    p.set_defaults(func=cmd_migrate)

    p = sub.add_parser("secrets", help="password files")
    ssub = p.add_subparsers(dest="secrets_cmd", required=True)
    s = ssub.add_parser("init", help="generate missing passwords (32 alphanumerics, mode 600) "
                                     "in $NEXUS_HOME/secrets")
    s.add_argument("--compose", action="store_true",
                   help="also those only the compose deployment needs (NEXUS_HOME=deploy)")
    p.set_defaults(func=cmd_secrets_init)

    p = sub.add_parser("backup", help="pg_dump + Redis snapshot + manifest with checksums")
    p.add_argument("--out", help="a new directory (default: $NEXUS_HOME/backups/<time>)")
    p.add_argument("--keep", type=int, metavar="N",
                   help="then remove all but the newest N backups beside it (they still hold "
                        "what was forgotten since: docs/privacy.md)")
    p.set_defaults(func=cmd_backup)

    p = sub.add_parser("restore", help="verify a backup's checksums, then restore it")
    p.add_argument("directory")
    p.add_argument("--yes", action="store_true", help="replace the current data")
    p.set_defaults(func=cmd_restore)

    p = sub.add_parser("doctor", help="the final validation checklist, with evidence")
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("agent", help="agents: one login role each")
    asub = p.add_subparsers(dest="agent_cmd", required=True)
    a = asub.add_parser("add", help="register an agent and create its login role")
    a.add_argument("name")
    a.add_argument("--description", default="")
    a.add_argument("--no-orchestrator", action="store_true",
                   help="do not let nexus_app SET ROLE to this agent")
    a = asub.add_parser("dsn", help="print an agent's connection string")
    a.add_argument("name")
    a.add_argument("--show-password", action="store_true",
                   help="put the password in the URL instead of a pgpass file")
    asub.add_parser("list", help="list agents")
    a = asub.add_parser("remove", help="unregister an agent and drop its role")
    a.add_argument("name")
    a.add_argument("--delete-memories", action="store_true",
                   help="also delete its memories (refused otherwise while it has any)")
    a = asub.add_parser("token", help="bearer tokens for the MCP server over HTTP: "
                                      "token NAME | token list NAME | token revoke ID")
    a.add_argument("words", nargs="+", metavar="NAME | list NAME | revoke ID")
    a.add_argument("--ttl", help="lifetime, e.g. 30d, 12h, 90m (default: until revoked)")
    a.add_argument("--label", default="", help="what the token is for (shown by token list)")
    a = asub.add_parser("grant", help="let an orchestrator role SET ROLE to this agent")
    a.add_argument("name")
    a.add_argument("--to", required=True, help="the orchestrator's role")
    p.set_defaults(func=cmd_agent)

    p = sub.add_parser("forget", help="forget an agent's memories that match a filter, with "
                                      "every copy, then verify nothing is left (exit 1 if so)")
    p.add_argument("--agent", required=True)
    p.add_argument("--kind", action="append", choices=("episode", "semantic", "store"),
                   help="only this kind of memory (repeatable; default all three)")
    p.add_argument("--tag", action="append", help="memories carrying this tag (repeatable: all)")
    p.add_argument("--session", help="episodes of this session")
    p.add_argument("--since", help="recorded at or after this time (ISO 8601)")
    p.add_argument("--until", help="recorded before this time (ISO 8601)")
    p.add_argument("--metadata", metavar="JSON", help="metadata containing this JSON object")
    p.add_argument("--space", help="forget in this shared space (the agent must be allowed to "
                                   "write it) instead of the agent's own memory")
    p.add_argument("--dry-run", action="store_true", help="only count what would go")
    p.add_argument("--verify", action="store_true",
                   help="forget nothing: only the verification pass for the filter")
    p.add_argument("--json", action="store_true", help="the receipt as JSON")
    p.set_defaults(func=cmd_forget)

    spaces.add_parser(sub).set_defaults(func=cmd_space)

    p = sub.add_parser("mcp", help="the MCP server: stdio as one agent (--agent NAME or "
                                   "NEXUS_AGENT_DSN), or --http with bearer tokens")
    p.add_argument("--agent", help="stdio: act as this agent of the local stack")
    p.add_argument("--http", action="store_true",
                   help="streamable HTTP at /mcp (logs in as nexus_app; nexus agent token NAME)")
    p.add_argument("--host", help=f"HTTP address ({config.describe('mcp_host')})")
    p.add_argument("--port", type=int, help=f"HTTP port ({config.describe('mcp_port')})")
    p.add_argument("--embed-url",
                   help=f"the sidecar's /embed for recall ({config.describe('embed_url')})")
    p.set_defaults(func=cmd_mcp)

    p = sub.add_parser("reconcile", help="compare Redis with PostgreSQL by range checksums and "
                                         "repair what differs (once)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_reconcile)

    from nexus import reads, retention
    retention.add_parser(sub).set_defaults(func=cmd_retention)
    reads.add_parser(sub).set_defaults(func=cmd_reads)

    p = sub.add_parser("search", help="search an agent's memories (embeds the query with /embed)")
    p.add_argument("query")
    p.add_argument("--agent", required=True, help="search as this agent (its own connection)")
    p.add_argument("--mode", choices=("auto", *client.MODES), default="auto",
                   help="auto: hybrid if the sidecar's /embed answers, else text (default)")
    p.add_argument("--limit", type=int, default=10)
    p.add_argument("--kind", action="append", choices=("episode", "semantic"),
                   help="only this kind of memory (repeatable)")
    p.add_argument("--tag", action="append", help="only memories carrying this tag (repeatable)")
    p.add_argument("--session", help="only episodes of this session")
    p.add_argument("--websearch", action="store_true",
                   help='text in web-search syntax: "quoted phrase", OR, -excluded')
    history = p.add_mutually_exclusive_group()
    history.add_argument("--as-of", metavar="TS",
                         help="the facts that held at this time (ISO 8601) instead of now")
    history.add_argument("--include-history", action="store_true",
                         help="facts that no longer hold too, each with when it held")
    p.add_argument("--embed-url", help="the sidecar (default http://NEXUS_HTTP_HOST:NEXUS_HTTP_PORT)")
    p.add_argument("--space", action="append", help="also search this shared space (repeatable)")
    p.add_argument("--all-spaces", action="store_true", help="also search every space it may read")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("psql", help="psql (the embedded PostgreSQL's, matching the server) as an "
                                    "agent or a fixed role; psql's own arguments after --")
    p.add_argument("words", nargs="*", metavar="AGENT [-- PSQL_ARG ...]",
                   help="the agent to log in as (its connection string: nexus agent dsn AGENT), "
                        "then psql's arguments after --, e.g. nexus psql scout -- -c 'SELECT 1'")
    p.add_argument("--role", choices=tuple(PSQL_ROLES),
                   help="log in as nexus_ro (read only), nexus_app or nexus_superuser instead")
    p.set_defaults(func=cmd_psql)

    def target(p: argparse.ArgumentParser) -> None:
        p.add_argument("--dsn", help="the NEXUS database, as its owner (default: the local stack)")

    def loading(p: argparse.ArgumentParser) -> None:
        target(p)
        p.add_argument("--agent", help="the agent for rows that name none (legacy) / instead of "
                                       "the file's (jsonl)")
        p.add_argument("--create-agents", action="store_true",
                       help="register agents that do not exist yet (local stack)")
        p.add_argument("--wait", type=float, metavar="SECONDS", nargs="?", const=3600.0,
                       help="wait for the workers to embed everything imported (default 3600 s)")
        p.add_argument("--batch", type=int, default=imports.BATCH_ROWS,
                       help=f"rows per committed batch ({imports.BATCH_ROWS})")
        p.add_argument("--json", action="store_true", help="the validation report as JSON")

    p = sub.add_parser("import", help="import an old memory store or a NEXUS export; roll back")
    isub = p.add_subparsers(dest="import_cmd", required=True)
    i = isub.add_parser("legacy", help="PostgreSQL episodes and working memory, and Redis "
                                       "working memory, of the old store")
    i.add_argument("--pg", required=True, help="DSN of the legacy PostgreSQL database")
    i.add_argument("--redis", help="URL of the legacy Redis (redis://...)")
    i.add_argument("--redis-rdb", metavar="FILE", help="a Redis RDB dump instead of a live Redis")
    i.add_argument("--mapping", metavar="FILE", help="TOML file adapting other table/column names "
                                                     "(docs/import.md)")
    i.add_argument("--source-name", default="legacy",
                   help="names this source in the ledger (two different stores: two names)")
    i.add_argument("--jobs", type=int, default=2, choices=range(1, 17), metavar="N",
                   help="parallel writers of episodes, each a session of its own (2)")
    i.add_argument("--adapt", action="append", metavar="WHAT[,WHAT]",
                   help="adapt instead of rejecting, each row counted and listed in the report: "
                        "metadata (not a JSON object: kept as {\"legacy_metadata\": text}), "
                        "oversize (content over 256 KiB kept whole, up to --max-content-bytes)")
    i.add_argument("--max-content-bytes", type=int, default=imports.IMPORT_MAX_CONTENT_BYTES,
                   metavar="N", help="the import's own content limit with --adapt oversize "
                                     f"({imports.IMPORT_MAX_CONTENT_BYTES})")
    loading(i)
    i = isub.add_parser("jsonl", help="a file written by nexus export")
    i.add_argument("file")
    loading(i)
    i.add_argument("--space", help="into this space instead of the file's agent (docs/spaces.md)")
    i = isub.add_parser("rollback", help="undo an import: the database as it was before it")
    i.add_argument("import_id", type=int)
    target(i)
    i = isub.add_parser("list", help="imports, their state and validation")
    target(i)
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("export", help="one agent's memories as JSONL (nexus import jsonl reads it)")
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--agent")
    who.add_argument("--space", help="a space's memories instead (docs/spaces.md)")
    p.add_argument("--out", help="file to write (default: standard output)")
    target(p)
    p.set_defaults(func=cmd_export)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ServerError, ConfigError, migrate.MigrationError, backup.BackupError,
            client.EmbedUnavailable, client.EmbedRefused, redis.RedisError,
            imports.ImportFailed) as exc:
        print(f"nexus: error: {exc}", file=sys.stderr)
        return 2
    except psycopg.Error as exc:
        code = getattr(exc, "sqlstate", None) or "-----"
        print(f"nexus: database error {code}: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # the reader went away (`nexus status | head`): stop quietly, as cat does, without a
        # second error when Python flushes stdout at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
