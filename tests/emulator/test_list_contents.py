"""What a list call includes, as Xero documents it: line items on pages and single GETs only,
`summaryOnly` dropping every array a client might wrongly rely on."""

from __future__ import annotations

HEAVY = ("LineItems", "Payments", "CreditNotes", "Prepayments", "Overpayments")


def _sample(xero, tenant):
    """Ten invoices with line items, one part paid and one credited among them."""
    books = xero.state.books[tenant]
    paid = next(i for i in books.invoices.values() if i.amount_paid and i.status == "PAID")
    credited = next(i for i in books.invoices.values() if i.allocations)
    chosen = [paid.invoice_id, credited.invoice_id]
    for invoice in books.invoices.values():
        if len(chosen) == 10:
            break
        if invoice.line_items and invoice.invoice_id not in chosen:
            chosen.append(invoice.invoice_id)
    return chosen


def test_unpaged_list_leaves_line_items_out(xero, read_tenant, get):
    body = get("/Invoices")
    assert "pagination" not in body and len(body["Invoices"]) > 100
    assert all(i["LineItems"] == [] for i in body["Invoices"])
    assert any(i["Payments"] for i in body["Invoices"])  # the money arrays stay
    ids = ",".join(_sample(xero, read_tenant))
    by_ids = get(f"/Invoices?IDs={ids}")["Invoices"]
    assert len(by_ids) == 10 and all(i["LineItems"] == [] for i in by_ids)


def test_the_unverified_switch_makes_unpaged_lists_carry_line_items(xero, read_tenant, get):
    ids = ",".join(_sample(xero, read_tenant))
    previous = xero.state.behaviour()
    try:
        assert xero.state.set_behaviour(unpaged_line_items=True)["unpaged_line_items"] is True
        by_ids = get(f"/Invoices?IDs={ids}")["Invoices"]
    finally:
        xero.state.set_behaviour(**previous)
    assert len(by_ids) == 10 and all(i["LineItems"] for i in by_ids)
    again = get(f"/Invoices?IDs={ids}")["Invoices"]
    assert all(i["LineItems"] == [] for i in again)


def test_paged_list_and_single_get_carry_line_items(xero, read_tenant, get):
    ids = _sample(xero, read_tenant)
    paged = get(f"/Invoices?IDs={','.join(ids)}&page=1")
    assert paged["pagination"]["itemCount"] == 10
    assert all(i["LineItems"] for i in paged["Invoices"])
    assert {"Description", "UnitAmount", "LineAmount"} <= set(paged["Invoices"][0]["LineItems"][0])
    one = get(f"/Invoices/{ids[0]}")["Invoices"]
    assert len(one) == 1 and one[0]["LineItems"] and one[0]["Payments"]


def test_summary_only_drops_line_items_and_every_money_array(xero, read_tenant, get):
    ids = _sample(xero, read_tenant)
    full = {i["InvoiceID"]: i for i in get(f"/Invoices?IDs={','.join(ids)}&page=1")["Invoices"]}
    assert full[ids[0]]["Payments"] and full[ids[1]]["CreditNotes"] + full[ids[1]]["Prepayments"] + full[ids[1]][
        "Overpayments"
    ]
    for query in ("&summaryOnly=true&page=1", "&summaryOnly=True", "&summaryOnly=true&page=1&pageSize=5"):
        body = get(f"/Invoices?IDs={','.join(ids)}{query}")
        for invoice in body["Invoices"]:
            assert not set(HEAVY) & set(invoice), query
            whole = full[invoice["InvoiceID"]]
            for scalar in ("Total", "AmountDue", "AmountPaid", "AmountCredited", "Status", "UpdatedDateUTC"):
                assert invoice[scalar] == whole[scalar]
    paged = get(f"/Invoices?IDs={','.join(ids)}&summaryOnly=true&page=1&pageSize=5")
    assert len(paged["Invoices"]) == 5 and paged["pagination"]["pageCount"] == 2


def test_summary_only_false_is_the_default(xero, read_tenant, get):
    ids = ",".join(_sample(xero, read_tenant))
    assert get(f"/Invoices?IDs={ids}&page=1&summaryOnly=false") | {"Id": 0, "DateTimeUTC": 0} == (
        get(f"/Invoices?IDs={ids}&page=1") | {"Id": 0, "DateTimeUTC": 0}
    )


def test_summary_only_is_smaller_on_the_wire(xero, read_tenant, get):
    xero.state.reset_calls()
    get("/Invoices?page=1&pageSize=500")
    full = xero.state.bytes_sent(read_tenant, "GET /Invoices")
    get("/Invoices?page=1&pageSize=500&summaryOnly=true")
    summary = xero.state.bytes_sent(read_tenant, "GET /Invoices") - full
    assert summary < full * 0.6


def test_contacts_summary_only_and_credit_note_line_items(xero, read_tenant, get):
    contacts = get("/Contacts?summaryOnly=true")["Contacts"]
    assert contacts and not {"ContactPersons", "Addresses", "Phones"} & set(contacts[0])
    assert "ContactPersons" in get("/Contacts?page=1")["Contacts"][0]
    unpaged = get("/CreditNotes")["CreditNotes"]
    assert unpaged and all(c["LineItems"] == [] for c in unpaged)
    paged = get("/CreditNotes?page=1")["CreditNotes"]
    assert all(c["LineItems"] for c in paged)
    one = get(f"/CreditNotes/{paged[0]['CreditNoteID']}")["CreditNotes"][0]
    assert one["LineItems"]
