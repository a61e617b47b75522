"""`make bench` (`python -m bench`): every benchmark, figures into bench/RESULTS.md.

    python -m bench                      # everything, at the issue's sizes and durations
    python -m bench --quick              # shorter runs and smaller data, for development
    python -m bench --only intake reads  # some of them
    python -m bench --output /tmp/r.md   # somewhere else

PostgreSQL: BENCH_PG_URL (or DATABASE_URL) if set, else a throwaway cluster started here
(Debian's binaries) and stopped at the end; without binaries the PostgreSQL figures are skipped.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import signal
import sys
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

from bench import machine, report
from bench.postgres import Postgres

BENCHMARKS = ("intake", "economy", "freshness", "neighbour", "reads", "backfill", "idle", "month", "scale")
INTRO = (
    "Figures from `make bench`: each benchmark measures its own baseline in the same run, on this "
    "machine, and reports the ratio. Loopback only; the emulator stands in for Xero (see emulator/README.md)."
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="short runs and small data (development)")
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS, help="run only these")
    parser.add_argument("--output", type=Path, default=report.HERE / "RESULTS.md")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    # SIGTERM (timeout, Ctrl-C in a supervisor) unwinds like an exception, so every `finally`
    # stops the servers, workers and PostgreSQL cluster this run started
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = datetime.now(timezone.utc)
    pg = Postgres.start()
    print(f"PostgreSQL: {pg.origin or pg.skip}", flush=True)
    sections: list[report.Section] = []
    failed = 0
    try:
        facts = machine.describe(pg.version, pg.origin or f"skipped: {pg.skip}")
        for name in args.only or BENCHMARKS:
            print(f"== {name}", flush=True)
            module = importlib.import_module(f"bench.{name}")
            began = time.monotonic()
            try:
                section = module.run(pg, quick=args.quick)
            except Exception:  # noqa: BLE001 (one broken benchmark must not lose the others' figures)
                failed += 1
                section = report.Section(f"{name} (failed)", notes=["```\n" + traceback.format_exc() + "```"])
                traceback.print_exc()
            section.seconds = time.monotonic() - began
            sections.append(section)
            print(section.markdown(), flush=True)
            report.write(args.output, "Benchmarks" + (" (--quick)" if args.quick else ""), INTRO, facts,
                         sections, started)
    finally:
        pg.stop()
    print(f"wrote {args.output}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
