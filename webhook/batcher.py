"""Group commit for the intake: the deliveries of one web process share their transactions.

A request thread hands its delivery to `Intake.keep` and waits. One writer thread per process
takes every delivery waiting (at most MAX_BATCH), stores them in ONE transaction
(`inbox.store_many`) and releases each waiting thread with its own result, or, when the
transaction fails, with the error (the request answers 503 and Xero delivers again). So a
request answers 200 only once its own events are committed, and with gunicorn's gthread
workers the concurrent requests of a process pay for one commit between them.

Telling the queue is off the request's path: after each commit a waker thread wakes every
tenant of the batch once (`queue.wake`), counts the batch in the metrics (one Redis
pipeline), logs it, and marks the events `enqueued` in one statement: on SQLite the writer
does it in its next transaction (one write lock), on PostgreSQL the waker on a connection of
its own (a sync job's row lock then holds up only the waker). If any of that fails, or the
process dies first, the events stay `pending` and the relay (`inbox.relay`, the worker's
ticker) wakes them after a few seconds: nothing accepted is lost.

An Intake runs its own writer thread (`keep`, the web process writing for itself), or is
driven: the intake writer process (webhook.writer) reads every delivery its web processes sent
since its last commit, stores them with `store_now` in its own thread and calls `tick` between
batches; no writer thread, no hand-off. The waker is a thread either way.

Both threads start on first use in the process that uses them (never before a fork) and end
after IDLE_SECONDS with nothing to do. At interpreter exit (a gunicorn worker stopping) the
waker is given a moment to finish; whatever it cannot finish stays pending for the relay.
"""
from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import Enum
from typing import Any, cast

from redis import RedisError
from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from infra import metrics, queue
from infra.errors import StorageError
from services.runtime import Runtime
from store import inbox
from webhook import payload

log = logging.getLogger(__name__)

MAX_BATCH = 64  # deliveries per transaction
ANSWER_WITHIN = 10.0  # seconds a request waits for its commit before answering 503
IDLE_SECONDS = 2.0  # a thread with nothing to do for this long ends (a new one starts on demand)
HOLD_SECONDS = 0.1  # the writer keeps its connection while deliveries come at least this often
WAKE_EVERY = 0.02  # seconds between the waker's rounds: a sync starts at most this much later
EXIT_GRACE = 3.0  # at interpreter exit, how long the waker may take to finish


class NotStored(StorageError):
    """The delivery was not committed (the database failed, or did not answer in time)."""


@dataclass(eq=False)
class _Waiting:
    """A delivery, and the thread that waits for its commit."""

    delivery: inbox.Delivery
    released: threading.Lock = field(default_factory=threading.Lock)
    result: inbox.Stored | None = None
    error: BaseException | None = None

    def __post_init__(self) -> None:
        self.released.acquire()  # the writer releases it

    def finish(self, result: inbox.Stored | None = None, error: BaseException | None = None) -> None:
        self.result, self.error = result, error
        self.released.release()


class Intake:
    """One process's intake writer and waker (see the module docstring)."""

    def __init__(self, runtime: Runtime, max_batch: int = MAX_BATCH, answer_within: float = ANSWER_WITHIN,
                 idle_seconds: float = IDLE_SECONDS, wake_every: float = WAKE_EVERY, driven: bool = False):
        self._runtime = runtime  # its engine and Redis client, created on first use
        self._driven = driven  # True: the owner calls store_now and tick; no writer thread
        self._max_batch = max_batch
        self._answer_within = answer_within
        self._idle = idle_seconds
        self._wake_every = wake_every
        self._lock = threading.Condition()
        self._waiting: deque[_Waiting] = deque()
        self._marks: list[tuple[list[int], datetime, int]] = []  # woken ids, when, batches they settle
        self._to_wake: list[list[inbox.Stored]] = []  # committed batches, for the waker
        self._unsettled = 0  # committed batches whose wake and mark are not finished
        self._writer: threading.Thread | None = None
        self._conn: Connection | None = None  # the writer's, between batches that come close together
        self._let_go = False  # settle() asks the idle writer to give its connection back now
        self._waker: threading.Thread | None = None
        self._live = inbox.LiveTenants()  # the writer's: one query fewer in most transactions
        self._ids = inbox.DeliveryIds()  # PostgreSQL: delivery ids reserved ahead (no RETURNING to wait for)
        _everyone.add(self)

    # --- the request's side -----------------------------------------------------------------

    def keep(self, delivery: inbox.Delivery) -> inbox.Stored:
        """Commit `delivery` (with whatever else is waiting); raise NotStored if it was not."""
        if self._driven:
            raise RuntimeError("a driven Intake stores with store_now, in its owner's thread")
        waiting = _Waiting(delivery)
        with self._lock:
            self._waiting.append(waiting)
            self._start_writer()
            self._lock.notify_all()
        if not waiting.released.acquire(timeout=self._answer_within):
            raise NotStored(f"not committed within {self._answer_within:.0f} s")
        if waiting.error is not None:
            raise NotStored(describe(waiting.error)) from waiting.error
        assert waiting.result is not None
        return waiting.result

    # --- driven: the owner's own thread writes (webhook.writer) -------------------------------

    def store_now(self, deliveries: Sequence[inbox.Delivery]) -> list[inbox.Stored | BaseException]:
        """Commit `deliveries` in the caller's thread, MAX_BATCH a transaction; for each, what it
        stored or the error that kept it from being committed (driven intakes only)."""
        if not self._driven:
            raise RuntimeError("store_now is for a driven Intake; a threaded one stores with keep")
        outcomes: list[inbox.Stored | BaseException] = []
        for start in range(0, len(deliveries), self._max_batch):
            batch = [_Waiting(d) for d in deliveries[start:start + self._max_batch]]
            with self._lock:
                marks, self._marks = self._marks, []
            self._store_batch(batch, marks)
            outcomes.extend(w.error if w.error is not None else cast(inbox.Stored, w.result) for w in batch)
        return outcomes

    def tick(self, idle_for: float) -> None:
        """Between batches (driven intakes): write the marks the waker handed over, and give the
        connection back to the pool once `idle_for` seconds passed with nothing to store."""
        with self._lock:
            marks, self._marks = self._marks, []
            let_go, self._let_go = self._let_go, False
        if marks:
            self._mark(marks)
        elif self._conn is not None and (idle_for >= HOLD_SECONDS or let_go):
            self._release()
            with self._lock:
                self._lock.notify_all()

    def settle(self, timeout: float = 5.0) -> bool:
        """Wait until every committed delivery has been woken and marked (or given up on, left
        pending for the relay) and the writer has given its connection back to the pool (so the
        engine may be disposed); False if that took longer than `timeout` seconds."""
        deadline = time.monotonic() + timeout
        if self._driven:  # nobody else writes the marks: tick until they are (the caller owns the intake)
            while self._unsettled or self._conn is not None:
                if time.monotonic() >= deadline:
                    return False
                with self._lock:
                    self._let_go = not self._unsettled
                self.tick(0.0)
                if self._unsettled:
                    time.sleep(min(self._wake_every, max(0.0, deadline - time.monotonic())))
            return True
        with self._lock:
            while self._waiting or self._unsettled or self._conn is not None:
                if not (self._waiting or self._unsettled):
                    self._let_go = True
                    self._lock.notify_all()
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._lock.wait(left)
        return True

    # --- the writer ---------------------------------------------------------------------------

    def _start_writer(self) -> None:  # holding the lock
        if self._writer is None and not self._driven:
            self._writer = threading.Thread(target=self._write, name="intake-writer", daemon=True)
            self._writer.start()

    def _write(self) -> None:
        try:
            while True:
                with self._lock:
                    idle_since = time.monotonic()
                    while not self._waiting and not self._marks:
                        waited = time.monotonic() - idle_since
                        if waited >= HOLD_SECONDS or self._let_go:
                            self._release()  # a quiet spell: back to the pool (pre-pinged there)
                            self._let_go = False
                            self._lock.notify_all()
                        if waited >= self._idle:
                            self._release()
                            self._writer = None
                            return
                        self._lock.wait(min(self._idle, HOLD_SECONDS) if self._conn is not None else self._idle)
                    batch = [self._waiting.popleft() for _ in range(min(self._max_batch, len(self._waiting)))]
                    marks, self._marks = self._marks, []
                self._store_batch(batch, marks)
        except BaseException:
            log.exception("intake writer stopped")
            self._release()
            with self._lock:
                self._writer = None
                if self._waiting or self._marks:
                    self._start_writer()
            raise

    def _store_batch(self, batch: list[_Waiting], marks: list[tuple[list[int], datetime, int]]) -> None:
        """Commit `batch` (if any) and write `marks` (if any), in the caller's thread.

        SQLite: the commit is most of a batch's cost and there are no row locks to wait on, so
        marks ride along in the batch's transaction (on their own when no batch comes).
        PostgreSQL's marks never reach the writer: the waker writes them (_mark), since waiting
        for a row a sync job is settling must not hold deliveries back, nor must a second
        transaction in this one serial stage."""
        ride_along = bool(batch) and self._on_sqlite()
        if batch:
            self._commit(batch, marks if ride_along else None)
        if marks and not ride_along:
            self._mark(marks)

    def _connection(self) -> Connection:
        """The writer's connection: checked out once for a run of batches, not for each."""
        if self._conn is None:
            self._conn = self._runtime.engine.connect()
        return self._conn

    def _release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # a broken connection is discarded by the pool
                log.warning("intake connection did not close cleanly", exc_info=True)

    def _on_sqlite(self) -> bool:
        try:
            return self._runtime.engine.dialect.name == "sqlite"
        except Exception:  # noqa: BLE001 - no engine (a bad DATABASE_URL): _commit answers for it
            return False

    def _commit(self, batch: list[_Waiting], marks: list[tuple[list[int], datetime, int]] | None = None) -> None:
        """Commit `batch` (with `marks` riding along, SQLite only) and release every waiting
        request with its result or, once `after_failure` says to give up, with the error."""
        attempts: deque[tuple[list[_Waiting], list[tuple[list[int], datetime, int]] | None]] = deque([(batch, marks)])
        while attempts:
            part, riding = attempts.popleft()
            try:
                results = self._transaction(part, riding)
            except BaseException as error:  # noqa: BLE001 - every waiting request must hear of it
                self._recover(riding)
                step = after_failure(error, len(part), bool(riding))
                if step is Retry.WITHOUT_MARKS:
                    attempts.appendleft((part, None))
                elif step is Retry.EACH_ALONE:  # one bad delivery must not refuse the others
                    attempts.extendleft(([one], None) for one in reversed(part))
                else:
                    self._refuse(part, error)
                continue
            self._committed(part, results, riding)

    def _transaction(self, batch: list[_Waiting], marks: list[tuple[list[int], datetime, int]] | None
                     ) -> list[inbox.Stored]:
        """Store `batch` and write the `marks` riding along, in one transaction on the writer's connection."""
        conn = self._connection()
        with conn.begin():
            results = inbox.store_many(conn, [w.delivery for w in batch], self._live, self._ids)
            if marks:
                # no savepoint: an error here fails the batch, which is then stored again
                # without the marks (a savepoint would not help with the errors that can
                # happen here: SQLite may roll the whole transaction back on those)
                inbox.mark_enqueued(conn, [i for ids, _, _ in marks for i in ids], max(t for _, t, _ in marks))
        return results

    def _recover(self, marks: list[tuple[list[int], datetime, int]] | None) -> None:
        """After a failed transaction: drop what it may have left stale, and write the marks that
        rode along on their own (that settles them, marked or not)."""
        self._release()  # whatever state it is in, the next batch starts on a fresh one
        self._live.forget()  # it may have moved last_webhook_at in the transaction just lost
        self._ids.forget()  # and the sequence may not be what the ids reserved assumed
        if marks:
            self._mark(marks)

    def _refuse(self, batch: list[_Waiting], error: BaseException) -> None:
        """Release every request of `batch` with `error` (each answers 503)."""
        if isinstance(error, (DBAPIError, PoolTimeout)):
            log.error("webhooks not stored: database unavailable",
                      extra={"deliveries": len(batch), "error": describe(error)})
        else:
            log.exception("webhooks not stored: the intake failed", extra={"deliveries": len(batch)},
                          exc_info=error)
        for waiting in batch:
            waiting.finish(error=error)

    def _committed(self, batch: list[_Waiting], results: list[inbox.Stored],
                   marks: list[tuple[list[int], datetime, int]] | None) -> None:
        """Release every request of `batch` with its result, and hand the batch to the waker."""
        for waiting, result in zip(batch, results):
            waiting.finish(result)
        with self._lock:
            self._to_wake.append(results)
            self._unsettled += 1 - (sum(batches for _, _, batches in marks) if marks else 0)
            if self._waker is None:
                self._waker = threading.Thread(target=self._wake, name="intake-waker", daemon=True)
                self._waker.start()
            self._lock.notify_all()

    def _mark(self, marks: list[tuple[list[int], datetime, int]], shared: bool = True) -> None:
        """Mark `marks` enqueued in a transaction of their own and settle them, marked or not:
        on the writer's connection, or (`shared=False`: the waker, on PostgreSQL) on a pooled one
        of the caller's own, beside the writer's commits, so that a row a sync job is settling
        holds up only the caller, not the deliveries."""
        ids = [i for event_ids, _, _ in marks for i in event_ids]
        now = max(at for _, at, _ in marks)
        try:
            if shared:
                conn = self._connection()
                with conn.begin():
                    inbox.mark_enqueued(conn, ids, now)
            else:
                with self._runtime.engine.connect() as conn, conn.begin():
                    inbox.mark_enqueued(conn, ids, now)
        except (DBAPIError, PoolTimeout) as error:  # the jobs are queued and will see the events
            if shared:
                self._release()
            log.warning("could not mark events enqueued; the relay will", extra={"error": describe(error)})
        except Exception:  # the intake must go on; the relay re-marks
            log.exception("could not mark events enqueued; the relay will")
        finally:
            self._settled(sum(batches for _, _, batches in marks))

    def _settled(self, batches: int) -> None:
        with self._lock:
            self._unsettled -= batches
            self._lock.notify_all()

    # --- the waker ----------------------------------------------------------------------------

    def _wake(self) -> None:
        while True:
            # a round costs about the same for one batch as for ten (two Redis round trips, a log
            # line, one UPDATE): let the batches of the next WAKE_EVERY seconds share one
            time.sleep(self._wake_every)
            with self._lock:
                while not self._to_wake:
                    if not self._lock.wait(self._idle) and not self._to_wake:
                        self._waker = None
                        return
                batches, self._to_wake = self._to_wake, []
            marked = False
            try:
                marked = self._wake_round([s for batch in batches for s in batch if not s.malformed], len(batches))
            except Exception:  # the waker must outlive any one round; the relay covers it
                log.exception("intake wake failed; events stay pending for the relay")
            finally:
                if not marked:
                    self._settled(len(batches))

    def _wake_round(self, stored: list[inbox.Stored], batches: int) -> bool:
        """Count, wake and log what some batches stored; True if their marks are written (and
        settled) or handed to the writer, which settles them."""
        if not stored:
            return False
        new = sum(s.inserted for s in stored)
        accepted = sum(1 for s in stored if s.inserted)
        duplicates = sum(s.duplicates for s in stored)
        metrics.webhooks_stored(self._runtime, accepted=accepted, duplicate=len(stored) - accepted,
                                new_events=new, duplicate_events=duplicates)
        pending: dict[str, list[int]] = {}
        for s in stored:
            for tenant_id, ids in s.pending.items():
                pending.setdefault(tenant_id, []).extend(ids)
        facts = {"deliveries": len(stored), "events": sum(s.received for s in stored), "new": new,
                 "duplicates": duplicates, "delivery_ids": [s.delivery_id for s in stored if s.delivery_id],
                 "tenant_ids": sorted(pending)}
        if not pending:
            log.info("webhooks accepted", extra=facts)
            return False
        now = datetime.now(timezone.utc)
        try:
            woken = queue.wake(self._runtime.redis, sorted(pending))
        except (RedisError, RuntimeError) as error:  # RuntimeError: REDIS_URL unset
            log.warning("webhooks accepted; queue unavailable, events stay pending for the relay",
                        extra={**facts, "error": str(error)})
            return False
        log.info("webhooks accepted; sync woken", extra={**facts, "new_jobs": woken})
        marks = [([i for event_ids in pending.values() for i in event_ids], now, batches)]
        if not self._on_sqlite():
            self._mark(marks, shared=False)
            return True
        with self._lock:  # the writer marks them, between its commits
            self._marks.extend(marks)
            self._start_writer()
            self._lock.notify_all()
        return True


def delivery_for(body: bytes, received_at: datetime) -> inbox.Delivery | None:
    """What to keep of a signed body: its events, or (malformed) the body and why; None for
    Xero's intent-to-receive, whose `events` is empty (nothing to keep)."""
    try:
        events = payload.parse(body)  # pure
    except payload.BadPayload as bad:
        return inbox.Delivery(received_at, body=body, error=str(bad))
    return inbox.Delivery(received_at, events) if events else None


def answer(runtime: Runtime, delivery: inbox.Delivery | None, stored: inbox.Stored | None) -> int:
    """The HTTP status for a delivery now committed (`stored`), or for one with nothing to keep
    (None); counts and logs what a batch's wake does not: malformed deliveries, intent to receive."""
    if delivery is None:
        metrics.count(runtime, metrics.WEBHOOKS, outcome="accepted")
        return 200
    if delivery.malformed:
        log.warning("webhook malformed", extra={"delivery_id": stored.delivery_id if stored else None,
                                                "error": delivery.error})
        metrics.count(runtime, metrics.WEBHOOKS, outcome="malformed")
        return 400
    return 200


class Retry(Enum):
    """What the intake does after a batch's transaction failed."""

    WITHOUT_MARKS = "again, without the marks that rode along"
    EACH_ALONE = "each delivery in a transaction of its own"
    GIVE_UP = "answer every request of the batch with the error"


def after_failure(error: BaseException, deliveries: int, with_marks: bool) -> Retry:
    """Pure: the next step after a transaction of `deliveries` (with marks riding along, or not)
    failed with `error`. Only an error about the data is worth another try, and only while
    there is something to leave out: the marks first, then the other deliveries."""
    if not isinstance(error, DBAPIError) or _unreachable(error):
        return Retry.GIVE_UP
    if with_marks:
        return Retry.WITHOUT_MARKS
    return Retry.EACH_ALONE if deliveries > 1 else Retry.GIVE_UP


def _unreachable(error: DBAPIError) -> bool:
    """The database itself failed (down, locked, connection lost), not one delivery's data."""
    return isinstance(error, (OperationalError, InterfaceError)) or error.connection_invalidated


def describe(error: BaseException) -> str:
    return str(getattr(error, "orig", None) or error)


# --- one Intake per app and process ---------------------------------------------------------

_everyone: weakref.WeakSet[Intake] = weakref.WeakSet()
_create = threading.Lock()


def _of_this_process(extensions: dict[str, Any]) -> Intake | None:
    """The app's Intake if this process made it (one inherited through a fork is not)."""
    found = extensions.get("xm.intake")
    return found[1] if found is not None and found[0] == os.getpid() else None


def for_app(extensions: dict[str, Any], runtime: Runtime) -> Intake:
    """The app's Intake in this process (a forked child gets its own, with its own threads)."""
    intake = _of_this_process(extensions)
    if intake is not None:
        return intake
    with _create:
        intake = _of_this_process(extensions)
        if intake is None:
            intake = Intake(runtime)
            extensions["xm.intake"] = (os.getpid(), intake)
    return intake


def settle_app(extensions: dict[str, Any], timeout: float = EXIT_GRACE) -> bool:
    """`settle` the app's Intake in this process, if it has one (True when there is none)."""
    intake = _of_this_process(extensions)
    return intake is None or intake.settle(timeout)


def settle_all(timeout: float = EXIT_GRACE) -> bool:
    """`settle` every Intake of this process, within `timeout` seconds in all."""
    deadline = time.monotonic() + timeout
    # a list, not a generator: every intake settles, even after one did not in time
    return all([intake.settle(max(0.0, deadline - time.monotonic())) for intake in list(_everyone)])  # noqa: C419


@atexit.register
def _drain_at_exit() -> None:
    """A stopping process (gunicorn worker exit) lets its wakes finish; the relay covers the rest."""
    settle_all(EXIT_GRACE)
