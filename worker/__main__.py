"""`python -m worker`: an RQ worker on the project's queues in priority order, with RQ's
scheduler (for `enqueue_in` follow-ups) and the periodic ticker (relay, reconcile, backfills).

Jobs run in the worker process itself (RQ's SimpleWorker), not in a work horse forked per
job: a webhook sync is about 100 ms of waiting on Xero, and forking cost 60 ms more on
every one of them (bench/RESULTS.md, Freshness). Job timeouts still hold (RQ's SIGALRM
death penalty works in the main process); `--fork` brings back a horse per job, for jobs
that might leak or crash the interpreter. Run more processes for more concurrency.

If the worker loop ends without being asked to (Redis went away mid-job, or anything RQ
calls "an unhandled exception, quitting"), it is started again after a short pause: the
inbox keeps every event meanwhile, so retrying often costs nothing.

SIGTERM or SIGINT stops it with status 0: idle at once, busy once the current job has ended
(RQ's warm shutdown, so within the job's time-out); a second signal a second or more later
stops it cold, as RQ does.
"""
from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import subprocess
import sys
import time
from types import FrameType

from redis.exceptions import RedisError
from rq import SimpleWorker, Worker

from infra import logs, queue
from infra.settings import Settings, from_env_or_exit

log = logging.getLogger("worker")
REDIS_RECONNECT_MAX_SECONDS = 4.0
RESTART_PAUSE_SECONDS = (0.5, 1.0, 2.0, 4.0)  # between restarts of a loop that ended unasked
TICKER_STOP_SECONDS = 5.0  # the ticker's time to finish a tick once told to stop


class _Stop(Exception):
    """A SIGTERM or SIGINT while no worker loop is listening (starting one, or pausing)."""


def _stop_now(signum: int, _frame: FrameType | None) -> None:
    raise _Stop(signal.Signals(signum).name)


def _stop_on_signals() -> None:
    """Until RQ installs its own handlers (and again once its loop has ended): stop at once."""
    signal.signal(signal.SIGTERM, _stop_now)
    signal.signal(signal.SIGINT, _stop_now)


class _Asked:
    """Remembers that a signal asked the worker to stop. RQ 3 sets `_stop_requested` only when
    the signal finds it busy; idle, it raises StopRequested, which ends `work()` just as a loop
    that failed does, and the loop must then not be started again."""

    asked_to_stop = False

    def request_stop(self, signum, frame) -> None:
        self.asked_to_stop = True
        super().request_stop(signum, frame)  # type: ignore[misc]


class _SimpleWorker(_Asked, SimpleWorker):
    pass


class _ForkingWorker(_Asked, Worker):
    pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m worker", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--burst", action="store_true", help="stop when the queues are empty")
    parser.add_argument("--fork", action="store_true", help="fork a work horse for every job (RQ's Worker)")
    parser.add_argument("--no-ticker", action="store_true", help="no periodic relay/reconcile/backfill checks")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logs.configure(args.log_level)  # JSON lines, secrets redacted

    settings = from_env_or_exit()  # a refused setting: one line on stderr, exit 1
    if not settings.redis_url:
        print("REDIS_URL is not set (make demo starts an embedded Redis and sets it)", file=sys.stderr)
        return 2
    ticker = None
    if not args.no_ticker:
        # The ticker runs in a process of its own, not a thread: with --fork RQ forks a work
        # horse for every job, and a fork taken while a thread holds a lock (SQLite's, a
        # connection pool's) leaves the horse waiting on that lock forever.
        ticker = _start_ticker(args.log_level)
    _stop_on_signals()
    worker: _SimpleWorker | _ForkingWorker | None = None
    try:
        restarts = 0
        while True:
            worker = None
            try:
                worker = _worker(settings, fork=args.fork)
                worked = worker.work(burst=args.burst, with_scheduler=True, logging_level=args.log_level)
            except RedisError as error:  # Redis still away while the worker starts (registers itself)
                if args.burst:
                    raise
                worked = False
                log.warning("queue unavailable: %s", error)
            # RQ's handlers belong to the worker that just ended: a signal from here on stops at once
            _stop_on_signals()
            if args.burst or (worker is not None and worker.asked_to_stop):  # done, or asked to stop
                return 0
            pause = RESTART_PAUSE_SECONDS[min(restarts, len(RESTART_PAUSE_SECONDS) - 1)]
            restarts = 0 if worked else restarts + 1
            log.warning("worker loop ended unasked; starting it again in %.1fs", pause)
            time.sleep(pause)  # no job runs during the pause
    except _Stop as stop:  # no loop was listening: nothing to finish
        log.info("stopping on %s", stop)
        if worker is not None:
            with contextlib.suppress(Exception):
                worker.teardown()  # its scheduler process, if one started, and its registration
        return 0
    finally:
        if ticker:
            for stop_signal in (signal.SIGTERM, signal.SIGINT):  # on the way out: no second exception
                signal.signal(stop_signal, signal.SIG_IGN)
            ticker.terminate()
            try:
                ticker.wait(timeout=TICKER_STOP_SECONDS)
            except subprocess.TimeoutExpired:
                ticker.kill()
                ticker.wait()


def _start_ticker(log_level: str) -> subprocess.Popen:
    """The ticker, born ignoring SIGINT (an ignored signal stays ignored across exec): a Ctrl-C
    reaching the whole group while it still imports would print a KeyboardInterrupt traceback.
    Its own handlers, installed once it runs, stop it on SIGINT and SIGTERM; until then SIGTERM
    (what `main` sends it on the way out) ends it silently."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        return subprocess.Popen([sys.executable, "-m", "worker.ticker", "--log-level", log_level])
    finally:
        signal.signal(signal.SIGINT, previous)


def _worker(settings: Settings, fork: bool) -> _SimpleWorker | _ForkingWorker:
    if not settings.redis_url:
        raise RuntimeError("REDIS_URL is not set")  # main() refuses before it gets here
    redis = queue.connect(settings.redis_url)
    options = settings.worker
    # A short worker TTL makes an idle worker wake every `maintenance_seconds` to run RQ's
    # maintenance, which is also when it takes over the scheduler from a worker that died.
    ttl = options.maintenance_seconds + 15
    worker = (_ForkingWorker if fork else _SimpleWorker)(
        queue.queues(redis),
        connection=redis,
        maintenance_interval=options.maintenance_seconds,
        worker_ttl=ttl,
        job_monitoring_interval=max(1, min(30, ttl // 3)),
    )
    # RQ backs off up to 60 s between reconnects; after a Redis blip we want work to resume
    # within seconds (the inbox holds everything meanwhile, so retrying often costs nothing).
    worker.max_connection_wait_time = REDIS_RECONNECT_MAX_SECONDS
    return worker


if __name__ == "__main__":
    sys.exit(main())
