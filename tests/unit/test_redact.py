"""URLs' credentials blanked before anything logs them (infra/redact.py), and in every JSON log line."""
from __future__ import annotations

import io
import json
import logging

import pytest

from infra import logs, redact


@pytest.mark.parametrize("text, expected", [
    ('"GET /embed/contacts/c1?token=xme_eyJ3.abc-_d&view=paid HTTP/1.1" 200',
     '"GET /embed/contacts/c1?token=[redacted]&view=paid HTTP/1.1" 200'),
    ("GET /admin/xero/callback?code=4f1c-x&state=St4te_v HTTP/1.1",
     "GET /admin/xero/callback?code=[redacted]&state=[redacted] HTTP/1.1"),
    ("/admin/xero?ticket=Qw-_e9", "/admin/xero?ticket=[redacted]"),
    ("/cb?id_token=a.b.c&access_token=x&client_secret=s&code_verifier=v&session_state=q",
     "/cb?id_token=[redacted]&access_token=[redacted]&client_secret=[redacted]"
     "&code_verifier=[redacted]&session_state=[redacted]"),
    ("/embed/contacts/c1#token=xme_frag", "/embed/contacts/c1#token=[redacted]"),
    ("https://crm.example.com/next?redirect=https%3A%2F%2Fm%2Fcb%3Fcode%3Dc0de%26state%3Dst8&page=2",
     "https://crm.example.com/next?redirect=https%3A%2F%2Fm%2Fcb%3Fcode%3D[redacted]%26state%3D[redacted]&page=2"),
    ("/api/v1/contacts/c1/invoices?view=unpaid&q=INV-1&page=1&per_page=10",
     "/api/v1/contacts/c1/invoices?view=unpaid&q=INV-1&page=1&per_page=10"),
    ("?TOKEN=abc==", "?TOKEN=[redacted]"),
    ("no url here: a & b = c", "no url here: a & b = c"),
    ("?token=&view=x", "?token=&view=x"),
])
def test_url_blanks_the_values_of_parameters_named_like_a_secret(text, expected):
    assert redact.url(text) == expected
    assert redact.url(expected) == expected  # twice is once


def test_query_blanks_a_bare_query_string():
    assert redact.query("ticket=abc&view=paid") == "ticket=[redacted]&view=paid"
    assert redact.query("") == ""


def test_a_long_line_of_separators_is_scrubbed_quickly():
    import time

    text = "?" + "%26" * 50_000 + "token=x"
    start = time.perf_counter()
    assert redact.url(text).endswith("token=[redacted]")
    assert time.perf_counter() - start < 1.0


def test_json_log_lines_carry_no_url_credential_in_message_extras_or_exception():
    stream = io.StringIO()
    handler = logs.configure(stream=stream)
    try:
        log = logging.getLogger("xm.test")
        try:
            raise RuntimeError("GET https://m.example/admin/xero/callback?code=C0DE-1&state=ST4TE-2 failed")
        except RuntimeError:
            log.exception("callback at %s", "/admin/xero?ticket=T1CKET-3",
                          extra={"url": "/embed/contacts/c1?token=xme_T0KEN-4", "ticket": "T1CKET-5"})
    finally:
        logging.getLogger().removeHandler(handler)
    line = stream.getvalue()
    entry = json.loads(line)
    assert entry["message"] == "callback at /admin/xero?ticket=[redacted]"
    assert entry["url"] == "/embed/contacts/c1?token=[redacted]" and entry["ticket"] == "[redacted]"
    assert "code=[redacted]&state=[redacted]" in entry["exception"]
    for secret in ("C0DE-1", "ST4TE-2", "T1CKET-3", "T0KEN-4", "T1CKET-5"):
        assert secret not in line


def test_the_werkzeug_logger_is_scrubbed_even_through_a_handler_of_its_own():
    handler = logs.configure(stream=io.StringIO())
    werkzeug = logging.getLogger("werkzeug")
    own = io.StringIO()
    mine = logging.StreamHandler(own)
    werkzeug.addHandler(mine)
    werkzeug.propagate = False
    try:
        werkzeug.info('%s - - "%s" %s', "127.0.0.1", "GET /admin/xero?ticket=T1CKET HTTP/1.1", 302)
    finally:
        werkzeug.removeHandler(mine)
        werkzeug.propagate = True
        logging.getLogger().removeHandler(handler)
    assert own.getvalue() == '127.0.0.1 - - "GET /admin/xero?ticket=[redacted] HTTP/1.1" 302\n'
