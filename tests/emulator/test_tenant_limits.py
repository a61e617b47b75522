"""Xero's 2026 tiers: each organisation's own daily limit (1,000 on Starter, 5,000 paid)."""

from __future__ import annotations

import pytest
from xero_python.exceptions import RateLimitException

from emulator.__main__ import parse_args, tenant_day_limits

from .http import bearer, call


def _organisation(xero, token, tenant):
    return call("GET", f"{xero.api_url}/Organisation", headers=bearer(token, tenant))


def test_a_tenant_on_its_own_day_limit(xero, read_tenant, write_tenant):
    token = xero.state.client_credentials_token()["access_token"]
    limits = xero.state.set_tenant_limits(read_tenant, day=3)
    assert limits["day"] == 3 and limits["day_override"] is True and limits["minute"] == 60
    remaining = [_organisation(xero, token, read_tenant).headers["X-DayLimit-Remaining"] for _ in range(3)]
    assert remaining == ["2", "1", "0"]
    refused = _organisation(xero, token, read_tenant)
    assert refused.status == 429
    assert refused.headers["X-Rate-Limit-Problem"] == "day" and refused.headers["X-DayLimit-Remaining"] == "0"
    assert 60 < int(refused.headers["Retry-After"]) <= 86400
    other = _organisation(xero, token, write_tenant)  # the shared limit still applies elsewhere
    assert other.status == 200 and other.headers["X-DayLimit-Remaining"] == "4999"
    assert xero.state.get_limits()["day"] == 5000  # the shared settings are untouched
    assert xero.state.tenant_limits(write_tenant)["day_override"] is False


def test_starter_limit_over_http_and_back(xero, read_tenant):
    token = xero.state.client_credentials_token()["access_token"]
    url = f"{xero.url}/_emulator/tenants/{read_tenant}/limits"
    set_to = call("PATCH", url, json_body={"day": 1000})
    assert set_to.status == 200 and set_to.json()["day"] == 1000
    assert call("GET", url).json() == {**xero.state.get_limits(), "day": 1000, "day_override": True}
    assert _organisation(xero, token, read_tenant).headers["X-DayLimit-Remaining"] == "999"
    # a change of the shared limit does not move a tenant with its own
    xero.state.set_limits(day=10)
    assert _organisation(xero, token, read_tenant).headers["X-DayLimit-Remaining"] == "998"
    back = call("PATCH", url, json_body={"day": None})
    assert back.json()["day"] == 10 and back.json()["day_override"] is False
    assert _organisation(xero, token, read_tenant).headers["X-DayLimit-Remaining"] == "7"


def test_tenant_limits_are_validated(xero, read_tenant):
    base = f"{xero.url}/_emulator/tenants"
    assert call("PATCH", f"{base}/00000000-0000-0000-0000-000000000000/limits", json_body={"day": 5}).status == 404
    assert call("PATCH", f"{base}/{read_tenant}/limits", json_body={"minute": 5}).status == 400
    assert call("PATCH", f"{base}/{read_tenant}/limits", json_body={}).status == 400
    assert call("PATCH", f"{base}/{read_tenant}/limits", json_body={"day": -1}).status == 400
    assert call("PATCH", f"{base}/{read_tenant}/limits", json_body={"day": "many"}).status == 400
    assert xero.state.tenant_limits(read_tenant)["day_override"] is False


def test_sdk_sees_the_tenant_day_limit(sdk, xero, write_tenant):
    xero.state.set_tenant_limits(write_tenant.upper(), day=1)  # ids in any case, as the header
    _, _, headers = sdk.accounting.get_organisations(write_tenant, _return_http_data_only=False)
    assert headers["X-DayLimit-Remaining"] == "0"
    with pytest.raises(RateLimitException) as limited:
        sdk.accounting.get_organisations(write_tenant)
    assert limited.value.rate_limit == "day"


def test_reset_windows_keeps_tenant_limits(xero, read_tenant):
    xero.state.set_tenant_limits(read_tenant, day=2)
    xero.state.reset_rate_limits()
    assert xero.state.tenant_limits(read_tenant)["day"] == 2
    xero.state.clear_tenant_limits()
    assert xero.state.tenant_limits(read_tenant)["day"] == 5000


def test_cli_day_limit_flags():
    assert parse_args(["--day-limit", "1000"]).limit_day == 1000
    assert parse_args(["--limit-day", "1200"]).limit_day == 1200
    assert parse_args([]).limit_day == 5000
    args = parse_args(["--tenant-day-limit", "0:1000", "--tenant-day-limit", "2:5000"])
    assert tenant_day_limits(args.tenant_day_limit) == [(0, 1000), (2, 5000)]
    with pytest.raises(SystemExit):
        tenant_day_limits(["1000"])
