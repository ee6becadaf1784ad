"""`python -m sidecar`: one embedding worker with its HTTP endpoints (what the container runs).

    python -m sidecar [--http-port PORT]

Settings come from the environment (below; sidecar/config.py). It runs until SIGTERM or SIGINT,
then drains; it exits 2 when it refuses its configuration (starting it again cannot help), 1 when
PostgreSQL did not answer at start. To run several replicas with restarts: `nexus worker`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from sidecar import config, service
from sidecar.embedder import ModelError


def main(argv: list[str] | None = None) -> int:
    epilog = "environment:\n" + "\n".join(f"  {env:<32} {meaning} (default {default})"
                                          for env, default, meaning in config.settings())
    parser = argparse.ArgumentParser(prog="python -m sidecar", description=__doc__.split("\n")[0],
                                     epilog=epilog,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--http-port", type=int, help="HTTP port (0 for none; default: "
                        "NEXUS_HTTP_PORT, below)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    # an outage is logged once each way by sidecar.db.Outage; the pool would log every try
    logging.getLogger("psycopg.pool").setLevel(logging.ERROR)
    try:
        asyncio.run(service.serve(config.load(http_port=args.http_port)))
    except (ModelError, ValueError, service.DatabaseUnavailable) as exc:  # ConfigError: ValueError
        print(f"nexus worker: error: {exc}", file=sys.stderr)
        return 1 if isinstance(exc, service.DatabaseUnavailable) else config.CONFIG_ERROR
    return 0


if __name__ == "__main__":
    sys.exit(main())
