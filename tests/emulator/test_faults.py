"""Seeded fault injection on API calls (latency, 5xx, 429 bursts, timeouts)."""

from __future__ import annotations

import time

import pytest
from xero_python.exceptions import HTTPStatusException, RateLimitException

from emulator.config import FaultSettings
from emulator.faults import Faults

from .http import call


def test_error_rate_one_fails_every_call(sdk, xero, read_tenant):
    xero.state.set_faults(error_rate=1.0)
    with pytest.raises(HTTPStatusException) as failed:
        sdk.accounting.get_organisations(read_tenant)
    assert failed.value.status == 503
    assert xero.state.call_count(read_tenant, "GET /Organisation", 503) >= 1


def test_next_n_calls_are_rate_limited(sdk, xero, read_tenant):
    xero.state.set_faults(rate_limit_next=2, rate_limit_retry_after=7)
    for _ in range(2):
        with pytest.raises(RateLimitException) as limited:
            sdk.accounting.get_organisations(read_tenant)
        assert limited.value.headers["Retry-After"] == "7"
    assert sdk.accounting.get_organisations(read_tenant).organisations


def test_timeout_holds_then_answers_504(sdk, xero, read_tenant):
    xero.state.set_faults(timeout_rate=1.0, timeout_seconds=0.3)
    started = time.monotonic()
    with pytest.raises(HTTPStatusException) as failed:
        sdk.accounting.get_organisations(read_tenant)
    assert failed.value.status == 504 and time.monotonic() - started >= 0.3


def test_latency_is_added(sdk, xero, read_tenant):
    xero.state.set_faults(latency_ms=200)
    started = time.monotonic()
    sdk.accounting.get_organisations(read_tenant)
    assert time.monotonic() - started >= 0.2


def test_faults_are_reproducible_from_their_seed():
    settings = {"error_rate": 0.3, "rate_limit_rate": 0.2, "timeout_rate": 0.1}
    runs = []
    for _ in range(2):
        faults = Faults(FaultSettings(**settings), seed=123)
        runs.append([faults.for_call().kind for _ in range(200)])
    assert runs[0] == runs[1] and {"error", "rate_limit", "timeout", None} == set(runs[0])


def test_faults_over_http(xero):
    reply = call("PUT", f"{xero.url}/_emulator/faults", json_body={"error_rate": 0.5, "latency_ms": 5})
    assert reply.status == 200 and reply.json()["error_rate"] == 0.5
    assert call("GET", f"{xero.url}/_emulator/faults").json()["latency_ms"] == 5
    assert call("DELETE", f"{xero.url}/_emulator/faults").json()["error_rate"] == 0.0
    assert call("PUT", f"{xero.url}/_emulator/faults", json_body={"nonsense": 1}).status == 400
