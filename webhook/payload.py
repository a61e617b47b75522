"""Pure: a Xero webhook body parsed into events; no I/O, no clock.

Tolerant where Xero varies (title-case `"Update"`, a missing zone on `eventDateUtc`, new
categories such as CREDITNOTE, the empty `events` of intent-to-receive) and strict where a
wrong value would be stored: every field we keep must be present, a string and short enough.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from infra.errors import InputError

# the longest value each stored field may take (the inbox columns' sizes)
_FIELDS = {
    "tenantId": 64,
    "tenantType": 32,
    "eventCategory": 32,
    "eventType": 16,
    "resourceId": 64,
    "eventDateUtc": 64,
}


class BadPayload(InputError, ValueError):
    """The body is not a Xero webhook payload; the message says why."""


@dataclass(frozen=True)
class Event:
    """One change Xero announces: which record, of which organisation, when."""

    tenant_id: str
    tenant_type: str  # ORGANISATION | APPLICATION
    category: str  # INVOICE | CONTACT | CREDITNOTE | SUBSCRIPTION | whatever Xero adds
    event_type: str  # CREATE | UPDATE
    resource_id: str
    event_date_utc: datetime  # aware, UTC
    resource_url: str | None = None
    data: dict[str, Any] | None = field(default=None, compare=False)  # CREDITNOTE: {"Type", "Status"}

    @property
    def dedupe_key(self) -> str:
        """The same announcement delivered twice has the same key: 64 characters, the event's
        UTC time (`YYYYMMDDhhmmssffffff`) and then 44 hex digits of a SHA-256 of what identifies it.

        Time first, so keys arrive in about the order they sort: each new key lands beside the
        last in the inbox's unique index, instead of on a random page of it (a random key cost
        an index page written per event, about a fifth of the intake writer's CPU)."""
        when = self.event_date_utc
        parts = (self.tenant_id, self.category, self.resource_id, self.event_type, when.isoformat())
        digest = hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()
        return f"{when.year:04d}{when:%m%d%H%M%S}{when.microsecond:06d}{digest[:44]}"


def parse(body: bytes) -> list[Event]:
    """The events in a webhook body, in order; [] for an intent-to-receive payload."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as error:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise BadPayload(f"body is not JSON: {error}") from None
    if not isinstance(document, dict):
        raise BadPayload("body is not a JSON object")
    events = document.get("events")
    if not isinstance(events, list):
        raise BadPayload("'events' is missing or not a list")
    for name in ("firstEventSequence", "lastEventSequence"):
        value = document.get(name)
        if value is not None and (type(value) is not int or value < 0):
            raise BadPayload(f"'{name}' is not a non-negative integer")
    return [_event(index, item) for index, item in enumerate(events)]


def _event(index: int, item: object) -> Event:
    if not isinstance(item, dict):
        raise BadPayload(f"events[{index}] is not an object")
    values = {name: _text(index, item, name, limit) for name, limit in _FIELDS.items()}
    resource_url = item.get("resourceUrl")
    if resource_url is not None and not isinstance(resource_url, str):
        raise BadPayload(f"events[{index}].resourceUrl is not a string")
    data = item.get("data")
    if data is not None and not isinstance(data, dict):
        raise BadPayload(f"events[{index}].data is not an object")
    if data is not None and not _storable(data):
        raise BadPayload(f"events[{index}].data holds text no database can store (NUL, lone surrogate)")
    return Event(
        tenant_id=values["tenantId"],
        tenant_type=values["tenantType"].upper(),
        category=values["eventCategory"].upper(),
        event_type=values["eventType"].upper(),
        resource_id=values["resourceId"],
        event_date_utc=_utc(index, values["eventDateUtc"]),
        resource_url=resource_url,
        data=data,
    )


def _text(index: int, item: dict, name: str, limit: int) -> str:
    value = item.get(name)
    if not isinstance(value, str) or not value.strip():
        raise BadPayload(f"events[{index}].{name} is missing or not a string")
    value = value.strip()
    if not _storable(value):
        raise BadPayload(f"events[{index}].{name} holds text no database can store (NUL, lone surrogate)")
    if len(value) > limit:
        raise BadPayload(f"events[{index}].{name} is longer than {limit} characters")
    return value


def _utc(index: int, text: str) -> datetime:
    """Xero writes `2024-06-21T01:15:39.902`, no zone: that is UTC."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise BadPayload(f"events[{index}].eventDateUtc is not an ISO-8601 time: {text!r}") from None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def _storable(value: Any) -> bool:
    """Whether every text in `value` can be stored: PostgreSQL refuses NUL in text and JSON, and
    a lone surrogate (valid JSON escape, invalid Unicode) is not UTF-8 at all."""
    if isinstance(value, str):
        if "\x00" in value:
            return False
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True
    if isinstance(value, dict):
        return all(_storable(k) and _storable(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_storable(v) for v in value)
    return True
