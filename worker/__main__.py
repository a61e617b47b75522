"""`python -m worker`: an RQ worker on the project's queues in priority order, with RQ's
scheduler (for `enqueue_in` follow-ups) and the periodic ticker (relay, reconcile, backfills)."""
from __future__ import annotations

import argparse
import logging
import sys

from rq import Worker

from store import queue
from store.config import Settings
from store.db import make_engine, make_sessionmaker
from worker.bootstrap import Options
from worker.ticker import Ticker


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m worker", description=__doc__)
    parser.add_argument("--burst", action="store_true", help="stop when the queues are empty")
    parser.add_argument("--no-ticker", action="store_true", help="no periodic relay/reconcile/backfill checks")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(name)s %(levelname)s %(message)s")

    settings = Settings.from_env()
    if not settings.redis_url:
        print("REDIS_URL is not set (make demo starts an embedded Redis and sets it)", file=sys.stderr)
        return 2
    options = Options.from_env()
    redis = queue.connect(settings.redis_url)
    ticker = None
    if not args.no_ticker:
        # The ticker has its own engine and Redis client: nothing it holds is shared with
        # the work horses RQ forks for each job.
        engine = make_engine(settings.database_url)
        ticker = Ticker(make_sessionmaker(engine), queue.connect(settings.redis_url), options)
        ticker.start()
    # A short worker TTL makes an idle worker wake every `maintenance_seconds` to run RQ's
    # maintenance, which is also when it takes over the scheduler from a worker that died.
    ttl = options.maintenance_seconds + 15
    worker = Worker(
        queue.queues(redis),
        connection=redis,
        maintenance_interval=options.maintenance_seconds,
        worker_ttl=ttl,
        job_monitoring_interval=max(1, min(30, ttl // 3)),
    )
    try:
        worker.work(burst=args.burst, with_scheduler=True, logging_level=args.log_level)
    finally:
        if ticker:
            ticker.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
