"""The money rules on plain invoices: received, credited, still to pay, overdue, per currency."""

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from views.totals import Amount, Line, identity_holds, lines_for, summarise, to_base

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
    amount_paid: Decimal = D(0)
    amount_credited: Decimal = D(0)


def inv(currency, total, *, paid="0", credited="0", status=None, type="ACCREC", rate=ONE, due_date=date(2026, 12, 1)):
    total, paid, credited = D(total), D(paid), D(credited)
    due = total - paid - credited
    status = status or ("PAID" if due == 0 else "AUTHORISED")
    return Inv(currency, total, due, status, type, rate, due_date, paid, credited)


def test_received_is_money_paid_not_the_total_of_paid_invoices():
    # cancelled by a credit note: PAID, nothing received; part-paid: 600 received
    invoices = [inv("NZD", "1000", credited="1000"), inv("NZD", "1000", paid="600")]
    s = summarise(lines_for(invoices, TODAY), "NZD")
    assert s.paid.by_currency == (Amount("NZD", D(600), 1),)
    assert s.credited.by_currency == (Amount("NZD", D(1000), 1),)
    assert s.unpaid.by_currency == (Amount("NZD", D(400), 1),)
    assert s.invoiced.by_currency == (Amount("NZD", D(2000), 2),)
    assert identity_holds(s)


def test_a_mix_of_payment_and_credit_counts_in_both_and_once_in_invoiced():
    s = summarise(lines_for([inv("NZD", "1000", paid="700", credited="300")], TODAY), "NZD")
    assert (s.paid.count, s.credited.count, s.unpaid.count, s.invoiced.count) == (1, 1, 0, 1)
    assert s.paid.by_currency[0].amount + s.credited.by_currency[0].amount == D(1000)
    assert s.unpaid.by_currency == () and identity_holds(s)


def test_bills_are_never_the_customers_debt():
    invoices = [inv("NZD", "100", paid="100"), inv("NZD", "40", type="ACCPAY"),
                inv("NZD", "9", paid="9", type="ACCPAY")]
    s = summarise(lines_for(invoices, TODAY), "NZD")
    assert s.paid.by_currency == (Amount("NZD", D(100), 1),)
    assert s.unpaid.by_currency == () and s.invoiced.count == 1


def test_currencies_are_never_added_together():
    invoices = [inv("NZD", "100", paid="30"), inv("USD", "10", credited="10", rate=D("0.6"))]
    s = summarise(lines_for(invoices, TODAY), "NZD")
    assert s.invoiced.by_currency == (Amount("NZD", D(100), 1), Amount("USD", D(10), 1))
    assert s.credited.by_currency == (Amount("USD", D(10), 1),)
    assert identity_holds(s)


def test_base_total_divides_by_each_invoices_own_rate():
    invoices = [
        inv("USD", "100", rate=D("0.6")),
        inv("USD", "100", rate=D("0.5")),
        inv("NZD", "1"),
    ]
    (converted,) = summarise(lines_for(invoices, TODAY), "NZD").unpaid.converted
    assert converted.amount == (D(100) / D("0.6") + D(100) / D("0.5") + 1).quantize(D("0.01"))  # 367.67
    assert (converted.currency, converted.count, converted.unconverted) == ("NZD", 3, ())


def test_base_total_is_rounded_once_not_per_invoice():
    invoices = [inv("USD", "0.01", rate=D(3))] * 3  # each is 0.0033 NZD: rounding each would give 0
    assert summarise(lines_for(invoices, TODAY), "NZD").unpaid.converted[0].amount == D("0.01")


def test_foreign_invoice_without_a_rate_is_reported_not_dropped():
    invoices = [inv("USD", "40", rate=None), inv("USD", "2", rate=D(0)), inv("NZD", "5", rate=None)]
    (converted,) = summarise(lines_for(invoices, TODAY), "NZD").unpaid.converted
    assert converted.amount == D("5.00") and converted.count == 1  # base currency needs no rate
    assert converted.unconverted == (Amount("USD", D(42), 2),)


def test_without_a_base_currency_nothing_is_converted_but_every_currency_is_totalled():
    s = summarise(lines_for([inv("USD", "10", paid="10", rate=D("0.6"))], TODAY), None)
    assert s.paid.converted == () and s.paid.by_currency == (Amount("USD", D(10), 1),)


def test_overdue_is_the_past_due_part_of_unpaid_and_due_today_is_not_overdue():
    invoices = [
        inv("NZD", "10", due_date=date(2026, 11, 24)),
        inv("NZD", "7", due_date=TODAY),
        inv("NZD", "20", paid="5", due_date=date(2026, 1, 1)),
    ]
    s = summarise(lines_for(invoices, TODAY), "NZD")
    assert s.overdue.by_currency == (Amount("NZD", D(25), 2),)
    assert s.unpaid.by_currency == (Amount("NZD", D(32), 3),)


def test_drafts_and_voided_count_nowhere_and_zero_balance_authorised_counts_as_settled():
    invoices = [
        Inv("NZD", D(5), D(5), "DRAFT"),
        Inv("NZD", D(5), D(5), "VOIDED"),
        inv("NZD", "5", credited="5", status="AUTHORISED"),  # Xero has not called it PAID yet
    ]
    lines = lines_for(invoices, TODAY)
    assert [(ln.state, ln.credited) for ln in lines] == [("settled", D(5))]
    s = summarise(lines, "NZD")
    assert s.unpaid.count == 0 and identity_holds(s)


def test_grouped_lines_add_up_like_single_invoices():
    grouped = [Line("settled", "USD", D("0.5"), D("30"), D("21"), D("9"), D(0), 3, 3, 2)]
    single = [Line("settled", "USD", D("0.5"), D("10"), D("7"), D("3"), D(0), 1, 1, 1)] * 2 + [
        Line("settled", "USD", D("0.5"), D("10"), D("7"), D("3"), D(0), 1, 1, 0)
    ]
    a, b = summarise(grouped, "NZD"), summarise(single, "NZD")
    assert a.paid.by_currency == b.paid.by_currency and a.paid.converted[0].amount == b.paid.converted[0].amount
    assert a.credited.by_currency[0].count == 2 == b.credited.by_currency[0].count


def test_amounts_stay_decimal():
    s = summarise(lines_for([inv("USD", "0.10", paid="0.10", rate=D("0.3"))] * 3, TODAY), "NZD")
    assert isinstance(s.paid.by_currency[0].amount, Decimal) and s.paid.by_currency[0].amount == D("0.30")
    assert isinstance(s.paid.converted[0].amount, Decimal) and s.paid.converted[0].amount == D("1.00")


def test_to_base_keeps_base_currency_as_is():
    assert to_base(D("12.34"), "NZD", None, "NZD") == D("12.34")
    assert to_base(D("12.34"), "USD", None, "NZD") is None


cents = st.integers(min_value=0, max_value=10**9).map(lambda n: D(n) / 100)


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["NZD", "USD", "EUR"]), cents, cents, cents, st.sampled_from(["ACCREC", "ACCPAY"]),
            st.booleans(),
        ),
        max_size=30,
    )
)
def test_received_plus_credited_plus_still_to_pay_is_what_was_invoiced(specs):
    invoices = [
        inv(cur, str(paid + credited + due), paid=str(paid), credited=str(credited), type=kind,
            due_date=date(2026, 11, 1) if late else date(2026, 12, 31))
        for cur, paid, credited, due, kind, late in specs
    ]
    s = summarise(lines_for(invoices, TODAY), "NZD")
    assert identity_holds(s)
    sales = [i for i in invoices if i.type == "ACCREC"]
    assert s.invoiced.count == len(sales)
    assert sum((a.amount for a in s.unpaid.by_currency), D(0)) == sum((i.amount_due for i in sales), D(0))
