"""/admin/xero: a workspace admin connects Xero (OAuth2 code flow with PKCE), saves, removes.

Who may enter (anyone else gets 403, on every path here):
- an admin-scope API key as `Authorization: Bearer` (API-style calls; answers are JSON);
- an admin session the CRM hands over: `POST /admin/sessions` with an admin key returns a
  one-time URL (`/admin/xero?ticket=...`, 60 s); opening it spends the ticket for a signed
  session cookie scoped to /admin (HttpOnly, SameSite=Lax, one hour) whose id Redis keeps
  (`services.admin_sessions`). Every POST made with the session carries its CSRF token.

A session stands while Redis keeps it and the key that minted its ticket is not revoked;
Sign out ends it. A link to another workspace opened while a session is open asks before
switching. Every page names the workspace it acts for. A pending connection is saved, or
discarded, only by the session that consented to it: never by another session or a key.

Remove asks first: `GET /admin/xero/remove` (the page's Remove button, no script needed)
shows what it deletes (the organisation's mirror, the workspace's pins of it) and what it
keeps (the CRM's records and their links), and its form POSTs `confirm=<tenant id>`; a POST
without `confirm` removes nothing (400, with the same confirmation, in JSON for a key).

Connect, Save and Remove are `services.connection`'s; this blueprint parses the request,
calls the service, and turns its outcome or its exception into a page or a JSON answer.
No token ever reaches a page, a log line or a JSON answer.
"""
from __future__ import annotations

import hmac
import logging
import re
import secrets
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone

from flask import (
    Blueprint,
    Flask,
    abort,
    current_app,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from redis import RedisError
from werkzeug.exceptions import Forbidden
from werkzeug.wrappers import Response  # what redirect() gives, and flask.Response's base

from ops.status import timezone_warning
from services import admin_sessions
from services.admin_sessions import SESSION_SECONDS, TICKET_SECONDS, Grant, digest
from services.connection import Choice, ConnectError, ConnectionService, ConsentFailed, StateRefused
from services.runtime import Runtime
from store import connections, lifecycle
from store.lifecycle import LifecycleError, NothingToRemove, PendingElsewhere
from store.secrets import SecretsError
from store.workspaces import authenticate, key_id_of, key_is_live
from views import health
from xero import timezones

bp = Blueprint("admin", __name__, url_prefix="/admin", template_folder="templates")
log = logging.getLogger(__name__)

KEY_CANNOT_SAVE = ("An API key cannot save or discard a Xero connection started in an admin session: "
                   "only that session can. Nothing was changed.")
LINK_REFUSED = ("This admin link is not valid: it was already used, has expired, or its key was revoked. "
                "Ask your CRM for a new one.")


@dataclass(frozen=True)
class Admin:
    workspace_id: int
    via: str  # "key" | "session"
    key_id: int  # the key used, or the one that minted the session's ticket
    session_id: str | None = None  # a session's id (None for a key)


# --- wiring --------------------------------------------------------------------------------


@bp.record_once
def _configure(state) -> None:
    """The session cookie lives under /admin only, unreadable by scripts, not sent cross-site."""
    app = state.app
    settings = _runtime(app).settings
    if not app.secret_key:
        if not settings.secret_key:  # said when the app first serves, not here: CLI commands need no key
            app.before_request(_warn_without_secret_key)
        app.secret_key = settings.secret_key or secrets.token_urlsafe(32)
    app.config.update(
        SESSION_COOKIE_NAME="xm_admin",
        SESSION_COOKIE_PATH="/admin",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.secure_cookies,  # production, or an https PUBLIC_URL
    )
    app.session_interface = CookieSessions()


_warned_without_secret_key: list[bool] = []


def _warn_without_secret_key() -> None:
    if not _warned_without_secret_key:
        _warned_without_secret_key.append(True)
        log.warning("SECRET_KEY is not set: admin sessions last as long as this process")


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


def _service() -> ConnectionService:
    return ConnectionService(_runtime())


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _external(endpoint: str, **values) -> str:
    public = _runtime().settings.public_url
    if public:
        return public + url_for(endpoint, **values)
    return url_for(endpoint, _external=True, **values)


# --- who is calling --------------------------------------------------------------------------


@bp.before_request
def _authorise() -> Response | tuple[str, int] | None:
    if request.endpoint == "admin.page" and "ticket" in request.args:
        return _open_link(request.args.get("ticket", ""))
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
                key_id = key_id_of(s, key.strip()) if caller is not None and caller.is_admin else None
            if caller is not None and key_id is not None:
                return Admin(caller.workspace_id, "key", key_id)
        abort(403)
    admin = _standing_session()
    if admin is None:
        session.clear()
        abort(403)
    return admin


def _standing_session() -> Admin | None:
    """The session this browser holds, if it still stands: unexpired, not signed out, its key live."""
    session_id, workspace_id = session.get("sid"), session.get("ws")
    if not (isinstance(session_id, str) and isinstance(workspace_id, int)
            and time.time() < float(session.get("exp", 0))):
        return None
    redis = _runtime().redis
    grant = admin_sessions.find(redis, session_id)
    if grant is None or grant.workspace_id != workspace_id:
        return None
    with _runtime().sessions() as s:
        live = key_is_live(s, grant.key_id)
    if not live:
        admin_sessions.end(redis, session_id)  # the key was revoked: so is every session it opened
        return None
    return Admin(workspace_id, "session", grant.key_id, session_id)


def _open_link(ticket: str) -> Response | tuple[str, int]:
    """A ticket is good once. Its workspace gets a fresh session and the URL loses the ticket,
    unless a session of another workspace is open: that one stays, and is asked first."""
    grant = admin_sessions.take_ticket(_runtime().redis, ticket)
    target = _target(grant)
    if grant is None or target is None:
        return render_template("admin/message.html", title="Link not valid", message=LINK_REFUSED), 403
    current = _standing_session()
    if current is not None and current.session_id is not None and current.workspace_id != grant.workspace_id:
        g.admin = current
        offer = admin_sessions.offer_switch(_runtime().redis, grant, current.session_id)
        return render_template("admin/switch.html", target=target, offer=offer, csrf=session.get("csrf", "")), 200
    if current is None:
        _start_session(grant)
    return redirect(url_for("admin.page"), 303)


def _target(grant: Grant | None) -> dict | None:
    """The workspace a ticket or offer opens, named, while its key is live; else None."""
    if grant is None:
        return None
    with _runtime().sessions() as s:
        name = lifecycle.workspace_name(s, grant.workspace_id)
        live = key_is_live(s, grant.key_id)
    return {"id": grant.workspace_id, "name": name} if live and name is not None else None


def _start_session(grant: Grant) -> None:
    """A new session for the grant; the one this browser held, if any, ends."""
    redis = _runtime().redis
    if isinstance(session.get("sid"), str):
        admin_sessions.end(redis, session["sid"])
    session.clear()
    session.update(ws=grant.workspace_id, sid=admin_sessions.open_session(redis, grant),
                   csrf=secrets.token_urlsafe(32), exp=int(time.time()) + SESSION_SECONDS)


@bp.context_processor
def _acting_for() -> dict:
    """Every admin page names the workspace it acts for, and offers Sign out to a session."""
    admin: Admin | None = g.get("admin")
    if admin is None:
        return {"workspace": None, "signed_in": False}
    with _runtime().sessions() as s:
        name = lifecycle.workspace_name(s, admin.workspace_id)
    return {"workspace": {"id": admin.workspace_id, "name": name}, "signed_in": admin.via == "session",
            "session_csrf": session.get("csrf", "")}


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


@bp.errorhandler(RedisError)
def _no_redis(error: RedisError) -> tuple[Response | str, int]:
    log.error("admin request failed: Redis unavailable (%s)", type(error).__name__)
    message = "Admin sessions are kept in Redis, which cannot be reached right now. Try again shortly."
    if request.headers.get("Authorization") is not None:
        return jsonify(error=message), 503
    return render_template("admin/message.html", title="Unavailable", message=message), 503


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
    ticket = admin_sessions.mint_ticket(_runtime().redis, Grant(g.admin.workspace_id, g.admin.key_id))
    return jsonify(url=_external("admin.page", ticket=ticket), expires_in=TICKET_SECONDS), 201


@bp.post("/switch")
def switch():
    """The admin confirmed: the open session ends and the link's workspace gets a new one."""
    if g.admin.via != "session" or g.admin.session_id is None:
        abort(403)
    grant = admin_sessions.take_switch(_runtime().redis, request.form.get("offer", ""), g.admin.session_id)
    target = _target(grant)
    if grant is None or target is None:
        return render_template("admin/message.html", title="Link not valid",
                               message=f"{LINK_REFUSED} You are still signed in to this workspace."), 403
    _start_session(grant)
    flash(f"Switched to workspace {target['name']} (#{target['id']}).", "ok")
    return redirect(url_for("admin.page"), 303)


@bp.post("/signout")
def signout():
    """End this session, here and in Redis: its cookie opens nothing any more."""
    if g.admin.via != "session" or g.admin.session_id is None:
        abort(403)
    admin_sessions.end(_runtime().redis, g.admin.session_id)
    session.clear()
    g.admin = None
    return render_template("admin/message.html", title="Signed out",
                           message="You are signed out. Open a new admin link from your CRM to come back.")


@bp.get("/xero")
def page():
    with _runtime().sessions() as s:
        shown = lifecycle.shown(s, g.admin.workspace_id)
        zone = _zone_facts(s, shown)
    live = shown is not None and shown.status == "active"
    warning = health.webhook_warning(_runtime(), shown.tenant_id) if shown is not None and live else None
    if g.admin.via == "key" or request.accept_mimetypes.best == "application/json":
        return jsonify(workspace=_workspace_json(), connection=_connection_json(shown, zone), webhook_warning=warning)
    return render_template("admin/xero.html", shown=shown, zone=zone, csrf=session.get("csrf", ""),
                           webhook_warning=warning, pending=_pending_here(shown))


def _pending_here(shown: lifecycle.Shown | None) -> dict:
    """Whether this session may save the pending connection (it consented), or discard it
    (it consented, or the session that did has ended)."""
    if shown is None or shown.status != "pending":
        return {"save": False, "discard": True}
    rt = _runtime()
    with rt.sessions() as s:
        starter = lifecycle.pending_session(s, g.admin.workspace_id)
    mine = bool(starter) and g.admin.session_id is not None and starter == digest(g.admin.session_id)
    orphaned = not starter or not admin_sessions.alive(rt.redis, rt.sessions, starter)
    return {"save": mine, "discard": mine or orphaned}


@bp.post("/xero/connect")
def connect():
    if g.admin.via == "key":
        _start_session(Grant(g.admin.workspace_id, g.admin.key_id))  # the callback must come back with it
    url = _service().begin(g.admin.workspace_id, session["sid"], _external("admin.callback"))
    return redirect(url, 303)


@bp.get("/xero/callback")
def callback():
    try:
        flow = _service().take_flow(request.args.get("state", ""), g.admin.workspace_id, g.admin.session_id)
    except StateRefused as exc:
        return render_template("admin/message.html", title="Sign-in refused", message=str(exc)), 400
    if request.args.get("error"):
        error = re.sub(r"[^a-z_]", "", request.args["error"])[:64]
        return _reply(f"Xero did not connect ({error or 'no reason given'}).", 400)
    code = request.args.get("code", "")
    if not code:
        return _reply("Xero sent no authorisation code. Start again with Connect to Xero.", 400)
    try:
        outcome = _service().consent(g.admin.workspace_id, flow, code)
    except (ConnectError, LifecycleError) as exc:
        return _refused(exc)
    if isinstance(outcome, Choice):
        session["choice"] = outcome.key
        return render_template("admin/choose.html", granted=outcome.granted, csrf=session.get("csrf", ""))
    return _held(outcome.tenant_name)


@bp.post("/xero/choose")
def choose():
    try:
        held = _service().choose(g.admin.workspace_id, session.pop("choice", None), request.form.get("tenant_id", ""))
    except (ConnectError, LifecycleError) as exc:
        return _refused(exc)
    return _held(held.tenant_name)


@bp.post("/xero/save")
def save():
    try:
        saved = _service().save(g.admin.workspace_id, g.admin.session_id)
    except LifecycleError as exc:
        return _refused(exc)
    name = saved.connection.tenant_name
    if not saved.backfill_queued:
        return _reply(f"Saved: {name} is connected. The initial load will start within "
                      "a few minutes (the job queue is unreachable right now).")
    return _reply(f"Saved: {name} is connected and its invoices are loading.")


@bp.get("/xero/remove")
def confirm_remove():
    """The confirmation step: what Remove (or Discard) would delete and what it keeps."""
    try:
        inventory = _removable()
    except LifecycleError as exc:
        return _refused(exc)
    return _confirmation(inventory, 200)


@bp.post("/xero/remove")
def remove():
    """Remove, once confirmed: `confirm` (a form field, or JSON `{"confirm": ...}`) names the
    tenant id of the organisation being removed, as the confirmation step gives it. Without
    it nothing is removed: 400 with the confirmation (the page, or the same counts in JSON);
    confirmed for an organisation that is no longer the connection, 409."""
    confirmed = _confirmed()
    try:
        if confirmed is None:
            return _confirmation(_removable(), 400)
        removed = _service().remove(g.admin.workspace_id, g.admin.session_id, confirmed)
    except LifecycleError as exc:
        return _refused(exc)
    name = removed.tenant_name or "the Xero connection"
    message = f"Removed {name}; its mirrored data was deleted"
    if removed.purged is not None:
        p = removed.purged
        message += (f" ({p.invoices} invoices and bills, {p.payments} payments, {p.contacts} contacts)"
                    f" with the {p.pins} pins of its invoices")
    message += (". The CRM's records and their links were kept: they work again if the same organisation"
                " is connected again.")
    if removed.user_shared:
        message += (" Xero access was not revoked, because the same Xero user connects another workspace and"
                    " revoking would disconnect that one too; the organisation's connection was deleted.")
    deleted = asdict(removed.purged) if removed.purged is not None else None
    return _reply(" ".join([message, *removed.problems]), problems=removed.problems, deleted=deleted)


def _removable() -> lifecycle.Inventory:
    """What removing the workspace's connection would delete and keep, if this caller may
    remove it (PendingElsewhere, NothingToRemove otherwise)."""
    _service().may_remove(g.admin.workspace_id, g.admin.session_id)
    with _runtime().sessions() as s:
        inventory = lifecycle.inventory(s, g.admin.workspace_id)
    if inventory is None:
        raise NothingToRemove("There is no Xero connection to remove.")
    return inventory


def _confirmed() -> str | None:
    """The tenant id the admin confirmed removing, if the request carries one."""
    value = request.form.get("confirm")
    if value is None and request.is_json:
        body = request.get_json(silent=True)
        value = body.get("confirm") if isinstance(body, dict) else None
    if not isinstance(value, str) or not value.strip():
        return None
    return value.strip()[:64]


def _confirmation(inventory: lifecycle.Inventory, status: int) -> Response | tuple[Response | str, int]:
    """The confirmation step: a page with the confirming form, or for a key the same facts in JSON."""
    name = inventory.tenant_name or "this organisation"
    if g.admin.via == "key" or request.accept_mimetypes.best == "application/json":
        asked = "Removing needs confirmation" if status == 400 else "Removing"
        message = (f"{asked}: POST again with confirm={inventory.tenant_id} (the tenant id of {name}) to remove it. "
                   "That deletes what `remove.deletes` counts and keeps what `remove.keeps` counts.")
        with _runtime().sessions() as s:
            shown = lifecycle.shown(s, g.admin.workspace_id)
            zone = _zone_facts(s, shown)
        body: dict = {"message": message, "problems": [], "workspace": _workspace_json(),
                      "connection": _connection_json(shown, zone),
                      "remove": {"tenant_id": inventory.tenant_id, "tenant_name": inventory.tenant_name,
                                 "status": inventory.status, "confirm": inventory.tenant_id,
                                 "deletes": asdict(inventory.deletes), "keeps": asdict(inventory.keeps)}}
        return jsonify(body), status
    return render_template("admin/remove.html", inventory=inventory, name=name,
                           csrf=session.get("csrf", "")), status


# --- answers -----------------------------------------------------------------------------------


def _held(tenant_name: str) -> Response | tuple[Response, int]:
    return _reply(f"Xero connected {tenant_name}. Check the organisation and the email, then Save.")


def _refused(exc: ConnectError | LifecycleError) -> Response | tuple[Response, int]:
    """The service's refusals, each with its status: a pending connection of another session 403,
    a conflict with what is connected 409, Xero failing 502, anything else about the request 400."""
    if isinstance(exc, PendingElsewhere):
        log.warning("pending connection refused to another session or a key",
                    extra={"workspace_id": g.admin.workspace_id, "via": g.admin.via})
        return _reply(KEY_CANNOT_SAVE if g.admin.via == "key" else str(exc), 403)
    if isinstance(exc, LifecycleError):
        return _reply(str(exc), 409)
    return _reply(str(exc), 502 if isinstance(exc, ConsentFailed) else 400)


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


def _workspace_json() -> dict:
    with _runtime().sessions() as s:
        return {"id": g.admin.workspace_id, "name": lifecycle.workspace_name(s, g.admin.workspace_id)}


def _connection_json(shown: lifecycle.Shown | None, zone: dict | None) -> dict | None:
    return {**asdict(shown), **(zone or {})} if shown else None


def _reply(message: str, status: int = 200, problems: list[str] | tuple = (),
           **extra) -> Response | tuple[Response, int]:
    """The outcome of an action: flashed on the page for a browser, JSON for a key (with `extra`)."""
    if g.admin.via == "key":
        with _runtime().sessions() as s:
            shown = lifecycle.shown(s, g.admin.workspace_id)
            zone = _zone_facts(s, shown)
        body = {"message": message, "problems": list(problems), "workspace": _workspace_json(),
                "connection": _connection_json(shown, zone), **extra}
        return jsonify(body), status
    flash(message, "error" if status >= 400 or problems else "ok")
    return redirect(url_for("admin.page"), 303)
