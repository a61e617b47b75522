"""The emulator's WSGI app: accounting, identity and control blueprints on one server."""

from __future__ import annotations

from flask import Flask, g, request

from . import accounting, control, identity
from .config import EmulatorConfig
from .encoding import compress, wants_gzip
from .state import EmulatorState


class CaseInsensitivePaths:
    """Xero routes paths in any case (/Connections, /connections, /INVOICES); the control API is exact."""

    def __init__(self, wsgi_app) -> None:
        self.wsgi_app = wsgi_app

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if not path.startswith("/_emulator"):
            environ["PATH_INFO"] = path.lower()
        return self.wsgi_app(environ, start_response)


def _negotiable(path: str) -> bool:
    """The Accounting API and /connections answer gzip on request (paths are lower-cased already)."""
    path = path.lower()
    return path.startswith(("/api.xro/2.0/", "/connections/")) or path == "/connections"


def create_app(state: EmulatorState | None = None, config: EmulatorConfig | None = None) -> Flask:
    """A Flask app serving `state` (a new seeded state from `config` when not given)."""
    state = state or EmulatorState(config)
    app = Flask("emulator")
    app.extensions["emulator"] = state
    app.register_blueprint(accounting.bp)
    app.register_blueprint(identity.bp)
    app.register_blueprint(control.bp)
    app.wsgi_app = CaseInsensitivePaths(app.wsgi_app)

    @app.before_request
    def remember_base_url():
        if state.base_url is None:
            state.base_url = request.host_url.rstrip("/")

    @app.after_request
    def encode_and_count(response):
        if request.path.startswith("/_emulator"):
            return response
        raw = 0 if request.method == "HEAD" else len(response.get_data())
        if _negotiable(request.path) and raw:
            response.vary.add("Accept-Encoding")
            asked = wants_gzip(request.headers.get("Accept-Encoding"))
            if asked and "Content-Encoding" not in response.headers:
                response.set_data(compress(response.get_data()))
                response.headers["Content-Encoding"] = "gzip"
        label = g.get("call_label") or f"{request.method} (unmatched)"
        wire = 0 if request.method == "HEAD" else len(response.get_data())
        state.calls.record(g.get("tenant_id"), label, response.status_code, wire, raw)
        return response

    return app
