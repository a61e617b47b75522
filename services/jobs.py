"""A tenant's jobs in RQ: cancelled in every queue when its connection is removed."""
from __future__ import annotations

import contextlib
from collections.abc import Iterable

from redis import Redis
from rq import Queue
from rq.command import send_stop_job_command
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job

from infra import queue


def cancel_jobs(redis: Redis, tenant_id: str, guard_keys: Iterable[str] = ()) -> int:
    """Cancel the tenant's queued and scheduled jobs in every queue, stop its running ones,
    and drop its queued-guards (the sync wake's, and any given); how many jobs were hit.

    A job belongs to a tenant when its first argument is the tenant id.
    """
    hit = 0
    for name in queue.PRIORITY_ORDER:
        target = Queue(name, connection=redis)
        for job in target.get_jobs():
            if _for_tenant(job, tenant_id):
                hit += _cancel(job)
        for job_id in target.scheduled_job_registry.get_job_ids():
            scheduled = _fetch(redis, job_id)
            if scheduled is not None and _for_tenant(scheduled, tenant_id):
                hit += _cancel(scheduled)
        for job_id in target.started_job_registry.get_job_ids():
            running = _fetch(redis, job_id)
            if running is not None and _for_tenant(running, tenant_id):
                with contextlib.suppress(InvalidJobOperation, NoSuchJobError):
                    send_stop_job_command(redis, running.id)
                    hit += 1
    queue.clear_queued(redis, tenant_id)
    for key in guard_keys:
        redis.delete(key)
    return hit


def _for_tenant(job: Job, tenant_id: str) -> bool:
    args = job.args or ()
    return bool(args) and args[0] == tenant_id


def _fetch(redis: Redis, job_id: str) -> Job | None:
    try:
        return Job.fetch(job_id, connection=redis)
    except NoSuchJobError:
        return None


def _cancel(job: Job) -> int:
    try:
        job.cancel()
    except InvalidJobOperation:  # already cancelled
        return 0
    return 1
