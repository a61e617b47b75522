"""Pure: a sort key that orders invoice numbers as people read them (INV-9999 before INV-10000)."""

from __future__ import annotations

import re

_DIGITS = re.compile(r"\d+")
WIDTH = 20
MAX_LENGTH = 400


def number_key(number: str | None) -> str | None:
    """Each run of digits left-padded to 20 places, letters lower-cased: compared as bytes, the
    keys sort in natural order. Leading zeros do not count ("INV-007" ties with "INV-7")."""
    if number is None:
        return None
    key = _DIGITS.sub(lambda m: (m.group().lstrip("0") or "0").rjust(WIDTH, "0"), number.lower())
    return key[:MAX_LENGTH]
