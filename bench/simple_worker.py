"""`python -m bench.simple_worker`: `python -m worker` with RQ's SimpleWorker, which runs each
job in the worker process instead of forking a work horse for it.

An experiment for the freshness benchmark only, to show what the fork per job costs; the
shipped worker forks (a horse per job isolates jobs from each other and lets RQ stop one).
"""
from __future__ import annotations

import sys

from rq.worker import SimpleWorker

import worker.__main__ as entry

if __name__ == "__main__":
    entry.Worker = SimpleWorker
    sys.exit(entry.main())
