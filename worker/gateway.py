"""One tenant's view of Xero for one job: every call budgeted, authorised and accounted for.

Each call takes a lease from the governor (or raises Throttled), brings a fresh access token,
reports Xero's remaining-counts back to the governor, turns a 429 into a tenant-wide pause,
and answers one 401 with one token replacement before giving the connection up.

Every answer Xero sends during a call (the token refresh it needed included, refusals too) is
metered to this tenant: one call and its bytes on the wire, under today's UTC day in Redis
(infra.metrics.egress), as Xero's egress billing counts them.
"""
from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext

from infra import metrics
from worker.governor import Governor, Reported
from xero.client import ConnectionRevoked, XeroClient, XeroPage, XeroRateLimited, XeroUnauthorized
from xero.tokens import TokenKeeper


class TenantApi:
    def __init__(self, tenant_id: str, *, xero: XeroClient, tokens: TokenKeeper, governor: Governor, priority: str):
        self.tenant_id = tenant_id
        self.xero = xero
        self.tokens = tokens
        self.governor = governor
        self.priority = priority
        self.calls = 0
        self.answers = 0  # answers Xero sent (token calls included), as metered
        self.wire_bytes = 0  # their bodies' bytes on the wire

    def invoices(self, **params) -> XeroPage:
        return self._call(self.xero.invoices, params)

    def invoice(self, **params) -> XeroPage:
        return self._call(self.xero.invoice, params)

    def contact(self, **params) -> XeroPage:
        return self._call(self.xero.contact, params)

    def contacts(self, **params) -> XeroPage:
        return self._call(self.xero.contacts, params)

    def payments(self, **params) -> XeroPage:
        return self._call(self.xero.payments, params)

    def organisation(self) -> dict:
        """GET /Organisation: the organisation's record ({} if Xero lists none), budgeted like any call."""
        page = self._call(self._organisation_page, {})
        return page.items[0] if page.items else {}

    def _organisation_page(self, tenant_id: str, access_token: str) -> XeroPage:
        # XeroClient.organisation answers with the record alone; the page keeps Xero's
        # remaining-counts for the governor, as every other call here does.
        xero = self.xero
        return xero._call(access_token, "Organisations", xero._accounting.get_organisations, tenant_id)

    def credit_notes(self, **params) -> XeroPage:
        return self._call(self.xero.credit_notes, params)

    def _call(self, method: Callable[..., XeroPage], params: dict) -> XeroPage:
        metering = getattr(self.xero, "metering", None)
        with metering(self._meter) if metering is not None else nullcontext():
            return self._authorised(method, params)

    def _meter(self, _tenant_id: str | None, nbytes: int) -> None:
        """An answer from Xero on this tenant's behalf (token calls carry no tenant: theirs is ours)."""
        self.answers += 1
        self.wire_bytes += nbytes
        metrics.egress(self.governor.redis, self.tenant_id, nbytes)

    def _authorised(self, method: Callable[..., XeroPage], params: dict) -> XeroPage:
        token = self.tokens.access_token(self.tenant_id)
        try:
            return self._once(method, token, params)
        except XeroUnauthorized:
            token = self.tokens.replace_rejected(self.tenant_id, token)
        try:
            return self._once(method, token, params)
        except XeroUnauthorized:
            reason = "Xero refused a freshly issued access token (401): the connection must be re-authorised"
            self.tokens.revoke(self.tenant_id, reason)
            raise ConnectionRevoked(reason) from None

    def _once(self, method: Callable[..., XeroPage], token: str, params: dict) -> XeroPage:
        lease = self.governor.acquire(self.tenant_id, self.priority)
        try:
            self.calls += 1
            page = method(self.tenant_id, token, **params)
        except XeroRateLimited as exc:
            metrics.count(self.governor.redis, metrics.XERO_429, problem=(exc.problem or "unknown").lower())
            self.governor.pause(self.tenant_id, exc.retry_after, exc.problem)
            # Retry-After says when the minute frees up; only the day count is worth keeping.
            self.governor.observe(self.tenant_id, Reported(day_remaining=exc.reported.day_remaining))
            raise
        finally:
            lease.release()
        self.governor.observe(self.tenant_id, page.reported)
        return page
