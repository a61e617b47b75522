"""POST /webhooks/xero: verify, keep, answer; the sync happens elsewhere.

Xero wants 200 with an empty body (and no cookie) within 5 s for a good signature, 401 for a
bad one. Events are committed before the 200, in a transaction shared with the process's
other waiting deliveries (webhook.batcher); the queue is told afterwards, off the request's
path, and if Redis is down the relay tells it later. A database outage answers 503, so Xero
delivers again.
"""
from __future__ import annotations

import logging
from datetime import datetime, timezone

from flask import Blueprint, current_app, request
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import RequestEntityTooLarge

from store import inbox, metrics
from store.runtime import Runtime
from webhook import batcher, payload, signature

bp = Blueprint("webhook", __name__)
log = logging.getLogger(__name__)


@bp.post("/webhooks/xero")
def receive():
    rt = _runtime()
    body = _raw_body(rt.settings.webhook_max_bytes)  # Xero signs the bytes, not the JSON
    if not signature.is_valid(body, request.headers.get("x-xero-signature"), rt.settings.xero_webhook_key):
        log.warning("webhook refused: bad signature", extra={"bytes": len(body)})
        metrics.count(rt, metrics.WEBHOOKS, outcome="bad_signature")
        return "", 401
    now = datetime.now(timezone.utc)
    try:
        events = payload.parse(body)  # pure
    except payload.BadPayload as bad:
        kept = intake().keep(inbox.Delivery(now, body=body, error=str(bad)))
        log.warning("webhook malformed", extra={"delivery_id": kept.delivery_id, "error": str(bad)})
        metrics.count(rt, metrics.WEBHOOKS, outcome="malformed")
        return "", 400
    if not events:  # intent to receive
        metrics.count(rt, metrics.WEBHOOKS, outcome="accepted")
        return "", 200
    intake().keep(inbox.Delivery(now, events))  # committed before we answer; counted and logged by the batch
    return "", 200


def intake() -> batcher.Intake:
    """This app's group-commit intake in this process."""
    return batcher.for_app(current_app.extensions, _runtime())


def _raw_body(limit: int) -> bytes:
    """The body as received, refusing (413) any over `limit` bytes without reading past it.

    Werkzeug refuses a Content-Length over the maximum up front, but silently cuts a chunked
    body off at the maximum; reading one byte more than `limit` tells the two apart.
    """
    request.max_content_length = limit + 1
    body = request.get_data()
    if len(body) > limit:
        raise RequestEntityTooLarge()
    return body


@bp.errorhandler(RequestEntityTooLarge)
def too_large(_error):
    log.warning("webhook refused: body too large", extra={"limit": _runtime().settings.webhook_max_bytes})
    metrics.count(_runtime(), metrics.WEBHOOKS, outcome="too_large")
    return "", 413


@bp.errorhandler(batcher.NotStored)
@bp.errorhandler(DBAPIError)
@bp.errorhandler(PoolTimeout)
def database_unavailable(error):
    log.error("webhook not stored: database unavailable", extra={"error": str(getattr(error, "orig", error))})
    metrics.count(_runtime(), metrics.WEBHOOKS, outcome="db_unavailable")
    return "", 503


def _runtime() -> Runtime:
    return current_app.extensions["xm"]
