"""The bytes a Xero call pulls on the wire: a gzipped answer counts its compressed size.

A tiny HTTP server on loopback stands in for Xero, so the real SDK and urllib3 do the request:
it answers gzipped only when asked (`Accept-Encoding: gzip`) and records what it sent.
"""
from __future__ import annotations

import gzip
import io
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import urllib3

from infra.settings import Settings
from xero import client as xero
from xero.client import XeroClient, XeroNotFound

TENANT = "8330550f-f695-42b8-8ecf-8a1779827b7a"
INVOICES = {"Id": "x", "Status": "OK", "DateTimeUTC": "/Date(1552326816230)/",
            "Invoices": [{"InvoiceID": f"{i:08d}-0000-0000-0000-000000000000", "Total": 10.5,
                          "Reference": "the same words again and again " * 8} for i in range(40)]}


class _Handler(BaseHTTPRequestHandler):
    sent: list[dict]

    def log_message(self, *args):  # quiet
        pass

    def _answer(self, status: int, payload: dict) -> None:
        body = json.dumps(payload).encode()
        gzipped = "gzip" in (self.headers.get("Accept-Encoding") or "") and self.server.gzip_ok
        if gzipped:
            body = gzip.compress(body)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        if gzipped:
            self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(body)))
        self.server.sent.append({"path": self.path, "bytes": len(body), "gzip": gzipped,
                                 "accept": self.headers.get("Accept-Encoding")})  # before the client reads
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path.startswith("/api.xro/2.0/Invoices"):
            self._answer(200, INVOICES)
        else:
            self._answer(404, {"Title": "Not found", "Detail": "nothing here " * 20})

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._answer(200, {"access_token": "at", "expires_in": 1800, "token_type": "Bearer"})


@pytest.fixture(params=[True, False], ids=["gzip", "plain"])
def fake_xero(request):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.sent = []
    server.gzip_ok = request.param
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _client(server, seen):
    base = f"http://127.0.0.1:{server.server_address[1]}"
    settings = Settings(xero_api_url=f"{base}/api.xro/2.0", xero_identity_url=base,
                        xero_connections_url=f"{base}/connections", xero_client_id="id",
                        xero_client_secret="s")
    return XeroClient(settings, on_bytes=lambda tenant, n: seen.append((tenant, n)))


def test_a_call_asks_for_gzip_and_counts_the_bytes_as_sent(fake_xero):
    seen: list[tuple[str | None, int]] = []
    page = _client(fake_xero, seen).invoices(TENANT, "token", page=1)

    sent = fake_xero.sent[-1]
    assert sent["accept"] == "gzip"
    assert len(page.items) == 40 and page.items[0]["Reference"].startswith("the same")
    assert page.wire_bytes == sent["bytes"]
    assert seen == [(TENANT, sent["bytes"])]
    plain = len(json.dumps(INVOICES).encode())
    if sent["gzip"]:
        assert sent["bytes"] < plain / 3  # the compressed size is what counts, not the decoded one
    else:
        assert sent["bytes"] == plain


def test_refusals_and_token_calls_are_metered_too(fake_xero):
    seen: list[tuple[str | None, int]] = []
    client = _client(fake_xero, seen)
    with pytest.raises(XeroNotFound):
        client.contact(TENANT, "token", contact_id="nope")  # the handler answers 404 off /Invoices
    refused = fake_xero.sent[-1]
    assert seen == [(TENANT, refused["bytes"])]  # Content-Length: the compressed size when gzipped
    client.client_credentials_token()
    assert seen[-1] == (None, fake_xero.sent[-1]["bytes"])  # the token answer, as no tenant


def test_a_meter_on_this_thread_takes_the_answers_instead_of_on_bytes(fake_xero):
    seen: list[tuple[str | None, int]] = []
    metered: list[tuple[str | None, int]] = []
    client = _client(fake_xero, seen)
    with client.metering(lambda tenant, n: metered.append((tenant, n))):
        client.client_credentials_token()
        client.invoices(TENANT, "token")
    assert seen == []
    assert metered == [(None, fake_xero.sent[0]["bytes"]), (TENANT, fake_xero.sent[1]["bytes"])]


def _response(body: bytes, headers: dict) -> urllib3.HTTPResponse:
    return urllib3.HTTPResponse(body=io.BytesIO(body), headers=headers, status=200, preload_content=False)


def test_read_counted_gunzips_once_and_counts_the_compressed_size():
    plain = json.dumps(INVOICES).encode()
    packed = gzip.compress(plain)
    body, wire = xero._read_counted(_response(packed, {"Content-Encoding": "gzip"}))
    assert body == plain and wire == len(packed)
    body, wire = xero._read_counted(_response(plain, {}))
    assert body == plain and wire == len(plain)


def test_a_corrupt_gzip_body_is_xero_unavailable():
    with pytest.raises(xero.XeroUnavailable):
        xero._read_counted(_response(b"not gzip at all", {"Content-Encoding": "gzip"}))
