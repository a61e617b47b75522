"""Totals per type and currency, and the converted base-currency total, on plain invoices."""

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from views.totals import Amount, Line, lines_for, summarise, to_base

TODAY = date(2026, 11, 25)
D = Decimal
ONE = Decimal(1)


@dataclass(frozen=True)
class Inv:
    currency_code: str
    total: Decimal
    amount_due: Decimal
    status: str = "AUTHORISED"
    type: str = "ACCREC"
    currency_rate: Decimal | None = ONE
    due_date: date | None = date(2026, 12, 1)


def paid(currency, total, rate=ONE, type="ACCREC"):
    return Inv(currency, D(total), D(0), "PAID", type, rate)


def unpaid(currency, total, due, rate=ONE, due_date=date(2026, 12, 1), type="ACCREC"):
    return Inv(currency, D(total), D(due), "AUTHORISED", type, rate, due_date)


def test_paid_counts_totals_and_unpaid_counts_balances_per_currency():
    invoices = [
        paid("NZD", "100.00"),
        paid("NZD", "50.50"),
        paid("USD", "10.00", D("0.6")),
        unpaid("NZD", "200.00", "120.00"),
        unpaid("USD", "30.00", "30.00", D("0.6")),
    ]
    s = summarise(lines_for(invoices, TODAY), "NZD")
    assert s.paid.by_currency == (
        Amount("ACCREC", "NZD", D("150.50"), 2),
        Amount("ACCREC", "USD", D("10.00"), 1),
    )
    assert s.unpaid.by_currency == (
        Amount("ACCREC", "NZD", D("120.00"), 1),
        Amount("ACCREC", "USD", D("30.00"), 1),
    )
    assert (s.paid.count, s.unpaid.count) == (3, 2)


def test_sales_invoices_and_bills_are_never_added_together():
    s = summarise(lines_for([paid("NZD", "100"), paid("NZD", "40", type="ACCPAY")], TODAY), "NZD")
    assert s.paid.by_currency == (Amount("ACCREC", "NZD", D(100), 1), Amount("ACCPAY", "NZD", D(40), 1))
    assert [(c.type, c.amount) for c in s.paid.converted] == [("ACCREC", D("100.00")), ("ACCPAY", D("40.00"))]


def test_base_total_divides_by_each_invoices_own_rate():
    invoices = [
        unpaid("USD", "100", "100", D("0.6")),
        unpaid("USD", "100", "100", D("0.5")),
        unpaid("NZD", "1", "1"),
    ]
    (converted,) = summarise(lines_for(invoices, TODAY), "NZD").unpaid.converted
    assert converted.amount == (D(100) / D("0.6") + D(100) / D("0.5") + 1).quantize(D("0.01"))  # 367.67
    assert (converted.currency, converted.count, converted.unconverted) == ("NZD", 3, ())


def test_base_total_is_rounded_once_not_per_invoice():
    invoices = [unpaid("USD", "0.01", "0.01", D(3))] * 3  # each is 0.0033 NZD: rounding each would give 0
    assert summarise(lines_for(invoices, TODAY), "NZD").unpaid.converted[0].amount == D("0.01")


def test_foreign_invoice_without_a_rate_is_reported_not_dropped():
    invoices = [unpaid("USD", "40", "40", None), unpaid("USD", "2", "2", D(0)), unpaid("NZD", "5", "5", None)]
    (converted,) = summarise(lines_for(invoices, TODAY), "NZD").unpaid.converted
    assert converted.amount == D("5.00") and converted.count == 1  # base currency needs no rate
    assert converted.unconverted == (Amount("ACCREC", "USD", D(42), 2),)


def test_without_a_base_currency_nothing_is_converted_but_every_currency_is_totalled():
    s = summarise(lines_for([paid("USD", "10", D("0.6"))], TODAY), None)
    assert s.paid.converted == () and s.paid.by_currency == (Amount("ACCREC", "USD", D(10), 1),)


def test_overdue_is_the_past_due_part_of_unpaid():
    invoices = [
        unpaid("NZD", "10", "10", due_date=date(2026, 11, 24)),
        unpaid("NZD", "7", "7", due_date=TODAY),
    ]
    s = summarise(lines_for(invoices, TODAY), "NZD")
    assert s.overdue.by_currency == (Amount("ACCREC", "NZD", D(10), 1),)
    assert s.unpaid.by_currency == (Amount("ACCREC", "NZD", D(17), 2),)


def test_drafts_voided_and_zero_balance_authorised_count_in_no_total():
    invoices = [Inv("NZD", D(5), D(5), "DRAFT"), Inv("NZD", D(5), D(0), "VOIDED"), Inv("NZD", D(5), D(0))]
    assert lines_for(invoices, TODAY) == []


def test_grouped_lines_add_up_like_single_invoices():
    grouped = [Line("paid", "ACCREC", "USD", D("0.5"), D("30.00"), 3)]
    single = [Line("paid", "ACCREC", "USD", D("0.5"), D("10.00"))] * 3
    assert summarise(grouped, "NZD").paid == summarise(single, "NZD").paid


def test_amounts_stay_decimal():
    s = summarise(lines_for([paid("USD", "0.10", D("0.3"))] * 3, TODAY), "NZD")
    assert isinstance(s.paid.by_currency[0].amount, Decimal) and s.paid.by_currency[0].amount == D("0.30")
    assert isinstance(s.paid.converted[0].amount, Decimal) and s.paid.converted[0].amount == D("1.00")


def test_to_base_keeps_base_currency_as_is():
    assert to_base(D("12.34"), "NZD", None, "NZD") == D("12.34")
    assert to_base(D("12.34"), "USD", None, "NZD") is None
