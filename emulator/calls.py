"""Counts of every call served, by tenant, endpoint and status, with the bytes of its answer.

Bytes are those of the response body: `bytes` as sent on the wire (the gzip size when the answer
was compressed), `bytes_uncompressed` before any Content-Encoding. Xero's 2026 pricing bills data
egress; which of the two its egress report counts is unverified, so both are kept."""

from __future__ import annotations

import threading
from collections import Counter


class CallLog:
    def __init__(self) -> None:
        self._counts: Counter = Counter()
        self._wire: Counter = Counter()
        self._raw: Counter = Counter()
        self._lock = threading.Lock()

    def record(
        self,
        tenant_id: str | None,
        endpoint: str,
        status: int,
        wire_bytes: int = 0,
        raw_bytes: int | None = None,
    ) -> None:
        """One call; `raw_bytes` defaults to `wire_bytes` (an answer sent uncompressed)."""
        key = (tenant_id, endpoint, status)
        with self._lock:
            self._counts[key] += 1
            self._wire[key] += wire_bytes
            self._raw[key] += wire_bytes if raw_bytes is None else raw_bytes

    def _sum(self, counter: Counter, tenant_id, endpoint, status) -> int:
        with self._lock:
            return sum(
                n
                for (t, e, s), n in counter.items()
                if (tenant_id is None or t == tenant_id)
                and (endpoint is None or e == endpoint)
                and (status is None or s == status)
            )

    def count(
        self, tenant_id: str | None = None, endpoint: str | None = None, status: int | None = None
    ) -> int:
        """Total calls matching every filter given (endpoint like "GET /Invoices")."""
        return self._sum(self._counts, tenant_id, endpoint, status)

    def bytes(
        self,
        tenant_id: str | None = None,
        endpoint: str | None = None,
        status: int | None = None,
        *,
        uncompressed: bool = False,
    ) -> int:
        """Response-body bytes of the matching calls: on the wire, or before compression."""
        return self._sum(self._raw if uncompressed else self._wire, tenant_id, endpoint, status)

    def rows(self) -> list[dict]:
        with self._lock:
            return [
                {
                    "tenant_id": t,
                    "endpoint": e,
                    "status": s,
                    "count": n,
                    "bytes": self._wire[(t, e, s)],
                    "bytes_uncompressed": self._raw[(t, e, s)],
                }
                for (t, e, s), n in sorted(
                    self._counts.items(), key=lambda kv: (str(kv[0][0]), kv[0][1], kv[0][2])
                )
            ]

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()
            self._wire.clear()
            self._raw.clear()
