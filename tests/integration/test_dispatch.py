"""The coalescing contract against a real Redis and real RQ queues."""
import re
import threading

import pytest
from redis import ConnectionError as RedisConnectionError
from redis import Redis, RedisError
from rq import Queue

from infra import queue

TENANT = "c2cc9b6e-9458-4c7d-93cc-f02b81b0594f"
OTHER = "7f3c8a1e-2b4d-4e6f-8a9b-0c1d2e3f4a5b"


@pytest.fixture
def redis(redis_url):
    client = Redis.from_url(redis_url)
    yield client
    client.close()


def jobs(redis, name=queue.WEBHOOK_QUEUE):
    return Queue(name, connection=redis).get_jobs()


def test_waking_twice_queues_one_job(redis):
    assert queue.wake(redis, [TENANT]) == [TENANT]
    assert queue.wake(redis, [TENANT]) == []
    assert [job.args for job in jobs(redis)] == [(TENANT,)]


def test_a_tenant_named_twice_in_one_wake_gets_one_job(redis):
    assert queue.wake(redis, [TENANT, OTHER, TENANT]) == [TENANT, OTHER]
    assert sorted(job.args for job in jobs(redis)) == sorted([(TENANT,), (OTHER,)])


def test_the_job_is_sync_tenant_by_dotted_path_with_its_limits(redis):
    queue.wake(redis, [TENANT])
    (job,) = jobs(redis)
    assert job.func_name == "worker.jobs.sync_tenant"
    assert job.args == (TENANT,) and job.kwargs == {}
    assert re.fullmatch(rf"sync-{TENANT}-[0-9a-f]{{12}}", job.id)
    assert (job.timeout, job.result_ttl, job.failure_ttl) == (900, 600, 7 * 24 * 3600)
    assert job.origin == queue.WEBHOOK_QUEUE
    assert redis.get(queue.queued_key(TENANT)) == job.id.encode()
    assert 3590 < redis.ttl(queue.queued_key(TENANT)) <= 3600


def test_after_clear_queued_a_wake_queues_one_follow_up_job(redis):
    queue.wake(redis, [TENANT])
    queue.clear_queued(redis, TENANT)  # the worker's job has started
    assert not queue.sync_queued(redis, TENANT)
    assert queue.wake(redis, [TENANT]) == [TENANT]
    assert queue.wake(redis, [TENANT]) == []
    assert len(jobs(redis)) == 2


def test_tenants_coalesce_independently(redis):
    queue.wake(redis, [TENANT])
    assert queue.wake(redis, [TENANT, OTHER]) == [OTHER]
    queue.clear_queued(redis, OTHER)
    assert queue.wake(redis, [TENANT, OTHER]) == [OTHER]
    assert sorted(job.args[0] for job in jobs(redis)) == [OTHER, OTHER, TENANT]


def test_wake_can_target_another_queue(redis):
    queue.wake(redis, [TENANT], queue_name=queue.RECONCILE_QUEUE)
    assert jobs(redis) == []
    assert [job.args for job in jobs(redis, queue.RECONCILE_QUEUE)] == [(TENANT,)]


def test_a_tenant_id_with_odd_characters_still_makes_a_valid_job_id(redis):
    (woken,) = queue.wake(redis, ["tenant:with spaces/and#marks"])
    (job,) = jobs(redis)
    assert woken == "tenant:with spaces/and#marks" == job.args[0]
    assert re.fullmatch(r"[A-Za-z0-9_-]+", job.id)


def test_concurrent_wakes_of_one_tenant_queue_exactly_one_job(redis_url):
    start = threading.Barrier(16)
    results: list[list[str]] = []

    def waker():
        client = Redis.from_url(redis_url)
        try:
            start.wait()
            results.append(queue.wake(client, [TENANT]))
        finally:
            client.close()

    threads = [threading.Thread(target=waker) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    client = Redis.from_url(redis_url)
    try:
        assert sorted(results, key=len) == [[]] * 15 + [[TENANT]]
        assert len(jobs(client)) == 1
    finally:
        client.close()


def test_a_failed_enqueue_leaves_no_guard_behind(redis):
    queue_key = Queue(queue.WEBHOOK_QUEUE, connection=redis).key
    redis.set(queue_key, "not a list")  # RPUSH onto it fails inside the transaction
    with pytest.raises(RedisError):
        queue.wake(redis, [TENANT])
    assert not queue.sync_queued(redis, TENANT)
    redis.delete(queue_key)
    assert queue.wake(redis, [TENANT]) == [TENANT]
    assert [job.args for job in jobs(redis)] == [(TENANT,)]


def test_wake_raises_when_redis_is_down():
    down = Redis.from_url("redis://127.0.0.1:1/0")
    try:
        with pytest.raises(RedisConnectionError):
            queue.wake(down, [TENANT])
    finally:
        down.close()
