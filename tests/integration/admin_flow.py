"""Driving /admin/xero as a browser would, against the emulator over loopback.

The app runs under Flask's test client (its cookie jar is the browser's); the emulator's
consent page is fetched and submitted with plain HTTP, exactly as a person would, and the
redirect back is followed into our callback. Workers run in-process (RQ SimpleWorker).
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest
import urllib3
from redis import Redis
from rq import SimpleWorker
from sqlalchemy import func, select

from emulator.testing import RunningEmulator, run_emulator
from infra import queue
from infra.settings import Settings
from store import workspaces
from store.db import transaction
from store.secrets import TokenBox, new_key
from webhook import batcher
from webhook.signature import sign
from wsgi import close_app, create_app, runtime

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=timezone.utc)
WORKER_KNOBS = {"RETRY_BASE_SECONDS": "0.2", "RETRY_MAX_SECONDS": "1", "BUSY_RETRY_SECONDS": "0.2",
                "WORKER_LEASE_SECONDS": "10"}


# --- fixtures -------------------------------------------------------------------------------


@pytest.fixture
def emulator() -> Iterator[RunningEmulator]:
    with run_emulator(seed=5, tenants=3, contacts=6, invoices=24, webhook_batch_seconds=0.05) as running:
        yield running


@pytest.fixture
def token_key() -> str:
    return new_key()


@pytest.fixture
def settings(emulator, database_url, redis_url, token_key, monkeypatch) -> Settings:
    """The app's settings; the environment says the same, for jobs run by an in-process worker."""
    env = {**emulator.env(), "DATABASE_URL": database_url, "REDIS_URL": redis_url, "TOKEN_KEYS": token_key,
           "SECRET_KEY": "test-secret-key", **WORKER_KNOBS}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Settings.from_env(env)


@pytest.fixture
def app(settings):
    app = create_app(settings)
    yield app
    close_app(app)


@pytest.fixture
def bare_app(database_url, redis_url, token_key):
    """The app with no Xero behind it: enough for everything that must refuse before Xero."""
    app = create_app(Settings(database_url=database_url, redis_url=redis_url, token_keys=(token_key,),
                              secret_key="test-secret-key", xero_client_id="cid", xero_client_secret="cs"))
    yield app
    close_app(app)


@pytest.fixture
def redis(redis_url) -> Iterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    client.close()


# --- workspaces, sessions, the dance -----------------------------------------------------------


@dataclass(frozen=True)
class Workspace:
    id: int
    admin_key: str
    read_key: str


def new_workspace(app, name: str = "Acme CRM") -> Workspace:
    with transaction(runtime(app).sessions) as s:
        ws = workspaces.create_workspace(s, name, NOW)
        return Workspace(ws.id, workspaces.issue_key(s, ws.id, "admin", NOW),
                         workspaces.issue_key(s, ws.id, "read", NOW))


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def mint_link(app, workspace: Workspace) -> str:
    """The one-time admin link the CRM would hand over (`POST /admin/sessions` with the admin key)."""
    answer = app.test_client().post("/admin/sessions", headers=bearer(workspace.admin_key))
    assert answer.status_code == 201
    return answer.get_json()["url"]


def open_session(app, workspace: Workspace, browser=None):
    """A browser holding the admin session the CRM handed over (ticket spent)."""
    browser = browser or app.test_client()
    assert browser.get(mint_link(app, workspace)).status_code == 303
    return browser


def session_cookie(browser) -> str:
    """The admin session cookie's value, as someone who copied it would hold it."""
    cookie = browser.get_cookie("xm_admin", path="/admin")
    assert cookie is not None
    return cookie.value


def texts(answer) -> dict[str, str]:
    """The elements with ids of any answer's page, as text."""
    return {k: " ".join(v.split()) for k, v in parse(answer.get_data(as_text=True)).text.items()}


class _Forms(HTMLParser):
    """Every form's action and fields, and the text of elements with an id."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict] = []
        self.text: dict[str, str] = {}
        self._open: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self.forms.append({"action": a.get("action", ""), "id": a.get("id"), "fields": []})
        elif tag == "input" and self.forms:
            kind = a.get("type", "text")
            if kind in ("hidden", "text") or (kind in ("checkbox", "radio") and "checked" in a):
                self.forms[-1]["fields"].append((a.get("name"), a.get("value", "")))
        elif tag == "button" and self.forms and a.get("name"):
            self.forms[-1].setdefault("buttons", {})[a.get("value")] = a.get("name")
        if a.get("id"):
            self._open.append(a["id"])
            self.text[a["id"]] = ""
        elif tag not in ("input", "br", "meta"):
            self._open.append("")

    def handle_endtag(self, tag):
        if tag not in ("input", "br", "meta") and self._open:
            self._open.pop()

    def handle_data(self, data):
        for name in self._open:
            if name:
                self.text[name] += data


def parse(html: str) -> _Forms:
    parser = _Forms()
    parser.feed(html)
    return parser


def shown(browser) -> dict[str, str]:
    """The admin page's elements with ids, as text."""
    page = browser.get("/admin/xero")
    assert page.status_code == 200
    return {k: " ".join(v.split()) for k, v in parse(page.get_data(as_text=True)).text.items()}


def csrf(browser) -> str:
    page = browser.get("/admin/xero").get_data(as_text=True)
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)


def confirm_remove(browser):
    """Press Remove (or Discard), then confirm on the page that says what goes: the answer."""
    page = browser.get("/admin/xero/remove")
    assert page.status_code == 200, page.get_data(as_text=True)[:300]
    form = next(f for f in parse(page.get_data(as_text=True)).forms if f["id"] == "remove-form")
    return browser.post(form["action"], data=dict(form["fields"]))


def remove_with_key(client, key: str, **kw):
    """Remove as a CRM's script would: ask what it would remove, then confirm that tenant id."""
    asked = client.get("/admin/xero/remove", headers=bearer(key), **kw)
    assert asked.status_code == 200, asked.get_json()
    confirm = asked.get_json()["remove"]["confirm"]
    return client.post("/admin/xero/remove", headers=bearer(key), json={"confirm": confirm})


def start_connect(browser) -> str:
    """Press Connect: the URL of Xero's consent page we are sent to."""
    answer = browser.post("/admin/xero/connect", data={"csrf": csrf(browser)})
    assert answer.status_code == 303
    return answer.headers["Location"]


def consent(authorize_url: str, tenant_ids: list[str], decision: str = "approve") -> str:
    """A person on Xero's consent page: tick organisations, press Allow. The redirect back."""
    http = urllib3.PoolManager(retries=False)
    page = http.request("GET", authorize_url)
    assert page.status == 200, page.data[:300]
    form = parse(page.data.decode()).forms[0]
    fields = [(n, v) for n, v in form["fields"] if n != "tenant"]
    fields += [("tenant", t) for t in tenant_ids] + [("decision", decision)]
    base = "{0.scheme}://{0.netloc}".format(urlsplit(authorize_url))
    answer = http.request("POST", base + form["action"], fields=fields, encode_multipart=False, redirect=False)
    http.clear()
    assert answer.status == 302, answer.data[:300]
    return answer.headers["Location"]


def dance(browser, tenant_ids: list[str]):
    """Connect, consent at the emulator, come back: the callback's answer."""
    back = consent(start_connect(browser), tenant_ids)
    return browser.get(back)


def connect_and_save(app, workspace: Workspace, tenant_id: str):
    browser = open_session(app, workspace)
    assert dance(browser, [tenant_id]).status_code == 303
    assert browser.post("/admin/xero/save", data={"csrf": csrf(browser)}).status_code == 303
    return browser


# --- what Xero sees, what the worker does ----------------------------------------------------


def run_worker(redis: Redis) -> None:
    """Every queued job, to the end (burst), in this process."""
    SimpleWorker(queue.queues(redis), connection=redis).work(burst=True)


def deliver_webhooks(client, emulator: RunningEmulator, settings: Settings, since: int = 0) -> int:
    """POST the emulator's events after `since` to our intake, signed; the last sequence."""
    events = [e for e in emulator.state.webhook_events() if e["sequence"] > since]
    if not events:
        return since
    body = json.dumps({
        "events": [{k: v for k, v in e.items() if k != "sequence"} for e in events],
        "firstEventSequence": events[0]["sequence"], "lastEventSequence": events[-1]["sequence"], "entropy": "t",
    }).encode()
    answer = client.post("/webhooks/xero", data=body, content_type="application/json",
                         headers={"x-xero-signature": sign(body, settings.xero_webhook_key)})
    assert answer.status_code == 200
    assert batcher.settle_all(2.0)  # the wake happens after the answer, promptly
    return events[-1]["sequence"]


def last_sequence(emulator: RunningEmulator) -> int:
    events = emulator.state.webhook_events()
    return events[-1]["sequence"] if events else 0


def tenant_calls(emulator: RunningEmulator, tenant_id: str) -> int:
    return emulator.state.call_count(tenant_id)


def calls(emulator: RunningEmulator, endpoint: str, status: int | None = None) -> int:
    return emulator.state.call_count(None, endpoint, status)


def stored_token(app, tenant_id: str) -> dict:
    """The live connection's token, opened with the app's keys (tests only)."""
    from store import connections

    with runtime(app).sessions() as s:
        return connections.load_token(s, TokenBox(runtime(app).settings.token_keys), tenant_id).token


def count(app, model, **where) -> int:
    with runtime(app).sessions() as s:
        stmt = select(func.count()).select_from(model)
        for name, value in where.items():
            stmt = stmt.where(getattr(model, name) == value)
        return s.scalar(stmt) or 0
