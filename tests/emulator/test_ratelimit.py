"""Xero's rate limits: per-tenant minute/day/concurrent, app minute; 429 as the SDK sees it."""

from __future__ import annotations

import threading

import pytest
from xero_python.exceptions import RateLimitException

from emulator.testing import run_emulator

from .http import bearer, call


def headers_of(sdk, tenant):
    _, status, headers = sdk.accounting.get_organisations(tenant, _return_http_data_only=False)
    return status, headers


def test_remaining_headers_count_down(sdk, read_tenant):
    first = headers_of(sdk, read_tenant)[1]
    second = headers_of(sdk, read_tenant)[1]
    assert int(first["X-MinLimit-Remaining"]) == 59 and int(second["X-MinLimit-Remaining"]) == 58
    assert int(second["X-DayLimit-Remaining"]) == 4998
    assert int(second["X-AppMinLimit-Remaining"]) < int(first["X-AppMinLimit-Remaining"])


def test_minute_limit_surfaces_as_rate_limit_exception(sdk, xero, read_tenant):
    xero.state.set_limits(minute=3)
    for _ in range(3):
        sdk.accounting.get_organisations(read_tenant)
    with pytest.raises(RateLimitException) as limited:
        sdk.accounting.get_invoices(read_tenant, page=1)
    assert limited.value.status == 429 and limited.value.rate_limit == "minute"
    assert 1 <= int(limited.value.headers["Retry-After"]) <= 60
    assert limited.value.headers["X-MinLimit-Remaining"] == "0"
    assert xero.state.call_count(read_tenant, "GET /Invoices", 429) >= 1


def test_daily_limit_surfaces_as_rate_limit_exception(sdk, xero, read_tenant):
    xero.state.set_limits(day=2)
    sdk.accounting.get_organisations(read_tenant)
    sdk.accounting.get_organisations(read_tenant)
    with pytest.raises(RateLimitException) as limited:
        sdk.accounting.get_organisations(read_tenant)
    assert limited.value.rate_limit == "day"
    assert 60 < int(limited.value.headers.get("Retry-After")) <= 86400


def test_limits_are_per_tenant(sdk, xero, read_tenant, write_tenant):
    xero.state.set_limits(minute=1)
    sdk.accounting.get_organisations(read_tenant)
    assert sdk.accounting.get_organisations(write_tenant).organisations


def test_app_minute_limit_spans_tenants_and_connections(sdk, xero, read_tenant, write_tenant):
    xero.state.set_limits(app_minute=2)
    sdk.accounting.get_organisations(read_tenant)
    sdk.accounting.get_organisations(write_tenant)
    with pytest.raises(RateLimitException) as limited:
        sdk.accounting.get_organisations(read_tenant)
    assert limited.value.rate_limit == "appminute"
    reply = call("GET", xero.connections_url, headers=bearer(sdk.token["access_token"]))
    assert reply.status == 429 and reply.headers["X-Rate-Limit-Problem"] == "appminute"


def test_concurrent_limit(xero, read_tenant):
    xero.state.set_limits(concurrent=2)
    xero.state.set_faults(latency_ms=300)
    token = xero.state.client_credentials_token()["access_token"]
    statuses, problems = [], []

    def one():
        reply = call("GET", f"{xero.api_url}/Organisation", headers=bearer(token, read_tenant))
        statuses.append(reply.status)
        problems.append(reply.headers.get("X-Rate-Limit-Problem"))

    threads = [threading.Thread(target=one) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses.count(200) == 2 and statuses.count(429) == 3
    assert set(problems) == {None, "concurrent"}


def test_minute_window_slides():
    with run_emulator(seed=3, tenants=1, contacts=2, invoices=2) as xero:
        xero.state.set_limits(minute=1)
        tenant = xero.state.tenant_ids[0]
        token = xero.state.client_credentials_token()["access_token"]
        assert call("GET", f"{xero.api_url}/Organisation", headers=bearer(token, tenant)).status == 200
        refused = call("GET", f"{xero.api_url}/Organisation", headers=bearer(token, tenant))
        assert refused.status == 429
        xero.state.advance_clock(int(refused.headers["Retry-After"]))
        assert call("GET", f"{xero.api_url}/Organisation", headers=bearer(token, tenant)).status == 200


def test_limits_configurable_over_http(xero):
    reply = call("PUT", f"{xero.url}/_emulator/limits", json_body={"minute": 7})
    assert reply.status == 200 and reply.json()["minute"] == 7
    assert xero.state.get_limits()["minute"] == 7
