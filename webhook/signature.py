"""Pure: Xero's webhook signature, base64(HMAC-SHA256(webhook key, raw body)), checked in constant time."""
from __future__ import annotations

import base64
import hashlib
import hmac


def sign(body: bytes, key: str) -> str:
    """The `x-xero-signature` Xero sends with `body`: standard, padded base64 of the digest."""
    digest = hmac.new(key.encode("utf-8"), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def is_valid(body: bytes, header: str | None, key: str) -> bool:
    """Whether `header` is Xero's signature of `body`. A missing or junk header is simply
    invalid, and so is everything when no key is configured (an empty key signs for anyone)."""
    if not header or not key:
        return False
    expected = sign(body, key).encode("ascii")
    # bytes on both sides: compare_digest refuses non-ASCII str, and junk must not raise
    return hmac.compare_digest(expected, header.encode("utf-8", "replace"))
