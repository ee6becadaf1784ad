"""`python -m sidecar`: the embedding workers under their supervisor (what the container runs).

    python -m sidecar [--replicas N] [--http-port PORT]

Settings come from the environment (sidecar/config.py). `--replica` is the supervisor's own
way of starting one worker process.
"""

from __future__ import annotations

import argparse
import sys

from sidecar import config, service
from sidecar.supervisor import CONFIG_ERROR, Supervisor


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sidecar", description=__doc__.split("\n")[0])
    parser.add_argument("--replicas", type=int, help="worker processes (WORKER_REPLICAS, 1)")
    parser.add_argument("--http-port", type=int, help="HTTP port of the first replica; the others "
                        "use the next ones (NEXUS_HTTP_PORT, 58080; 0 for none)")
    parser.add_argument("--replica", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--supervised", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    cfg = config.load(http_port=args.http_port)
    if args.replica:
        return service.run_one(cfg, args.supervised)
    replicas = cfg.worker_replicas if args.replicas is None else args.replicas
    if not 1 <= replicas <= 16:
        print("nexus worker: error: replicas must be between 1 and 16 (WORKER_REPLICAS or "
              "--replicas)", file=sys.stderr)
        return CONFIG_ERROR
    return Supervisor(cfg, replicas).run()


if __name__ == "__main__":
    sys.exit(main())
