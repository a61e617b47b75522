"""JSON text for the raw columns with exact numbers: Decimals written digit for digit, and
JSON numbers with a fraction read back as Decimal (the engine's serializer, see store.db)."""
from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

_encode_str = json.encoder.encode_basestring_ascii  # type: ignore[attr-defined]
_plain = json.JSONEncoder(ensure_ascii=True, allow_nan=False, separators=(",", ":"))


def dumps(value: Any) -> str:
    """Like json.dumps, but a Decimal is written exactly (46.00 stays 46.00)."""
    if not _has_decimal(value):
        return _plain.encode(value)
    out: list[str] = []
    _write(value, out)
    return "".join(out)


def loads(text: str | bytes) -> Any:
    return json.loads(text, parse_float=Decimal)


def _has_decimal(value: Any) -> bool:
    if isinstance(value, Decimal):
        return True
    if isinstance(value, dict):
        return any(_has_decimal(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_has_decimal(v) for v in value)
    return False


def _write(value: Any, out: list[str]) -> None:
    if isinstance(value, dict):
        out.append("{")
        first = True
        for key, item in value.items():
            if not first:
                out.append(",")
            first = False
            out.append(_encode_str(str(key)))
            out.append(":")
            _write(item, out)
        out.append("}")
    elif isinstance(value, (list, tuple)):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _write(item, out)
        out.append("]")
    elif isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"{value} is not a JSON number")
        out.append(format(value, "f"))
    elif isinstance(value, str):
        out.append(_encode_str(value))
    else:
        out.append(_plain.encode(value))
