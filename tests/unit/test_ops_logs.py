"""Structured logs: one JSON object a line, with the ids given, and never a token or a secret."""
import io
import json
import logging

import pytest

from infra import logs

ACCESS = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
REFRESH = "rt-6f1d2c3b4a5e6f7a8b9c"


@pytest.fixture
def logged():
    """A logger whose records go through the project's handler into a buffer; yields (log, lines)."""
    buffer = io.StringIO()
    root = logging.getLogger()
    before = (list(root.handlers), root.level)
    handler = logs.configure("DEBUG", stream=buffer)
    log = logging.getLogger("tests.ops.logs")

    def lines() -> list[dict]:
        return [json.loads(line) for line in buffer.getvalue().splitlines()]

    yield log, lines
    root.removeHandler(handler)
    root.handlers[:], root.level = before


def test_each_record_is_one_json_line_carrying_the_ids_given(logged):
    log, lines = logged
    log.info("synced %d invoices", 3, extra={"workspace_id": 7, "tenant_id": "t-1", "event_ids": [4, 5],
                                             "delivery_id": 9})
    log.warning("second")
    first, second = lines()
    assert first["message"] == "synced 3 invoices" and first["level"] == "INFO"
    ids = (first["workspace_id"], first["tenant_id"], first["event_ids"], first["delivery_id"])
    assert ids == (7, "t-1", [4, 5], 9)
    assert first["logger"] == "tests.ops.logs" and first["ts"].endswith("+00:00")
    assert second["message"] == "second" and "tenant_id" not in second


def test_secret_keys_bearer_strings_and_jwts_are_redacted_everywhere(logged):
    log, lines = logged
    log.info(
        "refreshing with refresh_token=%s; sent Authorization: Bearer %s",
        REFRESH, ACCESS,
        extra={
            "access_token": ACCESS,
            "token": {"refresh_token": REFRESH, "expires_in": 1800},
            "headers": {"Authorization": f"Bearer {ACCESS}", "Accept": "application/json"},
            "body": f'{{"access_token": "{ACCESS}", "scope": "openid"}}',
            "client_secret": "s3cr3t-value",
            "tenant_id": "t-1",
        },
    )
    try:
        raise RuntimeError(f"token endpoint said no to refresh_token={REFRESH}")
    except RuntimeError:
        log.exception("refresh failed", extra={"tenant_id": "t-1"})
    text = "\n".join(json.dumps(line) for line in lines())
    for secret in (ACCESS, REFRESH, "s3cr3t-value", ACCESS.split(".")[1]):
        assert secret not in text
    first, second = lines()
    assert first["access_token"] == first["client_secret"] == first["token"] == logs.REDACTED
    assert first["headers"] == {"Authorization": logs.REDACTED, "Accept": "application/json"}
    assert "Bearer [redacted]" in first["message"] and "refresh_token=[redacted]" in first["message"]
    assert '"scope": "openid"' in first["body"] and first["tenant_id"] == "t-1"  # what is not secret stays
    assert "RuntimeError" in second["exception"] and "refresh_token=[redacted]" in second["exception"]


def test_a_record_with_a_bad_format_string_is_still_logged(logged):
    log, lines = logged
    log.info("%s and %s", "only one")
    (line,) = lines()
    assert "%s and %s" in line["message"]
