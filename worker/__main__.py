"""`python -m worker`: an RQ worker on the project's queues in priority order, with RQ's
scheduler (for `enqueue_in` follow-ups) and the periodic ticker (relay, reconcile, backfills)."""
from __future__ import annotations

import argparse
import subprocess
import sys

from rq import Worker

from store import logs, queue
from store.config import Settings
from worker.bootstrap import Options


REDIS_RECONNECT_MAX_SECONDS = 4.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m worker", description=__doc__)
    parser.add_argument("--burst", action="store_true", help="stop when the queues are empty")
    parser.add_argument("--no-ticker", action="store_true", help="no periodic relay/reconcile/backfill checks")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logs.configure(args.log_level)  # JSON lines, secrets redacted

    settings = Settings.from_env()
    if not settings.redis_url:
        print("REDIS_URL is not set (make demo starts an embedded Redis and sets it)", file=sys.stderr)
        return 2
    options = Options.from_env()
    redis = queue.connect(settings.redis_url)
    ticker = None
    if not args.no_ticker:
        # The ticker runs in a process of its own, not a thread: RQ forks a work horse for
        # every job, and a fork taken while a thread holds a lock (SQLite's, a connection
        # pool's) leaves the horse waiting on that lock forever.
        ticker = subprocess.Popen([sys.executable, "-m", "worker.ticker", "--log-level", args.log_level])
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
    # RQ backs off up to 60 s between reconnects; after a Redis blip we want work to resume
    # within seconds (the inbox holds everything meanwhile, so retrying often costs nothing).
    worker.max_connection_wait_time = REDIS_RECONNECT_MAX_SECONDS
    try:
        worker.work(burst=args.burst, with_scheduler=True, logging_level=args.log_level)
    finally:
        if ticker:
            ticker.terminate()
            ticker.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
