"""The emulator's WSGI app: accounting, identity and control blueprints on one server."""

from __future__ import annotations

from flask import Flask, g, request

from . import accounting, control, identity
from .config import EmulatorConfig
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
    def count_call(response):
        if not request.path.startswith("/_emulator"):
            label = g.get("call_label") or f"{request.method} (unmatched)"
            state.calls.record(g.get("tenant_id"), label, response.status_code)
        return response

    return app
