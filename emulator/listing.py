"""Reading list queries as Xero does: CSV lists, loose booleans, paging, order, If-Modified-Since (pure)."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from .where import field_value

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000


class QueryError(ValueError):
    """A query parameter Xero would reject."""


class Args:
    """Query parameters with case-insensitive names and repeated values merged."""

    def __init__(self, multidict) -> None:
        self._values: dict[str, list[str]] = {}
        for key, values in multidict.lists():
            self._values.setdefault(key.lower(), []).extend(values)

    def get(self, name: str) -> str | None:
        values = self._values.get(name.lower())
        return values[-1] if values else None

    def csv(self, name: str) -> list[str] | None:
        """`a,b` or `a%2Cb` (already decoded) or repeated params; quotes and blanks dropped."""
        values = self._values.get(name.lower())
        if not values:
            return None
        items = [part.strip().strip('"') for value in values for part in value.split(",")]
        return [item for item in items if item]

    def flag(self, name: str) -> bool:
        value = self.get(name)
        return value is not None and value.strip().lower() in ("true", "1", "yes")

    def integer(self, name: str) -> int | None:
        value = self.get(name)
        if value is None or value.strip() == "":
            return None
        try:
            return int(value)
        except ValueError as exc:
            raise QueryError(f"'{value}' is not a valid value for {name}") from exc


def page_request(args: Args) -> tuple[int | None, int]:
    """(page or None when un-paged, page size capped at 1000, default 100); pageSize alone means page 1."""
    page = args.integer("page")
    size = args.integer("pageSize")
    if page is None and size is not None:
        page = 1
    if size is None or size < 1:
        size = DEFAULT_PAGE_SIZE
    if page is not None and page < 1:
        page = 1
    return page, min(size, MAX_PAGE_SIZE)


def paginate(items: list, page: int, size: int) -> tuple[list, dict]:
    start = (page - 1) * size
    block = {
        "page": page,
        "pageSize": size,
        "pageCount": math.ceil(len(items) / size),
        "itemCount": len(items),
    }
    return items[start : start + size], block


def parse_if_modified_since(value: str | None) -> datetime | None:
    """ISO-8601 with or without offset (the SDK sends isoformat()), or RFC 1123; naive means UTC."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        try:
            moment = parsedate_to_datetime(text)
        except (TypeError, ValueError) as exc:
            raise QueryError(f"Invalid If-Modified-Since header {value!r}") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def order_clauses(text: str | None, fields: set[str]) -> list[tuple[tuple[str, ...], bool]]:
    """`UpdatedDateUTC ASC, Date DESC` -> [(("UpdatedDateUTC",), False), (("Date",), True)]."""
    if not text or not text.strip():
        return []
    known = {f.lower() for f in fields}
    clauses = []
    for part in text.split(","):
        words = part.split()
        if not words or len(words) > 2:
            raise QueryError(f"Invalid order clause {part!r}")
        path = tuple(words[0].split("."))
        if path[0].lower() not in known:
            raise QueryError(f"No property or field '{path[0]}' exists to order by")
        direction = words[1].upper() if len(words) == 2 else "ASC"
        if direction not in ("ASC", "DESC"):
            raise QueryError(f"Invalid order direction {words[1]!r}")
        clauses.append((path, direction == "DESC"))
    return clauses


def sort_rows(rows: list[tuple[object, dict]], clauses) -> list[tuple[object, dict]]:
    """Stable multi-key sort of (record, json) pairs; missing values sort first."""
    for path, descending in reversed(clauses):
        rows.sort(key=lambda row: _sort_key(field_value(row[1], path)), reverse=descending)
    return rows


def _sort_key(value):
    if value is None:
        return (0, "")
    if isinstance(value, str):
        return (1, value.lower())
    if isinstance(value, bool):
        return (1, int(value))
    return (1, value)
