"""HTTP answers shaped like Xero's: JSON bodies, auth errors, 429s, gateway 404s, injected faults."""

from __future__ import annotations

import time
import uuid

from flask import Response

from .faults import CallFault
from .ratelimit import Verdict
from .xero_json import encode

JSON = "application/json; charset=utf-8"


def xero(body: dict | list, status: int = 200) -> Response:
    return Response(encode(body), status=status, content_type=JSON)


def problem(status: int, title: str, detail: str) -> Response:
    """The problem+json body Xero's API gateway answers 401/403 with."""
    body = {
        "Type": None,
        "Title": title,
        "Status": status,
        "Detail": detail,
        "Instance": str(uuid.uuid4()),
        "Extensions": {},
    }
    return xero(body, status)


def unauthorized(detail: str, expired: bool) -> Response:
    response = problem(401, "Unauthorized", detail)
    description = "The token expired" if expired else "The access token is missing or invalid"
    response.headers["WWW-Authenticate"] = f'Bearer error="invalid_token", error_description="{description}"'
    return response


def forbidden() -> Response:
    return problem(403, "Forbidden", "AuthenticationUnsuccessful")


def not_found() -> Response:
    return Response("The resource you're looking for cannot be found", status=404, content_type="text/plain")


def gateway_not_found() -> Response:
    """What Xero's front end answers when the query string is too long (IIS-style 404)."""
    html = (
        "<html><head><title>404 - File or directory not found.</title></head><body>"
        "<h2>404 - File or directory not found.</h2></body></html>"
    )
    return Response(html, status=404, content_type="text/html")


def bad_query(message: str) -> Response:
    return xero({"ErrorNumber": 16, "Type": "QueryParseException", "Message": message}, 400)


def too_many_requests(verdict: Verdict) -> Response:
    response = Response("", status=429)
    response.headers.update(verdict.headers)
    response.headers["Retry-After"] = str(verdict.retry_after)
    response.headers["X-Rate-Limit-Problem"] = verdict.problem
    return response


def injected(fault: CallFault, settings) -> Response | None:
    """Sleep the injected latency, then answer the injected failure (None: carry on)."""
    if fault.delay:
        time.sleep(fault.delay)
    if fault.kind == "timeout":
        time.sleep(settings.timeout_seconds)
        return Response(
            "<html><body><h1>504 Gateway Time-out</h1></body></html>", status=504, content_type="text/html"
        )
    if fault.kind == "error":
        status = settings.error_status
        return Response(
            "Service Unavailable" if status == 503 else "Internal Server Error",
            status=status,
            content_type="text/plain",
        )
    if fault.kind == "rate_limit":
        verdict = Verdict(False, "minute", settings.rate_limit_retry_after, {"X-MinLimit-Remaining": "0"})
        return too_many_requests(verdict)
    return None
