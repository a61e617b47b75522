from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from store.types import Money, Rate, UTCDateTime


def test_money_round_trips_exactly_as_scaled_integer():
    bound = Money.process_bind_param(Decimal("1234.56"), None)
    assert bound == 12345600
    assert Money.process_result_value(bound, None) == Decimal("1234.56")


def test_money_refuses_float():
    with pytest.raises(TypeError):
        Money.process_bind_param(0.1, None)


def test_money_refuses_more_places_than_it_keeps():
    with pytest.raises(ValueError):
        Money.process_bind_param(Decimal("0.00001"), None)


def test_rate_keeps_six_decimal_places():
    assert Rate.process_result_value(Rate.process_bind_param(Decimal("1.234567"), None), None) == Decimal("1.234567")


def test_utc_datetime_normalises_offsets_and_refuses_naive():
    t = UTCDateTime()
    plus_two = datetime(2026, 1, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    stored = t.process_bind_param(plus_two, None)
    assert stored == datetime(2026, 1, 1, 10, 0)
    assert t.process_result_value(stored, None) == datetime(2026, 1, 1, 10, 0, tzinfo=timezone.utc)
    with pytest.raises(ValueError):
        t.process_bind_param(datetime(2026, 1, 1), None)
