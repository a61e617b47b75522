"""worker.prefetch.Ahead: order, one item ahead at most, errors where they belong, clean stops."""
import threading
import time

import pytest

from worker.prefetch import Ahead


class Source:
    """Numbered items; records which thread produced them and whether it was closed."""

    def __init__(self, count: int, fail_at: int | None = None, delay: float = 0.0):
        self.count, self.fail_at, self.delay = count, fail_at, delay
        self.started: list[int] = []
        self.produced: list[int] = []
        self.threads: set[int] = set()
        self.closed_in: int | None = None

    def __iter__(self):
        try:
            for n in range(self.count):
                self.threads.add(threading.get_ident())
                self.started.append(n)
                if self.delay:
                    time.sleep(self.delay)
                if n == self.fail_at:
                    raise ValueError(f"item {n} failed")
                self.produced.append(n)
                yield n
        finally:
            self.closed_in = threading.get_ident()


def wait_for(condition, timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_items_come_in_order_all_from_one_background_thread():
    source = Source(5)
    with Ahead(source) as ahead:
        assert list(ahead) == [0, 1, 2, 3, 4]
        assert list(ahead) == []  # stays finished
    assert len(source.threads) == 1 and threading.get_ident() not in source.threads
    assert source.closed_in in source.threads
    assert not ahead.alive


def test_at_most_one_item_is_produced_ahead_of_the_consumer():
    source = Source(10)
    with Ahead(source) as ahead:
        wait_for(lambda: source.produced == [0])
        time.sleep(0.05)
        assert source.produced == [0]  # not asked for more yet
        assert next(ahead) == 0
        wait_for(lambda: source.produced == [0, 1])  # the next one, while 0 is used
        time.sleep(0.05)
        assert source.produced == [0, 1]
        assert next(ahead) == 1
        wait_for(lambda: len(source.produced) == 3)
        time.sleep(0.05)
        assert source.produced == [0, 1, 2]


def test_more_false_holds_the_next_item_back_until_asked():
    source = Source(5)
    with Ahead(source, more=lambda: False) as ahead:
        assert next(ahead) == 0
        time.sleep(0.05)
        assert source.produced == [0]
        assert next(ahead) == 1  # asked now: produced on demand
        assert source.produced == [0, 1]


def test_an_error_comes_after_the_items_before_it_and_ends_the_thread():
    source = Source(5, fail_at=2)
    got = []
    with Ahead(source) as ahead:
        with pytest.raises(ValueError, match="item 2 failed"):
            for item in ahead:
                got.append(item)
        assert not ahead.alive
        assert list(ahead) == []
    assert got == [0, 1]


def test_an_error_in_the_first_item_is_raised_at_the_first_ask():
    with Ahead(Source(3, fail_at=0)) as ahead, pytest.raises(ValueError):
        next(ahead)


def test_an_early_stop_leaves_no_thread_running_and_closes_the_source():
    source = Source(100)
    before = threading.active_count()
    with Ahead(source) as ahead:
        for item in ahead:
            if item == 3:
                break
    assert not ahead.alive
    assert threading.active_count() == before
    assert source.closed_in is not None
    assert source.produced in ([0, 1, 2, 3], [0, 1, 2, 3, 4])  # one ahead at most


def test_an_exception_in_the_consumer_stops_the_producer_mid_item():
    source = Source(100, delay=0.05)
    with pytest.raises(RuntimeError), Ahead(source) as ahead:
        next(ahead)
        wait_for(lambda: source.started == [0, 1])  # item 1 is being produced now
        raise RuntimeError("consumer failed")
    assert not ahead.alive  # waited for item 1, then stopped
    assert source.produced == [0, 1] and source.closed_in is not None


def test_a_producer_error_after_an_early_stop_is_dropped():
    source = Source(5, fail_at=1)
    with Ahead(source) as ahead:
        assert next(ahead) == 0
        wait_for(lambda: source.closed_in is not None)  # item 1 failed meanwhile
    assert not ahead.alive  # close() did not raise


def test_close_before_any_item_is_taken():
    source = Source(5, delay=0.02)
    ahead = Ahead(source)
    ahead.close()
    ahead.close()
    assert not ahead.alive
    assert source.produced in ([], [0])
    with pytest.raises(StopIteration):
        next(ahead)
