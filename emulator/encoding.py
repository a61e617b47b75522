"""Content-Encoding negotiation for the API answers: gzip when the client's Accept-Encoding
allows it and prefers it at least as much as identity (RFC 9110 §12.5.3), else the body as is."""

from __future__ import annotations

import gzip

GZIP_NAMES = ("gzip", "x-gzip")


def accept_encoding_qualities(header: str | None) -> dict[str, float]:
    """`gzip;q=0.5, identity, *;q=0` -> {"gzip": 0.5, "identity": 1.0, "*": 0.0} (names lower-case).

    A malformed q-value counts as 0 (not acceptable): a client that cannot write its own header
    gets what it asked for least."""
    qualities: dict[str, float] = {}
    for item in (header or "").split(","):
        parts = [p.strip() for p in item.split(";")]
        name = parts[0].lower()
        if not name:
            continue
        q = 1.0
        for param in parts[1:]:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value.strip())
                except ValueError:
                    q = 0.0
                if not 0.0 <= q <= 1.0:
                    q = 0.0
        qualities[name] = max(q, qualities.get(name, q))  # named twice: the kinder reading
    return qualities


def wants_gzip(header: str | None) -> bool:
    """True when gzip is acceptable (named, or covered by `*`, with q > 0) and identity is not
    explicitly preferred to it. No header, or `identity` alone, means no compression."""
    if header is None or not header.strip():
        return False
    q = accept_encoding_qualities(header)
    named = [q[n] for n in GZIP_NAMES if n in q]
    gzip_q = max(named) if named else q.get("*", 0.0)
    if gzip_q <= 0.0:
        return False
    identity_q = q.get("identity", q.get("*", None))  # unnamed identity: acceptable, no preference
    return identity_q is None or gzip_q >= identity_q


def compress(body: bytes) -> bytes:
    """gzip with a fixed mtime, so the same body always costs the same wire bytes."""
    return gzip.compress(body, compresslevel=6, mtime=0)
