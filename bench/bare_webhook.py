"""The intake benchmark's baseline: a bare Flask endpoint that checks the signature and stores nothing.

`gunicorn 'bench.bare_webhook:create_app()'`, under the same gunicorn settings as our app.
"""
from __future__ import annotations

import os

from flask import Flask, request

from webhook import signature


def create_app() -> Flask:
    app = Flask(__name__)
    key = os.environ.get("XERO_WEBHOOK_KEY", "")

    @app.post("/webhooks/xero")
    def receive():
        if not signature.is_valid(request.get_data(), request.headers.get("x-xero-signature"), key):
            return "", 401
        return "", 200

    return app
