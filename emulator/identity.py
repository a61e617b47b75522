"""Identity routes: the consent page, /connect/token, /connect/revocation, JWKS, /connections."""

from __future__ import annotations

import base64
import json
from urllib.parse import unquote, urlencode, urlparse

from flask import Blueprint, Response, current_app, g, redirect, render_template_string, request

from . import responses
from .oauth import OAuthError, Unauthorized

bp = Blueprint("identity", __name__)

CONSENT_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Xero | Authorise {{ app_name }}</title>
<style>body{font-family:sans-serif;max-width:32rem;margin:3rem auto}li{list-style:none;margin:.4rem 0}
button{padding:.5rem 1.2rem;margin-right:.5rem}</style></head>
<body>
<h1 id="consent-title">{{ app_name }} wants access to your Xero organisation</h1>
<p id="user">Signed in as <strong id="user-email">{{ email }}</strong></p>
<p id="scopes">Requested access: <code>{{ scope }}</code></p>
{% if error %}<p id="error" role="alert">{{ error }}</p>{% endif %}
<form id="consent-form" method="post" action="{{ action }}">
  {% for name, value in hidden %}<input type="hidden" name="{{ name }}" value="{{ value }}">{% endfor %}
  <fieldset><legend>Select organisations to connect</legend><ul id="organisations">
  {% for org in orgs %}<li><label for="tenant-{{ loop.index0 }}">
    <input type="checkbox" id="tenant-{{ loop.index0 }}" name="tenant" value="{{ org.tenant_id }}"
      data-tenant-id="{{ org.tenant_id }}" data-short-code="{{ org.short_code }}"{% if loop.first %} checked{% endif %}>
    <span class="org-name">{{ org.name }}</span></label></li>{% endfor %}
  </ul></fieldset>
  <button type="submit" id="approve" name="decision" value="approve">Allow access</button>
  <button type="submit" id="deny" name="decision" value="deny">Cancel</button>
</form></body></html>"""
AUTHORIZE_FIELDS = (
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "code_challenge",
    "code_challenge_method",
    "nonce",
)


def emulator():
    return current_app.extensions["emulator"]


def _error_page(message: str, status: int = 400) -> Response:
    html = render_template_string("<!doctype html><title>Error</title><h1 id='error'>{{ m }}</h1>", m=message)
    return Response(html, status=status, content_type="text/html; charset=utf-8")


def _authorize_params(source) -> dict:
    return {name: (source.get(name) or "") for name in AUTHORIZE_FIELDS}


def _authorize_problem(params: dict) -> str | None:
    """An error shown on the page (never redirected): bad client or redirect URI."""
    if params["client_id"] != emulator().config.client_id:
        return "unauthorized_client: unknown client_id"
    uri = urlparse(params["redirect_uri"])
    if uri.scheme not in ("http", "https") or not uri.netloc:
        return "invalid_request: redirect_uri must be an absolute http(s) URL"
    return None


def _back(params: dict, **values) -> Response:
    query = {k: v for k, v in values.items() if v}
    if params["state"]:
        query["state"] = params["state"]
    separator = "&" if "?" in params["redirect_uri"] else "?"
    return redirect(params["redirect_uri"] + separator + urlencode(query), code=302)


@bp.get("/identity/connect/authorize")
def authorize_page():
    g.call_label = "GET /identity/connect/authorize"
    params = _authorize_params(request.args)
    problem = _authorize_problem(params)
    if problem:
        return _error_page(problem)
    if params["response_type"] != "code":
        return _back(params, error="unsupported_response_type")
    if params["code_challenge"] and params["code_challenge_method"] not in ("S256", "plain", ""):
        return _back(params, error="invalid_request")
    return _consent(params)


def _consent(params: dict, error: str | None = None, status: int = 200) -> Response:
    state = emulator()
    html = render_template_string(
        CONSENT_PAGE,
        app_name=state.config.provider_name,
        email=state.oauth.user.email,
        scope=params["scope"],
        orgs=state.tenants(),
        hidden=[(k, v) for k, v in params.items() if v],
        action="/identity/connect/authorize",
        error=error,
    )
    return Response(html, status=status, content_type="text/html; charset=utf-8")


@bp.post("/identity/connect/authorize")
def authorize_decision():
    g.call_label = "POST /identity/connect/authorize"
    params = _authorize_params(request.form)
    problem = _authorize_problem(params)
    if problem:
        return _error_page(problem)
    if request.form.get("decision") == "deny":
        return _back(params, error="access_denied")
    tenants = [t.lower() for t in request.form.getlist("tenant")]
    if not tenants:
        return _consent(params, error="Select at least one organisation", status=400)
    try:
        code = emulator().oauth.approve(
            client_id=params["client_id"],
            redirect_uri=params["redirect_uri"],
            scope=params["scope"],
            tenant_ids=tenants,
            code_challenge=params["code_challenge"] or None,
            code_challenge_method=params["code_challenge_method"] or None,
            nonce=params["nonce"] or None,
        )
    except OAuthError as exc:
        return _consent(params, error=exc.description or exc.error, status=400)
    return _back(params, code=code, scope=params["scope"], session_state=code[:16])


def _client_credentials() -> tuple[str | None, str | None]:
    """Client auth by HTTP Basic, or client_id/client_secret in the form body (as the SDK sends)."""
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("basic "):
        try:
            decoded = base64.b64decode(header[6:].strip()).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            return None, None
        client_id, _, secret = decoded.partition(":")
        return unquote(client_id), unquote(secret)
    return request.form.get("client_id"), request.form.get("client_secret")


def _oauth_json(body: dict, status: int = 200) -> Response:
    response = Response(json.dumps(body), status=status, content_type="application/json; charset=utf-8")
    response.headers["Cache-Control"] = "no-store"
    return response


def _oauth_error(exc: OAuthError) -> Response:
    if exc.error == "invalid_grant":
        # byte-exact: xero-python only recognises '{"error":"invalid_grant"}'
        return Response(
            '{"error":"invalid_grant"}', status=400, content_type="application/json; charset=utf-8"
        )
    body = {"error": exc.error}
    if exc.description:
        body["error_description"] = exc.description
    return _oauth_json(body, 400)


@bp.post("/connect/token")
def token():
    g.call_label = "POST /connect/token"
    state = emulator()
    form = request.form
    try:
        client_id, secret = _client_credentials()
        state.oauth.check_client(client_id, secret)
        grant_type = form.get("grant_type")
        issuer = state.issuer()
        if grant_type == "authorization_code":
            body = state.oauth.exchange_code(
                client_id=client_id,
                code=form.get("code", ""),
                redirect_uri=form.get("redirect_uri"),
                code_verifier=form.get("code_verifier"),
                issuer=issuer,
            )
        elif grant_type == "refresh_token":
            body = state.oauth.refresh(
                client_id=client_id, refresh_token=form.get("refresh_token", ""), issuer=issuer
            )
        elif grant_type == "client_credentials":
            body = state.oauth.client_credentials(client_id=client_id, scope=form.get("scope"), issuer=issuer)
        else:
            raise OAuthError("unsupported_grant_type")
    except OAuthError as exc:
        return _oauth_error(exc)
    return _oauth_json(body)


@bp.post("/connect/revocation")
def revocation():
    g.call_label = "POST /connect/revocation"
    state = emulator()
    try:
        client_id, secret = _client_credentials()
        state.oauth.check_client(client_id, secret)
    except OAuthError as exc:
        return _oauth_error(exc)
    state.oauth.revoke(client_id=client_id, token=request.form.get("token", ""))
    return Response("", status=200)


@bp.get("/.well-known/openid-configuration")
def discovery():
    g.call_label = "GET /.well-known/openid-configuration"
    issuer = emulator().issuer()
    base = (emulator().base_url or issuer).rstrip("/")
    return _oauth_json(
        {
            "issuer": issuer,
            "jwks_uri": f"{base}/.well-known/openid-configuration/jwks",
            "authorization_endpoint": f"{base}/identity/connect/authorize",
            "token_endpoint": f"{base}/connect/token",
            "revocation_endpoint": f"{base}/connect/revocation",
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
            "code_challenge_methods_supported": ["plain", "S256"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "subject_types_supported": ["public"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
        }
    )


@bp.get("/.well-known/openid-configuration/jwks")
def jwks():
    g.call_label = "GET /.well-known/openid-configuration/jwks"
    return _oauth_json(emulator().signer.jwks())


def _connections_guard():
    """Bearer token and app-wide rate limit for tenant-less calls; returns (grant, verdict, error)."""
    state = emulator()
    try:
        grant = state.oauth.authenticate(request.headers.get("Authorization"))
    except Unauthorized as exc:
        return None, None, responses.unauthorized(exc.detail, exc.expired)
    verdict = state.limits.app_call()
    if not verdict.allowed:
        return None, None, responses.too_many_requests(verdict)
    fault = responses.injected(state.faults.for_call(), state.faults.settings)
    return grant, verdict, fault


@bp.get("/connections")
def list_connections():
    g.call_label = "GET /Connections"
    grant, verdict, error = _connections_guard()
    if error is not None:
        return error
    response = responses.xero(emulator().oauth.connections(grant, request.args.get("authEventId")))
    response.headers.update(verdict.headers)
    return response


@bp.delete("/connections/<connection_id>")
def delete_connection(connection_id: str):
    g.call_label = "DELETE /Connections/{id}"
    grant, verdict, error = _connections_guard()
    if error is not None:
        return error
    if not emulator().oauth.delete_connection(grant, connection_id):
        return responses.not_found()
    response = Response("", status=204)
    response.headers.update(verdict.headers)
    return response
