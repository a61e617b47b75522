"""Browser fixtures: Debian's Chromium, driven by Playwright, against the real app on a real socket.

The browser is launched once per session from the system's binary (never a downloaded
one; .ci/run installs Debian's `chromium`). Each test gets a fresh database, its own app
served by werkzeug in a thread, and a fresh browser context 380 px wide, like a CRM
sidebar. Without Chromium or Playwright the tests skip, saying which is missing.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from flask import Flask
from werkzeug.serving import make_server

from infra.settings import Settings
from wsgi import close_app, create_app

CHROMIUM = next(
    (p for p in ("/usr/lib/chromium/chromium", "/usr/bin/chromium") if Path(p).exists()), None
)  # the real binary first: /usr/bin/chromium is a shell wrapper that prints noise
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SECRET = "browser-test-secret"
WIDTH = 380


@dataclass
class LiveServer:
    app: Flask
    url: str


@pytest.fixture(scope="session")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install playwright; no `playwright install` needed)")
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed (/usr/bin/chromium): apt-get install -y chromium")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS)
        yield browser
        browser.close()


class _Gate:
    """WSGI middleware: lets requests into the app until closed, then answers 503 without it.

    A test's page is torn down after its server (it was set up first) and keeps polling, and
    werkzeug's request threads outlive `shutdown()` on kept-alive connections: a poll still in
    the app, or one let in after `close_app` disposed the engine, took a pooled connection that
    nobody closed, and its garbage collection failed some later test with a ResourceWarning."""

    def __init__(self, app: Flask):
        self.app = app
        self._inside = 0
        self._closed = False
        self._changed = threading.Condition()

    def __call__(self, environ, start_response):
        with self._changed:
            if self._closed:
                start_response("503 Service Unavailable", [("Content-Length", "0"), ("Connection", "close")])
                return [b""]
            self._inside += 1
        try:
            return self.app(environ, start_response)  # Flask has released the request's connection on return
        finally:
            with self._changed:
                self._inside -= 1
                self._changed.notify_all()

    def close(self, timeout: float) -> None:
        """Let no request in from now on, and wait (up to `timeout` s) for those inside."""
        with self._changed:
            self._closed = True
            assert self._changed.wait_for(lambda: self._inside == 0, timeout), "requests still in the app"


@pytest.fixture
def live_server(database_url, monkeypatch) -> Iterator[LiveServer]:
    """The real app (wsgi.create_app) on 127.0.0.1 at a free port, for this test alone."""
    for name in ("EMBED_FRAME_ANCESTORS", "EMBED_POLL_SECONDS", "EMBED_PER_PAGE"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings(database_url=database_url, xero_api_url="http://127.0.0.1:9", secret_key=SECRET)
    app = create_app(settings)
    gate = _Gate(app)
    server = make_server("127.0.0.1", 0, gate, threaded=True)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="live-server", daemon=True
    )  # shutdown() waits up to one poll interval
    thread.start()
    try:
        yield LiveServer(app, f"http://127.0.0.1:{server.server_port}")
    finally:
        gate.close(5)
        server.shutdown()
        thread.join(5)
        server.server_close()
        close_app(app)


@pytest.fixture
def context(browser):
    context = browser.new_context(
        viewport={"width": WIDTH, "height": 900}, locale="en-US", timezone_id="UTC", device_scale_factor=2
    )
    context.set_default_timeout(5_000)
    yield context
    context.close()


@pytest.fixture
def page(context):
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    yield page
    # an answer the test provoked (401, 503) is logged as "Failed to load resource"; anything
    # else (a script error, a blocked by Content-Security-Policy) fails the test
    assert not [e for e in errors if not e.startswith("Failed to load resource")], errors
