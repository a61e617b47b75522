"""No credential in any log: the Procfile's web (gunicorn) and `flask run` (werkzeug), driven
through an embed view, an admin link and an OAuth callback, write none of their values."""
from __future__ import annotations

import http.client
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from infra.redis_server import free_port
from store.db import transaction
from tests.e2e.test_procfile_web import ROOT, running_web
from tests.integration.mirror_rows import contact, invoice, workspace

TENANT = "tenant-logs"


def call(port: int, method: str, path: str, headers: dict | None = None, body: dict | None = None) -> tuple[int, bytes]:
    """One request, redirects not followed (an admin link redirects to PUBLIC_URL's host)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        data = json.dumps(body).encode() if body is not None else None
        sent = {**(headers or {}), **({"Content-Type": "application/json"} if data else {})}
        connection.request(method, path, body=data, headers=sent)
        answer = connection.getresponse()
        return answer.status, answer.read()
    finally:
        connection.close()


def bearer(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def drive(port: int, sessions) -> tuple[list[str], list[str]]:
    """An embed view (both URL forms), an admin link and an OAuth callback, through the server
    at `port`: the credential values they carried, and the request lines the log should show."""
    with transaction(sessions) as s:
        ws = workspace(s, "Acme", TENANT)
        s.add_all([contact(TENANT, "x-ann", "ann@example.com"), invoice(TENANT, "inv-ann", "x-ann")])
    status, _ = call(port, "PUT", "/api/v1/contacts/c1", bearer(ws.admin_key), {"email": "ann@example.com"})
    assert status == 200

    status, raw = call(port, "POST", "/api/v1/embed-tokens", bearer(ws.read_key), {"kind": "contacts", "id": "c1"})
    assert status == 200, raw
    issued = json.loads(raw)
    token = issued["token"]
    absolute, _, fragment = issued["url"].partition("#")
    path = urlsplit(absolute).path
    assert absolute in (f"https://mirror.example.com{path}", f"http://127.0.0.1:{port}{path}"), \
        "absolute: under PUBLIC_URL where it is set, else the request's host"
    assert path == "/embed/contacts/c1" and fragment == f"token={token}"  # the token is never sent in a URL
    assert call(port, "GET", path)[0] == 200
    assert call(port, "POST", path + "/access", bearer(token))[0] == 204
    assert call(port, "GET", "/api/v1/contacts/c1/invoices?view=unpaid", bearer(token))[0] == 200
    # a link in the older form, from a CRM page whose own URL (the Referer) holds it too
    legacy = call(port, "GET", f"{path}?token={token}&view=paid",
                  {"Referer": f"https://crm.example.com/contacts/c1?embed_token={token}"})
    assert legacy[0] == 200 and token.encode() in legacy[1]

    status, raw = call(port, "POST", "/admin/sessions", bearer(ws.admin_key))
    assert status == 201, raw
    link = urlsplit(json.loads(raw)["url"])
    ticket = link.query.removeprefix("ticket=")
    assert link.path == "/admin/xero" and ticket
    assert call(port, "GET", f"{link.path}?{link.query}")[0] in (302, 303)  # spent: a session, the URL cleaned

    code, state, id_token = secrets.token_urlsafe(24), secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    status, _ = call(port, "GET", f"/admin/xero/callback?code={code}&state={state}&id_token={id_token}&scope=openid")
    assert status < 500
    values = [token, token.rsplit(".", 1)[-1], ticket, code, state, id_token, ws.admin_key, ws.read_key]
    lines = ["/embed/contacts/c1?token=[redacted]&view=paid", "/admin/xero?ticket=[redacted]",
             "/admin/xero/callback?code=[redacted]&state=[redacted]&id_token=[redacted]&scope=openid"]
    return values, lines


def assert_clean(output: str, values: list[str], lines: list[str]) -> None:
    for line in lines:  # the requests were logged (so a silent log cannot pass) ...
        assert line in output, f"{line!r} not logged:\n{output[-3000:]}"
    for value in values:  # ... and no credential with them
        assert value not in output, f"a credential in the log:\n{output[-3000:]}"


def test_the_procfile_web_logs_no_credential_of_an_embed_an_admin_link_or_a_callback(
        database_url, redis_url, sessions, tmp_path):
    log = tmp_path / "web.log"  # its stdout and stderr both
    with running_web(database_url, redis_url, log) as (port, _health):
        values, lines = drive(port, sessions)
    output = log.read_text()
    assert_clean(output, values, lines)
    assert '"GET /embed/contacts/c1 HTTP/1.1" 200' in output  # the fragment form: nothing to redact
    assert '"https://crm.example.com/contacts/c1?embed_token=[redacted]"' in output  # the Referer, scrubbed


@contextmanager
def flask_run(database_url: str, redis_url: str, out: Path, err: Path) -> Iterator[int]:
    """`flask --app wsgi run` (werkzeug's server and request log), as a developer starts it."""
    port = free_port()
    env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_url,
           "SECRET_KEY": "flask-run-secret-key", "FLASK_DEBUG": "0"}
    env.pop("APP_ENV", None)
    with open(out, "wb") as stdout, open(err, "wb") as stderr:
        server = subprocess.Popen(
            [sys.executable, "-m", "flask", "--app", "wsgi", "run", "--no-reload", "--port", str(port)],
            cwd=ROOT, env=env, stdout=stdout, stderr=stderr, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if call(port, "GET", "/healthz")[0] == 200:
                    break
            except OSError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, err.read_text()[-3000:]
            time.sleep(0.2)
        yield port
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_flask_run_logs_no_credential_of_an_embed_an_admin_link_or_a_callback(
        database_url, redis_url, sessions, tmp_path):
    out, err = tmp_path / "stdout", tmp_path / "stderr"
    with flask_run(database_url, redis_url, out, err) as port:
        values, lines = drive(port, sessions)
    output = out.read_text() + err.read_text()
    assert_clean(output, values, lines)
    request_lines = [json.loads(line) for line in err.read_text().splitlines() if '"logger": "werkzeug"' in line]
    assert any("/admin/xero?ticket=[redacted]" in entry["message"] for entry in request_lines)  # JSON, via ours


def _gunicorn_config():
    """gunicorn.conf.py as gunicorn loads it: a module from a file (its name has a dot)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("xm_gunicorn_conf", ROOT / "gunicorn.conf.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gunicorns_error_log_and_a_custom_access_format_are_scrubbed_too(capsys, monkeypatch):
    from datetime import timedelta
    from types import SimpleNamespace

    from gunicorn.config import Config

    monkeypatch.delenv("APP_ENV", raising=False)
    conf = _gunicorn_config()
    config = Config()
    config.set("errorlog", "-")  # stderr
    config.set("accesslog", "-")  # stdout
    config.set("access_log_format", '%(r)s q=%(q)s ref=%(f)s auth=%({authorization}i)s cookie=%({cookie}i)s '
                                     'raw=%({raw_uri}e)s qs=%({query_string}e)s')
    logger = conf.RedactingLogger(config)
    logger.setup(config)  # a reload runs setup again: one filter still
    assert sum(1 for f in logger.error_log.filters if type(f).__name__ == "Redact") == 1
    # what gunicorn's worker logs when a request raises out of the app
    try:
        raise ValueError("boom")
    except ValueError:
        logger.exception("Error handling request %s %s", "GET", "/admin/xero?ticket=T1CKET")
    logger.warning("Invalid request from ip=1.2.3.4: Invalid HTTP request line: 'GET /x?code=C0DE&state=ST4TE'")
    environ = {"REQUEST_METHOD": "GET", "RAW_URI": "/embed/contacts/c1?token=xme_T0KEN", "SERVER_PROTOCOL": "HTTP/1.1",
               "PATH_INFO": "/embed/contacts/c1", "QUERY_STRING": "token=xme_T0KEN", "HTTP_REFERER":
               "https://crm.example.com/?token=xme_T0KEN"}
    request = SimpleNamespace(headers=[("AUTHORIZATION", "Bearer xm_K3Y"), ("COOKIE", "xm_admin=S3SSION")])
    response = SimpleNamespace(status="200 OK", headers=[], sent=10)
    logger.access(response, request, environ, timedelta(milliseconds=3))
    for log in (logger.error_log, logger.access_log):  # gunicorn's loggers are the process's: leave them bare
        for handler in [h for h in log.handlers if getattr(h, "_gunicorn", False)]:
            log.removeHandler(handler)
            handler.close()
        for f in list(log.filters):
            log.removeFilter(f)
    captured = capsys.readouterr()
    output = captured.out + captured.err
    for secret in ("T1CKET", "C0DE", "ST4TE", "T0KEN", "K3Y", "S3SSION"):
        assert secret not in output, output
    assert "/admin/xero?ticket=[redacted]" in output and "q=token=[redacted]" in output
    assert "auth=[redacted] cookie=[redacted]" in output
