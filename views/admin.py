"""/admin/xero: a workspace admin connects Xero (OAuth2 code flow with PKCE), saves, removes.

Who may enter (anyone else gets 403, on every path here):
- an admin-scope API key as `Authorization: Bearer` (API-style calls; answers are JSON);
- an admin session the CRM hands over: `POST /admin/sessions` with an admin key returns a
  one-time URL (`/admin/xero?ticket=...`, 60 s); opening it spends the ticket (Redis GETDEL)
  for a signed session cookie scoped to /admin (HttpOnly, SameSite=Lax, one hour). Every
  POST made with the session carries the session's CSRF token.

Connect: the `state` is random, single-use (GETDEL), ten minutes, and bound to the workspace
and the session that started the flow, so the callback must come back in that session (a
key-authenticated Connect starts one). The callback exchanges the code with the PKCE
verifier, checks the id_token against Xero's JWKS and our nonce, reads the connections of
that consent, lets the admin pick one organisation if several were granted, and holds the
sealed tokens in a `pending` connection; Save activates it and queues the backfill.

Remove: disconnect locally first (no worker can load the token any more), cancel the
tenant's jobs, delete the Xero connection and revoke the refresh token, then purge the
mirrored data. If Xero cannot be reached the local disconnect stands and the page says so.
No token ever reaches a page, a log line or a JSON answer.
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone

from flask import (
    Blueprint, Flask, Response, abort, current_app, flash, g, jsonify, redirect, render_template, request, session,
    url_for,
)
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from redis import RedisError
from werkzeug.exceptions import Forbidden

from store import connections, lifecycle
from infra import queue
from infra import metrics
from xero import timezones
from store.db import transaction
from store.lifecycle import Detached, LifecycleError
from infra.runtime import Runtime
from store.secrets import SecretsError, TokenBox
from ops.status import timezone_warning
from store.workspaces import authenticate
from views import health, oauth
from xero.identity import IdentityClient, IdentityError, IdentityRefused, TenantConnection
from xero.client import XeroClient, XeroError

bp = Blueprint("admin", __name__, url_prefix="/admin", template_folder="templates")
log = logging.getLogger(__name__)

TICKET_SECONDS = 60
SESSION_SECONDS = 3600
STATE_SECONDS = 600
CHOICE_SECONDS = 600
REFRESH_MARGIN = 60
STATE_REFUSED = (
    "This Xero sign-in was refused: it is not one this admin session started, or it was already "
    "used or has expired. Start again with Connect to Xero."
)


@dataclass(frozen=True)
class Admin:
    workspace_id: int
    via: str  # "key" | "session"


# --- wiring --------------------------------------------------------------------------------


@bp.record_once
def _configure(state) -> None:
    """The session cookie lives under /admin only, unreadable by scripts, not sent cross-site."""
    app = state.app
    settings = _runtime(app).settings
    if not app.secret_key:
        if not settings.secret_key:
            log.warning("SECRET_KEY is not set: admin sessions last as long as this process")
        app.secret_key = settings.secret_key or secrets.token_urlsafe(32)
    app.config.update(
        SESSION_COOKIE_NAME="xm_admin",
        SESSION_COOKIE_PATH="/admin",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.public_url.startswith("https://"),
    )
    app.session_interface = CookieSessions()


class CookieSessions(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, minus the work for a request that brings no cookie.

    Flask builds an itsdangerous serializer for every request, cookie or not (and building one
    serializes a test value to learn its type), before it looks for the cookie. Only /admin
    ever gets the cookie, so every webhook delivery and every read paid for a session it could
    not have: about a tenth of the web worker's time under load (bench/intake.py). A request
    without the cookie now gets an empty session at once, and the serializer is built once per
    secret key (and fallbacks), not once per request. What a session holds, how it is signed and
    when its cookie is set or cleared are Flask's, unchanged."""

    def __init__(self) -> None:
        self._built: tuple[tuple, object] | None = None  # (the keys, their serializer): one pair, swapped whole

    def get_signing_serializer(self, app: Flask):
        keys = (app.secret_key, tuple(app.config["SECRET_KEY_FALLBACKS"] or ()))
        built = self._built
        if built is not None and built[0] == keys:
            return built[1]
        found = super().get_signing_serializer(app)
        if found is not None:
            self._built = (keys, found)  # a new key replaces the old
        return found

    def open_session(self, app: Flask, request) -> SecureCookieSession | None:
        if app.secret_key and not request.cookies.get(self.get_cookie_name(app)):
            return self.session_class()  # what Flask gives a request without the cookie
        return super().open_session(app, request)


def _runtime(app=None) -> Runtime:
    return (app or current_app).extensions["xm"]


def _box() -> TokenBox:
    return TokenBox(_runtime().settings.token_keys)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _digest(secret: str) -> str:
    """Redis keys name a ticket, state or choice by its hash, never by the value itself."""
    return hashlib.sha256(secret.encode()).hexdigest()


def _external(endpoint: str, **values) -> str:
    public = _runtime().settings.public_url
    if public:
        return public + url_for(endpoint, **values)
    return url_for(endpoint, _external=True, **values)


# --- who is calling --------------------------------------------------------------------------


@bp.before_request
def _authorise() -> Response | None:
    if request.endpoint == "admin.page" and "ticket" in request.args:
        return _spend_ticket(request.args.get("ticket", ""))
    g.admin = _caller()
    if request.method == "POST" and g.admin.via == "session":
        sent = request.form.get("csrf", "")
        if not hmac.compare_digest(sent.encode(), str(session.get("csrf", "")).encode()):
            abort(403)
    return None


def _caller() -> Admin:
    header = request.headers.get("Authorization")
    if header is not None:  # a key, when given, decides alone
        scheme, _, key = header.partition(" ")
        if scheme.lower() == "bearer":
            with _runtime().sessions() as s:
                caller = authenticate(s, key.strip())
            if caller is not None and caller.is_admin:
                return Admin(caller.workspace_id, "key")
        abort(403)
    workspace_id = session.get("ws")
    if isinstance(workspace_id, int) and time.time() < float(session.get("exp", 0)):
        return Admin(workspace_id, "session")
    session.clear()
    abort(403)


def _spend_ticket(ticket: str) -> Response:
    """A ticket is good once: its workspace gets a fresh session and the URL loses the ticket."""
    raw = _runtime().redis.getdel(f"xm:admin:ticket:{_digest(ticket)}") if ticket else None
    if raw is None:
        session.clear()
        abort(403)
    _start_session(int(raw))
    return redirect(url_for("admin.page"), 303)


def _start_session(workspace_id: int) -> None:
    session.clear()
    session.update(ws=workspace_id, sid=secrets.token_urlsafe(16), csrf=secrets.token_urlsafe(32),
                   exp=int(time.time()) + SESSION_SECONDS)


@bp.after_request
def _headers(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"  # tickets and codes never leave in a Referer
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Content-Security-Policy"] = "frame-ancestors 'none'"
    return response


@bp.errorhandler(Forbidden)
def _forbidden(_error) -> tuple[Response | str, int]:
    if request.headers.get("Authorization") is not None:
        return jsonify(error="forbidden: an admin API key or admin session is required"), 403
    return render_template("admin/message.html", title="Forbidden",
                           message="This page is for the workspace's administrators."), 403


@bp.errorhandler(SecretsError)
def _no_keys(error: SecretsError) -> tuple[str, int]:
    log.error("admin action failed: %s", error)
    return render_template("admin/message.html", title="Not configured",
                           message="Xero tokens cannot be sealed: TOKEN_KEYS is missing or wrong."), 503


# --- pages and actions ------------------------------------------------------------------------


@bp.post("/sessions")
def new_session():
    """A one-time URL that opens an admin session in a browser (for the CRM to hand over)."""
    if g.admin.via != "key":
        abort(403)
    ticket = secrets.token_urlsafe(32)
    _runtime().redis.set(f"xm:admin:ticket:{_digest(ticket)}", g.admin.workspace_id, ex=TICKET_SECONDS)
    return jsonify(url=_external("admin.page", ticket=ticket), expires_in=TICKET_SECONDS), 201


@bp.get("/xero")
def page():
    with _runtime().sessions() as s:
        shown = lifecycle.shown(s, g.admin.workspace_id)
        zone = _zone_facts(s, shown)
    live = shown is not None and shown.status == "active"
    warning = health.webhook_warning(_runtime(), shown.tenant_id) if live else None
    if g.admin.via == "key" or request.accept_mimetypes.best == "application/json":
        return jsonify(connection=_connection_json(shown, zone), webhook_warning=warning)
    return render_template("admin/xero.html", shown=shown, zone=zone, csrf=session.get("csrf", ""),
                           webhook_warning=warning)


@bp.post("/xero/connect")
def connect():
    settings = _runtime().settings
    if g.admin.via == "key":
        _start_session(g.admin.workspace_id)  # the callback must come back with this session
    verifier, state, nonce = oauth.new_verifier(), oauth.new_state(), secrets.token_urlsafe(16)
    redirect_uri = _external("admin.callback")
    flow = {"ws": g.admin.workspace_id, "sid": session["sid"], "verifier": verifier, "nonce": nonce,
            "redirect_uri": redirect_uri}
    _runtime().redis.set(f"xm:admin:state:{_digest(state)}", _box().seal(flow), ex=STATE_SECONDS)
    return redirect(
        oauth.authorize_url(
            settings.xero_login_url, client_id=settings.xero_client_id, redirect_uri=redirect_uri,
            scopes=settings.xero_scopes, state=state, code_challenge=oauth.challenge(verifier), nonce=nonce,
        ),
        303,
    )


@bp.get("/xero/callback")
def callback():
    state = request.args.get("state", "")
    raw = _runtime().redis.getdel(f"xm:admin:state:{_digest(state)}") if state else None
    flow = _box().open(raw) if raw is not None else None
    if flow is None or flow["ws"] != g.admin.workspace_id or flow["sid"] != session.get("sid"):
        log.warning("admin callback refused: unknown, replayed or foreign state",
                    extra={"workspace_id": g.admin.workspace_id})
        return render_template("admin/message.html", title="Sign-in refused", message=STATE_REFUSED), 400
    if request.args.get("error"):
        error = re.sub(r"[^a-z_]", "", request.args["error"])[:64]
        return _reply(f"Xero did not connect ({error or 'no reason given'}).", 400)
    code = request.args.get("code", "")
    if not code:
        return _reply("Xero sent no authorisation code. Start again with Connect to Xero.", 400)
    try:
        with IdentityClient(_runtime().settings) as identity:
            token, email, granted = _consent(identity, code, flow)
    except (IdentityError, oauth.BadIdToken) as exc:
        log.warning("admin callback failed", extra={"workspace_id": g.admin.workspace_id, "error": str(exc)})
        return _reply(f"Connecting to Xero failed: {exc}. Start again with Connect to Xero.", 502)
    if not granted:
        return _reply("Xero granted access to no organisation. Start again and choose one.", 400)
    if len(granted) == 1:
        return _hold(token, email, granted[0], granted)
    choice = secrets.token_urlsafe(16)
    stash = {"token": token, "email": email, "granted": [asdict(c) for c in granted]}
    _runtime().redis.set(f"xm:admin:choice:{_digest(choice)}", _box().seal(stash), ex=CHOICE_SECONDS)
    session["choice"] = choice
    return render_template("admin/choose.html", granted=granted, csrf=session.get("csrf", ""))


@bp.post("/xero/choose")
def choose():
    choice = session.pop("choice", None)
    raw = _runtime().redis.getdel(f"xm:admin:choice:{_digest(choice)}") if choice else None
    if raw is None:
        return _reply("That choice has expired. Start again with Connect to Xero.", 400)
    stash = _box().open(raw)
    granted = [TenantConnection(**c) for c in stash["granted"]]
    chosen = next((c for c in granted if c.tenant_id == request.form.get("tenant_id", "").lower()), None)
    if chosen is None:
        _discard(stash["token"], stash["email"], granted, revoke=True)
        return _reply("No organisation was chosen. Start again with Connect to Xero.", 400)
    return _hold(stash["token"], stash["email"], chosen, granted)


@bp.post("/xero/save")
def save():
    rt = _runtime()
    try:
        with transaction(rt.sessions) as s:
            record = lifecycle.activate(s, _box(), g.admin.workspace_id, _now())
    except LifecycleError as exc:
        return _reply(str(exc), 409)
    log.info("xero connection saved", extra={"workspace_id": g.admin.workspace_id, "tenant_id": record.tenant_id})
    try:
        queue.enqueue(rt.redis, queue.BACKFILL, record.tenant_id)
        queue.wake(rt.redis, [record.tenant_id])  # what Xero announced while it waited (e.g. for re-consent)
    except RedisError:
        log.warning("backfill not queued: Redis unavailable", extra={"tenant_id": record.tenant_id})
        return _reply(f"Saved: {record.tenant_name} is connected. The initial load will start within "
                      "a few minutes (the job queue is unreachable right now).")
    return _reply(f"Saved: {record.tenant_name} is connected and its invoices are loading.")


@bp.post("/xero/remove")
def remove():
    rt = _runtime()
    with transaction(rt.sessions) as s:
        detached = lifecycle.detach(s, _box(), g.admin.workspace_id, _now())
    if detached is None:
        return _reply("There is no Xero connection to remove.", 409)
    problems = []
    guards = [queue.guard_key(kind, detached.tenant_id) for kind in queue.QUEUE]
    try:
        lifecycle.cancel_jobs(rt.redis, detached.tenant_id, guards)
    except RedisError:
        problems.append("its queued jobs could not be cancelled now; they will find no connection and stop.")
    problems += _undo_at_xero(detached)
    with transaction(rt.sessions) as s:
        lifecycle.purge(s, g.admin.workspace_id, detached.tenant_id)
    log.info("xero connection removed", extra={"workspace_id": g.admin.workspace_id, "tenant_id": detached.tenant_id,
                                               "problems": len(problems)})
    message = f"Removed {detached.tenant_name or 'the Xero connection'}; its mirrored data was deleted."
    if detached.user_shared:
        message += (" Xero access was not revoked, because the same Xero user connects another workspace and"
                    " revoking would disconnect that one too; the organisation's connection was deleted.")
    return _reply(" ".join([message, *problems]), problems=problems)


# --- the steps ---------------------------------------------------------------------------------


def _consent(identity: IdentityClient, code: str, flow: dict) -> tuple[dict, str | None, list[TenantConnection]]:
    """Exchange the code; the token set, the consenting user's email, the organisations granted."""
    settings = _runtime().settings
    token = identity.exchange_code(code, flow["redirect_uri"], flow["verifier"])
    email = None
    if token.get("id_token"):
        claims = oauth.verify_id_token(token["id_token"], identity.jwks(), issuer=settings.xero_identity_url,
                                       audience=settings.xero_client_id, now=time.time(), nonce=flow["nonce"])
        email = claims.get("email")
    token["id_token"] = None  # read once, never kept
    try:
        event = oauth.read_claims(token["access_token"]).get("authentication_event_id")
    except oauth.BadIdToken:
        event = None  # not a JWT: fall back to every organisation the token may read
    return token, email, identity.connections(token["access_token"], event or None)


def _hold(token: dict, email: str | None, chosen: TenantConnection, granted: list[TenantConnection]) -> Response:
    """Keep the chosen organisation as the pending connection, or refuse and undo the grant."""
    organisation = _organisation(chosen.tenant_id, token["access_token"])
    try:
        with transaction(_runtime().sessions) as s:
            held = lifecycle.hold_pending(
                s, _box(), workspace_id=g.admin.workspace_id, tenant_id=chosen.tenant_id, token=token, now=_now(),
                tenant_name=chosen.tenant_name or organisation.get("Name"), xero_connection_id=chosen.id,
                auth_event_id=chosen.auth_event_id or None, connected_email=email,
                short_code=organisation.get("ShortCode"), base_currency=organisation.get("BaseCurrency"),
            )
            connections.note_organisation(s, held, organisation, _now())  # its Timezone, and when it was read
    except LifecycleError as exc:
        _discard(token, email, granted, revoke=True)
        log.info("xero connection refused", extra={"workspace_id": g.admin.workspace_id, "tenant_id": chosen.tenant_id,
                                                   "reason": type(exc).__name__})
        return _reply(str(exc), 409)
    _discard(token, email, [c for c in granted if c.id != chosen.id], revoke=False)
    return _reply(f"Xero connected {chosen.tenant_name}. Check the organisation and the email, then Save.")


def _organisation(tenant_id: str, access_token: str) -> dict:
    """Xero's Organisation record (ShortCode, BaseCurrency, Timezone), if it answers: nice to have
    (reconciliation reads it again while the time zone is unknown)."""
    try:
        runtime = _runtime()  # Xero bills this read's bytes like any other: metered under the tenant
        client = XeroClient(runtime.settings, on_bytes=lambda t, n: metrics.egress(runtime.redis, t, n))
        return client.organisation(tenant_id, access_token)
    except XeroError as exc:
        log.info("organisation not read", extra={"tenant_id": tenant_id, "error": str(exc)})
        return {}


def _discard(token: dict, email: str | None, unwanted: list[TenantConnection], revoke: bool) -> None:
    """Undo what a consent made that we keep no use for, sparing what another workspace stands on."""
    with _runtime().sessions() as s:
        doomed = [c for c in unwanted if not lifecycle.in_use(s, c.id)]
        revoke = revoke and bool(token.get("refresh_token")) and not lifecycle.user_connects_elsewhere(s, email)
    try:
        with IdentityClient(_runtime().settings) as identity:
            for connection in doomed:
                identity.delete_connection(token["access_token"], connection.id)
            if revoke:
                identity.revoke(token["refresh_token"])
    except IdentityError as exc:
        log.warning("unused Xero grant not fully undone", extra={"error": str(exc)})


def _undo_at_xero(detached: Detached) -> list[str]:
    """Delete the Xero connection and revoke the refresh token; what could not be done, in words.

    A grant Xero already refuses (invalid_grant, 401) has nothing left to undo.
    """
    token = detached.token
    if not token.get("access_token"):
        return []
    problems: list[str] = []
    with IdentityClient(_runtime().settings) as identity:
        try:
            if token.get("refresh_token") and float(token.get("expires_at") or 0) < time.time() + REFRESH_MARGIN:
                token = identity.refresh(token["refresh_token"], token.get("scope") or [])
        except IdentityError as exc:
            return [] if _already_withdrawn(exc) else [_problem(exc)]
        steps = []
        if detached.xero_connection_id:
            steps.append(lambda: identity.delete_connection(token["access_token"], detached.xero_connection_id))
        if token.get("refresh_token") and not detached.user_shared:
            steps.append(lambda: identity.revoke(token["refresh_token"]))
        for step in steps:
            try:
                step()
            except IdentityError as exc:
                if not _already_withdrawn(exc) and _problem(exc) not in problems:
                    problems.append(_problem(exc))
    return problems


def _already_withdrawn(exc: IdentityError) -> bool:
    return isinstance(exc, IdentityRefused) and exc.error in ("invalid_grant", "http_401")


def _problem(exc: IdentityError) -> str:
    if isinstance(exc, IdentityRefused):
        return f"Xero refused to disconnect it ({exc}); remove the app in Xero's Connected Apps to be sure."
    return "Xero could not be reached to disconnect it there; remove the app in Xero's Connected Apps."


def _zone_facts(s, shown: lifecycle.Shown | None) -> dict | None:
    """The organisation's time zone as the connection keeps it: IANA (`timezone`), Xero's own id
    (`timezone_xero`, None until read), whether it mapped, the warning when Xero's id is unknown
    and dates use UTC, and the organisation's date today."""
    if shown is None:
        return None
    record = connections.find(s, shown.tenant_id)
    zone = timezones.zone_for(record.timezone if record else None)
    return {
        "timezone": zone.iana,
        "timezone_xero": zone.xero,
        "timezone_mapped": zone.mapped,
        "timezone_warning": timezone_warning(zone),
        "today": timezones.org_today(zone, _now()).isoformat(),
    }


def _connection_json(shown: lifecycle.Shown | None, zone: dict | None) -> dict | None:
    return {**asdict(shown), **(zone or {})} if shown else None


def _reply(message: str, status: int = 200, problems: list[str] | tuple = ()) -> Response | tuple[Response, int]:
    """The outcome of an action: flashed on the page for a browser, JSON for a key."""
    if g.admin.via == "key":
        with _runtime().sessions() as s:
            shown = lifecycle.shown(s, g.admin.workspace_id)
            zone = _zone_facts(s, shown)
        body = {"message": message, "problems": list(problems), "connection": _connection_json(shown, zone)}
        return jsonify(body), status
    flash(message, "error" if status >= 400 or problems else "ok")
    return redirect(url_for("admin.page"), 303)
