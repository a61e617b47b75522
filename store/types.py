"""Column types that behave the same on SQLite and PostgreSQL: exact money, aware UTC times."""
from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

from sqlalchemy import BigInteger, DateTime, TypeDecorator


class Scaled(TypeDecorator):
    """A Decimal kept as a scaled integer, so sums are exact on every engine.

    SQLite has no decimal type (NUMERIC falls back to binary floats), so money is stored
    as an integer count of 1/10**places units. Floats are refused outright.
    """

    impl = BigInteger
    cache_ok = True

    def __init__(self, places: int = 4):
        super().__init__()
        self.places = places
        self.factor = Decimal(10) ** places

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.__class__ is not Decimal:
            if isinstance(value, float):
                raise TypeError("money must be Decimal, never float")
            value = Decimal(value)
        scaled = value * self.factor
        if scaled != scaled.to_integral_value():
            raise ValueError(f"{value} has more than {self.places} decimal places")
        return int(scaled)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return (Decimal(int(value)) / self.factor).quantize(Decimal(1).scaleb(-self.places))


Money = Scaled(4)
Rate = Scaled(10)


class UTCDateTime(TypeDecorator):
    """A timezone-aware UTC datetime, stored naive-UTC so SQLite and PostgreSQL agree."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is timezone.utc:
            return value.replace(tzinfo=None)
        if value.tzinfo is None:
            raise ValueError("naive datetime: pass an aware UTC datetime")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if isinstance(value, str):  # SQLite aggregate results come back as text
            value = datetime.fromisoformat(value)
        return value.replace(tzinfo=timezone.utc)
