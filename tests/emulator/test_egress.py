"""What a call costs under Xero's 2026 pricing: gzip on request, bytes metered per call."""

from __future__ import annotations

import gzip
import http.client
import json
import urllib.parse

import pytest
import urllib3

from emulator.encoding import accept_encoding_qualities, wants_gzip

from .http import bearer, call


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, False),
        ("", False),
        ("identity", False),  # what urllib3 sends for the SDK by default
        ("gzip", True),
        ("GZip", True),
        ("x-gzip", True),
        ("gzip, deflate, br", True),
        ("gzip;q=0", False),
        ("gzip; q=0.0", False),
        ("gzip;q=0.001", True),
        ("gzip;q=0.5", True),  # identity unnamed: acceptable but not preferred
        ("identity;q=1, gzip;q=0.5", False),  # identity preferred
        ("identity;q=0.5, gzip;q=0.5", True),  # a tie: the smaller answer
        ("*", True),
        ("*;q=0", False),
        ("*;q=0.5, gzip;q=0.3", False),  # identity via * outranks gzip
        ("br, *;q=0.1", True),
        ("deflate, br", False),
        ("gzip;q=abc", False),  # a q-value that is not a number: not acceptable
        ("gzip;q=2", False),
        ("identity, *;q=0", False),
        ("gzip;level=9;q=0.8", True),
    ],
)
def test_accept_encoding_negotiation(header, expected):
    assert wants_gzip(header) is expected


def test_accept_encoding_qualities_parse():
    assert accept_encoding_qualities("gzip;q=0.5, Identity , *;q=0") == {"gzip": 0.5, "identity": 1.0, "*": 0.0}


def _raw_get(xero, path: str, headers: dict) -> tuple[http.client.HTTPResponse, bytes]:
    """http.client: no decoding at all, the bytes as sent."""
    parts = urllib.parse.urlsplit(xero.url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        return response, response.read()
    finally:
        connection.close()


def test_sdk_reads_gzip_and_the_wire_bytes_are_counted_smaller(sdk, xero, read_tenant):
    plain = sdk.accounting.get_invoices(read_tenant, page=1, page_size=200)
    sdk.client.set_default_header("Accept-Encoding", "gzip")
    xero.state.reset_calls()
    body, status, headers = sdk.accounting.get_invoices(
        read_tenant, page=1, page_size=200, _return_http_data_only=False
    )
    assert status == 200 and headers["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in headers["Vary"]
    assert [i.invoice_id for i in body.invoices] == [i.invoice_id for i in plain.invoices]
    assert [(i.total, i.amount_due, len(i.line_items)) for i in body.invoices] == [
        (i.total, i.amount_due, len(i.line_items)) for i in plain.invoices
    ]
    assert body.pagination.item_count == plain.pagination.item_count
    wire = xero.state.bytes_sent(read_tenant, "GET /Invoices")
    raw = xero.state.bytes_uncompressed(read_tenant, "GET /Invoices")
    assert wire == int(headers["Content-Length"])
    assert 0 < wire < raw / 3  # Xero JSON is repetitive: gzip pays
    assert xero.state.call_count(read_tenant, "GET /Invoices") == 1
    # single GETs and /connections too, through the SDK
    one = sdk.accounting.get_invoice(read_tenant, plain.invoices[0].invoice_id).invoices[0]
    assert one.invoice_id == plain.invoices[0].invoice_id and one.line_items
    assert {c.tenant_id for c in sdk.identity.get_connections()} >= {read_tenant}
    rows = {r["endpoint"]: r for r in xero.state.call_counts() if r["status"] == 200}
    for endpoint in ("GET /Invoices/{id}", "GET /Connections"):
        assert 0 < rows[endpoint]["bytes"] < rows[endpoint]["bytes_uncompressed"]


def test_plain_http_client_sees_gzip_bytes_and_identity_otherwise(xero, read_tenant):
    token = xero.state.client_credentials_token()["access_token"]
    path = "/api.xro/2.0/Invoices?page=1&pageSize=50"
    xero.state.reset_calls()
    identity, identity_body = _raw_get(xero, path, bearer(token, read_tenant))
    assert identity.status == 200 and identity.getheader("Content-Encoding") is None
    zipped, zipped_body = _raw_get(xero, path, {**bearer(token, read_tenant), "Accept-Encoding": "gzip"})
    assert zipped.status == 200 and zipped.getheader("Content-Encoding") == "gzip"
    assert "Accept-Encoding" in zipped.getheader("Vary")
    assert int(zipped.getheader("Content-Length")) == len(zipped_body)
    assert zipped.getheader("X-DayLimit-Remaining") is not None  # rate headers survive compression
    unzipped = json.loads(gzip.decompress(zipped_body))
    plain = json.loads(identity_body)
    assert unzipped["Invoices"] == plain["Invoices"] and unzipped["pagination"] == plain["pagination"]
    rows = [r for r in xero.state.call_counts() if r["endpoint"] == "GET /Invoices"]
    assert rows == [
        {
            "tenant_id": read_tenant,
            "endpoint": "GET /Invoices",
            "status": 200,
            "count": 2,
            "bytes": len(identity_body) + len(zipped_body),
            "bytes_uncompressed": 2 * len(identity_body),
        }
    ]
    assert xero.state.bytes_sent() == len(identity_body) + len(zipped_body)


def test_urllib3_decodes_and_q_zero_refuses(xero, read_tenant):
    token = xero.state.client_credentials_token()["access_token"]
    pool = urllib3.PoolManager(retries=False)
    url = f"{xero.api_url}/Contacts?page=1"
    decoded = pool.request("GET", url, headers={**bearer(token, read_tenant), "Accept-Encoding": "gzip"})
    assert decoded.status == 200 and decoded.headers["Content-Encoding"] == "gzip"
    assert len(json.loads(decoded.data)["Contacts"]) > 0
    refused = pool.request(
        "GET", url, headers={**bearer(token, read_tenant), "Accept-Encoding": "gzip;q=0, identity"}
    )
    assert "Content-Encoding" not in refused.headers
    assert json.loads(refused.data)["Contacts"] == json.loads(decoded.data)["Contacts"]


def test_connections_gzip_and_control_routes_never(xero):
    token = xero.state.client_credentials_token()["access_token"]
    xero.state.reset_calls()
    reply = call("GET", xero.connections_url, headers={**bearer(token), "Accept-Encoding": "gzip"})
    assert reply.status == 200 and reply.headers["Content-Encoding"] == "gzip"
    assert json.loads(gzip.decompress(reply.body))[0]["tenantId"]
    assert xero.state.bytes_sent(None, "GET /Connections") == len(reply.body)
    control = call("GET", f"{xero.url}/_emulator/calls", headers={"Accept-Encoding": "gzip"})
    assert "Content-Encoding" not in control.headers
    counted = control.json()
    assert counted["total"] == 1 and counted["bytes"] == len(reply.body)
    assert counted["bytes_uncompressed"] > counted["bytes"]
    assert counted["rows"][0]["bytes"] == len(reply.body)


def test_empty_and_error_answers(xero, read_tenant):
    """A 401 is JSON and compresses like any other; a 429 has no body to compress."""
    xero.state.reset_calls()
    denied = call("GET", f"{xero.api_url}/Organisation", headers={**bearer("bad"), "Accept-Encoding": "gzip"})
    assert denied.status == 401 and json.loads(gzip.decompress(denied.body))["Status"] == 401
    xero.state.set_tenant_limits(read_tenant, day=0)
    token = xero.state.client_credentials_token()["access_token"]
    limited = call(
        "GET", f"{xero.api_url}/Organisation", headers={**bearer(token, read_tenant), "Accept-Encoding": "gzip"}
    )
    assert limited.status == 429 and limited.body == b"" and "Content-Encoding" not in limited.headers
    assert xero.state.call_count(read_tenant, "GET /Organisation", 429) == 1
    assert xero.state.bytes_sent(read_tenant, "GET /Organisation") == 0
