"""`python -m worker` stops on SIGTERM and SIGINT, idle or in the middle of a job, with status 0.

The signal goes to the real process's group, as a process manager (or Ctrl-C in a terminal)
sends it. RQ 3 ends an idle worker's loop by raising StopRequested without setting the flag a
busy one sets; the worker once took that for a loop that "ended unasked" and started it again,
until the process manager's SIGKILL. A busy worker finishes its job first (RQ's warm shutdown).
"""
import signal
import time

import pytest
import redis as redis_lib
from rq import Queue, Worker
from rq.job import JobStatus
from rq.registry import StartedJobRegistry

from infra import queue
from tests.e2e.worker_process import WorkerProcess
from tests.worker_support import wait_until

JOB_SECONDS = 3.0
STOPPED = "Worker .* stopping on request|warm shut down"


@pytest.fixture
def started(worker_env, tmp_path):
    processes: list[WorkerProcess] = []

    def start(*args: str) -> WorkerProcess:
        process = WorkerProcess(worker_env, tmp_path / f"worker-{len(processes)}.log", *args)
        processes.append(process)
        return process

    yield start
    for process in processes:
        process.stop(signal.SIGKILL, timeout=10)


def listening(redis: redis_lib.Redis) -> bool:
    """A worker is registered (RQ's worker registry) and waits on its queues."""
    return any(w.get_state() == "idle" for w in Worker.all(connection=redis))


def assert_stopped_cleanly(worker: WorkerProcess, sig: int, within: float) -> None:
    began = time.monotonic()
    status = worker.stop(sig)
    took = time.monotonic() - began
    log = worker.output()
    assert not worker.sigkilled, f"needed SIGKILL after {took:.1f}s:\n{log}"
    assert status == 0, log
    assert took < within, f"took {took:.1f}s:\n{log}"
    assert "ended unasked" not in log, log
    assert "Traceback" not in log, log


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_an_idle_worker_stops_at_once(started, redis_url, sig):
    redis = redis_lib.Redis.from_url(redis_url)
    worker = started()
    assert wait_until(lambda: listening(redis), 20), worker.output()
    time.sleep(0.5)  # into the blocking wait on the queues, where RQ raises StopRequested
    assert_stopped_cleanly(worker, sig, within=5)
    assert Worker.all(connection=redis) == []  # it said goodbye (RQ's register_death)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_busy_worker_finishes_its_job_then_stops(started, redis_url, sig):
    redis = redis_lib.Redis.from_url(redis_url)
    worker = started()
    assert wait_until(lambda: listening(redis), 20), worker.output()
    job = Queue(queue.WEBHOOK_QUEUE, connection=redis).enqueue("time.sleep", JOB_SECONDS, job_timeout=30)
    running = StartedJobRegistry(queue.WEBHOOK_QUEUE, connection=redis)
    assert wait_until(lambda: job.id in running.get_job_ids(), 10), worker.output()

    assert_stopped_cleanly(worker, sig, within=JOB_SECONDS + 5)
    assert job.get_status(refresh=True) == JobStatus.FINISHED  # warm: the job ran to its end


def test_a_forking_worker_stops_when_idle(started, redis_url):
    redis = redis_lib.Redis.from_url(redis_url)
    worker = started("--fork")
    assert wait_until(lambda: listening(redis), 20), worker.output()
    time.sleep(0.5)
    assert_stopped_cleanly(worker, signal.SIGTERM, within=5)
