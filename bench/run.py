"""Run the benchmarks: `python -m bench.run [--only PREFIX]` (or `make bench [ONLY=PREFIX]`).

Starts a throw-away stack, runs every benchmark that produces a figure whose name starts with
PREFIX (all of them without --only), prints a table of those figures only and writes them to
bench/results/latest.json. A benchmark that can (the worker's) measures only what they need.
Exits 1 if a benchmark failed.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import signal
import sys
import traceback
from types import FrameType

import bench
from bench.harness import Benchmark, Figure, failed_figures, table, throwaway_stack, write_json

NOT_BENCHMARKS = {"run", "harness"}


def discover() -> list[Benchmark]:
    found: list[Benchmark] = []
    for info in sorted(pkgutil.iter_modules(bench.__path__), key=lambda m: m.name):
        if info.name in NOT_BENCHMARKS:
            continue
        module = importlib.import_module(f"bench.{info.name}")
        found.extend(getattr(module, "BENCHMARKS", []))
    return found


def _stop(signum: int, frame: FrameType | None) -> None:
    # turn SIGTERM into an exception so that the stack is stopped on the way out
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    parser.add_argument("--only", metavar="PREFIX",
                        help="run only the benchmarks with a figure whose name starts with PREFIX")
    args = parser.parse_args(argv)

    benchmarks = [(b, wanted) for b in discover() if (wanted := b.wanted(args.only))]
    if not benchmarks:
        names = sorted(f for b in discover() for f in b.figures)
        print(f"no figure starts with {args.only!r}; figures: {', '.join(names)}", file=sys.stderr)
        return 2

    signal.signal(signal.SIGTERM, _stop)
    figures: list[Figure] = []
    with throwaway_stack() as st:
        for b, wanted in benchmarks:
            print(f"== {b.name} ({', '.join(wanted)})", file=sys.stderr, flush=True)
            produced: list[Figure] = []
            try:
                produced = b.measure(st, wanted)
            except Exception as exc:  # one broken benchmark must not hide the others' figures
                traceback.print_exc()
                produced = failed_figures(wanted, produced, exc)
            figures.extend(produced)

    print(table(figures))
    # with --only, the other figures of the last runs stay in the file (each names its run time)
    path = write_json(figures, merge=args.only is not None)
    print(f"\nwritten to {path}")
    return 1 if any(f.failed for f in figures) else 0


if __name__ == "__main__":
    sys.exit(main())
