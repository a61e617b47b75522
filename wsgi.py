"""The one Flask app: webhooks, the CRM API, the widget and the admin page.

`flask --app wsgi ...` (its commands are `ops.cli`'s) and `gunicorn wsgi:app` both start here.
"""
from __future__ import annotations

from flask import Flask

from infra import logs
from infra.settings import Settings, from_env_or_exit
from ops import cli
from services.runtime import Runtime
from views.admin import bp as admin_bp
from views.api import bp as api_bp
from views.health import bp as health_bp
from views.keys import bp as keys_bp
from views.widget import embed_bp
from webhook import batcher
from webhook.routes import bp as webhook_bp


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or from_env_or_exit()  # a refused setting: one line on stderr, exit 1
    logs.configure()  # JSON lines on stderr, secrets redacted
    app = Flask(__name__)
    if settings.trusted_hosts:  # any other Host header is answered 400, before any view
        app.config["TRUSTED_HOSTS"] = list(settings.trusted_hosts)
    app.extensions["xm"] = Runtime(settings)
    app.register_blueprint(webhook_bp)
    app.register_blueprint(api_bp)
    app.register_blueprint(admin_bp)
    app.register_blueprint(embed_bp)
    app.register_blueprint(health_bp)
    app.register_blueprint(keys_bp)
    cli.register(app)  # flask --app wsgi db|workspace|tokens|xero|ops ...
    return app


def runtime(app: Flask) -> Runtime:
    return app.extensions["xm"]


def close_app(app: Flask, timeout: float = 5.0) -> bool:
    """Dispose of the app's engines and Redis client, once its in-process intake (if one ran
    here) has finished its wakes and given its connection back; False if that took longer than
    `timeout` seconds (the engines are disposed anyway). An engine disposed while the intake
    still holds a connection would leave that connection open in a pool nothing closes."""
    settled = batcher.settle_app(app.extensions, timeout)
    runtime(app).close()
    return settled


_app: Flask | None = None


def __getattr__(name: str) -> Flask:
    """`wsgi:app`, built on first access rather than at import (tests build their own)."""
    global _app
    if name != "app":
        raise AttributeError(name)
    if _app is None:
        _app = create_app()
    return _app
