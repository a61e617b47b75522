"""JSON text for the raw columns with exact numbers: Decimals written digit for digit, and
JSON numbers with a fraction read back as Decimal (the engine's serializer, see store.db)."""
from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any


def _mark(value: Any) -> str:
    """The encoder's `default`: a Decimal goes in as a marked string of its digits."""
    if isinstance(value, Decimal):
        if value.is_finite():
            return f"{_MARK_OPEN}{value:f}{_MARK_CLOSE}"
        raise ValueError(f"{value} is not a JSON number")
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


# A marked Decimal as the encoder writes it: "\u0000\u0001dec:<digits>\u0001\u0000". No
# string from Xero can take this form (PostgreSQL's JSON refuses \u0000 anyway).
_MARK_OPEN, _MARK_CLOSE = "\x00\x01dec:", "\x01\x00"
_MARKED = re.compile(r'"\\u0000\\u0001dec:(-?[0-9]+(?:\.[0-9]+)?)\\u0001\\u0000"')
_encoder = json.JSONEncoder(ensure_ascii=True, allow_nan=False, separators=(",", ":"), default=_mark)


def _c_encoder():
    """The C encoder `_encoder.encode` builds on every call, built once (and with no cycle
    check: parsed JSON has no cycles); None where this Python has no C encoder to reuse."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return None
    try:
        encode = make(None, _mark, json.encoder.encode_basestring_ascii, None, ":", ",", False, False, False)
        sample = {"a": [Decimal("1.50"), None, True, "\u00e9", 2.5], "b": {}}
        if "".join(encode(sample, 0)) != _encoder.encode(sample):
            return None
    except Exception:  # noqa: BLE001 (another signature in another Python: the plain encoder will do)
        return None
    return encode


_c_encode = _c_encoder()


def dumps(value: Any) -> str:
    """Like json.dumps, but a Decimal is written exactly (46.00 stays 46.00).

    The C encoder does the writing (a backfill stores a thousand invoices a page; a writer
    in Python was most of the cost): it hands each Decimal to `_mark`, which returns its
    digits as a marked string, and the marks and quotes are then taken off (splitting on the
    marks and joining the pieces: `re.sub` with a template is four times slower)."""
    text = "".join(_c_encode(value, 0)) if _c_encode is not None else _encoder.encode(value)
    return "".join(_MARKED.split(text)) if "\\u0001dec:" in text else text


def loads(text: str | bytes) -> Any:
    return json.loads(text, parse_float=Decimal)
