"""Pure: the link that opens an invoice in Xero's web app (XERO.md 2.8)."""

from __future__ import annotations

from urllib.parse import quote

LOGIN = "https://go.xero.com/organisationlogin/default.aspx?shortcode={code}&redirecturl={target}"
DIRECT = "https://go.xero.com{target}"


def invoice_url(invoice_id: str, invoice_type: str, short_code: str | None) -> str:
    """With the organisation's short code the link first switches the user to that
    organisation; without it, it opens in whichever organisation they are in. Bills open
    at AccountsPayable/Edit, everything else at AccountsReceivable/View."""
    page = "/AccountsPayable/Edit.aspx" if invoice_type == "ACCPAY" else "/AccountsReceivable/View.aspx"
    target = f"{page}?InvoiceID={quote(invoice_id, safe='-')}"
    if short_code:
        return LOGIN.format(code=quote(short_code, safe="!"), target=target)
    return DIRECT.format(target=target)
