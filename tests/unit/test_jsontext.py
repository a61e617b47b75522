"""The raw columns' JSON text: Decimals written digit for digit, read back as Decimals."""
from decimal import Decimal

import pytest

from store import jsontext


def test_decimals_are_written_exactly_and_read_back_equal():
    value = {"Total": Decimal("46.00"), "Rate": Decimal("0.000001"), "Big": Decimal("1E+2"),
             "Lines": [{"Amount": Decimal("-0.10"), "Qty": 1, "Paid": True, "Note": None}], "Name": "Café \"A\""}
    text = jsontext.dumps(value)
    assert text == ('{"Total":46.00,"Rate":0.000001,"Big":100,"Lines":[{"Amount":-0.10,"Qty":1,"Paid":true,'
                    '"Note":null}],"Name":"Caf\\u00e9 \\"A\\""}')
    assert jsontext.loads(text) == value


def test_text_that_looks_like_the_internal_mark_stays_text():
    value = {"Reference": "x\x00\x01dec:12\x01\x00", "Total": Decimal("1.50")}
    assert jsontext.loads(jsontext.dumps(value)) == value


def test_without_decimals_it_is_plain_json():
    assert jsontext.dumps({"a": [1, 2.5, "b"]}) == '{"a":[1,2.5,"b"]}'


@pytest.mark.parametrize("bad", [Decimal("NaN"), Decimal("Infinity")])
def test_a_non_finite_decimal_is_refused(bad):
    with pytest.raises(ValueError):
        jsontext.dumps({"Total": bad})
