"""POST /webhooks/xero: verify, keep, answer; the sync happens elsewhere.

Xero wants 200 with an empty body (and no cookie) within 5 s for a good signature, 401 for a
bad one. Events are committed before the 200, in a transaction shared with the other
deliveries waiting: by the intake writer process when INTAKE_SOCKET names one (webhook.writer,
the Procfile's web), else by this process's own writer thread (webhook.batcher). The queue is
told afterwards, off the request's path, and if Redis is down the relay tells it later. A
database outage, or a writer process that cannot be reached, answers 503, so Xero delivers
again.
"""
from __future__ import annotations

import logging
import time
from datetime import datetime, timezone

from flask import Blueprint, current_app, request
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import RequestEntityTooLarge

from infra import metrics
from services.runtime import Runtime
from webhook import batcher, signature, writer

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
    if rt.settings.intake_socket:  # the intake writer process stores it (the Procfile's web)
        return "", writer.client(rt).keep(body, time.time())
    delivery = batcher.delivery_for(body, datetime.now(timezone.utc))
    stored = intake().keep(delivery) if delivery is not None else None  # committed before we answer
    return "", batcher.answer(rt, delivery, stored)


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


@bp.errorhandler(writer.WriterUnavailable)
def writer_unavailable(error):
    log.error("webhook not stored: the intake writer is unavailable", extra={"error": str(error)})
    metrics.count(_runtime(), metrics.WEBHOOKS, outcome="writer_unavailable")
    return "", 503


@bp.errorhandler(batcher.NotStored)
@bp.errorhandler(DBAPIError)
@bp.errorhandler(PoolTimeout)
def database_unavailable(error):
    log.error("webhook not stored: database unavailable", extra={"error": str(getattr(error, "orig", error))})
    metrics.count(_runtime(), metrics.WEBHOOKS, outcome="db_unavailable")
    return "", 503


def _runtime() -> Runtime:
    return current_app.extensions["xm"]
