"""Pages ahead: run a producer (an iterator of fetched pages) in a background thread, one
item ahead of the consumer, so fetching page N+1 overlaps storing page N.

    with Ahead(pages()) as ahead:
        for page in ahead:
            store(page)

- Bounded: the producer is asked for the next item only when the consumer takes one, so at
  most one item has been produced and not yet handed out (and `more()` returning False as an
  item is handed out holds even that back until the consumer asks again).
- The producer's iterator runs (and is closed) only in the background thread: whatever it
  uses (an SDK client, a connection) is used from that one thread, serially.
- An exception in the producer is raised in the consumer where it asks for that item, with
  the items before it handed out first, as if it had been raised in a plain loop.
- Leaving the `with` block (an early stop, a deadline, an exception in the consumer) stops
  the producer: an item being produced is finished and dropped, no new one is started, and
  the thread is joined before `close()` returns. Its exception, if any, is dropped.
"""
from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")

_ITEM, _ERROR, _END = "item", "error", "end"


def _always() -> bool:
    return True


class Ahead(Generic[T]):
    def __init__(self, source: Iterable[T], *, more: Callable[[], bool] = _always, name: str = "prefetch"):
        self._source = source
        self._more = more
        self._wanted = threading.Semaphore(0)  # one release: produce one more item
        self._results: queue.Queue[tuple[str, object]] = queue.Queue()
        self._stopping = False
        self._asked = 0  # items asked for and not yet taken (0 or 1)
        self._finished = False
        self._thread = threading.Thread(target=self._produce, name=name, daemon=True)
        self._thread.start()
        self._ask()  # the first item is fetched at once

    # -- consumer side -------------------------------------------------------------------
    def __iter__(self) -> Iterator[T]:
        return self

    def __next__(self) -> T:
        if self._finished:
            raise StopIteration
        if not self._asked:
            self._ask()
        kind, value = self._results.get()
        self._asked -= 1
        if kind == _ITEM:
            if self._more():
                self._ask()  # produce the next one while the consumer uses this one
            return value  # type: ignore[return-value]
        self._finished = True
        self._thread.join()
        if kind == _ERROR:
            raise value  # type: ignore[misc]
        raise StopIteration

    def close(self) -> None:
        """Stop the producer and wait for its thread; safe to call more than once."""
        self._finished = True
        self._stopping = True
        self._wanted.release()  # wake it if it waits to be asked
        self._thread.join()

    def __enter__(self) -> Ahead[T]:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _ask(self) -> None:
        self._asked += 1
        self._wanted.release()

    # -- producer side (the background thread) -------------------------------------------
    def _produce(self) -> None:
        iterator: Iterator[T] | None = None
        try:
            iterator = iter(self._source)
            while True:
                self._wanted.acquire()
                if self._stopping:
                    return
                try:
                    item = next(iterator)
                except StopIteration:
                    self._results.put((_END, None))
                    return
                self._results.put((_ITEM, item))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised where it asks for the item
            self._results.put((_ERROR, exc))
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                with contextlib.suppress(Exception):  # dropped: the consumer has left (see the module docstring)
                    close()  # a generator's `finally` runs here, in this thread
