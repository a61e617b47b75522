"""Counts of every call served, by tenant, endpoint and status."""

from __future__ import annotations

import threading
from collections import Counter


class CallLog:
    def __init__(self) -> None:
        self._counts: Counter = Counter()
        self._lock = threading.Lock()

    def record(self, tenant_id: str | None, endpoint: str, status: int) -> None:
        with self._lock:
            self._counts[(tenant_id, endpoint, status)] += 1

    def count(
        self, tenant_id: str | None = None, endpoint: str | None = None, status: int | None = None
    ) -> int:
        """Total calls matching every filter given (endpoint like "GET /Invoices")."""
        with self._lock:
            return sum(
                n
                for (t, e, s), n in self._counts.items()
                if (tenant_id is None or t == tenant_id)
                and (endpoint is None or e == endpoint)
                and (status is None or s == status)
            )

    def rows(self) -> list[dict]:
        with self._lock:
            return [
                {"tenant_id": t, "endpoint": e, "status": s, "count": n}
                for (t, e, s), n in sorted(
                    self._counts.items(), key=lambda kv: (str(kv[0][0]), kv[0][1], kv[0][2])
                )
            ]

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()
