"""Xero-style webhooks: batched, HMAC-signed POSTs with retries, and the intent-to-receive check."""

from __future__ import annotations

import base64
import hashlib
import heapq
import hmac
import itertools
import json
import random
import string
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime

from .faults import Faults


def sign(body: bytes, key: str) -> str:
    """Xero's x-xero-signature: base64(HMAC-SHA256(raw body, webhook key))."""
    return base64.b64encode(hmac.new(key.encode("utf-8"), body, hashlib.sha256).digest()).decode("ascii")


def event_time(moment: datetime) -> str:
    """eventDateUtc as Xero writes it: no offset, 3-digit milliseconds."""
    moment = moment.astimezone(UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond // 1000:03d}"


@dataclass
class Delivery:
    delivery_id: int
    body: bytes
    first_sequence: int
    last_sequence: int
    event_count: int
    created: float
    attempts: list = field(default_factory=list)
    outcome: str = "pending"  # pending, delivered, failed, dropped
    duplicate: bool = False
    faults: list = field(default_factory=list)
    first_attempt: float | None = None

    def summary(self) -> dict:
        return {
            "id": self.delivery_id,
            "first_sequence": self.first_sequence,
            "last_sequence": self.last_sequence,
            "events": self.event_count,
            "outcome": self.outcome,
            "attempts": list(self.attempts),
            "duplicate": self.duplicate,
            "faults": list(self.faults),
            "body": self.body.decode("utf-8"),
        }


class WebhookSender:
    """Collects events, sends them in short batched windows from a background thread."""

    def __init__(
        self,
        key: str,
        url: str | None,
        faults: Faults,
        rng: random.Random,
        *,
        batch_seconds: float = 0.2,
        max_batch: int = 100,
        retry_window: float = 60.0,
        timeout: float = 5.0,
    ) -> None:
        self.key, self.url, self.faults, self._rng = key, url, faults, rng
        self.batch_seconds, self.max_batch = batch_seconds, max_batch
        self.retry_window, self.timeout = retry_window, timeout
        self._cond = threading.Condition()
        self._pending: list[dict] = []
        self._pending_since: float | None = None
        self._schedule: list = []  # heap of (due, tiebreak, Delivery)
        self._tiebreak = itertools.count()
        self._ids = itertools.count(1)
        self._sequence = 0
        self._events: list[dict] = []
        self._deliveries: list[Delivery] = []
        self._busy = False
        self._stopped = False
        self._thread: threading.Thread | None = None
        self.last_intent: dict | None = None

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="emulator-webhooks", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=self.timeout + 1)

    def set_url(self, url: str | None) -> None:
        with self._cond:
            self.url = url or None

    # -- producing ------------------------------------------------------------------------
    def publish(
        self,
        tenant_id: str,
        category: str,
        event_type: str,
        resource_id: str,
        resource_url: str,
        when: datetime,
        data: dict | None = None,
    ) -> dict:
        """Record one event; it is delivered (when a URL is set) in the next batch. `data` is the
        extra object Xero adds to CREDITNOTE events: {"Type": ..., "Status": ...}."""
        with self._cond:
            self._sequence += 1
            event = {
                "resourceUrl": resource_url,
                "resourceId": resource_id,
                "tenantId": tenant_id,
                "tenantType": "ORGANISATION",
                "eventCategory": category,
                "eventType": event_type,
                "eventDateUtc": event_time(when),
            }
            if data is not None:
                event["data"] = dict(data)
            self._events.append({"sequence": self._sequence, **event})
            if self.url:
                self._pending.append({"sequence": self._sequence, "event": event})
                if self._pending_since is None:
                    self._pending_since = time.monotonic()
                self._cond.notify_all()
            return event

    # -- reading --------------------------------------------------------------------------
    def events(self) -> list[dict]:
        with self._cond:
            return [dict(e) for e in self._events]

    def deliveries(self) -> list[dict]:
        with self._cond:
            return [d.summary() for d in self._deliveries]

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until nothing is pending, scheduled or being sent (True) or `timeout` passes."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._pending or self._schedule or self._busy:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(min(remaining, 0.05))
            return True

    # -- the sending thread ---------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cond:
                work = self._next_work()
                while work is None and not self._stopped:
                    self._cond.wait(self._sleep_time())
                    work = self._next_work()
                if self._stopped:
                    return
                self._busy = True
            try:
                self._attempt(work)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _sleep_time(self) -> float:
        now = time.monotonic()
        waits = [0.5]
        if self._pending_since is not None:
            waits.append(self._pending_since + self.batch_seconds - now)
        if self._schedule:
            waits.append(self._schedule[0][0] - now)
        return max(0.001, min(waits))

    def _next_work(self) -> Delivery | None:
        now = time.monotonic()
        if (
            self._pending
            and self._pending_since is not None
            and now >= self._pending_since + self.batch_seconds
        ):
            self._batch(now)
        if self._schedule and self._schedule[0][0] <= now:
            return heapq.heappop(self._schedule)[2]
        return None

    def _batch(self, now: float) -> None:
        taken, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
        self._pending_since = now if self._pending else None
        payload = {
            "events": [item["event"] for item in taken],
            "firstEventSequence": taken[0]["sequence"],
            "lastEventSequence": taken[-1]["sequence"],
            "entropy": self._entropy(),
        }
        body = json.dumps(payload, separators=(",", ":")).encode("utf-8")
        delivery = Delivery(
            next(self._ids), body, taken[0]["sequence"], taken[-1]["sequence"], len(taken), now
        )
        self._deliveries.append(delivery)
        fault = self.faults.for_delivery()
        if fault.drop:
            delivery.outcome, delivery.faults = "dropped", ["drop"]
            return
        due = now + fault.delay + (self.faults.settings.webhook_reorder_seconds if fault.reorder else 0.0)
        delivery.faults = [name for name, on in (("delay", fault.delay), ("reorder", fault.reorder)) if on]
        self._enqueue(due, delivery)
        if fault.duplicate:
            twin = Delivery(
                next(self._ids),
                body,
                delivery.first_sequence,
                delivery.last_sequence,
                delivery.event_count,
                now,
                duplicate=True,
                faults=["duplicate"],
            )
            self._deliveries.append(twin)
            self._enqueue(due + 0.01, twin)

    def _enqueue(self, due: float, delivery: Delivery) -> None:
        heapq.heappush(self._schedule, (due, next(self._tiebreak), delivery))

    def _entropy(self) -> str:
        return "".join(self._rng.choice(string.ascii_uppercase) for _ in range(20))

    def _attempt(self, delivery: Delivery) -> None:
        url = self.url
        started = time.monotonic()
        status, error = (
            (None, "no webhook url")
            if not url
            else _post(url, delivery.body, sign(delivery.body, self.key), self.timeout)[:2]
        )
        with self._cond:
            delivery.first_attempt = delivery.first_attempt or started
            delivery.attempts.append({"status": status, "error": error, "at": time.time()})
            if status == 200:
                delivery.outcome = "delivered"
                return
            backoff = min(0.25 * 2 ** (len(delivery.attempts) - 1), 30.0)
            if time.monotonic() + backoff - delivery.first_attempt > self.retry_window:
                delivery.outcome = "failed"
                return
            self._enqueue(time.monotonic() + backoff, delivery)

    # -- intent to receive ----------------------------------------------------------------
    def intent_to_receive(self, url: str | None = None, rounds: int = 4) -> dict:
        """Send signed and mis-signed empty payloads; passed iff 200 for good and 401 for bad."""
        url = url or self.url
        if not url:
            raise ValueError("no webhook url configured")
        plan = [True, False] * max(1, rounds // 2)
        self._rng.shuffle(plan)
        results = []
        for good in plan:
            payload = {
                "events": [],
                "firstEventSequence": 0,
                "lastEventSequence": 0,
                "entropy": self._entropy(),
            }
            body = json.dumps(payload, separators=(",", ":")).encode("utf-8")
            key = self.key if good else self.key + "-not-the-key"
            started = time.monotonic()
            status, error, response_body, cookies = _post(url, body, sign(body, key), self.timeout)
            elapsed = time.monotonic() - started
            expected = 200 if good else 401
            results.append(
                {
                    "correctly_signed": good,
                    "expected": expected,
                    "status": status,
                    "error": error,
                    "ok": status == expected and elapsed < 5.0,
                    "elapsed_ms": int(elapsed * 1000),
                    "empty_body": response_body == b"",
                    "sets_cookie": cookies,
                }
            )
        outcome = {"url": url, "passed": all(r["ok"] for r in results), "results": results}
        self.last_intent = outcome
        return outcome


_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _post(
    url: str, body: bytes, signature: str, timeout: float
) -> tuple[int | None, str | None, bytes, bool]:
    """(status, transport error, response body, whether Set-Cookie was sent)."""
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "x-xero-signature": signature,
            "User-Agent": "Xero-Webhooks",
        },
    )
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            return response.status, None, response.read(), response.headers.get("Set-Cookie") is not None
    except urllib.error.HTTPError as exc:
        return exc.code, None, exc.read(), exc.headers.get("Set-Cookie") is not None
    except (urllib.error.URLError, OSError) as exc:
        return None, str(exc), b"", False
